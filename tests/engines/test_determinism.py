"""Properties of the training loop as a whole: bitwise reproducibility across thread counts,
and no memory allocated per step.

Every kernel is parallel over the index whose outputs it owns (samples s for F.*, L.1, B.1, B.4;
output rows i for B.2, B.3; components r for U.*), and every sum over s runs inside one thread in
a fixed order. So the number of threads changes who computes what, never how: training with 1
and with 2 threads must give the same θ bit for bit.
"""

from __future__ import annotations

import gc
import tracemalloc

import numba
import numpy as np
import pytest

from numbamlp.model.mlp import MLP
from numbamlp.training.trainer import TrainConfig, Trainer, generators

needs_two_threads = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads"
)


def synthetic_problem(n: int = 2000, d: int = 20, classes: int = 4):
    """Gaussian inputs labelled by a fixed random linear rule (learnable, not trivial)."""
    rng = np.random.default_rng(123)
    X = rng.normal(size=(n, d))
    y = np.argmax(X @ rng.normal(size=(d, classes)), axis=1)
    return X, y


def train_theta(threads: int, dtype: str, sampling: str, head: str) -> tuple[bytes, list[float]]:
    numba.set_num_threads(threads)
    assert numba.get_num_threads() == threads
    X, y = synthetic_problem()
    init_rng, sampling_rng = generators(seed=5)
    model = MLP.create(
        X.shape[1], [16, 12], 4, activations=["tanh", "relu"], head=head, dtype=dtype, rng=init_rng
    )
    config = TrainConfig(epochs=3, batch_size=128, optimizer="adam", lr=1e-2, sampling=sampling)
    trainer = Trainer(model, X, y, config, sampling_rng)
    losses = [trainer.train_epoch().train_loss for _ in range(config.epochs)]
    return model.params.theta.tobytes(), losses


@needs_two_threads
@pytest.mark.parametrize("sampling", ["shuffle", "iid"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_one_and_two_threads_give_bitwise_identical_theta(dtype, sampling, restore_threads):
    """θ after 3 epochs (48 Adam steps of B = 128, as in MMiDS §7.3; the last shuffled batch has
    80 samples) is the same byte string with 1 and with 2 threads; so is every epoch's loss."""
    head = "softmax" if sampling == "shuffle" else "modified-softmax"
    theta_1, losses_1 = train_theta(1, dtype, sampling, head)
    theta_2, losses_2 = train_theta(2, dtype, sampling, head)
    assert losses_1 == losses_2
    assert theta_1 == theta_2
    # The run did learn something (so the comparison is not between two untouched θ_0).
    assert losses_1[-1] < 0.8 * losses_1[0]


def train_regressor(threads: int, dtype: str, weighted: bool) -> tuple[bytes, list[float]]:
    """As train_theta, for a regressor of 3 targets (F.5, L.2, B.5), optionally weighted."""
    numba.set_num_threads(threads)
    assert numba.get_num_threads() == threads
    X, _ = synthetic_problem()
    rng = np.random.default_rng(7)
    Y = np.tanh(X @ rng.normal(size=(X.shape[1], 3)))
    weights = rng.uniform(0.0, 3.0, size=X.shape[0]) if weighted else None
    init_rng, sampling_rng = generators(seed=5)
    model = MLP.create(
        X.shape[1], [16, 12], 3, activations=["tanh", "relu"], head="identity", dtype=dtype,
        rng=init_rng,
    )  # fmt: skip
    config = TrainConfig(epochs=3, batch_size=128, optimizer="adam", lr=1e-2)
    trainer = Trainer(model, X, Y, config, sampling_rng, sample_weight=weights)
    losses = [trainer.train_epoch().train_loss for _ in range(config.epochs)]
    return model.params.theta.tobytes(), losses


@needs_two_threads
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_regression_one_and_two_threads_give_bitwise_identical_theta(
    dtype, weighted, restore_threads
):
    """The regressor, with and without sample weights (S.2, whose sum over a batch is one
    thread's, in sample order): the same bits with 1 and with 2 threads."""
    theta_1, losses_1 = train_regressor(1, dtype, weighted)
    theta_2, losses_2 = train_regressor(2, dtype, weighted)
    assert losses_1 == losses_2
    assert theta_1 == theta_2
    assert losses_1[-1] < 0.8 * losses_1[0]


@needs_two_threads
def test_weighted_classifier_one_and_two_threads_give_bitwise_identical_theta(restore_threads):
    X, y = synthetic_problem()
    weights = np.random.default_rng(8).uniform(0.0, 3.0, size=X.shape[0])
    results = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        init_rng, sampling_rng = generators(seed=5)
        model = MLP.create(X.shape[1], [16], 4, activations="tanh", rng=init_rng)
        config = TrainConfig(epochs=2, batch_size=128, optimizer="adam", lr=1e-2)
        trainer = Trainer(model, X, y, config, sampling_rng, sample_weight=weights)
        losses = [trainer.train_epoch().train_loss for _ in range(config.epochs)]
        results.append((model.params.theta.tobytes(), losses))
    assert results[0] == results[1]


def test_same_seed_same_theta_and_different_seed_different_theta():
    """Reproducible for a seed at the default thread count; a different seed gives another θ."""
    X, y = synthetic_problem(n=300)
    runs = []
    for seed in (9, 9, 10):
        init_rng, sampling_rng = generators(seed)
        model = MLP.create(X.shape[1], [8], 4, dtype="float64", rng=init_rng)
        config = TrainConfig(epochs=2, batch_size=32, optimizer="sgd", lr=0.1)
        Trainer(model, X, y, config, sampling_rng).train_epoch()
        runs.append(model.params.theta.tobytes())
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


# --- No allocation per step -------------------------------------------------------------------


def epoch_allocation(
    n_batches: int, dtype: str, sampling: str, regression: bool = False, engine: str = "fused"
) -> tuple[int, int]:
    """(bytes still held, peak bytes) traced by tracemalloc during one ``train_epoch`` after a
    warm-up epoch (which compiles, and makes the workspace views for every batch size)."""
    B = 64
    n = B * n_batches - 5  # a shorter last batch when shuffling
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(n, 20)), np.arange(n) % 3
    head, weights = "softmax", None
    if regression:  # a weighted regressor: targets (n, 3) and S.2's factors each step
        y, head, weights = rng.normal(size=(n, 3)), "identity", rng.uniform(0.5, 2.0, size=n)
    model = MLP.create(20, [40], 3, activations="tanh", head=head, dtype=dtype, rng=rng)
    config = TrainConfig(epochs=2, batch_size=B, optimizer="adam", sampling=sampling, engine=engine)
    trainer = Trainer(model, X, y, config, np.random.default_rng(1), sample_weight=weights)
    trainer.train_epoch()
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        trainer.train_epoch()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert trainer.step_count == 2 * n_batches
    return after - before, peak - before


@pytest.mark.parametrize("sampling", ["shuffle", "iid"])
def test_training_epoch_allocates_nothing_per_step(sampling, dtype="float32"):
    """The design goal of training.py and workspace.py: every buffer is made when the Trainer
    is built, so an epoch of 40 steps allocates no more than an epoch of 10. The per-epoch
    constant (the metrics record, the finiteness check of θ) stays far below the size of a
    single activation buffer (B × d_1 = 64 × 40 numbers, ≥ 10 KiB), so not even one step may
    allocate one."""
    held_10, peak_10 = epoch_allocation(10, dtype, sampling)
    held_40, peak_40 = epoch_allocation(40, dtype, sampling)
    # Thirty more steps, (almost) not one more byte.
    assert abs(held_40 - held_10) <= 256, (held_10, held_40)
    assert abs(peak_40 - peak_10) <= 256, (peak_10, peak_40)
    # What the epoch does hold (~1 KiB: one-time lazy state inside Numba's dispatchers, gone
    # from the fourth epoch on) and its peak stay below one activation buffer.
    assert held_40 <= 4 * 1024, held_40
    assert peak_40 <= 8 * 1024, peak_40


@pytest.mark.parametrize("engine", ["fused", "kernels"])
def test_weighted_regression_epoch_allocates_nothing_per_step(engine):
    """The same for a regressor with sample weights, with both CPU engines."""
    held_10, peak_10 = epoch_allocation(10, "float32", "shuffle", True, engine)
    held_40, peak_40 = epoch_allocation(40, "float32", "shuffle", True, engine)
    assert abs(held_40 - held_10) <= 256, (held_10, held_40)
    assert abs(peak_40 - peak_10) <= 256, (peak_10, peak_40)
