"""CUDA groups: numbamlp's device trainer against the CPU trainer in the same run.

Skipped, cleanly, without a usable GPU (and under the CUDA simulator, which would time Python):
nothing here has run on real hardware yet, so no GPU speed is claimed anywhere.
"""

from __future__ import annotations

import pytest
from conftest import have, make_trainer, quick, rng_subset


def _gpu_usable() -> bool:
    if not (have("numba_cuda_mlir") or have("numba_cuda") or have("numba.cuda")):
        return False
    from numbamlp.engines.cuda.backend import cuda, simulator_enabled

    if simulator_enabled():
        return False
    try:
        return bool(cuda.is_available())
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _gpu_usable(), reason="no usable CUDA GPU")


def _trainer(kind, X, y, hidden, batch):
    if kind == "numbamlp-cuda":
        from baselines.numbamlp_cuda_mlp import Trainer

        return Trainer(X, y, hidden, batch)
    return make_trainer(kind, X, y, hidden=hidden, batch=batch, threads=2)


@pytest.mark.parametrize("kind", ["numbamlp", "numbamlp-cuda"])
def test_cuda_reference_epoch(benchmark, mnist, kind):
    benchmark.group = "cuda: epoch, reference workload (784-32-10, batch 128)"
    X, y = mnist.X_train, mnist.y_train
    if quick(benchmark):
        X, y = rng_subset(X, y, 2048)
    trainer = _trainer(kind, X, y, 32, 128)
    trainer.epoch()  # compile / warm up
    benchmark.pedantic(trainer.epoch, rounds=1 if quick(benchmark) else 5, iterations=1)
    benchmark.extra_info["test_accuracy"] = trainer.accuracy(mnist.X_test, mnist.y_test)


@pytest.mark.parametrize("kind", ["numbamlp", "numbamlp-cuda"])
@pytest.mark.parametrize("hidden,batch", [(512, 1024), (2048, 1024)])
def test_cuda_wide_steps(benchmark, mnist, kind, hidden, batch):
    """Where a GPU should pay: wide layers, large batches (100 steps per round)."""
    benchmark.group = f"cuda: 100 steps, 784-{hidden}-10, batch {batch}"
    X, y = rng_subset(mnist.X_train, mnist.y_train, 8192)
    trainer = _trainer(kind, X, y, hidden, batch)
    trainer.steps(2)
    steps = 2 if quick(benchmark) else 100
    benchmark.pedantic(lambda: trainer.steps(steps), rounds=1 if quick(benchmark) else 5)
