"""FB §1 Q3: the cost of one SGD iteration grows linearly with the batch size B and does not
depend on the number of samples n (target 7).

Times a fixed number of steps of the reference model. Batch sizes double from 16 to 512 at
n = 60000; n goes from 600 to 60000 at B = 128. extra_info carries seconds per step, so the
table shows time ∝ B (until B is too small to fill the threads) and flat in n.
"""

from __future__ import annotations

import statistics
import time

import pytest
from conftest import make_trainer, quick, rng_subset

STEPS = 100


def seconds_per_step(X, y, batch: int, steps: int = STEPS, rounds: int = 7) -> float:
    """The same measurement without pytest-benchmark (notebooks/01-warm-up plots it): the
    median over ``rounds`` of the wall time of ``steps`` steps of the reference model, per step."""
    trainer = make_trainer("numbamlp", X, y, hidden=32, batch=batch, threads=2)
    trainer.steps(steps)  # compile / warm up
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        trainer.steps(steps)
        times.append(time.perf_counter() - started)
    return statistics.median(times) / steps


def _time_steps(benchmark, X, y, batch):
    trainer = make_trainer("numbamlp", X, y, hidden=32, batch=batch, threads=2)
    steps = 2 if quick(benchmark) else STEPS
    trainer.steps(steps)
    benchmark.pedantic(trainer.steps, args=(steps,), rounds=1 if quick(benchmark) else 7)
    if benchmark.stats:
        per_step = benchmark.stats.stats.median / steps
        benchmark.extra_info["seconds_per_step"] = per_step
        benchmark.extra_info["microseconds_per_sample"] = per_step / batch * 1e6


@pytest.mark.parametrize("batch", [16, 32, 64, 128, 256, 512])
def test_cost_per_step_vs_batch(benchmark, mnist, batch):
    benchmark.group = "FB §1 Q3: cost per step vs batch size B (n = 60000)"
    X, y = mnist.X_train, mnist.y_train
    if quick(benchmark):
        X, y = rng_subset(X, y, 2048)
    _time_steps(benchmark, X, y, batch)
    benchmark.extra_info["batch"] = batch


@pytest.mark.parametrize("n", [600, 6000, 60000])
def test_cost_per_step_vs_n(benchmark, mnist, n):
    benchmark.group = "FB §1 Q3: cost per step vs n (B = 128)"
    X, y = rng_subset(mnist.X_train, mnist.y_train, n)
    _time_steps(benchmark, X, y, 128)
    benchmark.extra_info["n"] = n
