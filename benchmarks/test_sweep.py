"""Width × batch sweep (target 2): numbamlp against NumPy/BLAS, PyTorch and JAX.

Each point times a fixed number of minibatch steps (a full epoch at width 2048 and batch 32
would take minutes per round) and reports seconds per epoch = seconds per step × ⌈60000/B⌉.
"""

from __future__ import annotations

import math

import pytest
from conftest import epoch_flops, make_trainer, quick, rng_subset

HIDDEN = [32, 128, 512, 2048]
BATCH = [32, 128, 1024]
KINDS = ["numbamlp", "numpy", "torch", "jax"]
N = 60000


def _steps(hidden: int, batch: int) -> int:
    """About 0.2–0.5 s of work per round at every point."""
    flops_per_step = epoch_flops(batch, [784, hidden, 10])
    return max(4, min(200, int(4e10 / flops_per_step)))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", BATCH)
@pytest.mark.parametrize("hidden", HIDDEN)
def test_sweep(benchmark, mnist, blas_info, peak_gflops, hidden, batch, kind):
    benchmark.group = f"sweep: hidden {hidden}, batch {batch}"
    X, y = mnist.X_train, mnist.y_train
    steps = _steps(hidden, batch)
    if quick(benchmark):
        X, y = rng_subset(X, y, 2048)
        steps = 2
    trainer = make_trainer(kind, X, y, hidden=hidden, batch=batch, threads=2)
    trainer.steps(steps)  # compile / warm up
    benchmark.pedantic(trainer.steps, args=(steps,), rounds=1 if quick(benchmark) else 5)
    steps_per_epoch = math.ceil(N / batch)
    benchmark.extra_info.update(steps_timed=steps, blas=blas_info)
    if benchmark.stats:
        per_step = benchmark.stats.stats.median / steps
        flops = epoch_flops(batch, [784, hidden, 10])
        benchmark.extra_info["seconds_per_epoch"] = per_step * steps_per_epoch
        benchmark.extra_info["gflops"] = flops / per_step / 1e9
        benchmark.extra_info["fraction_of_flop_limit"] = flops / per_step / (peak_gflops * 1e9)
        benchmark.extra_info["peak_gflops"] = peak_gflops  # measured in this session
