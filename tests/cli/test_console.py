"""Output on a terminal that is not UTF-8: degraded to what it can show, never a traceback.

Every command runs as a real process under PYTHONIOENCODING=cp1252 and =ascii (before, `train
--help` and `evaluate` died with UnicodeEncodeError on σ, →, γ̃).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from numbamlp.cli.console import fit

SCRIPT = Path(sys.executable).with_name("numbamlp")
NUMBAMLP = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "numbamlp.cli.commands"]
ENCODINGS = ("cp1252", "ascii")


def test_fit_spells_the_symbols_out():
    text = "Dense(784 => 32, σ) → Dense(32 => 9) → γ̃; ∇θ ℓ, φ′ · δ"
    assert fit(text, "ascii") == (
        "Dense(784 => 32, sigmoid) -> Dense(32 => 9) -> gamma~; grad theta l, phi' * delta"
    )
    assert fit(text, "utf-8") == text
    assert fit("§7.3, 2×3, ŷ, x², ☃", "ascii") == "section 7.3, 2x3, y, x2, ?"
    assert fit("2×3 · σ", "cp1252") == "2×3 · sigmoid"  # cp1252 has × and ·
    assert fit("σ", "no-such-codec") == "sigmoid"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("console")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), np.arange(60) % 3
    np.savez(root / "train.npz", X=X, y=y)
    model = root / "model.npz"
    out = _run("utf-8", "train", "--train-file", root / "train.npz", "--epochs", "1",
               "--head", "modified-softmax", "--save", model)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return {"train": root / "train.npz", "model": model, "five": root / "five.npz"}


def _run(encoding: str, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONIOENCODING=encoding, LANG="C", LC_ALL="C")
    return subprocess.run(
        NUMBAMLP + [str(a) for a in args], capture_output=True, env=env, timeout=300
    )


def _decoded(out: subprocess.CompletedProcess, encoding: str) -> tuple[str, str]:
    assert b"Traceback" not in out.stderr, out.stderr.decode(errors="replace")
    return out.stdout.decode(encoding), out.stderr.decode(encoding)  # strict: no foreign bytes


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_help_on_a_narrow_terminal(encoding):
    for args in (("--help",), ("train", "--help"), ("gradcheck", "--help")):
        out = _run(encoding, *args)
        stdout, _ = _decoded(out, encoding)
        assert out.returncode == 0 and "Usage:" in stdout, (args, stdout)
    stdout, _ = _decoded(_run(encoding, "train", "--help"), encoding)
    assert "Dense(784 => 32, sigmoid) -> Dense(32 => 10) -> softmax" in stdout
    assert "gamma~" in stdout


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_commands_on_a_narrow_terminal(encoding, files):
    out = _run(encoding, "evaluate", "--model", files["model"], "--test-file", files["train"])
    stdout, _ = _decoded(out, encoding)
    assert out.returncode == 0, stdout
    assert "Dense(4 => 32, sigmoid) -> Dense(32 => 2) -> gamma~ (modified softmax)" in stdout
    out = _run(encoding, "predict", "--model", files["model"], "--input", files["train"])
    stdout, _ = _decoded(out, encoding)
    assert out.returncode == 0 and len(stdout.split()) == 60
    out = _run(encoding, "gradcheck")
    stdout, _ = _decoded(out, encoding)
    assert out.returncode == 0 and "ok: largest relative error" in stdout, stdout
    assert "samples, eps = 1e-06" in stdout
    out = _run(encoding, "info")
    stdout, _ = _decoded(out, encoding)
    assert out.returncode == 0 and "numbamlp" in stdout
    out = _run(encoding, "train", "--train-file", files["train"], "--epochs", "1")
    stdout, _ = _decoded(out, encoding)
    assert out.returncode == 0 and "sigmoid) -> Dense" in stdout


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_errors_on_a_narrow_terminal(encoding, files, tmp_path):
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3]) + bytes(17))
    for args, fragment in [
        (("predict", "--model", files["model"], "--input", bad), fit("shape 2×3×3 of", encoding)),
        (("train", "--hidden", "0"), "error: --hidden: layer width must be positive"),
        (("gradcheck", "--tolerance", "1e-30"), "FAILED: largest relative error"),
    ]:
        out = _run(encoding, *args)
        _, stderr = _decoded(out, encoding)
        assert out.returncode in (1, 2) and fragment in stderr, (args, stderr)
