"""A finite loss that explodes is divergence (training.GROWTH_LIMIT): the rule, its CLI outcome
(one `error:` line, exit 2, no --save written, the last good checkpoint kept) and that no
ordinary run of any optimizer or schedule comes near it."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from click.testing import CliRunner

from numbamlp.cli.commands import main
from numbamlp.datasets.loaders import load_mnist
from numbamlp.kernels.optimizers import OPTIMIZERS
from numbamlp.model.mlp import MLP
from numbamlp.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from numbamlp.training.randomness import generators
from numbamlp.training.trainer import GROWTH_LIMIT, TrainConfig, Trainer, TrainingDiverged


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def blobs(n: int, seed: int = 0, d: int = 6, k: int = 3, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    return scale * (2.0 * np.eye(k, d)[y] + rng.normal(size=(n, d))), y


def trainer(X, y, engine: str = "fused", **config) -> Trainer:
    init_rng, sampling_rng = generators(0)
    model = MLP.create(X.shape[1], [8], 3, activations="tanh", dtype="float64", rng=init_rng)
    config = TrainConfig(**({"epochs": 2, "batch_size": 16, "engine": engine} | config))
    return Trainer(model, X, y, config, sampling_rng)


@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


# --- the rule -------------------------------------------------------------------------------------


def test_the_rule_fires_on_the_first_minibatch_above_the_bound():
    """Bound: GROWTH_LIMIT × max(ℓ of the first minibatch, log M). Named: the first minibatch
    of the call above it, with its own step number."""
    t = trainer(*blobs(200))
    t._start_epoch(0)
    t.batch_losses[:5] = [2.0, 3.0, 2.0 * GROWTH_LIMIT * 1.01, 1e30, 1.0]
    t.batch, t.optimizer.step_count = 1, 1
    t._check_growth(0)  # 2.0 becomes ℓ_ref
    assert t.reference_loss == 2.0
    t.batch, t.optimizer.step_count = 5, 5
    with pytest.raises(TrainingDiverged) as caught:
        t._check_growth(1)
    message = str(caught.value)
    assert "loss grew to 2.02e+04 at epoch 1, batch 3 (step 3)" in message, message
    assert "first minibatch's loss 2" in message and "Try a smaller learning rate" in message
    # at the bound itself: no divergence
    t.batch_losses[:5] = [2.0, 3.0, 2.0 * GROWTH_LIMIT, 1.0, 1.0]
    t._check_growth(1)


def test_the_bound_is_never_below_a_uniform_guess_and_follows_unscaled_data():
    t = trainer(*blobs(200))
    t._set_reference_loss(1e-3)  # a first loss far below log M: the bound stays at log M × limit
    assert t._loss_limit == pytest.approx(GROWTH_LIMIT * math.log(3))
    t._set_reference_loss(500.0)  # unscaled features: a first loss of 500 is a start, not growth
    assert t._loss_limit == pytest.approx(GROWTH_LIMIT * 500.0)


def test_the_reference_loss_is_part_of_the_run_state():
    """A resumed run compares against the first minibatch of the whole run, not its own; a
    state without the field (older checkpoints) takes the next minibatch's loss."""
    X, y = blobs(200)
    first = trainer(X, y)
    first.run_batches(until=3)
    state = first.run_state()
    assert state["reference_loss"] == first.batch_losses[0]
    second = trainer(X, y)
    second.optimizer.step_count = first.optimizer.step_count
    second.restore(state)
    assert second.reference_loss == first.reference_loss
    old = trainer(X, y)
    old.optimizer.step_count = first.optimizer.step_count
    old.restore({k: v for k, v in state.items() if k != "reference_loss"})
    assert old.reference_loss is None
    old.run_batches()
    assert old.reference_loss == old.batch_losses[3]


@pytest.mark.parametrize("engine", ["fused", "kernels"])
def test_both_engines_stop_at_the_same_minibatch(mnist, engine):
    """Calls of 1 (kernels) or 32 (fused) minibatches: the rule is per minibatch, so both name
    the same one."""
    init_rng, sampling_rng = generators(0)
    model = MLP.create(784, [32], 10, rng=init_rng)
    config = TrainConfig(optimizer="sgd", lr=1e6, epochs=1, engine=engine)
    t = Trainer(model, mnist.X_train_raw, mnist.y_train, config, sampling_rng,
                scale=mnist.feature_scale)  # fmt: skip
    with pytest.raises(TrainingDiverged, match=r"at epoch 1, batch 2 \(step 2\)"):
        t.train_epoch()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("schedule", ["constant", "cosine", "step"])
def test_ordinary_runs_of_every_optimizer_never_come_near(mnist, name, schedule):
    """Every optimizer at 10 × its default step size, 2 epochs of batch 32 on 3000 MNIST images:
    no batch loss even reaches 3 × the first one (the bound is GROWTH_LIMIT = 10⁴ ×)."""
    X, y = mnist.X_train_raw[:3000], mnist.y_train[:3000]
    lr = 10 * OPTIMIZERS[name][1]["lr"]
    init_rng, sampling_rng = generators(0)
    model = MLP.create(784, [32], 10, rng=init_rng)
    config = TrainConfig(optimizer=name, lr=lr, epochs=2, batch_size=32, schedule=schedule,
                         decay_epochs=1.0)  # fmt: skip
    t = Trainer(model, X, y, config, sampling_rng, scale=mnist.feature_scale)
    worst = 0.0
    for _ in range(2):
        t.train_epoch()
        worst = max(worst, float(t.batch_losses.max()))
    assert worst < 3 * t.reference_loss


# --- the CLI: the example of issue 12 -------------------------------------------------------------


def test_cli_exploding_loss_is_an_error_and_writes_nothing(tmp_path):
    """`numbamlp train --optimizer sgd --lr 1e6` ran to the end (loss ~1e6..1e17, accuracy
    ~0.1) and exited 0. Now: one error line at minibatch 2, exit 2, --save not written."""
    model = tmp_path / "model.npz"
    model.write_bytes(b"PK\x03\x04 the user's previous model")
    result = run("train", "--optimizer", "sgd", "--lr", "1e6", "--epochs", "1", "--save", model)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = re.findall(r"^error: .*$", result.output, flags=re.M)
    assert len(errors) == 1, result.output
    assert "training diverged: the loss grew to" in errors[0]
    assert "at epoch 1, batch 2 (step 2)" in errors[0]
    assert "--lr 100000 (this run used 1e+06)" in errors[0]
    assert f"{model} was not written" in errors[0]
    assert "test accuracy" not in result.output and "epoch   1" not in result.output
    assert model.read_bytes() == b"PK\x03\x04 the user's previous model"


def test_cli_exploding_loss_keeps_the_last_good_checkpoint(mnist, tmp_path):
    """With a checkpoint after every minibatch, the one after step 1 (loss 2.6) is the last good
    one: the message names it and it is left as it was."""
    data = tmp_path / "subset.npz"
    np.savez(data, X=mnist.X_train_raw[:2000], y=mnist.y_train[:2000])
    ck = tmp_path / "ck"
    result = run("train", "--train-file", data, "--optimizer", "sgd", "--lr", "1e6",
                 "--epochs", "1", "--checkpoint-dir", ck, "--checkpoint-every", "1")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "the loss grew to" in result.output and "batch 2 (step 2)" in result.output
    assert "(epoch 1, batch 1), is unchanged" in result.output
    kept = load_checkpoint(ck / CHECKPOINT_NAME)
    assert (kept.trainer["epoch"], kept.trainer["batch"]) == (1, 1)
