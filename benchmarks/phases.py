"""The phases of a fused-engine step, each run alone on a plan's own buffers, for
``test_phases.py``: the helpers that ``forward_backward`` (region 1) and ``gradient_update``
(region 2) call, in the same order and on the same arrays, each repeated over ``steps`` steps.

Nothing here is an equation of its own: each driver loops over the blocks of a step as region 1
does (serially, on one thread) and calls one helper of engines/fused/. The buffers are those a
real step left behind (``PhaseBench.prime`` runs one), so each phase reads what it reads in a
training step, from the cache where the step before it left it. ``gather`` alone walks through
the epoch's minibatches, since its cost is the memory traffic of new rows of X.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numba
import numpy as np
from numba import njit

from numbamlp.engines.fused.layout import (
    ADAM,
    BAND,
    CHUNK,
    SHARD_AT,
    SIZE,
    activations,
    biases,
    gradient_shard,
    layer_rows,
    packed_weights,
    weights,
)
from numbamlp.engines.fused.regions import (
    forward_backward,
    gradient_update,
    run_steps,
    step_coefficients,
    sum_shards,
    update_run,
)
from numbamlp.engines.fused.rows import (
    activation_rows,
    correct_rows,
    cross_entropy_rows,
    gather_rows,
    output_delta_rows,
    softmax_rows,
)
from numbamlp.engines.fused.tiles import affine_layer, hidden_delta_rows, weight_gradient_rows
from numbamlp.kernels.philox import MASK32


@njit
def _blocks(B, sample_block):
    return (B + sample_block - 1) // sample_block


@njit
def gather_phase(steps, h, spans, X, X_spans, scale, batches, sizes, layout, sample_block):
    """h^0 of each block, minibatch after minibatch."""
    for p in range(steps):
        row = p % (batches.shape[0] - 1)
        B = sizes[row]
        batch = batches[row, :B]
        h0 = activations(h, layout, np.int64(0), B)
        for block in range(_blocks(B, sample_block)):
            s0 = block * sample_block
            gather_rows(h0, spans, X, X_spans, scale, batch, s0, min(s0 + sample_block, B))


@njit
def affine_phase(steps, k, z, h, packed, theta, spans, layout, B, sample_block):
    """(F.1) of layer k."""
    z_k, h_prev = layer_rows(z, layout, k, B), activations(h, layout, k - 1, B)
    W_k, b_k = weights(theta, layout, k), biases(theta, layout, k)
    packed_k = packed_weights(packed, layout, k)
    for _ in range(steps):
        for block in range(_blocks(B, sample_block)):
            s0 = block * sample_block
            s1 = min(s0 + sample_block, B)
            affine_layer(z_k, packed_k, W_k, b_k, h_prev, s0, s1, spans, k > 1)


@njit
def activation_phase(steps, k, z, h, codes, layout, B, sample_block):
    """(F.2) of layer k."""
    z_k, h_k = layer_rows(z, layout, k, B), activations(h, layout, k, B)
    for _ in range(steps):
        for block in range(_blocks(B, sample_block)):
            s0 = block * sample_block
            activation_rows(h_k, z_k, codes[k], s0, min(s0 + sample_block, B))


@njit
def head_phase(steps, z, delta, f, losses, log_totals, correct, y, batch, layout, B, sample_block):
    """(F.3), (L.1), (P.1) and (B.1): the softmax head, its loss, the count and δ^L."""
    L = layout.shape[1] - 1
    z_L, delta_L = layer_rows(z, layout, L, B), layer_rows(delta, layout, L, B)
    for _ in range(steps):
        for block in range(_blocks(B, sample_block)):
            s0 = block * sample_block
            s1 = min(s0 + sample_block, B)
            softmax_rows(f, log_totals, z_L, s0, s1)
            cross_entropy_rows(losses, log_totals, z_L, y, batch, s0, s1)
            correct_rows(correct, z_L, y, batch, f.shape[1], s0, s1)
            output_delta_rows(delta_L, f, y, batch, s0, s1)


@njit
def hidden_delta_phase(steps, m, z, h, delta, theta, codes, layout, B, sample_block):
    """(B.4) of layer m."""
    delta_m, delta_next = layer_rows(delta, layout, m, B), layer_rows(delta, layout, m + 1, B)
    z_m, h_m = layer_rows(z, layout, m, B), activations(h, layout, m, B)
    W_next = weights(theta, layout, m + 1)
    for _ in range(steps):
        for block in range(_blocks(B, sample_block)):
            s0 = block * sample_block
            s1 = min(s0 + sample_block, B)
            hidden_delta_rows(delta_m, W_next, delta_next, z_m, h_m, codes[m], False, s0, s1)


@njit
def shard_phase(steps, m, h, delta, shards, spans, layout, B, sample_block):
    """(B.3) and (B.2) of layer m into each block's gradient shard."""
    delta_m, h_prev = layer_rows(delta, layout, m, B), activations(h, layout, m - 1, B)
    for _ in range(steps):
        for block in range(_blocks(B, sample_block)):
            s0 = block * sample_block
            s1 = min(s0 + sample_block, B)
            weight_gradient_rows(
                gradient_shard(shards, layout, m, np.int64(block)), delta_m, h_prev,
                np.int64(0), layout[SIZE, m], s0, s1, s1 - s0, spans, m > 1,
            )  # fmt: skip


@njit
def batch_gradient_phase(steps, m, G, h, delta, spans, layout, B):
    """(B.3) and (B.2) of a layer m without shards, summed over the whole batch as region 2
    sums them: band by band of rows, into G[0], on one thread (no update)."""
    delta_m, h_prev = layer_rows(delta, layout, m, B), activations(h, layout, m - 1, B)
    band = layout[BAND, m]
    for _ in range(steps):
        for i in range(0, layout[SIZE, m], band):
            weight_gradient_rows(
                G[0], delta_m, h_prev, i, min(i + band, layout[SIZE, m]), np.int64(0), B,
                layout[CHUNK, m], spans, m > 1,
            )  # fmt: skip


@njit
def shard_sum_phase(steps, G, shards, layout, B, sample_block):
    """Region 2's sums of the blocks' shards (B.3, S.1), every row of every sharded layer, by
    bands of G's rows, on one thread."""
    L = layout.shape[1] - 1
    band = G.shape[1]
    for _ in range(steps):
        for m in range(1, L + 1):
            if layout[SHARD_AT, m] >= 0:
                for i in range(0, layout[SIZE, m], band):
                    sum_shards(
                        G[0], shards, layout, m, _blocks(B, sample_block), i,
                        min(i + band, layout[SIZE, m]),
                    )  # fmt: skip


@njit
def update_phase(steps, theta, state, sums, coef, hyper):
    """(U.6) Adam on every parameter, from fixed sums, on one thread."""
    for p in range(steps):
        step_coefficients(coef, 1e-3, 128, ADAM, hyper, p + 1)
        update_run(theta, state, np.int64(0), sums, theta.shape[0], ADAM, coef)


@njit
def region1_phase(
    steps, h, z, delta, packed, f, losses, log_totals, shards, spans, theta, X, X_spans, scale, y,
    targets, sample_weights, batches, sizes, layout, codes, head, sample_block, flush, correct,
    drop_key, drop_thresholds, drop_scales,
):  # fmt: skip
    """Region 1 (``forward_backward``), minibatch after minibatch, with no region 2 between."""
    for p in range(steps):
        row = p % (batches.shape[0] - 1)
        B = sizes[row]
        forward_backward(
            h, z, delta, packed, f, losses, log_totals, shards, spans, theta, X, X_spans, scale, y,
            targets, sample_weights, B, 0.0, batches[row, :B], layout, codes, head, sample_block,
            flush, correct, np.uint64(p + 1) & MASK32, drop_key, drop_thresholds, drop_scales,
        )  # fmt: skip


@njit
def region2_phase(
    steps, theta, state, packed, G, shards, h, delta, spans, layout, cuts, B, sample_block,
    optimizer, coef, hyper, flush,
):  # fmt: skip
    """Region 2 (``gradient_update``) with its coefficients, with no region 1 between."""
    for p in range(steps):
        step_coefficients(coef, 1e-3, B, optimizer, hyper, p + 1)
        gradient_update(
            theta, state, packed, G, shards, h, delta, spans, layout, cuts, B, sample_block,
            optimizer, coef, flush,
        )  # fmt: skip


class PhaseBench:
    """A reference run's fused plan and its arrays, primed by one real step, and a callable
    per phase that runs ``steps`` steps of it."""

    def __init__(self, trainer) -> None:
        engine = trainer.engine
        self.plan, self.setup, self.state = engine.plan, engine.setup, engine.state
        s, plan = self.setup, self.plan
        self.theta = s.model.params.theta
        self.X, self.y = s.X, s.y
        self.scale = plan.dtype.type(s.scale)
        self.X_spans = plan._spans_of(s.X)
        self.batches, self.sizes = s.sampler.index_matrix, s.sampler.batch_sizes
        self.B = int(self.sizes[0])
        self.sums = np.zeros_like(self.theta)
        self.weights = np.zeros(0, np.float64)
        self.targets = np.zeros((0, plan.architecture.n_outputs), plan.dtype)
        trainer.train_steps(2)  # one real step leaves every buffer as a step does

    def phases(self, steps: int) -> dict[str, Callable[[], None]]:
        p, B, blk = self.plan, self.B, self.plan.sample_block
        L = p.architecture.L
        batch = self.batches[0, :B]

        def gather() -> None:
            X, spans, batches, sizes = self.X, self.X_spans, self.batches, self.sizes
            gather_phase(steps, p.h, p.spans, X, spans, self.scale, batches, sizes, p.layout, blk)

        out: dict[str, Callable[[], None]] = {"gather h^0": gather}
        for k in range(1, L + 1):
            out[f"F.1 layer {k}"] = lambda k=k: affine_phase(
                steps, k, p.z, p.h, p.packed, self.theta, p.spans, p.layout, B, blk
            )
            if k < L:
                out[f"F.2 layer {k}"] = lambda k=k: activation_phase(
                    steps, k, p.z, p.h, p.codes, p.layout, B, blk
                )
        out["F.3, L.1, P.1, B.1 (head)"] = lambda: head_phase(
            steps, p.z, p.delta, p.f, p.losses, p.log_totals, p.correct, self.y, batch, p.layout,
            B, blk,
        )  # fmt: skip
        for m in range(L - 1, 0, -1):
            out[f"B.4 layer {m}"] = lambda m=m: hidden_delta_phase(
                steps, m, p.z, p.h, p.delta, self.theta, p.codes, p.layout, B, blk
            )
        for m in range(1, L + 1):
            if p.layout[SHARD_AT, m] >= 0:
                out[f"B.3 + B.2 layer {m} (shards)"] = lambda m=m: shard_phase(
                    steps, m, p.h, p.delta, p.shards, p.spans, p.layout, B, blk
                )
            else:
                out[f"B.3 + B.2 layer {m} (region 2)"] = lambda m=m: batch_gradient_phase(
                    steps, m, p.G, p.h, p.delta, p.spans, p.layout, B
                )
        out["shard sums (region 2)"] = lambda: shard_sum_phase(
            steps, p.G, p.shards, p.layout, B, blk
        )
        out["U.6 Adam (region 2)"] = lambda: update_phase(
            steps, self.theta.copy(), self.state.copy(), self.sums, p.coef.copy(), p.hyper
        )
        return out

    def region1(self, steps: int) -> None:
        p = self.plan
        region1_phase(
            steps, p.h, p.z, p.delta, p.packed, p.f, p.losses, p.log_totals, p.shards, p.spans,
            self.theta, self.X, self.X_spans, self.scale, self.y, self.targets, self.weights,
            self.batches, self.sizes, p.layout, p.codes, p.head, p.sample_block,
            p.flush_subnormals, p.correct, p.drop_key, p.drop_thresholds, p.drop_scales,
        )  # fmt: skip

    def region2(self, steps: int) -> None:
        p = self.plan
        region2_phase(
            steps, self.theta, self.state, p.packed, p.G, p.shards, p.h, p.delta, p.spans, p.layout,
            p.cuts, self.B, p.sample_block, p.optimizer_code, p.coef, p.hyper,
            p.flush_subnormals,
        )  # fmt: skip

    def whole_steps(self, steps: int) -> None:
        """``run_steps`` itself: both regions and everything between them."""
        p, s = self.plan, self.setup
        losses = np.zeros(self.batches.shape[0])
        correct = np.zeros(self.batches.shape[0], np.int64)
        done = 0
        while done < steps:
            count = min(steps - done, self.batches.shape[0])
            run_steps(
                self.theta, self.state, self.X, self.X_spans, self.scale, self.y, self.targets,
                self.weights, self.batches, self.sizes, s.lrs, 0, 0, count, losses,
                p.optimizer_code, p.hyper, p.h, p.z, p.delta, p.packed, p.f, p.losses,
                p.log_totals, p.G, p.shards, p.spans, p.coef, p.layout, p.codes, p.head, p.cuts,
                p.sample_block, p.flush_subnormals, correct, p.correct, p.drop_key,
                p.drop_thresholds, p.drop_scales,
            )  # fmt: skip
            done += count


def microseconds_per_step(run: Callable[[], None], steps: int, repeats: int = 5) -> float:
    """The best of ``repeats`` timed runs (each of ``steps`` steps, after one to warm up)."""
    run()
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best / steps * 1e6


def on_threads(count: int, run: Callable[[], None]) -> Callable[[], None]:
    def timed() -> None:
        before = numba.get_num_threads()
        numba.set_num_threads(count)
        try:
            run()
        finally:
            numba.set_num_threads(before)

    return timed
