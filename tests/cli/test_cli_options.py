"""One option vocabulary across the commands, the old spellings kept as hidden aliases.

`--head` is the output head (train, gradcheck), `--output PATH` only ever a file (predict),
`--eps` only the optimizer's ε (train), `--fd-step` gradcheck's finite-difference step and
`--n-classes` the number of classes (train, gradcheck). Before, `--output` was the head in train
and the output file in predict, `--eps` also gradcheck's step, `--classes` gradcheck's M.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from numbamlp.cli.commands import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _help_options(command: str) -> set[str]:
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", result.output))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("options")
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    np.savez(root / "train.npz", X=2 * np.eye(3, 4)[y] + rng.normal(size=(90, 4)), y=y)
    return root


def test_help_shows_one_vocabulary():
    train, gradcheck = _help_options("train"), _help_options("gradcheck")
    assert {"--head", "--n-classes", "--eps"} <= train
    assert "--output" not in train
    assert {"--head", "--n-classes", "--fd-step"} <= gradcheck
    assert not {"--output", "--eps", "--classes"} & gradcheck
    assert "--output" in _help_options("predict")


def _model(path):
    from numbamlp.model.modelio import load_model

    return load_model(path)


def test_train_head_and_its_old_name(data, tmp_path):
    common = ("train", "--train-file", data / "train.npz", "--epochs", "1", "--quiet")
    new = run(*common, "--head", "modified-softmax", "--save", tmp_path / "new.npz")
    assert new.exit_code == 0, new.output
    assert "note:" not in new.output
    old = run(*common, "--output", "modified-softmax", "--save", tmp_path / "old.npz")
    assert old.exit_code == 0, old.output
    assert "note: --output (the output head) is now --head" in old.stderr
    a, b = _model(tmp_path / "new.npz"), _model(tmp_path / "old.npz")
    assert a.model.architecture.head == b.model.architecture.head == "modified-softmax"
    np.testing.assert_array_equal(a.model.params.theta, b.model.params.theta)


def test_old_and_new_name_disagreeing_is_refused(data):
    result = run("train", "--train-file", data / "train.npz", "--epochs", "1",
                 "--head", "softmax", "--output", "modified-softmax")  # fmt: skip
    assert result.exit_code == 2
    assert "--output is the old name of --head" in result.output
    assert "Traceback" not in result.output


def test_gradcheck_new_names_and_old_ones():
    new = run("gradcheck", "--head", "modified-softmax", "--n-classes", "3", "--fd-step", "1e-5")
    old = run("gradcheck", "--output", "modified-softmax", "--classes", "3", "--eps", "1e-5")
    assert new.exit_code == 0 and old.exit_code == 0, (new.output, old.output)
    assert "→ γ̃ (modified softmax); 69 parameters, float64), 8 samples, ε = 1e-05" in new.stdout
    assert new.stdout == old.stdout
    for note in (
        "note: --output (the output head) is now --head",
        "note: --classes is now --n-classes",
        "note: --eps (the finite-difference step) is now --fd-step",
    ):
        assert note in old.stderr, old.stderr


def test_a_checkpoint_resumes_under_either_name(data, tmp_path):
    """Checkpoints keep the option under its internal name ("head"): a run started with the old
    spelling resumes, and a resumed run given a contradicting head is refused by its new name."""
    ckpt = tmp_path / "ckpt"
    start = run("train", "--train-file", data / "train.npz", "--epochs", "1",
                "--output", "modified-softmax", "--checkpoint-dir", ckpt, "--quiet")  # fmt: skip
    assert start.exit_code == 0, start.output
    more = run("train", "--resume", ckpt, "--epochs", "2", "--output", "modified-softmax")
    assert more.exit_code == 0, more.output
    refused = run("train", "--resume", ckpt, "--epochs", "3", "--output", "softmax")
    assert refused.exit_code == 2
    assert "--head" in refused.output and "modified-softmax" in refused.output


def test_the_length_options_and_their_ranges(data, tmp_path):
    help_text = run("train", "--help").output
    assert {"--epochs", "--max-epochs", "--tol", "--n-iter-no-change", "--batch-size"} <= (
        _help_options("train")
    )
    assert "until the loss converges" in help_text
    for args, message in (
        (("--tol", "-1"), "must be a finite number ≥ 0"),
        (("--max-epochs", "0"), "0 is not in the range x>=1"),
        (("--n-iter-no-change", "0"), "0 is not in the range x>=1"),
    ):
        result = run("train", "--train-file", data / "train.npz", *args)
        assert result.exit_code == 2 and message in result.output, result.output
    converged = run("train", "--train-file", data / "train.npz", "--tol", "0.01",
                    "--n-iter-no-change", "2", "--max-epochs", "400")  # fmt: skip
    assert converged.exit_code == 0, converged.output
    assert "converged: the training loss improved by less than tol=0.01 for 2 epochs" in (
        converged.output
    )
    assert ", converged (" in converged.output
