"""The kernels compiled ahead of the first run (numbamlp/cli/precompile.py, setup.py).

What is checked is what a newcomer gets: after `numbamlp precompile`, and in a wheel that
`pip wheel .` builds, the kernel cache holds every kernel that `numbamlp train` (default job),
`evaluate` and `predict` run, with the argument types they pass, so none of them compiles
anything. Numba reports each compilation (a cache miss) as a "numba:compile" event; the runs
below count them in a real process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Not in the inner-loop subset (pytest -m "not slow"): builds wheels, fills JIT caches in new
#: processes.
pytestmark = pytest.mark.slow

#: Runs the numbamlp command given as arguments in this process and prints the names of the
#: functions Numba compiled (rather than loaded from the cache) while it ran.
COUNT_COMPILES = """
import sys
from numba.core import event

compiled = []

class Count(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__qualname__)

    def on_end(self, ev):
        pass

event.register("numba:compile", Count())
from numbamlp.cli.commands import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
import numbamlp
print("FROM", numbamlp.__file__)
print("COMPILED", sorted(set(compiled)))
"""


def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[str, str]:
    """Where numbamlp was imported from, and the functions compiled while ``args`` ran."""
    out = subprocess.run(
        [sys.executable, "-c", COUNT_COMPILES, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    imported_from, compiled = out.stdout.strip().splitlines()[-2:]
    return imported_from, compiled


def _compiled(args: list[str], env: dict[str, str], cwd: Path) -> str:
    return _run(args, env, cwd)[1]


def test_precompile_command_fills_the_cache_for_train_evaluate_predict(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-m", "numbamlp.cli.commands", "precompile"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    assert "float32" in done.stdout and "JIT cache" in done.stdout
    model = tmp_path / "m.npz"
    train = ["train", "--epochs", "1", "--quiet", "--hidden", "8", "--save", str(model)]
    assert _compiled(train, env, tmp_path) == "COMPILED []"
    # One training kernel for every architecture, activation, head, optimizer and sampling.
    other = ["--hidden", "6,5", "--activation", "relu", "--head", "modified-softmax"]
    other += ["--optimizer", "sgd", "--sampling", "iid", "--weight-decay", "1e-4"]
    other += ["--validation-fraction", "0.1", "--patience", "2", "--threads", "1"]
    assert _compiled([*train[:4], *other], env, tmp_path) == "COMPILED []"
    assert _compiled(["evaluate", "--model", str(model)], env, tmp_path) == "COMPILED []"
    features = tmp_path / "x.npy"  # float features (in [0, 1], as the model was trained on)
    np.save(features, np.random.default_rng(0).random((5, 784), dtype=np.float32))
    predict = ["predict", "--model", str(model), "--input", str(features), "--proba"]
    assert _compiled(predict, env, tmp_path) == "COMPILED []"
    # The control: the same run with an empty cache compiles the training kernel.
    empty = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "empty"))
    assert "run_steps" in _compiled(train[:-2], empty, tmp_path)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="one interpreter for build and run")
def test_the_wheel_carries_the_compiled_kernels(tmp_path):
    """`pip wheel .` (what `pip install .` builds) compiles the default job's kernels into the
    wheel; the package unpacked from it trains without compiling."""
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the work tree
    skip = shutil.ignore_patterns(".*", "build", "__pycache__", "*.egg-info", "results-*.json")
    shutil.copytree(ROOT, source, ignore=skip)
    # A new environment without numba, as a newcomer's: the build must bring its own (pip's
    # isolated build environment, from pyproject.toml's build requirements).
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "venv")], check=True, env=env)
    built = subprocess.run(
        [
            tmp_path / "venv" / "bin" / "pip",
            "wheel",
            "-v",
            "--no-deps",
            "-w",
            str(tmp_path),
            str(source),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    assert "precompiling failed" not in built.stdout, built.stdout[-3000:]
    (wheel,) = tmp_path.glob("numbamlp-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "site")
    cache = "numbamlp/engines/fused/__pycache__/regions.run_steps-"
    assert any(n.startswith(cache) for n in names), names
    env["PYTHONPATH"] = str(tmp_path / "site")
    train = ["train", "--epochs", "1", "--quiet", "--hidden", "8"]
    imported_from, compiled = _run(train, env, tmp_path)
    assert imported_from == f"FROM {tmp_path}/site/numbamlp/__init__.py"
    assert compiled == "COMPILED []"
