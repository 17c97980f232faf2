"""The fused engine's plan: everything a run of it needs, built once (the batch buffers, the
layout table, the work items), and ``run``, which checks its arguments and makes the steps —
``run_steps`` in one call, or with an exchange between the regions (``RegionExchange``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numba
import numpy as np

from numbamlp.engines.base import adopt_state
from numbamlp.engines.fused.layout import (
    BAND,
    DECAY,
    HEAD_CODES,
    HYPER_ORDER,
    N_COEF,
    OPTIMIZER_CODES,
    SHARD_BYTES,
    balanced_cuts,
    default_sample_block,
    layout_table,
)
from numbamlp.engines.fused.regions import finish_step, forward_backward, pack_weights, run_steps
from numbamlp.engines.fused.tiles import input_spans
from numbamlp.errors import NumbamlpError
from numbamlp.kernels.dropout import Dropout
from numbamlp.kernels.memory import CACHE_LINE, aligned_zeros, round_up
from numbamlp.kernels.optimizers import OPTIMIZERS, Optimizer
from numbamlp.kernels.philox import MASK32
from numbamlp.kernels.rows import weight_total_cpu
from numbamlp.model.network import Architecture


@dataclass
class Share:
    """One process's share of region 1 for a batch of B samples: the samples
    s_lo ≤ s < s_hi (whole blocks), the layout table whose starts are shifted to its first
    sample and block (so that it writes exactly where one process would), and the views of the
    per-sample buffers from s_lo on."""

    s_lo: int
    s_hi: int
    layout: np.ndarray
    f: np.ndarray
    losses: np.ndarray
    log_totals: np.ndarray
    spans: np.ndarray
    correct: np.ndarray


class RegionExchange(Protocol):
    """The hook between region 1 and region 2 of every step, for a region 1 shared among
    processes (distributed training: engines/distributed.py)."""

    def share(self, plan: FusedPlan, B: int) -> Share:
        """This process's share of region 1 for a batch of B samples."""
        ...

    def complete(self, share: Share) -> None:
        """After region 1 ran on ``share``: give this process what one process running region
        1 on the whole batch would hold (every row of the batch buffers that region 2 reads,
        every gradient shard, every ℓ_s and correct count), in the same places."""
        ...


class FusedPlan:
    """The batch buffers, layout table and work items of the fused training loop, for one
    architecture, maximum batch size, dtype and optimizer (its name and hyperparameters are
    read once, here). Built once; every ``run`` reuses it.

    n_items: how many ranges of rows region 2 cuts the weights into (default: the number of
        Numba threads, one range each).
    sample_block: samples per block of region 1 (default: ``default_sample_block``).
    Neither one, nor the number of threads, changes any result — except that the blocks are also
    the gradient shards, so sample_block decides the order of the sums of a sharded layer.
    For a max_batch of PACKED_MIN_BATCH or more the plan also holds a copy of the weights of
    every layer at least a strip wide (``packed``: as much memory as those W^k), which F.1 reads.
    shard_bytes: a layer gets gradient shards when it has at most sample_block units and its
        shards take at most this many bytes in all (default SHARD_BYTES; 0: no shards, every
        layer summed over the batch in region 2).
    flush_subnormals: run the regions with subnormal numbers flushed to zero (see
        ``enter_flush_mode``); results differ only where a value would be below 1.2e-38
        (float32) or 2.2e-308 (float64).
    weight_decay: λ of the L2 weight decay (R.1): region 2 adds λ W^m_{ij} to each weight's
        gradient before the update; 0 (the default) adds nothing.
    exchange: what runs between region 1 and region 2 of every step when region 1 is shared
        among processes (``RegionExchange``; distributed training's is engines/distributed.py);
        None (the default): this process runs region 1 on the whole batch.
    dropout: the rates, key and factors of dropout (D.1–D.3) on the hidden layers; None (the
        default) or rate 0: none, and region 1 branches past it.
    """

    def __init__(
        self,
        architecture: Architecture,
        max_batch: int,
        dtype: np.dtype | str,
        optimizer: Optimizer,
        n_items: int | None = None,
        sample_block: int | None = None,
        flush_subnormals: bool = True,
        shard_bytes: int | None = None,
        weight_decay: float = 0.0,
        exchange: RegionExchange | None = None,
        dropout: Dropout | None = None,
    ) -> None:
        if max_batch < 1:
            raise NumbamlpError(f"batch size must be at least 1, got {max_batch}")
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise NumbamlpError(f"weight decay must be a finite number ≥ 0, got {weight_decay}")
        self.architecture = architecture
        self.max_batch = int(max_batch)
        self.dtype = np.dtype(dtype)
        self.optimizer_name = optimizer.name
        self.optimizer_code = OPTIMIZER_CODES[optimizer.name]
        self.n_state = len(OPTIMIZERS[optimizer.name][0])
        self.hyper = np.array(
            [optimizer.hyper[key] for key in HYPER_ORDER[optimizer.name]], dtype=np.float64
        )
        self.sample_block = int(sample_block or default_sample_block(self.max_batch))
        self.shard_bytes = SHARD_BYTES if shard_bytes is None else int(shard_bytes)
        self.flush_subnormals = bool(flush_subnormals)
        n_items = int(n_items or numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        if self.sample_block < 1 or n_items < 1:
            raise NumbamlpError("sample_block and n_items must be at least 1")
        self.cuts = balanced_cuts(architecture, n_items)
        self.head = HEAD_CODES[architecture.head]
        self.codes = np.array(architecture.activation_codes, dtype=np.int64)  # φ_m at [m]
        self.layout, self.shard_size, packed_size = layout_table(
            architecture, self.max_batch, self.dtype, self.sample_block, self.shard_bytes
        )
        self._labels_checked: tuple[int, int] | None = None
        self.regression = architecture.task == "regression"
        # What ``run`` passes for the arrays a run does not use: one type signature per dtype.
        self._no_labels = np.zeros(0, np.int64)
        self._no_targets = np.zeros((0, architecture.n_outputs), self.dtype)
        self._no_weights = np.zeros(0, np.float64)

        sizes, L, B, dt = architecture.sizes, architecture.L, self.max_batch, self.dtype
        # The batch buffers start on a cache line: then so does every row h^{k}_{s,:} whose
        # length is a multiple of 64 bytes (784 float32 inputs: 49 lines). NumPy aligns to 16
        # bytes only; rows of h^0 starting 16 bytes into a line slow a reference step down
        # measurably (vector loads of F.1 and B.3 split across two lines; docs/performance.md,
        # "Figures moved out of the code").
        self.h = aligned_zeros((B * sum(sizes[:L]),), dt)  # h^0, …, h^{L−1}
        self.z = aligned_zeros((B * sum(sizes[1:]),), dt)  # z^1, …, z^L
        self.delta = aligned_zeros((B * sum(sizes[1:]),), dt)  # δ^1, …, δ^L
        # (W^k)ᵀ packed in strips for F.1's register tiles, for the layers wide enough
        # (``layout.packed_weights``): rewritten from θ at the start of each run, and row by row
        # by region 2 after each update.
        self.packed = aligned_zeros((max(packed_size, 1),), dt)
        self.has_packed = packed_size > 0
        self.f = np.zeros((B, architecture.n_classes), dt)
        self.losses = np.zeros(B, dt)  # ℓ_s
        self.correct = np.zeros(B, np.int64)  # whether sample s is classified right (P.1)
        self._scratch_correct = np.zeros(0, np.int64)  # run's batch_correct when none is given
        self.log_totals = np.zeros(B, np.float64)  # log Σ_k e^{z^L_{s,k}}, for L.1
        self.coef = np.zeros(N_COEF, dt)
        self.weight_decay = float(weight_decay)
        self.coef[DECAY] = self.weight_decay  # λ (R.1), rounded to θ's precision
        # Region 2's partial sums: a band of rows of d_{m−1} + 1 sums per item. Each item's
        # rows start on a cache line of their own, since items on different threads rewrite
        # them on every pass over the samples.
        width = round_up((max(sizes[:L]) + 1) * dt.itemsize, CACHE_LINE) // dt.itemsize
        self.G = aligned_zeros((n_items, int(self.layout[BAND].max()), width), dt)
        # The gradient shards of the layers that have them (``layout_table``): block b's partial
        # sums of ∇W^m and ∇b^m, written in region 1 by the block's thread, read in region 2.
        self.shards = aligned_zeros((max(self.shard_size, 1),), dt)
        # The span of each sample's h^0 (``input_spans``), copied from X_spans by gather_rows.
        self.spans = np.zeros((B, 2), np.int64)
        self._x_spans: tuple[tuple[int, int, tuple[int, ...]], np.ndarray] | None = None
        self.exchange = exchange
        # Dropout (D.1–D.3): the key, and ⌈p_m 2^32⌉ (0: layer m keeps every unit) and
        # 1/(1 − p_m) for m = 0..L.
        self.drop_key = np.zeros(2, np.uint64)
        self.drop_thresholds = np.zeros(L + 1, np.uint64)
        self.drop_scales = np.ones(L + 1, dt)
        if dropout is not None and dropout.active:
            self.drop_key[:] = dropout.key
            self.drop_thresholds[:] = dropout.thresholds
            self.drop_scales[:] = dropout.scales

    def adopt_state(self, optimizer: Optimizer) -> np.ndarray:
        """The optimizer's state as one (n_state, P) array. The optimizer's arrays become views
        of its rows (their values kept), so Optimizer.step and ``run`` share one state."""
        return adopt_state(optimizer, self.architecture.n_parameters, self.dtype)

    def run(
        self,
        theta: np.ndarray,
        state: np.ndarray,
        X: np.ndarray,
        scale: float | np.floating,
        y: np.ndarray,
        index_matrix: np.ndarray,
        batch_sizes: np.ndarray,
        lrs: np.ndarray,
        first_step_count: int,
        first: int,
        count: int,
        batch_losses: np.ndarray,
        batch_correct: np.ndarray | None = None,
        targets: np.ndarray | None = None,
        weights: np.ndarray | None = None,
    ) -> int:
        """Train on the minibatches in rows first, …, first+count−1 of ``index_matrix``.

        theta: θ, shape (P,), this plan's dtype; updated in place.
        state: the optimizer state, shape (n_state, P) (``adopt_state``); updated in place.
        X, scale: the inputs are h^0 = scale · X_{I_s}: X of shape (n, d_0) is either this
            plan's dtype (scale 1) or uint8 (pixels, scale 1/255); scale is rounded to the dtype.
        y: int64 labels, shape (n,); for the identity head (regression) unused (may be empty).
        index_matrix: int64, shape (steps, ≥ max batch): row q holds minibatch q in its first
            batch_sizes[q] entries (I.1/I.2); every entry of the rows used must be a row of X.
        batch_sizes: int64, shape (steps,), each in 1..max batch.
        lrs: float64, shape (steps,): γ for the step made on minibatch q (G.1–G.4).
        first_step_count: p before the first step; Adam's corrections use p + 1, p + 2, ….
        batch_losses: float64, shape (steps,); receives ℓ of each minibatch trained on (S.1).
        batch_correct: int64, shape (steps,); receives how many samples of each minibatch
            were classified right before its step (P.1); None: not wanted.
        targets: the identity head's targets, shape (n, T), this plan's dtype; None for a
            classifier.
        weights: the sample weights w (S.2), float64 (n,); None: the plain mean (S.1).
        Returns the number of steps completed: count, or q − first if the loss of minibatch q
        was not finite (it is written; its update is not made).
        """
        if y is None:
            y = self._no_labels
        targets = self._no_targets if targets is None else targets
        weights = self._no_weights if weights is None else weights
        self._check(
            theta, state, X, y, targets, weights, index_matrix, batch_sizes, lrs, first, count,
            batch_losses,
        )  # fmt: skip
        batch_correct = self._correct_counts(batch_correct, batch_losses.shape[0])
        X_spans, scale = self._spans_of(X), self.dtype.type(scale)
        if count > 0 and self.has_packed:  # θ may have changed since the last run
            pack_weights(self.packed, theta, self.layout)
        if self.exchange is not None:
            return self._run_exchanging(
                theta, state, X, X_spans, scale, y, targets, weights, index_matrix, batch_sizes,
                lrs, int(first_step_count), int(first), int(count), batch_losses, batch_correct,
            )  # fmt: skip
        done = run_steps(
            theta,
            state,
            X,
            X_spans,
            scale,
            y,
            targets,
            weights,
            index_matrix,
            batch_sizes,
            lrs,
            int(first_step_count),
            int(first),
            int(count),
            batch_losses,
            self.optimizer_code,
            self.hyper,
            self.h,
            self.z,
            self.delta,
            self.packed,
            self.f,
            self.losses,
            self.log_totals,
            self.G,
            self.shards,
            self.spans,
            self.coef,
            self.layout,
            self.codes,
            self.head,
            self.cuts,
            self.sample_block,
            self.flush_subnormals,
            batch_correct,
            self.correct,
            self.drop_key,
            self.drop_thresholds,
            self.drop_scales,
        )
        return int(done)

    def _run_exchanging(
        self, theta, state, X, X_spans, scale, y, targets, weights, index_matrix, batch_sizes,
        lrs, first_step_count, first, count, batch_losses, batch_correct,
    ) -> int:  # fmt: skip
        """``run_steps``' two calls per step, made from Python with the exchange between them:
        region 1 on this process's share of the batch, the exchange, then ``finish_step``.
        Every process sums the whole batch's weights itself (S.2), in sample order, so that
        each computes the same ω_s as one process would."""
        exchange = self.exchange
        assert exchange is not None
        for t in range(count):
            row = first + t
            B = int(batch_sizes[row])
            share = exchange.share(self, B)
            s_lo, s_hi = share.s_lo, share.s_hi
            weight_sum = (
                weight_total_cpu(weights, index_matrix[row], B) if weights.shape[0] else 0.0
            )  # (S.2) Σ_s w_{I_s} over the whole batch
            if s_hi > s_lo:
                forward_backward(
                    self.h, self.z, self.delta, self.packed, share.f, share.losses,
                    share.log_totals, self.shards, share.spans, theta, X, X_spans, scale, y,
                    targets, weights, B, weight_sum, index_matrix[row, s_lo:s_hi],
                    share.layout, self.codes, self.head, self.sample_block,
                    self.flush_subnormals, share.correct,
                    np.uint64(first_step_count + t + 1) & MASK32, self.drop_key,
                    self.drop_thresholds, self.drop_scales,
                )  # fmt: skip
            exchange.complete(share)
            if not finish_step(
                theta, state, self.packed, self.losses, self.correct, row, B,
                first_step_count + t + 1, lrs, batch_losses, batch_correct, self.optimizer_code,
                self.hyper, self.G, self.shards, self.h, self.delta, self.spans, self.coef,
                self.layout, self.cuts, self.sample_block, self.flush_subnormals,
            ):  # fmt: skip
                return t
        return count

    def _correct_counts(self, batch_correct: np.ndarray | None, steps: int) -> np.ndarray:
        """``run``'s batch_correct, checked; for None a scratch array of the plan's, made once
        per number of steps."""
        if batch_correct is None:
            if self._scratch_correct.shape != (steps,):
                self._scratch_correct = np.zeros(steps, np.int64)
            return self._scratch_correct
        if batch_correct.dtype != np.int64 or batch_correct.shape != (steps,):
            raise NumbamlpError("FusedPlan.run: batch_correct must be int64 (steps,)")
        if not batch_correct.flags.c_contiguous:
            raise NumbamlpError("FusedPlan.run: arrays must be C-contiguous")
        return batch_correct

    def _spans_of(self, X: np.ndarray) -> np.ndarray:
        """``input_spans`` of X's rows, computed once per input array (O(n · d_0); a run trains
        on one X) and kept: X's identity, address and shape decide whether it is the same."""
        key = (id(X), X.ctypes.data, X.shape)
        if self._x_spans is None or self._x_spans[0] != key:
            spans = np.empty((X.shape[0], 2), np.int64)
            input_spans(spans, X)
            self._x_spans = (key, spans)
        return self._x_spans[1]

    def _check(
        self, theta, state, X, y, targets, weights, index_matrix, batch_sizes, lrs, first, count,
        losses,
    ):  # fmt: skip
        """Shapes, dtypes and index ranges: the kernels check no bounds. (The messages are built
        only on failure: a training loop calls this often and must not allocate.)"""
        arch, P, dtype = self.architecture, self.architecture.n_parameters, self.dtype
        steps = index_matrix.shape[0] if index_matrix.ndim == 2 else -1
        problems = (
            (theta.dtype != dtype or theta.shape != (P,), "theta must be (P,) of the plan's dtype"),
            (state.dtype != dtype or state.shape != (self.n_state, P), "state: see adopt_state"),
            (X.ndim != 2 or X.shape[1] != arch.n_inputs, "X must be (n, d_0)"),
            (X.dtype != dtype and X.dtype != np.uint8, "X must be uint8 or the plan's dtype"),
            (
                y.dtype != np.int64 or (y.shape != (X.shape[0],) and not self.regression),
                "y must be int64, one per row of X",
            ),
            (
                targets.dtype != dtype
                or targets.ndim != 2
                or targets.shape[1] != arch.n_outputs
                or (self.regression and targets.shape[0] != X.shape[0]),
                "targets must be (n, T) of the plan's dtype, one row per row of X",
            ),
            (
                weights.dtype != np.float64 or weights.shape not in ((0,), (X.shape[0],)),
                "weights must be float64, one per row of X",
            ),
            (index_matrix.dtype != np.int64 or steps < 0, "index_matrix must be int64, 2-d"),
            (first < 0 or count < 0 or first + count > steps, "first/count exceed the rows"),
            (batch_sizes.dtype != np.int64 or batch_sizes.shape != (steps,), "batch_sizes"),
            (lrs.dtype != np.float64 or lrs.shape != (steps,), "lrs must be float64 (steps,)"),
            (losses.dtype != np.float64 or losses.shape != (steps,), "batch_losses"),
        )
        for failed, what in problems:
            if failed:
                raise NumbamlpError(f"FusedPlan.run: {what}")
        for a in (theta, state, X, y, targets, weights, index_matrix, batch_sizes, lrs, losses):
            if not a.flags.c_contiguous:
                raise NumbamlpError("FusedPlan.run: arrays must be C-contiguous")
        if count == 0:
            return
        sizes = batch_sizes[first : first + count]
        top = min(self.max_batch, index_matrix.shape[1])
        if sizes.min() < 1 or sizes.max() > top:
            raise NumbamlpError(f"FusedPlan.run: batch sizes must be in 1..{top}")
        used = index_matrix[first : first + count]
        if used.min() < 0 or used.max() >= X.shape[0]:
            raise NumbamlpError("FusedPlan.run: indices must be rows of X")
        key = (id(y), y.shape[0])
        if (
            not self.regression and self._labels_checked != key
        ):  # O(n): once per label array, not once per call
            if y.min() < 0 or y.max() >= arch.n_classes:
                raise NumbamlpError(f"FusedPlan.run: labels must be in 0..{arch.n_classes - 1}")
            self._labels_checked = key


def preload(dtype: np.dtype | str, x_dtype: np.dtype | str) -> None:
    """Load ``run_steps`` for θ of this dtype and inputs X of x_dtype from Numba's disk cache
    (compile it if the cache is cold), by running zero steps of a tiny plan. The first load
    also builds Numba's typing and target contexts, which takes a noticeable part of the
    start-up (docs/performance.md, "Figures moved out of the code"): ``numbamlp train`` calls
    this while the data set is still being read, so that the first batch does not wait for it."""
    architecture = Architecture((1, 1, 2), ("sigmoid",))
    optimizer = Optimizer.create("adam", architecture.n_parameters, np.dtype(dtype))
    plan = FusedPlan(architecture, 1, dtype, optimizer, n_items=1)
    state = plan.adopt_state(optimizer)
    theta = np.zeros(architecture.n_parameters, plan.dtype)
    X = np.zeros((1, 1), x_dtype)
    y = np.zeros(1, np.int64)
    steps, sizes = np.zeros((1, 1), np.int64), np.ones(1, np.int64)
    plan.run(theta, state, X, 1.0, y, steps, sizes, np.zeros(1), 0, 0, 0, np.zeros(1))
