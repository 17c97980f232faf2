"""Per-epoch benchmarks: the reference workload (target 1), threads (target 5), accuracy.

Reference workload: MNIST 60k, Dense(784,32,σ) → Dense(32,10) → softmax, Adam 1e-3, batch 128,
float32, 2 threads. One round = one shuffled epoch; the first epoch (compilation, warm-up) is
excluded.
"""

from __future__ import annotations

import contextlib

import pytest
from conftest import epoch_flops, have, make_trainer, quick, rng_subset

# numbamlp-pixels: X as bytes scaled on the fly, what `numbamlp train` does with MNIST; every
# other entry trains on the same float32 X.
IMPLEMENTATIONS = [
    "numbamlp", "numbamlp-pixels", "numbamlp-kernels", "numpy", "torch", "torch-fused-adam",
    "jax",
]  # fmt: skip


def seconds_per_epoch(kind: str, X, y, rounds: int = 7, hidden: int = 32, batch: int = 128):
    """test_reference_epoch's measurement without pytest-benchmark (notebooks/05-performance
    plots it): median seconds of one shuffled epoch after a warm-up epoch; None when the
    implementation's package is not installed."""
    import statistics
    import time

    try:
        trainer = make_trainer(kind, X, y, hidden=hidden, batch=batch, threads=2)
    except pytest.skip.Exception:
        return None
    trainer.epoch()  # compile / warm up
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        trainer.epoch()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _data(mnist, benchmark):
    if quick(benchmark):
        return rng_subset(mnist.X_train, mnist.y_train, 2048)
    return mnist.X_train, mnist.y_train


def _record(benchmark, X, sizes, blas_info, peak_gflops):
    flops = epoch_flops(X.shape[0], sizes)
    if benchmark.stats:
        seconds = benchmark.stats.stats.median
        benchmark.extra_info["seconds_per_epoch"] = seconds
        benchmark.extra_info["gflops"] = flops / seconds / 1e9
        benchmark.extra_info["fraction_of_flop_limit"] = (flops / (peak_gflops * 1e9)) / seconds
        benchmark.extra_info["peak_gflops"] = peak_gflops  # measured in this session
    benchmark.extra_info["gflop_per_epoch"] = flops / 1e9
    benchmark.extra_info["blas"] = blas_info


@pytest.mark.parametrize("kind", IMPLEMENTATIONS)
def test_reference_epoch(benchmark, mnist, blas_info, peak_gflops, kind):
    benchmark.group = "epoch: reference workload (784-32-10, batch 128, 2 threads)"
    X, y = _data(mnist, benchmark)
    trainer = make_trainer(kind, X, y, hidden=32, batch=128, threads=2)
    trainer.epoch()  # compile / warm up
    benchmark.pedantic(trainer.epoch, rounds=1 if quick(benchmark) else 7, iterations=1)
    _record(benchmark, X, [784, 32, 10], blas_info, peak_gflops)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", ["numbamlp", "numpy", "torch"])
def test_threads(benchmark, mnist, blas_info, peak_gflops, kind, threads):
    benchmark.group = f"epoch: threads, {kind}"
    X, y = _data(mnist, benchmark)
    limits = contextlib.nullcontext()
    if kind == "numpy":
        if not have("threadpoolctl"):
            pytest.skip("threadpoolctl not installed")
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=threads, user_api="blas")
    with limits:
        trainer = make_trainer(kind, X, y, hidden=32, batch=128, threads=threads)
        trainer.epoch()
        benchmark.pedantic(trainer.epoch, rounds=1 if quick(benchmark) else 5, iterations=1)
    benchmark.extra_info["threads"] = threads
    _record(benchmark, X, [784, 32, 10], blas_info, peak_gflops)


@pytest.mark.parametrize("kind", ["numbamlp", "numpy", "torch", "jax"])
def test_accuracy_after_20_epochs(benchmark, mnist, kind):
    """Same final accuracy: each trainer's test accuracy after 20 epochs (one round)."""
    benchmark.group = "accuracy after 20 epochs (reference workload)"
    X, y = _data(mnist, benchmark)
    epochs = 1 if quick(benchmark) else 20
    trainer = make_trainer(kind, X, y, hidden=32, batch=128, threads=2)

    def run():
        for _ in range(epochs):
            trainer.epoch()

    benchmark.pedantic(run, rounds=1, iterations=1)
    accuracy = trainer.accuracy(mnist.X_test, mnist.y_test)
    benchmark.extra_info["test_accuracy"] = accuracy
    if not quick(benchmark):
        assert accuracy >= 0.95, f"{kind} reached only {accuracy:.4f}"
