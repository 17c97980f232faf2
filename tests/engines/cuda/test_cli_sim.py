"""``numbamlp train --device cuda`` end to end on the simulated device: it trains, reports
epochs and the test accuracy, and saves a model file whose θ is the device's (the CPU's
``evaluate`` reads it back and finds the same accuracy)."""

from __future__ import annotations

import re

import numpy as np
from click.testing import CliRunner

from numbamlp.cli.commands import main


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 4)) + 3.0 * np.eye(3, 4)[y]
    return X, y


def test_train_on_the_simulated_device_and_save(tmp_path):
    for name, seed in (("train", 0), ("test", 1)):
        X, y = blobs(30, seed)
        np.savez(tmp_path / f"{name}.npz", X=X, y=y)
    model = tmp_path / "model.npz"
    args = [
        "train", "--device", "cuda", "--train-file", tmp_path / "train.npz",
        "--test-file", tmp_path / "test.npz", "--hidden", "5", "--batch-size", "8",
        "--epochs", "3", "--lr", "0.2", "--dtype", "float64", "--save", model,
    ]  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    epochs = re.findall(
        r"^epoch +(\d+) +train_loss ([\d.]+) +train_accuracy [\d.]+ +test_accuracy ([\d.]+)",
        result.output,
        re.M,
    )
    assert [int(e[0]) for e in epochs] == [1, 2, 3], result.output
    losses = [float(e[1]) for e in epochs]
    assert losses[2] < losses[0], losses  # it learns
    accuracy = float(epochs[-1][2])
    assert accuracy >= 0.8, result.output
    check = CliRunner().invoke(
        main, ["evaluate", "--model", str(model), "--test-file", str(tmp_path / "test.npz")]
    )
    assert check.exit_code == 0, check.output
    assert f"{accuracy:.4f}" in check.output, (result.output, check.output)


def test_checkpoint_and_resume_on_the_simulated_device(tmp_path):
    """`--device cuda --checkpoint-dir` then `--resume` gives the model of the straight run."""
    for name, seed in (("train", 0), ("test", 1)):
        X, y = blobs(30, seed)
        np.savez(tmp_path / f"{name}.npz", X=X, y=y)
    common = [
        "train", "--device", "cuda", "--train-file", tmp_path / "train.npz",
        "--test-file", tmp_path / "test.npz", "--hidden", "5", "--batch-size", "8",
        "--lr", "0.05", "-q",
    ]  # fmt: skip

    def run(*args):
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output

    run(*common, "--epochs", "2", "--save", tmp_path / "full.npz")
    run(*common, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck")
    run("train", "--resume", tmp_path / "ck", "--epochs", "2", "-q", "--save", tmp_path / "r.npz")
    full, resumed = np.load(tmp_path / "full.npz"), np.load(tmp_path / "r.npz")
    assert full["theta"].tobytes() == resumed["theta"].tobytes()
