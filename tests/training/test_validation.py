"""The validation split (--validation-fraction), early stopping on it (--patience), and the
per-epoch train_accuracy / val_loss / val_accuracy (the epoch line and --metrics-out)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

import numbamlp.training.randomness as randomness
from numbamlp.cli.commands import main
from numbamlp.errors import NumbamlpError
from numbamlp.model.mlp import MLP
from numbamlp.model.modelio import load_model
from numbamlp.model.network import Parameters
from numbamlp.training.randomness import generators, validation_generator
from numbamlp.training.trainer import TrainConfig, Trainer
from numbamlp.training.validation import EarlyStopping, split_validation, validation_size


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def noisy_blobs(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three overlapping blobs with 30 % of the labels redrawn: a wide network overfits them,
    so the validation loss falls for a few epochs and then rises."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = 1.5 * np.eye(3, 4)[y] + rng.normal(size=(n, 4))
    flip = rng.random(n) < 0.3
    return X, np.where(flip, rng.integers(0, 3, n), y)


@pytest.fixture
def files(tmp_path):
    X, y = noisy_blobs()
    Xt, yt = noisy_blobs(90, seed=1)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    np.savez(tmp_path / "test.npz", X=Xt, y=yt)
    return tmp_path / "train.npz", tmp_path / "test.npz"


#: The constructed case: val_loss is best at epoch 3, then 3 epochs without improvement.
# --no-standardize: the epochs named below (best 3, stop 6) are those of the raw features
OVERFIT = ("--hidden", "128", "--activation", "relu", "--batch-size", "8", "--lr", "0.001",
           "--no-standardize")  # fmt: skip
BEST_EPOCH, STOP_EPOCH = 3, 6


def train_args(files, *more) -> list:
    return ["train", "--train-file", files[0], "--test-file", files[1], *OVERFIT, *more]


# --- the split ---------------------------------------------------------------------------------


def test_split_sizes_and_determinism():
    X, y = noisy_blobs(101)
    X_tr, y_tr, X_val, y_val = split_validation(X, y, 0.2, validation_generator(7))
    assert (X_val.shape[0], X_tr.shape[0]) == (20, 81) == (validation_size(101, 0.2), 81)
    again = split_validation(X, y, 0.2, validation_generator(7))
    assert all(np.array_equal(a, b) for a, b in zip((X_tr, y_tr, X_val, y_val), again, strict=True))
    other = split_validation(X, y, 0.2, validation_generator(8))
    assert not np.array_equal(other[2], X_val)
    # a partition of the rows, the training rows in their original order
    rows = {tuple(r) for r in X}
    assert {tuple(r) for r in X_tr} | {tuple(r) for r in X_val} == rows
    assert not {tuple(r) for r in X_tr} & {tuple(r) for r in X_val}
    order = [int(np.flatnonzero((X == r).all(1))[0]) for r in X_tr]
    assert order == sorted(order)
    # at least one row each side, whatever the fraction
    assert validation_size(10, 0.01) == 1 and validation_size(10, 0.99) == 9
    u8 = np.arange(20, dtype=np.uint8).reshape(10, 2)
    assert split_validation(u8, np.arange(10), 0.5, validation_generator(0))[0].dtype == np.uint8
    with pytest.raises(NumbamlpError, match="at least 2"):
        split_validation(X[:1], y[:1], 0.5, validation_generator(0))


def test_the_validation_stream_leaves_the_runs_streams_alone():
    init_a, train_a = generators(3)
    validation_generator(3).random(5)
    init_b, train_b = generators(3)
    assert init_a.random() == init_b.random() and train_a.random() == train_b.random()
    assert validation_generator(3).random() != generators(3)[1].random()


def test_fraction_0_is_the_run_without_the_option(files, monkeypatch, tmp_path):
    """Same epoch lines (losses, accuracies), and the validation stream is never made."""
    plain = run(*train_args(files, "--epochs", "3"))
    assert plain.exit_code == 0, plain.output

    def no(seed):
        raise AssertionError("a run without a validation set drew a validation split")

    monkeypatch.setattr(randomness, "validation_generator", no)
    zero = run(*train_args(files, "--epochs", "3", "--validation-fraction", "0"))
    assert zero.exit_code == 0, zero.output

    def epochs(out):
        return [
            re.sub(r"  seconds \S+", "", ln) for ln in out.splitlines() if ln.startswith("epoch")
        ]

    assert epochs(zero.output) == epochs(plain.output) and len(epochs(plain.output)) == 3
    assert "val_loss" not in plain.output


# --- early stopping ----------------------------------------------------------------------------


def test_early_stopping_rule():
    theta = np.zeros(3)
    early = EarlyStopping(2, theta)
    losses = [5.0, 4.0, 4.0, 3.0, 3.5, 3.2, 1.0]
    stops = []
    for epoch, loss in enumerate(losses, start=1):
        stops.append(early.update(epoch, loss, np.full(3, float(epoch))))
        if stops[-1]:
            break
    # 4.0 again is no improvement; the best is epoch 4 (3.0); 2 epochs later: stop at 6
    assert stops == [False, False, False, False, False, True]
    assert (early.best_epoch, early.best_loss, early.wait, early.stopped) == (4, 3.0, 2, True)
    assert np.array_equal(early.best_theta, np.full(3, 4.0))
    again = EarlyStopping(2, theta)
    again.restore(early.state(), early.best_theta)
    assert again.state() == early.state() and np.array_equal(again.best_theta, early.best_theta)
    with pytest.raises(NumbamlpError):
        again.restore(early.state() | {"patience": 3}, early.best_theta)
    with pytest.raises(NumbamlpError, match="best weights"):
        again.restore(early.state(), None)


def test_cli_early_stopping_stops_and_restores_the_best_weights(files, tmp_path):
    metrics, model = tmp_path / "m.jsonl", tmp_path / "model.npz"
    more = ("--validation-fraction", "0.25", "--patience", "3", "--metrics-out", metrics)
    result = run(*train_args(files, "--epochs", "30", *more, "--save", model))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    val = [r["val_loss"] for r in records]
    best = int(np.argmin(val)) + 1
    assert (best, len(records)) == (BEST_EPOCH, STOP_EPOCH)
    assert all(v >= val[best - 1] for v in val[best:])
    assert "data: train, 180 train / 60 validation / 90 test samples" in result.output
    assert (
        f"early stopping: val_loss has not improved for 3 epoch(s), stopped after epoch "
        f"{STOP_EPOCH}; restored the weights of the best epoch, {BEST_EPOCH}" in result.output
    )
    assert f"after {STOP_EPOCH} epochs, best epoch {BEST_EPOCH}" in result.output
    # The saved model is the best epoch's: its validation loss is the best one, bit for bit.
    X, y = np.load(files[0])["X"], np.load(files[0])["y"]
    _, _, X_val, y_val = split_validation(X, y, 0.25, validation_generator(0))
    loaded = load_model(model)
    assert loaded.model.loss(X_val, y_val) == val[best - 1]
    assert loaded.metadata["best_epoch"] == BEST_EPOCH
    assert loaded.metadata["test_accuracy"] == records[best - 1]["test_accuracy"]
    final = re.search(r"^test accuracy (\S+) after", result.output, flags=re.M)[1]
    assert float(final) == pytest.approx(records[best - 1]["test_accuracy"], abs=1e-4)


def test_metrics_fields(files, tmp_path):
    with_val, without = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a = run(*train_args(files, "--epochs", "2", "--validation-fraction", "0.1",
                        "--metrics-out", with_val))  # fmt: skip
    b = run(*train_args(files, "--epochs", "2", "--metrics-out", without))
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    for path, expected in ((with_val, {"val_loss", "val_accuracy"}), (without, set())):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            assert set(record) == {"epoch", "train_loss", "train_accuracy", "test_accuracy",
                                   "seconds", "lr"} | expected  # fmt: skip
            assert 0.0 <= record["train_accuracy"] <= 1.0
    line = re.compile(
        r"^epoch +\d+  train_loss \S+  train_accuracy \d\.\d{4}  val_loss \S+  "
        r"val_accuracy \d\.\d{4}  test_accuracy \d\.\d{4}  seconds \S+$",
        flags=re.M,
    )
    assert len(line.findall(a.output)) == 2, a.output


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--validation-fraction", "1"), "--validation-fraction"),
        (("--validation-fraction", "1.5"), "--validation-fraction"),
        (("--validation-fraction", "-0.1"), "--validation-fraction"),
        (("--validation-fraction", "nan"), "--validation-fraction"),
        (("--patience", "3"), "give --validation-fraction"),
        (("--patience", "3", "--validation-fraction", "0"), "give --validation-fraction"),
        (("--patience", "0", "--validation-fraction", "0.2"), "--patience"),
    ],
)
def test_cli_errors(files, tmp_path, args, fragment):
    result = run(*train_args(files, "--epochs", "1", "--save", tmp_path / "m.npz"), *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert len(re.findall(r"^error:", result.output, flags=re.M)) == 1
    assert not (tmp_path / "m.npz").exists()


# --- train_accuracy: counted in the engines, the same in both -----------------------------------


@pytest.mark.parametrize("head", ["softmax", "modified-softmax"])
def test_train_accuracy_counts_are_the_same_in_both_engines(head):
    """float64: each minibatch's count of samples classified right before its step is the same
    in the fused and the kernels engine, and it is what predict says of those rows then."""
    X, y = noisy_blobs(150)
    trainers = {}
    for engine in ("fused", "kernels"):
        init_rng, rng = generators(1)
        model = MLP.create(4, [9, 5], 3, activations=["tanh", "relu"], head=head,
                           dtype="float64", rng=init_rng)  # fmt: skip
        config = TrainConfig(epochs=2, batch_size=16, lr=0.01, engine=engine)
        trainers[engine] = Trainer(model, X, y, config, rng)
    fused, kernels = trainers["fused"], trainers["kernels"]
    model = kernels.model
    for _ in range(2):
        expected = []
        while True:
            before = MLP(
                model.architecture, Parameters(model.architecture, model.params.theta.copy())
            )
            q = kernels.batch
            metrics = kernels.run_batches(until=q + 1)
            rows = kernels.sampler.batches[q]
            expected.append(int(np.sum(before.predict(X[rows]) == y[rows])))
            if metrics is not None:
                break
        m_f = fused.train_epoch()
        assert list(kernels.batch_correct) == expected
        assert np.array_equal(fused.batch_correct, kernels.batch_correct)
        assert m_f.train_accuracy == metrics.train_accuracy == sum(expected) / X.shape[0]


def test_train_accuracy_resumes_with_the_epoch_and_is_none_without_its_counts():
    X, y = noisy_blobs(150)

    def trainer():
        init_rng, rng = generators(1)
        model = MLP.create(4, [9], 3, dtype="float64", rng=init_rng)
        return Trainer(model, X, y, TrainConfig(epochs=1, batch_size=16), rng)

    straight = trainer().train_epoch()
    first = trainer()
    first.run_batches(until=4)
    state = first.run_state()
    assert len(state["epoch_correct"]) == 4
    for keep in (True, False):
        second = trainer()
        np.copyto(second.model.params.theta, first.model.params.theta)
        for name, value in first.optimizer.state.items():
            np.copyto(second.optimizer.state[name], value)
        second.optimizer.step_count = first.optimizer.step_count
        second.restore(state if keep else {k: v for k, v in state.items() if k != "epoch_correct"})
        metrics = second.train_epoch()
        assert metrics.train_loss == straight.train_loss
        assert metrics.train_accuracy == (straight.train_accuracy if keep else None)
