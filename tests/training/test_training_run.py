"""Real MNIST runs: the default model (MMiDS §7.3) learns, reproducibly, through the Python API
and through `numbamlp train / evaluate / predict`."""

from __future__ import annotations

import math
import re
import struct

import numpy as np
import pytest
from click.testing import CliRunner

from numbamlp.cli.commands import main
from numbamlp.datasets.idx import read_idx
from numbamlp.datasets.loaders import MNIST_DIR, load_mnist
from numbamlp.model.mlp import MLP
from numbamlp.training.trainer import TrainConfig, generators, train


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def _default_run(mnist, epochs: int, snapshots: list | None = None):
    """The default model and TrainConfig, seed 0; θ is copied into ``snapshots`` per epoch."""
    init_rng, train_rng = generators(0)
    model = MLP.create(mnist.n_features, [32], mnist.n_classes, rng=init_rng)

    def on_epoch(metrics) -> None:
        if snapshots is not None:
            snapshots.append(model.params.theta.copy())

    history = train(
        model,
        mnist.X_train,
        mnist.y_train,
        TrainConfig(epochs=epochs),
        train_rng,
        mnist.X_test,
        mnist.y_test,
        on_epoch=on_epoch,
    )
    return model, history


@pytest.fixture(scope="module")
def three_epochs(mnist):
    """Three epochs of the default run, with θ after each epoch."""
    snapshots = []
    model, history = _default_run(mnist, 3, snapshots)
    return model, history, snapshots


def test_mnist_accuracy_after_one_and_three_epochs(three_epochs):
    model, history, snapshots = three_epochs
    assert [m.epoch for m in history] == [1, 2, 3]
    assert history[0].test_accuracy >= 0.88, history[0]
    assert history[2].test_accuracy >= 0.92, history[2]
    losses = [m.train_loss for m in history]
    assert all(math.isfinite(v) for v in losses)
    assert losses[0] > losses[1] > losses[2]
    assert losses[0] < math.log(10)  # better than chance already during epoch 1
    assert all(m.lr == pytest.approx(1e-3) and m.seconds > 0 for m in history)
    assert len(snapshots) == 3
    assert str(model.dtype) == "float32"


def test_one_epoch_run_reproduces_epoch_one(mnist, three_epochs):
    """Same seed, same first epoch: θ bit for bit, whatever the total number of epochs."""
    _, history, snapshots = three_epochs
    model, one = _default_run(mnist, 1)
    assert model.params.theta.tobytes() == snapshots[0].tobytes()
    assert one[0].test_accuracy == history[0].test_accuracy
    assert one[0].train_loss == history[0].train_loss


def _write_idx_images(path, images: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", *images.shape)
    path.write_bytes(header + images.astype(np.uint8).tobytes())


def test_cli_train_evaluate_predict_on_mnist(tmp_path, mnist, three_epochs):
    runner = CliRunner()
    model_path = tmp_path / "mnist.npz"
    result = runner.invoke(main, ["train", "--epochs", "1", "--save", str(model_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "MLP(Dense(784 => 32, sigmoid) → Dense(32 => 10) → softmax; 25,450 parameters" in out
    assert "data: MNIST, 60000 train / 10000 test samples" in out
    assert "optimizer: adam" in out and "batch 128, seed 0" in out
    final = re.search(r"^test accuracy (\d\.\d{4}) after 1 epoch \(", out, re.M)
    assert final, out
    accuracy = float(final[1])
    assert accuracy >= 0.88
    # the CLI's defaults are the API's defaults: the same run, the same accuracy
    assert final[1] == f"{three_epochs[1][0].test_accuracy:.4f}"

    result = runner.invoke(main, ["evaluate", "--model", str(model_path)])
    assert result.exit_code == 0, result.output
    assert f"accuracy {accuracy:.4f} on 10000 samples (MNIST test set)" in result.output
    rows = [line for line in result.output.splitlines() if re.match(r"^\s*\d \|", line)]
    assert len(rows) == 10
    C = np.array([[int(c) for c in row.split("|")[1].split()] for row in rows])
    assert C.sum() == 10000
    assert np.trace(C) / C.sum() == pytest.approx(accuracy, abs=5e-5)
    np.testing.assert_array_equal(C.sum(axis=1), np.bincount(mnist.y_test, minlength=10))

    images = read_idx(MNIST_DIR / "t10k-images-idx3-ubyte.gz")[:100]
    idx_path = tmp_path / "hundred-images-idx3-ubyte"
    _write_idx_images(idx_path, images)
    result = runner.invoke(main, ["predict", "--model", str(model_path), "--input", str(idx_path)])
    assert result.exit_code == 0, result.output
    predicted = np.array([int(line) for line in result.stdout.splitlines()])
    assert predicted.shape == (100,)
    assert predicted.min() >= 0 and predicted.max() <= 9

    from numbamlp.model.modelio import load_model

    model = load_model(model_path).model
    np.testing.assert_array_equal(predicted, model.predict(mnist.X_test[:100]))
    assert np.mean(predicted == mnist.y_test[:100]) >= 0.8

    out_file = tmp_path / "classes.txt"
    result = runner.invoke(
        main,
        [
            "predict",
            "--model",
            str(model_path),
            "--input",
            str(idx_path),
            "--output",
            str(out_file),
        ],
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.loadtxt(out_file, dtype=np.int64), predicted)
