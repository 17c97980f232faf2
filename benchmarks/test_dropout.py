"""What dropout (D.1–D.3) costs per epoch: the fused engine with and without dropout 0.5, at the
reference workload (784-32-10, batch 128, float32, 2 threads) and at hidden 512, one group each,
so that the cost reads as the ratio of the two medians (target: ≤ 15 % at the reference
workload). The masks are drawn inside region 1 (Philox4x32-10, one call per 4 units, twice per
step: in D.2 and again in D.3), so the cost grows with B · d_1, not with d_0 · d_1 as F.1 does.

One round = one shuffled epoch of MNIST's 60k images; the first epoch (compilation, warm-up) is
excluded. Quick mode (--benchmark-disable, CI's smoke run): 2048 images, one round.
"""

from __future__ import annotations

import pytest
from conftest import quick, rng_subset


@pytest.mark.parametrize("hidden", [32, 512])
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_dropout_epoch(benchmark, mnist, hidden, dropout):
    from baselines.numbamlp_mlp import Trainer

    benchmark.group = f"epoch: dropout cost (784-{hidden}-10, batch 128, 2 threads)"
    X, y = mnist.X_train, mnist.y_train
    if quick(benchmark):
        X, y = rng_subset(X, y, 2048)
    import numba

    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    trainer = Trainer(X, y, hidden, 128, dropout=dropout)
    trainer.epoch()  # compile / warm up
    benchmark.pedantic(trainer.epoch, rounds=1 if quick(benchmark) else 5, iterations=1)
    benchmark.extra_info["dropout"] = dropout
    benchmark.extra_info["hidden"] = hidden
