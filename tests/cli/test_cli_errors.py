"""Every user error of every command is one line on stderr starting ``error:``, exit status 2.

Click's own errors (a bad value, an unknown or missing option, a bad choice, a flag given a
value) used to print click's four-line usage block while numbamlp's printed one line; scripts
can now ``grep '^error:'`` for all of them (commands._Group, error_line). ``--help`` and
``--version`` still print and exit 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from numbamlp.cli.commands import main

SCRIPT = Path(sys.executable).with_name("numbamlp")
NUMBAMLP = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "numbamlp.cli.commands"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A tiny training file, a used checkpoint directory and a folder in place of a file."""
    root = tmp_path_factory.mktemp("errors")
    rng = np.random.default_rng(0)
    np.savez(root / "train.npz", X=rng.normal(size=(60, 4)), y=rng.integers(0, 3, 60))
    (root / "used").mkdir()
    (root / "used" / "checkpoint.npz").write_bytes(b"a checkpoint")
    (root / "folder").mkdir()
    (root / "model.npz").write_bytes(b"not read: the options fail first")
    return root


T = ("train", "--train-file", "{root}/train.npz", "--epochs", "1")
M = "{root}/model.npz"

#: (arguments, what the line names); {root} is the fixture's folder.
BAD = [
    ((*T[:3], "--epochs", "0"), "--epochs: 0 is not in the range"),
    ((*T, "--lr", "-1"), "--lr: must be a positive number"),
    ((*T, "--hidden", "0"), "--hidden: layer width must be positive"),
    ((*T, "--hiden", "8"), "--hiden: no such option; did you mean one of --head, --help, --hid"),
    ((*T, "--head", "foo"), "--head: 'foo' is not one of"),
    ((*T, "--optimizer", "adamw"), "--optimizer: 'adamw' is not one of"),
    ((*T, "--patience", "2"), "--patience: early stopping watches the validation loss"),
    ((*T, "--validation-fraction", "1.5"), "--validation-fraction: must be a fraction"),
    ((*T, "--batch-size", "0"), "--batch-size: 0 is not in the range"),
    ((*T, "--threads", "x"), "--threads: 'x' is not a valid integer"),
    ((*T, "--checkpoint-dir", "{root}/used"), "--checkpoint-dir: {root}/used already holds"),
    ((*T, "--save", "{root}/missing/m.npz"), "--save: directory {root}/missing does not exist"),
    ((*T, "--save", "{root}/folder"), "--save: file '{root}/folder' is a directory"),
    ((*T, "--dataset"), "--dataset: requires an argument"),
    ((*T, "--quiet=3"), "--quiet: does not take a value"),
    ((*T, "extra"), "got unexpected extra argument (extra)"),
    ((*T, "--head", "softmax", "--output", "modified-softmax"), "--head: --output is the old name"),
    (("evaluate",), "--model: missing; give --model FILE (see `numbamlp evaluate --help`)"),
    (("evaluate", "--model", M, "--dataset", "foo"), "--dataset: 'foo' is not one of"),
    (("evaluate", "--model", M, "--bogus"), "--bogus: no such option"),
    (("predict", "--model", M), "--input: missing; give --input FILE"),
    (("predict", "--model", M, "--input", M, "--proba=1"), "--proba: does not take a value"),
    (("predict", "--model", M, "--input", M, "--threads", "0"), "--threads: 0 is not in the"),
    (("export", "--model", M), "--output: missing; give --output FILE"),
    (("export", "--model", M, "--format", "torch", "--output", "w"), "--format: 'torch' is not"),
    (
        ("export", "--model", M, "--output", M),
        "--output {root}/model.npz is the same file as --model",
    ),
    (("gradcheck", "--samples", "0"), "--samples: 0 is not in the range"),
    (("gradcheck", "--head", "x"), "--head: 'x' is not one of"),
    (("gradcheck", "--bogus"), "--bogus: no such option (see `numbamlp gradcheck --help`)"),
    (("tain",), "no such command 'tain'"),
    (("--bogus",), "--bogus: no such option (see `numbamlp --help`)"),
]


def _args(args: tuple[str, ...], root: Path) -> list[str]:
    return [a.format(root=root) for a in args]


@pytest.mark.parametrize(("args", "names"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_every_user_error_is_one_line(root, args, names):
    result = CliRunner().invoke(main, _args(args, root), prog_name="numbamlp")
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and re.match(r"^error: ", lines[0]), result.stderr
    assert names.format(root=root) in lines[0], lines[0]
    assert "Usage:" not in result.output and "Traceback" not in result.output


def test_an_unknown_option_names_the_command_s_help(root):
    result = CliRunner().invoke(main, _args((*T, "--hiden", "8"), root), prog_name="numbamlp")
    line = result.stderr.strip()
    assert line.endswith("(see `numbamlp train --help`)"), line


def test_in_a_real_process_too(root):
    """What a script sees: stderr is the one line, stdout empty, exit status 2."""
    for args in (("train", "--epochs", "0"), ("train", "--hiden", "8"), ("evaluate",)):
        out = subprocess.run(NUMBAMLP + list(args), capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        assert re.fullmatch(r"error: [^\n]*\n", out.stderr), out.stderr
        assert out.stdout == ""


@pytest.mark.parametrize("args", [("--help",), ("-h",), ("train", "--help"), ("evaluate", "-h")])
def test_help_still_prints_and_exits_0(args):
    result = CliRunner().invoke(main, list(args), prog_name="numbamlp")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Usage: numbamlp") and "Options:" in result.stdout
    assert result.stderr == ""


def test_version_still_prints_and_exits_0():
    result = CliRunner().invoke(main, ["--version"], prog_name="numbamlp")
    assert result.exit_code == 0 and ", version " in result.stdout  # click caches the name


def test_a_command_that_succeeds_exits_0():
    result = CliRunner().invoke(main, ["gradcheck"])
    assert result.exit_code == 0, result.output


def test_ascii_terminal_gets_the_line_in_ascii():
    """The line goes through console.fitted_streams like every other output: on an ASCII
    stream ≥ is spelled >= rather than crash."""
    out = subprocess.run(
        [*NUMBAMLP, "train", "--weight-decay", "-1"],
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
    )
    assert out.returncode == 2
    assert out.stderr == b"error: --weight-decay: must be a finite number >= 0, got -1.0\n"
