"""Fused training steps: many minibatch steps per call, two parallel regions per step.

The per-kernel path (passes.py, optimizers.py) runs ~15 kernels per step, each entered from
Python and most of them opening a parallel region of their own. Here one serial function,
``run_steps``, loops over the steps p and opens two regions per step:

Region 1, ``forward_backward`` — parallel over blocks of samples s (a fixed number per block).
  A block gathers its inputs h^0_s = c · X_{I_s}, runs the forward pass through every layer
  (F.1, F.2), the head (F.3 or F.4), the loss ℓ_s (L.1), δ^L (B.1) and δ^m for m = L−1..1 (B.4),
  and writes only its own rows s of the batch buffers h^k, z^k, δ^k, f and ℓ.
  For the layers with gradient shards (narrow layers: ``SHARD_BYTES``) the block then sums B.3
  and B.2 over its own samples, while their h^{m−1} is in its core's cache, into its shard.
Region 2, ``gradient_update`` — parallel over work items, each a range of rows i of the weight
  matrices (the rows of W^1..W^L counted as one sequence, cut into pieces of equal cost). The
  owner of row i of W^m gets its gradient over ALL samples of the batch (B.3, B.2 with S.1) —
  the blocks' shards added in block order, or for layers without shards summed here over the
  samples in sample order — adds the weight decay's λ W^m_{i,:} (R.1) if there is one, and at
  once applies the optimizer update (U.1–U.6) to W^m_{i,:} and b^m_i. No per-thread buffer,
  no atomics: every number is written by one block or item.

Every number is computed by one fixed sequence of operations whoever computes it — how the
rows are cut into items decides who, never how; the blocks, and so the shards, follow from the
batch size, never from the thread count — so θ, the optimizer state and the losses are bitwise
identical for any number of threads. Each sum over the samples runs in sample order, as in
backward.py (with shards: in sample order within a block, then block by block), so float64
results agree with the per-kernel path to rounding. The loop allocates nothing: the views of
the flat buffers that it makes are slices and reshapes.

Loop shapes (measured on AVX-512 hardware; the helpers' comments say which equation each
loop computes, in index form):

* (F.1) a tile of 4 samples × 4 units keeps its 16 sums in registers while the inner loop runs
  over j, unit-stride in W^k_{i,:} and h^{k−1}_{s,:}, vectorised because the helper is compiled
  with the ``reassoc`` flag: ~145 GFLOP/s on one core with 512-bit vectors (~110 with LLVM's
  default 256-bit ones), against ~35 for one sum at a time.
* (B.3) and (B.4) add up outer products: the inner loop runs over j, unit-stride in both
  operands, and adds 4 terms of the sum (4 samples for B.3, 4 units i for B.4) per pass, so each
  partial sum is loaded and stored once per 4 multiply-adds (~112 GFLOP/s for B.3).
* The helpers with the big loops (F.1, B.3, the gather, σ, softmax) call
  ``prefer_wide_vectors()``: LLVM's x86 cost model otherwise stops at 256-bit vectors. θ, the
  optimizer state and the batch buffers start on cache lines (``memory.py``), so that the
  64-byte loads of rows whose length is a multiple of 16 floats (784 inputs) never straddle two.
* Layer 1's F.1 and B.3 skip the terms whose h^0_{s,j} is exactly 0 at the start and end of
  the tile's rows (``input_spans``, ``tile_columns``): MNIST's blank border, ~20 % of the
  columns of a tile of 4 samples. The sums are the same equations, without terms that are 0.
* Region 2 passes over the samples once per group of rows, as many as keep the group's partial
  sums in L1; the rows of h^{m−1}, half of them written by the other threads in region 1, then
  come from the other caches once per group instead of once per 4 rows. Gradient shards avoid
  even that for narrow layers: on 2 threads region 2 then reads half of one shard per row range
  from the other core (~50 KB for the reference W^1) instead of 64 rows of h^0 (~200 KB). For a
  batch whose rows of h^{m−1} exceed L2 (CHUNK_BYTES), the groups of a band of rows pass over
  one L2-sized chunk of samples after another.
* Both regions flush subnormal numbers to zero by default (``enter_flush_mode``): Adam's moments
  of rarely active inputs decay into that range, where every operation is ~100 times slower.

Usage — what ``training.Trainer`` needs (``FusedPlan.run`` documents each argument)::

    plan = FusedPlan(model.architecture, max_batch, model.dtype, optimizer)
    state = plan.adopt_state(optimizer)   # the optimizer's arrays become rows of this array
    # per epoch: index_matrix[q, :batch_sizes[q]] holds minibatch q, lrs[q] its γ
    done = plan.run(model.params.theta, state, X_raw, scale, y, index_matrix, batch_sizes,
                    lrs, optimizer.step_count, first, count, batch_losses, batch_correct)
    optimizer.step_count += done   # done < count: the loss of minibatch first + done was not
                                   # finite (batch_losses has it) and its update was not made
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from typing import Protocol

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from numbamlp._jit import helper, kernel, prefer_wide_vectors, serial
from numbamlp.activations import SIGMOID, phi, phi_prime_from_value
from numbamlp.engines.base import adopt_state
from numbamlp.errors import NumbamlpError
from numbamlp.memory import CACHE_LINE, aligned_zeros, round_up
from numbamlp.network import Architecture
from numbamlp.optimizers import OPTIMIZERS, Optimizer

# Region 1 cuts the batch into blocks of this many samples at most (the plan's default is
# ``default_sample_block``): big blocks read each W^k fewer times per step, small ones share a
# small batch among more threads. The block size never depends on the thread count.
MAX_SAMPLE_BLOCK = 64
# Rows i of W^m per tile of region 2 (the B.3 helpers are written for 4).
ROW_TILE = 4
# A layer m gets gradient shards (one partial ∇W^m, ∇b^m per block of samples, summed in region
# 1 while the block's h^{m−1} is in its core's cache) when a shard has no more rows than a block
# has samples — then a shard is no bigger than the block's rows of h^{m−1} that region 2 would
# otherwise read, often from another core — and all its shards together take at most this many
# bytes (about one core's L2 here). Wider layers keep summing over the batch in region 2.
SHARD_BYTES = 2 * 1024 * 1024
# Region 2 sums a group of rows of W^m per pass over the samples: as many tiles as keep the
# group's partial sums within this many bytes, so that they and 4 rows of h^{m−1} stay in L1.
GROUP_BYTES = 32 * 1024
# When the batch's rows of h^{m−1} do not fit in L2 (wide inputs, large batches: 1024 × 784
# float32 is 3.2 MB), region 2 sums a band of rows of W^m over one chunk of samples at a time:
# the chunk's rows of h^{m−1} (at most CHUNK_BYTES) stay in L2 while every group of the band
# passes over them, and the band's partial sums (at most BAND_BYTES) wait in L2 for the next
# chunk. Without this every group read all of h^{m−1} from memory (at 2048 × 1024: 820 MB per
# step, region 2 took 28 ms instead of ~17). The sums keep their order: the chunks come in
# sample order and hold multiples of 4 samples, so every sum meets the same quads of samples.
CHUNK_BYTES = 384 * 1024
BAND_BYTES = 256 * 1024

# Output heads.
SOFTMAX = 0  # (F.3)
MODIFIED_SOFTMAX = 1  # (F.4)
HEAD_CODES = {"softmax": SOFTMAX, "modified-softmax": MODIFIED_SOFTMAX}

# Optimizers, by integer code (kernels never take functions as arguments).
SGD, MOMENTUM, ADAGRAD, ADADELTA, RMSPROP, ADAM = range(6)
OPTIMIZER_CODES = {
    "sgd": SGD,
    "momentum": MOMENTUM,
    "adagrad": ADAGRAD,
    "adadelta": ADADELTA,
    "rmsprop": RMSPROP,
    "adam": ADAM,
}
# The hyperparameters each optimizer reads, in the order of the plan's ``hyper`` array.
HYPER_ORDER = {
    "sgd": (),
    "momentum": ("mu",),
    "adagrad": ("eps",),
    "adadelta": ("rho", "eps"),
    "rmsprop": ("rho", "eps"),
    "adam": ("beta1", "beta2", "eps"),
}

# Rows of the ``layout`` table; column k describes layer k (column 0: the input layer).
SIZE = 0  # d_k
W_AT = 1  # where W^k starts in θ (k ≥ 1)
B_AT = 2  # where b^k starts in θ (k ≥ 1)
H_AT = 3  # where h^k starts in the flat activation buffer (k ≤ L−1)
Z_AT = 4  # where z^k and δ^k start in their flat buffers (k ≥ 1)
ROW_AT = 5  # index of row 0 of W^k when the rows of W^1..W^L are counted as one sequence
GROUP = 6  # rows of W^k per pass of region 2 over the samples (a multiple of ROW_TILE)
SHARD_AT = 7  # where layer k's gradient shards start in the flat shard buffer; −1: no shards
SHARD_WIDTH = 8  # entries per row of a shard of layer k: d_{k−1} + 1, padded to a cache line
BAND = 9  # rows of W^k whose sums region 2 holds at once (a multiple of GROUP)
CHUNK = 10  # samples per chunk of region 2's sums for layer k (a multiple of 4)

# Entries of the per-step ``coef`` array, in θ's precision as Optimizer.step passes them.
LR = 0  # γ_p
INV_BATCH = 1  # 1/B
BIAS1 = 2  # 1 − β₁^p (Adam)
BIAS2 = 3  # 1 − β₂^p (Adam)
HYPER = 4  # the optimizer's hyperparameters, in HYPER_ORDER, from here on
# λ of the weight decay (R.1), after the at most 3 hyperparameters: set once by the plan (the
# steps never write it); 0 leaves region 2 exactly as without decay.
DECAY = HYPER + 3
N_COEF = DECAY + 1


# ---------------------------------------------------------------------------------------------
# Views into θ and the flat batch buffers (slices and reshapes: no copies, no allocation).
#
# Numba types an integer constant passed to a helper as a literal (Literal[int](0)), so a helper
# called with 0 in one place and with a variable in another is compiled twice. The call sites
# wrap such constants (and prange's unsigned block index) in np.int64(…): each helper then has
# one signature, which saves ~10 % of a cold compile (benchmarks/README.md).


@helper
def weights(theta, layout, k):
    """W^k, shape (d_k, d_{k−1}), a view into θ."""
    d_k = layout[SIZE, k]
    d_prev = layout[SIZE, k - 1]
    start = layout[W_AT, k]
    return theta[start : start + d_k * d_prev].reshape((d_k, d_prev))


@helper
def biases(theta, layout, k):
    """b^k, shape (d_k,), a view into θ."""
    start = layout[B_AT, k]
    return theta[start : start + layout[SIZE, k]]


@helper
def activations(h, layout, k, B):
    """h^k of a batch of B samples, shape (B, d_k), a view into the flat buffer h."""
    d_k = layout[SIZE, k]
    start = layout[H_AT, k]
    return h[start : start + B * d_k].reshape((B, d_k))


@helper
def layer_rows(buf, layout, k, B):
    """z^k or δ^k of a batch of B samples, shape (B, d_k), a view into the flat buffer."""
    d_k = layout[SIZE, k]
    start = layout[Z_AT, k]
    return buf[start : start + B * d_k].reshape((B, d_k))


@helper
def gradient_shard(shards, layout, m, block):
    """Block ``block``'s shard of layer m, shape (d_m rounded up to ROW_TILE, SHARD_WIDTH):
    row i holds Σ_{s in the block} δ^m_{s,i} h^{m−1}_{s,j} in its columns j < d_{m−1} and
    Σ_{s in the block} δ^m_{s,i} in column d_{m−1}. A view into the flat buffer."""
    width = layout[SHARD_WIDTH, m]
    rows = (layout[SIZE, m] + ROW_TILE - 1) // ROW_TILE * ROW_TILE
    start = layout[SHARD_AT, m] + block * rows * width
    return shards[start : start + rows * width].reshape((rows, width))


# ---------------------------------------------------------------------------------------------
# Region 1 helpers: one equation each, for the samples s0 ≤ s < s1 of one block.


@helper
def gather_rows(h0, spans, X, X_spans, scale, batch, s0, s1):
    """h^0_{s,:} = c · X_{I_s,:}: the block's inputs (I.1/I.2 chose the row indices I_s), and
    the span of each (``input_spans``)."""
    prefer_wide_vectors()
    for s in range(s0, s1):
        row = batch[s]
        spans[s, 0], spans[s, 1] = X_spans[row, 0], X_spans[row, 1]
        for j in range(h0.shape[1]):
            h0[s, j] = X[row, j] * scale


@helper
def tile_columns(spans, s_first, s_end, d, line, whole):
    """The columns j_lo ≤ j < j_hi of h^{k−1} that a tile of the samples s_first ≤ s < s_end
    must read: outside them every h^{k−1}_{s,j} of the tile is 0, so every term
    W^k_{ij} h^{k−1}_{s,j} of F.1 and δ^k_{s,i} h^{k−1}_{s,j} of B.3 is 0 and is skipped. The
    union of the samples' spans, widened to whole cache lines (``line`` entries), so that the
    vector loads stay aligned; with ``whole`` (k > 1: h^{k−1} = φ(z^{k−1}) has no zeros to
    count on) all d columns."""
    if whole:
        return 0, d
    lo, hi = d, 0
    for s in range(s_first, s_end):
        lo = min(lo, spans[s, 0])
        hi = max(hi, spans[s, 1])
    return lo // line * line, min(d, (hi + line - 1) // line * line)


@helper
def prefetch_rows(X, batch, s0, s1):
    """Ask the CPU to bring the rows X_{I_s,:} of the samples s0 ≤ s < s1 into its L2 cache
    (no equation: the next step's ``gather_rows`` reads them). The rows of a minibatch are
    scattered over the whole data set; fetched on demand they cost ~40 µs per step of waiting
    for memory, fetched while region 2 runs they cost nothing."""
    d = X.shape[1]
    line = CACHE_LINE // X.itemsize
    for s in range(s0, s1):
        row = batch[s]
        for j in range(0, d + line - 1, line):
            prefetch_to_l2(X, row, min(j, d - 1))


@helper(fastmath=True)
def affine_tile(z, W, b, h_prev, s, i, s_last, i_last, j_lo, j_hi):
    """(F.1) for the samples s..s+3 and the units i..i+3, the sum over j_lo ≤ j < j_hi (the
    other terms are 0: ``tile_columns``). Indices past s_last or i_last repeat the last one:
    the tile computes that value again, the same way, and stores it again."""
    prefer_wide_vectors()
    s0, s1, s2, s3 = s, min(s + 1, s_last), min(s + 2, s_last), min(s + 3, s_last)
    i0, i1, i2, i3 = i, min(i + 1, i_last), min(i + 2, i_last), min(i + 3, i_last)
    a00, a01, a02, a03 = b[i0], b[i1], b[i2], b[i3]
    a10, a11, a12, a13 = b[i0], b[i1], b[i2], b[i3]
    a20, a21, a22, a23 = b[i0], b[i1], b[i2], b[i3]
    a30, a31, a32, a33 = b[i0], b[i1], b[i2], b[i3]
    # The rows from column j_lo on, indexed from 0: an index of unknown sign would keep
    # Numba's negative-index wraparound inside the loop, and the loop from vectorising.
    W0, W1, W2, W3 = W[i0, j_lo:j_hi], W[i1, j_lo:j_hi], W[i2, j_lo:j_hi], W[i3, j_lo:j_hi]
    X0, X1 = h_prev[s0, j_lo:j_hi], h_prev[s1, j_lo:j_hi]
    X2, X3 = h_prev[s2, j_lo:j_hi], h_prev[s3, j_lo:j_hi]
    # (F.1) z^k_{s,i} = b^k_i + Σ_j W^k_{ij} h^{k−1}_{s,j}   — tile: 4 samples × 4 units,
    #       the 16 sums in registers, j = j_lo + c vectorised
    for c in range(j_hi - j_lo):
        w0, w1, w2, w3 = W0[c], W1[c], W2[c], W3[c]
        x0, x1, x2, x3 = X0[c], X1[c], X2[c], X3[c]
        a00 += w0 * x0
        a01 += w1 * x0
        a02 += w2 * x0
        a03 += w3 * x0
        a10 += w0 * x1
        a11 += w1 * x1
        a12 += w2 * x1
        a13 += w3 * x1
        a20 += w0 * x2
        a21 += w1 * x2
        a22 += w2 * x2
        a23 += w3 * x2
        a30 += w0 * x3
        a31 += w1 * x3
        a32 += w2 * x3
        a33 += w3 * x3
    z[s0, i0], z[s0, i1], z[s0, i2], z[s0, i3] = a00, a01, a02, a03
    z[s1, i0], z[s1, i1], z[s1, i2], z[s1, i3] = a10, a11, a12, a13
    z[s2, i0], z[s2, i1], z[s2, i2], z[s2, i3] = a20, a21, a22, a23
    z[s3, i0], z[s3, i1], z[s3, i2], z[s3, i3] = a30, a31, a32, a33


@helper
def affine_rows(z, W, b, h_prev, s0, s1, spans, whole):
    """(F.1) z^k = b^k + W^k h^{k−1} for the block's samples, tile by tile: units outer, so that
    4 rows of W^k serve all the block's samples while they are in L1. ``spans``, ``whole``: the
    columns each tile reads (``tile_columns``)."""
    d_out, d_in = W.shape
    line = CACHE_LINE // h_prev.itemsize
    for i in range(0, d_out, 4):
        for s in range(s0, s1, 4):
            j_lo, j_hi = tile_columns(spans, s, min(s + 4, s1), d_in, line, whole)
            affine_tile(z, W, b, h_prev, s, i, s1 - 1, d_out - 1, j_lo, j_hi)


@helper
def activation_rows(h, z, code, s0, s1):
    """(F.2) h^k = φ_k(z^k) for the block's samples (σ in float32: ``sigmoid_rows_float32``)."""
    if code == SIGMOID and h.itemsize == 4:
        sigmoid_rows_float32(h, z, s0, s1)
        return
    for s in range(s0, s1):
        for i in range(z.shape[1]):
            # (F.2) h^k_{s,i} = φ_k(z^k_{s,i})
            h[s, i] = phi(code, z[s, i])


@helper
def sigmoid_rows_float32(h, z, s0, s1):
    """(F.2) with (A.1) σ, in float32, for the block's samples: ``sigmoid`` of activations.py
    with its e^{−|t|} taken by ``exp_nonpositive_float32`` instead of the C library's expf, which
    LLVM cannot vectorise (Numba has no vector maths library here): 1.6 µs instead of 12 µs for
    the 128 × 32 values of a reference step. The results differ from expf's by ≤ 1 ulp."""
    prefer_wide_vectors()
    one = np.float32(1.0)
    for s in range(s0, s1):
        for i in range(z.shape[1]):
            t = np.float32(z[s, i])
            e = exp_nonpositive_float32(-abs(t))
            # (F.2) h^k_{s,i} = φ_k(z^k_{s,i}),  (A.1) σ(t) = 1/(1+e^{−t}), written with
            #       e = e^{−|t|}: 1/(1+e) for t ≥ 0 and e/(1+e) for t < 0
            h[s, i] = one / (one + e) if t >= 0 else e / (one + e)


# e^x = 2^n · e^r with n = round(x / ln 2) and r = x − n ln 2 (|r| ≤ ln 2 / 2), ln 2 split in
# two parts so that n ln 2 is subtracted exactly (Cody–Waite); e^r from a degree-7 polynomial
# (the coefficients of Cephes' expf, Moshier 1984: error ≤ 1 ulp on this range).
LOG2_E = np.float32(1.4426950408889634)
LN2_HIGH = np.float32(0.693359375)  # ln 2 to 9 bits: n · LN2_HIGH is exact for |n| ≤ 2^15
LN2_LOW = np.float32(-2.12194440e-4)  # ln 2 − LN2_HIGH
EXP_COEFFICIENTS = (
    np.float32(1.9875691500e-4),
    np.float32(1.3981999507e-3),
    np.float32(8.3334519073e-3),
    np.float32(4.1665795894e-2),
    np.float32(1.6666665459e-1),
    np.float32(5.0000001201e-1),
)
EXP_MIN_ARGUMENT = np.float32(-87.33654)  # ln 2^{−126}: 2^n stays a normal float32 (n ≥ −126)


@helper
def exp_nonpositive_float32(x):
    """e^x for a float32 x ≤ 0 (no equation: a vectorisable exponential). Below ln 2^{−126}
    ≈ −87.34 it returns 2^{−126} ≈ 1.2e-38, the smallest normal float32 (expf's results there
    are subnormal, flushed to 0 in the regions anyway); a NaN comes back as NaN."""
    clamped = x if x > EXP_MIN_ARGUMENT else EXP_MIN_ARGUMENT
    n = np.floor(clamped * LOG2_E + np.float32(0.5))
    r = clamped - n * LN2_HIGH
    r = r - n * LN2_LOW
    c0, c1, c2, c3, c4, c5 = EXP_COEFFICIENTS
    p = ((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + c5
    e_r = p * r * r + r + np.float32(1.0)
    value = e_r * float32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))
    return value if x == x else x


@helper
def softmax_rows(f, log_totals, z, s0, s1):
    """(F.3) f = softmax(z^L), computed as e^{z_i − max z} / Σ_j e^{z_j − max z}; each
    exponential is taken once and kept in f until it is divided. Their sum is float64, as L.1
    takes it, and log Σ_j e^{z_{s,j}} = max z + log Σ_j e^{z_{s,j} − max z} goes to
    log_totals[s]: ``cross_entropy_rows`` needs nothing else, so it takes no exponential of its
    own. In float32 the exponentials are ``exp_nonpositive_float32``'s (z − max z ≤ 0), ≤ 1 ulp
    from expf's, in a loop of their own that LLVM vectorises: 5 µs instead of 11 µs for the
    128 × 10 values of a reference step on one thread."""
    prefer_wide_vectors()
    M = z.shape[1]
    for s in range(s0, s1):
        z_max = z[s, 0]
        for j in range(1, M):
            z_max = max(z_max, z[s, j])
        if f.itemsize == 4:
            for j in range(M):
                f[s, j] = exp_nonpositive_float32(np.float32(z[s, j] - z_max))
        else:
            for j in range(M):
                f[s, j] = math.exp(z[s, j] - z_max)
        total = 0.0
        for j in range(M):
            total += np.float64(f[s, j])
        log_totals[s] = z_max + math.log(total)
        for i in range(M):
            # (F.3) f_{s,i} = e^{z_{s,i}} / Σ_j e^{z_{s,j}}   (shifting by max z cancels)
            f[s, i] = f[s, i] / total


@helper
def modified_softmax_rows(f, log_totals, z, s0, s1):
    """(F.4) f = γ̃(z^L): K−1 logits in, K probabilities out; class K has logit 0. Like
    ``softmax_rows`` it leaves log(1 + Σ_{j<K} e^{z_{s,j}}) in log_totals[s] for L.1."""
    K = f.shape[1]
    for s in range(s0, s1):
        z_max = 0.0  # the reference class's logit
        for j in range(K - 1):
            z_max = max(z_max, z[s, j])
        total = math.exp(-z_max)
        for j in range(K - 1):
            total += math.exp(z[s, j] - z_max)
        log_totals[s] = z_max + math.log(total)
        for i in range(K - 1):
            # (F.4) f_{s,i} = e^{z_{s,i}} / (1 + Σ_{j<K} e^{z_{s,j}})
            f[s, i] = math.exp(z[s, i] - z_max) / total
        # (F.4) f_{s,K} = 1 / (1 + Σ_{j<K} e^{z_{s,j}})
        f[s, K - 1] = math.exp(-z_max) / total


@helper
def cross_entropy_rows(losses, log_totals, z, y, batch, s0, s1):
    """(L.1) ℓ_s = log Σ_k e^{z_{s,k}} − z_{s,Y_s}: the head (``softmax_rows`` or
    ``modified_softmax_rows``) left the log-sum-exp, shifted by max z, in log_totals[s] (with
    γ̃ the reference class K has the fixed logit 0, and z_{s,K} = 0 here)."""
    d_L = z.shape[1]
    for s in range(s0, s1):
        label = y[batch[s]]
        z_y = z[s, label] if label < d_L else 0.0
        # (L.1) ℓ_s = log Σ_k e^{z_{s,k}} − z_{s,Y_s}
        losses[s] = log_totals[s] - z_y


@helper
def correct_rows(correct, z, y, batch, n_classes, s0, s1):
    """(P.1) correct[s] = 1 if ŷ_s = argmax_k f_{s,k} equals Y_s, else 0, taken on z^L as
    forward.count_correct takes it (the same comparisons, so both engines count the same):
    the running training accuracy, at the cost of B · d_L comparisons per step."""
    d_L = z.shape[1]
    for s in range(s0, s1):
        # (P.1) ŷ_s = argmax_k f_{s,k} = argmax_k z_{s,k}
        best = 0
        for k in range(1, d_L):
            if z[s, k] > z[s, best]:
                best = k
        if n_classes > d_L and z[s, best] < 0.0:
            best = d_L  # the reference class K of γ̃, logit 0
        correct[s] = 1 if best == y[batch[s]] else 0


@helper
def output_delta_rows(delta_L, f, y, batch, s0, s1):
    """(B.1) δ^L = f − 1_Y (both heads: with γ̃, δ^L has the K−1 entries i < K)."""
    for s in range(s0, s1):
        label = y[batch[s]]
        for i in range(delta_L.shape[1]):
            # (B.1) δ^L_{s,i} = f_{s,i} − 1_{Y_s=i}
            delta_L[s, i] = f[s, i] - (1.0 if label == i else 0.0)


@helper(fastmath=True)
def hidden_delta_rows(delta, W_next, delta_next, z, h, code, s0, s1):
    """(B.4) δ^m = ((W^{m+1})ᵀ δ^{m+1}) ⊙ φ′_m(z^m) for the block's samples. The sum over i is
    added term by term in order of i, into δ^m_{s,:} itself, as in backward.py. φ′_m(z^m) comes
    from h^m = φ_m(z^m) where the notes allow (``phi_prime_from_value``): for σ and tanh the
    exponentials of the forward pass are not taken again."""
    d_next, d_m = W_next.shape
    i_quads = d_next - d_next % 4
    for s in range(s0, s1):
        out = delta[s]
        for j in range(d_m):
            out[j] = 0.0
        for i in range(0, i_quads, 4):
            e0, e1 = delta_next[s, i], delta_next[s, i + 1]
            e2, e3 = delta_next[s, i + 2], delta_next[s, i + 3]
            w0, w1, w2, w3 = W_next[i], W_next[i + 1], W_next[i + 2], W_next[i + 3]
            # (B.4) ∇_{h^m} ℓ_s = Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}   — 4 terms i per pass,
            #       j vectorised
            for j in range(d_m):
                out[j] = out[j] + w0[j] * e0 + w1[j] * e1 + w2[j] * e2 + w3[j] * e3
        for i in range(i_quads, d_next):
            e = delta_next[s, i]
            w = W_next[i]
            # (B.4) the remaining terms i, one at a time
            for j in range(d_m):
                out[j] = out[j] + w[j] * e
        if code == SIGMOID:  # the constant code lets LLVM drop the branches and vectorise
            for j in range(d_m):
                # (B.4) δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · φ′_m(z^m_{s,j}),
                #       φ′_m(z^m_{s,j}) written through h^m_{s,j} = φ_m(z^m_{s,j})
                out[j] *= phi_prime_from_value(SIGMOID, h[s, j], z[s, j])
        else:
            for j in range(d_m):
                # (B.4) the same, for any other φ_m
                out[j] *= phi_prime_from_value(code, h[s, j], z[s, j])


@kernel(fastmath=False)
def forward_backward(
    h, z, delta, f, losses, log_totals, shards, spans, theta, X, X_spans, scale, y, batch,
    next_batch, layout, codes, head, sample_block, flush, correct,
):  # fmt: skip
    """Region 1: for each block of samples, h^0, F.1–F.4, L.1, B.1 and B.4, then B.3 and B.2
    summed over the block's samples into its gradient shard, for the layers that have shards.
    ``correct[s]``: whether sample s is classified right (P.1), for the training accuracy.

    ``batch`` holds the step's B row indices I_s into X and y; ``codes[k]`` is φ_k's code.
    ``next_batch``: the next step's row indices, whose rows each block prefetches for the block
    of the same number (the same thread, as prange hands out the blocks in the same way).
    """
    B = batch.shape[0]
    L = layout.shape[1] - 1
    for block in prange((B + sample_block - 1) // sample_block):
        saved = enter_flush_mode(flush)
        s0 = block * sample_block
        s1 = min(s0 + sample_block, B)
        gather_rows(activations(h, layout, np.int64(0), B), spans, X, X_spans, scale, batch, s0, s1)
        prefetch_rows(X, next_batch, s0, min(s1, next_batch.shape[0]))
        for k in range(1, L + 1):
            z_k = layer_rows(z, layout, k, B)
            h_prev = activations(h, layout, k - 1, B)
            W_k, b_k = weights(theta, layout, k), biases(theta, layout, k)
            affine_rows(z_k, W_k, b_k, h_prev, s0, s1, spans, k > 1)
            if k < L:
                activation_rows(activations(h, layout, k, B), z_k, codes[k], s0, s1)
        z_L = layer_rows(z, layout, L, B)
        if head == SOFTMAX:
            softmax_rows(f, log_totals, z_L, s0, s1)
        else:
            modified_softmax_rows(f, log_totals, z_L, s0, s1)
        cross_entropy_rows(losses, log_totals, z_L, y, batch, s0, s1)
        correct_rows(correct, z_L, y, batch, f.shape[1], s0, s1)
        output_delta_rows(layer_rows(delta, layout, L, B), f, y, batch, s0, s1)
        for m in range(L - 1, 0, -1):
            delta_m = layer_rows(delta, layout, m, B)
            delta_next = layer_rows(delta, layout, m + 1, B)
            W_next = weights(theta, layout, m + 1)
            z_m = layer_rows(z, layout, m, B)
            h_m = activations(h, layout, m, B)
            hidden_delta_rows(delta_m, W_next, delta_next, z_m, h_m, codes[m], s0, s1)
        for m in range(1, L + 1):
            if layout[SHARD_AT, m] >= 0:
                weight_gradient_rows(
                    gradient_shard(shards, layout, m, np.int64(block)),
                    layer_rows(delta, layout, m, B),
                    activations(h, layout, m - 1, B),
                    np.int64(0),
                    layout[SIZE, m],
                    s0,
                    s1,
                    layout[GROUP, m],
                    s1 - s0,
                    spans,
                    m > 1,
                )
        leave_flush_mode(saved)


# ---------------------------------------------------------------------------------------------
# Optimizer updates of one component r: the statements of optimizers.py's kernels, with g for
# grad[r] and the same fast-math flags. They update the arrays in place, rather than return new
# values, so that each intermediate is rounded to the arrays' precision where the kernels round
# it (m_r is stored, then read back, before it divides).


@helper(fastmath=True)
def sgd_element(theta, r, g, lr):
    # (U.1) θ_r ← θ_r − γ_p g_r
    theta[r] -= lr * g


@helper(fastmath=True)
def momentum_element(theta, velocity, r, g, lr, mu):
    # (U.2) v_r ← μ v_r + g_r;  θ_r ← θ_r − γ_p v_r
    velocity[r] = mu * velocity[r] + g
    theta[r] -= lr * velocity[r]


@helper(fastmath=True)
def adagrad_element(theta, sum_sq_grad, r, g, lr, eps):
    # (U.3) G_r ← G_r + g_r²;  θ_r ← θ_r − γ_p g_r / (√G_r + ε)
    sum_sq_grad[r] += g * g
    theta[r] -= lr * g / (np.sqrt(sum_sq_grad[r]) + eps)


@helper(fastmath=True)
def adadelta_element(theta, avg_sq_grad, avg_sq_step, r, g, lr, rho, eps):
    # (U.4) E_r ← ρE_r + (1−ρ)g_r²;  Δ_r = −√(D_r+ε)/√(E_r+ε) g_r;
    #       D_r ← ρD_r + (1−ρ)Δ_r²;  θ_r ← θ_r + γ_p Δ_r
    avg_sq_grad[r] = rho * avg_sq_grad[r] + (1 - rho) * g * g
    step = -np.sqrt(avg_sq_step[r] + eps) / np.sqrt(avg_sq_grad[r] + eps) * g
    avg_sq_step[r] = rho * avg_sq_step[r] + (1 - rho) * step * step
    theta[r] += lr * step


@helper(fastmath=True)
def rmsprop_element(theta, avg_sq_grad, r, g, lr, rho, eps):
    # (U.5) E_r ← ρE_r + (1−ρ)g_r²;  θ_r ← θ_r − γ_p g_r / (√E_r + ε)
    avg_sq_grad[r] = rho * avg_sq_grad[r] + (1 - rho) * g * g
    theta[r] -= lr * g / (np.sqrt(avg_sq_grad[r]) + eps)


@helper(fastmath=True)
def adam_element(theta, m, v, r, g, lr, beta1, beta2, eps, bias1, bias2):
    # (U.6) m_r ← β₁m_r + (1−β₁)g_r;  v_r ← β₂v_r + (1−β₂)g_r²;
    #       θ_r ← θ_r − γ_p (m_r/(1−β₁^p)) / (√(v_r/(1−β₂^p)) + ε)
    m[r] = beta1 * m[r] + (1 - beta1) * g
    v[r] = beta2 * v[r] + (1 - beta2) * g * g
    theta[r] -= lr * (m[r] / bias1) / (np.sqrt(v[r] / bias2) + eps)


@helper
def update_run(theta, state, start, sums, n, optimizer, coef):
    """(S.1) g_r = (1/B) · sums[j], then one update U.1–U.6, for the n components
    r = start + j of θ.

    The branch on the optimizer is taken once, outside the loop; the loop indexes slices from 0
    (an index start + j of unknown sign would keep Numba's negative-index wraparound inside the
    loop). Compiled without fast-math, so that g_r is rounded once, as optimizers.py's gradient
    array rounds it: with ``reassoc`` LLVM may turn γ_p · ((1/B) · sums[j]) into
    (γ_p/B) · sums[j]."""
    inv_batch, lr = coef[INV_BATCH], coef[LR]
    c0, c1, c2 = coef[HYPER], coef[HYPER + 1], coef[HYPER + 2]
    stop = start + n
    th = theta[start:stop]
    if optimizer == SGD:
        for j in range(n):
            sgd_element(th, j, sums[j] * inv_batch, lr)
    elif optimizer == MOMENTUM:
        velocity = state[0, start:stop]
        for j in range(n):
            momentum_element(th, velocity, j, sums[j] * inv_batch, lr, c0)
    elif optimizer == ADAGRAD:
        sum_sq_grad = state[0, start:stop]
        for j in range(n):
            adagrad_element(th, sum_sq_grad, j, sums[j] * inv_batch, lr, c0)
    elif optimizer == ADADELTA:
        avg_sq_grad, avg_sq_step = state[0, start:stop], state[1, start:stop]
        for j in range(n):
            adadelta_element(th, avg_sq_grad, avg_sq_step, j, sums[j] * inv_batch, lr, c0, c1)
    elif optimizer == RMSPROP:
        avg_sq_grad = state[0, start:stop]
        for j in range(n):
            rmsprop_element(th, avg_sq_grad, j, sums[j] * inv_batch, lr, c0, c1)
    else:
        m, v = state[0, start:stop], state[1, start:stop]
        bias1, bias2 = coef[BIAS1], coef[BIAS2]
        for j in range(n):
            adam_element(th, m, v, j, sums[j] * inv_batch, lr, c0, c1, c2, bias1, bias2)


# ---------------------------------------------------------------------------------------------
# Region 2 helpers.


@helper(fastmath=True)
def weight_gradient_quad(G, r, delta, h_prev, s, i, i_last, j_lo, j_hi):
    """(B.3) for the rows i..i+3 of W^m and the samples s..s+3: adds the 4 samples' terms, in
    sample order, to the columns j_lo ≤ j < j_hi of the rows r..r+3 of G (the other terms are
    0: ``tile_columns``; rows past i_last repeat the last row of W^m, each into a row of G of
    its own, which the caller ignores)."""
    prefer_wide_vectors()
    i0, i1, i2, i3 = i, min(i + 1, i_last), min(i + 2, i_last), min(i + 3, i_last)
    # Rows from column j_lo on, indexed from 0 (as in affine_tile).
    g0, g1 = G[r, j_lo:j_hi], G[r + 1, j_lo:j_hi]
    g2, g3 = G[r + 2, j_lo:j_hi], G[r + 3, j_lo:j_hi]
    a0, a1, a2, a3 = delta[s, i0], delta[s + 1, i0], delta[s + 2, i0], delta[s + 3, i0]
    b0, b1, b2, b3 = delta[s, i1], delta[s + 1, i1], delta[s + 2, i1], delta[s + 3, i1]
    c0, c1, c2, c3 = delta[s, i2], delta[s + 1, i2], delta[s + 2, i2], delta[s + 3, i2]
    e0, e1, e2, e3 = delta[s, i3], delta[s + 1, i3], delta[s + 2, i3], delta[s + 3, i3]
    x0, x1 = h_prev[s, j_lo:j_hi], h_prev[s + 1, j_lo:j_hi]
    x2, x3 = h_prev[s + 2, j_lo:j_hi], h_prev[s + 3, j_lo:j_hi]
    # (B.3) ∂ℓ_s/∂W^m_{ij} = δ^m_{s,i} h^{m−1}_{s,j}   — tile: 4 rows i × 4 samples s,
    #       j = j_lo + c vectorised; each h^{m−1}_{s,j} is loaded once for the 4 rows
    for j in range(j_hi - j_lo):
        h0j, h1j, h2j, h3j = x0[j], x1[j], x2[j], x3[j]
        g0[j] = g0[j] + a0 * h0j + a1 * h1j + a2 * h2j + a3 * h3j
        g1[j] = g1[j] + b0 * h0j + b1 * h1j + b2 * h2j + b3 * h3j
        g2[j] = g2[j] + c0 * h0j + c1 * h1j + c2 * h2j + c3 * h3j
        g3[j] = g3[j] + e0 * h0j + e1 * h1j + e2 * h2j + e3 * h3j


@helper(fastmath=True)
def weight_gradient_single(G, r, delta, h_prev, s, i, i_last, j_lo, j_hi):
    """(B.3) for the rows i..i+3 of W^m and the one sample s (the last B mod 4 samples), the
    columns j_lo ≤ j < j_hi."""
    prefer_wide_vectors()
    i0, i1, i2, i3 = i, min(i + 1, i_last), min(i + 2, i_last), min(i + 3, i_last)
    g0, g1 = G[r, j_lo:j_hi], G[r + 1, j_lo:j_hi]
    g2, g3 = G[r + 2, j_lo:j_hi], G[r + 3, j_lo:j_hi]
    a, b, c, e = delta[s, i0], delta[s, i1], delta[s, i2], delta[s, i3]
    x = h_prev[s, j_lo:j_hi]
    # (B.3) ∂ℓ_s/∂W^m_{ij} = δ^m_{s,i} h^{m−1}_{s,j}   — 4 rows i, one sample s,
    #       j = j_lo + c vectorised
    for j in range(j_hi - j_lo):
        h_sj = x[j]
        g0[j] = g0[j] + a * h_sj
        g1[j] = g1[j] + b * h_sj
        g2[j] = g2[j] + c * h_sj
        g3[j] = g3[j] + e * h_sj


@helper
def weight_gradient_rows(
    G, delta, h_prev, i_first, i_end, s_first, s_end, group, chunk, spans, whole
):  # fmt: skip
    """(B.3) and (B.2) summed over the samples s_first ≤ s < s_end (the whole batch in region
    2, or one block into its gradient shard in region 1) for the rows i_first ≤ i < i_end of
    W^m: G[i − i_first, j] = Σ_s δ^m_{s,i} h^{m−1}_{s,j} and, in the extra column j = d_{m−1},
    G[i − i_first, d_{m−1}] = Σ_s δ^m_{s,i}. Each sum runs over s in order, one term at a time,
    as backward.py adds it; (S.1)'s factor 1/B comes with the update.

    Chunks of ``chunk`` samples (a multiple of 4) outer, so that a chunk's rows of h^{m−1} stay
    in L2 while each group of ``group`` rows passes over it; within a group samples outer, rows
    inner, so that 4 rows of h^{m−1} serve every row of the group while in L1. ``spans``,
    ``whole``: the columns each tile reads (``tile_columns``)."""
    d_prev = h_prev.shape[1]
    line = CACHE_LINE // h_prev.itemsize
    n = i_end - i_first
    if s_end <= s_first:  # no samples: every sum is 0
        for r in range(n):
            for j in range(d_prev + 1):
                G[r, j] = 0.0
    for c_first in range(s_first, s_end, chunk):
        c_end = min(c_first + chunk, s_end)
        s_quads = c_end - (c_end - c_first) % 4
        for g in range(0, n, group):
            g_end = min(g + group, n)
            if c_first == s_first:  # the group's sums start at 0 (zeroed here: then in L1)
                for r in range(g, g_end):
                    for j in range(d_prev + 1):
                        G[r, j] = 0.0
            for s in range(c_first, s_quads, 4):
                j_lo, j_hi = tile_columns(spans, s, s + 4, d_prev, line, whole)
                for r in range(g, g_end, ROW_TILE):
                    weight_gradient_quad(
                        G, r, delta, h_prev, s, i_first + r, i_end - 1, j_lo, j_hi
                    )  # fmt: skip
            for s in range(s_quads, c_end):
                j_lo, j_hi = tile_columns(spans, s, s + 1, d_prev, line, whole)
                for r in range(g, g_end, ROW_TILE):
                    weight_gradient_single(
                        G, r, delta, h_prev, s, i_first + r, i_end - 1, j_lo, j_hi
                    )  # fmt: skip
    for r in range(n):
        for s in range(s_first, s_end):
            # (B.2) ∂ℓ_s/∂b^m_i = δ^m_{s,i}
            G[r, d_prev] += delta[s, i_first + r]


@helper
def sum_shards(G, shards, layout, m, n_blocks, i_first, i_end):
    """The whole batch's sums of B.3 and B.2 for the rows i_first ≤ i < i_end of W^m, from the
    blocks' shards: G[i − i_first, :] = Σ_b shard_b[i, :], added in block order b = 0, 1, …
    (a fixed order, whichever thread wrote each shard). The columns are those of
    ``weight_gradient_rows``: d_{m−1} weights, then the bias."""
    n = layout[SIZE, m - 1] + 1
    first = gradient_shard(shards, layout, m, np.int64(0))
    for r in range(i_end - i_first):
        g = G[r]
        row = first[i_first + r]
        # (B.3) and (S.1) the sum starts with block 0's partial sums
        for j in range(n):
            g[j] = row[j]
    for b in range(1, n_blocks):
        shard = gradient_shard(shards, layout, m, b)
        for r in range(i_end - i_first):
            g = G[r]
            row = shard[i_first + r]
            # (B.3) and (S.1) Σ_s δ^m_{s,i} h^{m−1}_{s,j} = Σ_b Σ_{s in block b} δ^m_{s,i}
            #       h^{m−1}_{s,j}   — the blocks' partial sums in block order, j vectorised
            for j in range(n):
                g[j] = g[j] + row[j]


@helper
def weight_decay_run(sums, theta, start, n, decay_sum):
    """(R.1) for the n weights r = start + j of one row i of W^m, in the scale of the sums
    (B times the mean): sums[j] ← Σ_s δ^m_{s,i} h^{m−1}_{s,j} + Bλ W^m_{ij}, so that
    update_run's (1/B) · sums[j] is ∂ℓ_λ/∂W^m_{ij}. decay_sum is Bλ."""
    w = theta[start : start + n]
    for j in range(n):
        # (R.1) ∂ℓ_λ/∂W^m_{ij} = (1/B) Σ_s δ^m_{s,i} h^{m−1}_{s,j} + λ W^m_{ij}
        sums[j] += decay_sum * w[j]


@kernel(fastmath=False)
def gradient_update(
    theta, state, G, shards, h, delta, spans, layout, cuts, B, sample_block, optimizer, coef,
    flush,
):  # fmt: skip
    """Region 2: item t owns the rows cuts[t] ≤ r < cuts[t+1] of W^1..W^L (counted as one
    sequence). For each of its rows i of W^m: B.3 and B.2 over the whole batch — the sum of the
    block's shards where layer m has them, else summed here — plus λ W^m_{i,:} when the plan has
    a weight decay (R.1), then U.* on W^m_{i,:} and b^m_i.
    ``G[t]`` holds item t's sums, one band of rows at a time.
    """
    L = layout.shape[1] - 1
    n_blocks = (B + sample_block - 1) // sample_block
    decay_sum = coef[DECAY] * B  # Bλ, the weight decay (R.1) in the scale of the sums
    for t in prange(cuts.shape[0] - 1):
        saved = enter_flush_mode(flush)
        for m in range(1, L + 1):
            first_row = layout[ROW_AT, m]
            d_prev = layout[SIZE, m - 1]
            lo = max(cuts[t], first_row) - first_row
            hi = min(cuts[t + 1], first_row + layout[SIZE, m]) - first_row
            delta_m = layer_rows(delta, layout, m, B)
            h_prev = activations(h, layout, m - 1, B)
            group, band, chunk = layout[GROUP, m], layout[BAND, m], layout[CHUNK, m]
            for i in range(lo, hi, band):
                i_end = min(i + band, hi)
                if layout[SHARD_AT, m] >= 0:
                    sum_shards(G[t], shards, layout, m, n_blocks, i, i_end)
                else:
                    weight_gradient_rows(
                        G[t], delta_m, h_prev, i, i_end, np.int64(0), B, group, chunk, spans, m > 1
                    )  # fmt: skip
                for r in range(i_end - i):
                    sums = G[t, r]  # Σ_s of row i + r: d_{m−1} weights, then the bias
                    w_at = layout[W_AT, m] + (i + r) * d_prev
                    b_at = layout[B_AT, m] + i + r
                    if decay_sum != 0:  # (R.1) the weights only; b^m_i is not decayed
                        weight_decay_run(sums, theta, w_at, d_prev, decay_sum)
                    update_run(theta, state, w_at, sums, d_prev, optimizer, coef)
                    update_run(theta, state, b_at, sums[d_prev:], np.int64(1), optimizer, coef)
        leave_flush_mode(saved)


@kernel(fastmath=False)
def input_spans(spans, X):
    """The span of each row n of X: X[n, j] = 0 for j < spans[n, 0] and for j ≥ spans[n, 1]
    (a row of zeros: spans[n] = (d_0, 0)). No equation: it lets F.1 and B.3 of layer 1 skip
    terms that are exactly 0 (``tile_columns``) — on MNIST the blank rows above and below a
    digit, a fifth of the columns of a tile of 4 samples. A NaN is not 0: it is kept."""
    d = X.shape[1]
    for n in prange(X.shape[0]):
        lo = 0
        while lo < d and X[n, lo] == 0:
            lo += 1
        hi = d
        while hi > lo and X[n, hi - 1] == 0:
            hi -= 1
        spans[n, 0], spans[n, 1] = (lo, hi) if lo < hi else (d, 0)


# ---------------------------------------------------------------------------------------------
# The driver: one call, many steps.


@serial
def step_coefficients(coef, lr, B, optimizer, hyper, p):
    """γ_p, 1/B, the hyperparameters and Adam's 1 − β₁^p, 1 − β₂^p, computed in float64 and
    rounded to θ's precision by storing them in ``coef``, as Optimizer.step does."""
    coef[LR] = lr
    coef[INV_BATCH] = 1.0 / B
    for c in range(hyper.shape[0]):
        coef[HYPER + c] = hyper[c]
    if optimizer == ADAM:
        coef[BIAS1] = 1.0 - hyper[0] ** np.float64(p)
        coef[BIAS2] = 1.0 - hyper[1] ** np.float64(p)


@serial
def finish_step(
    theta, state, losses, correct, row, B, p, lrs, batch_losses, batch_correct, optimizer,
    hyper, G, shards, h, delta, spans, coef, layout, cuts, sample_block, flush,
):  # fmt: skip
    """The rest of step p on minibatch ``row`` of B samples, once region 1 has written every
    row of the batch buffers and every gradient shard: the minibatch loss ℓ (S.1) into
    ``batch_losses`` and the number of its samples classified right (P.1) into
    ``batch_correct``; then, if ℓ is finite, γ_p and the step's coefficients and region 2.
    Returns whether the update was made (if ℓ is not finite θ and the optimizer state stay
    those of the last good step)."""
    total = 0.0
    for s in range(B):
        total += losses[s]
    # (S.1) ℓ = (1/B) Σ_s ℓ_s, summed in sample order
    loss = total / B
    batch_losses[row] = loss
    right = 0
    for s in range(B):
        right += correct[s]
    batch_correct[row] = right
    if not np.isfinite(loss):
        return False
    step_coefficients(coef, lrs[row], B, optimizer, hyper, p)
    gradient_update(
        theta, state, G, shards, h, delta, spans, layout, cuts, B, sample_block, optimizer, coef,
        flush,
    )  # fmt: skip
    return True


@serial
def run_steps(
    theta,
    state,
    X,
    X_spans,
    scale,
    y,
    batches,
    batch_sizes,
    lrs,
    step_count,
    first,
    count,
    batch_losses,
    optimizer,
    hyper,
    h,
    z,
    delta,
    f,
    losses,
    log_totals,
    G,
    shards,
    spans,
    coef,
    layout,
    codes,
    head,
    cuts,
    sample_block,
    flush,
    batch_correct,
    correct,
):
    """Steps p = step_count+1, …, step_count+count on the minibatches in rows first, …,
    first+count−1 of ``batches``; returns how many steps were completed.

    Per step: region 1 on the whole batch, then ``finish_step`` (ℓ, the correct count, and
    region 2 unless ℓ is not finite: then the function returns). ``FusedPlan.run`` with an
    exchange makes the same two calls per step from Python, with the exchange between them.
    Serial itself; the two regions it calls run in parallel (a parallel function called from
    a serial one opens its own region).
    """
    for t in range(count):
        row = first + t
        B = batch_sizes[row]
        batch = batches[row, :B]
        next_row = row + 1 if t + 1 < count else row
        next_batch = batches[next_row, : batch_sizes[next_row]]
        forward_backward(
            h, z, delta, f, losses, log_totals, shards, spans, theta, X, X_spans, scale, y,
            batch, next_batch, layout, codes, head, sample_block, flush, correct,
        )  # fmt: skip
        if not finish_step(
            theta, state, losses, correct, row, B, step_count + t + 1, lrs, batch_losses,
            batch_correct, optimizer, hyper, G, shards, h, delta, spans, coef, layout, cuts,
            sample_block, flush,
        ):  # fmt: skip
            return t
    return count


# ---------------------------------------------------------------------------------------------
# The plan: everything a run needs, built once.


def default_sample_block(max_batch: int) -> int:
    """Samples per block of region 1. From a batch of 2 · MAX_SAMPLE_BLOCK = 128 up, blocks of
    MAX_SAMPLE_BLOCK: a batch of 128 makes 2 blocks of 64, a batch of 1024 16. Each block reads
    every W^k once per step and is one gradient shard, so bigger blocks read less and leave
    fewer shards to add up (reference workload, 2 threads: blocks of 64 ~8 % faster than of 32).
    Smaller batches get a quarter of the batch, rounded down to a multiple of the F.1 tile (4),
    at least 4: a batch of 32 makes 4 blocks of 8 (~5 % faster there than 2 blocks of 16)."""
    if max_batch >= 2 * MAX_SAMPLE_BLOCK:
        return MAX_SAMPLE_BLOCK
    return int(max(4, 4 * (max_batch // 16)))


def balanced_cuts(architecture: Architecture, n_items: int) -> np.ndarray:
    """Cut the rows of W^1..W^L (counted as one sequence) into n_items ranges of about equal
    cost — row i of W^m costs d_{m−1} + 1 multiply-adds per sample — with the cuts inside a
    layer on multiples of ROW_TILE rows. Returns the n_items + 1 cut points."""
    sizes = architecture.sizes
    costs = np.concatenate(
        [np.full(sizes[m], sizes[m - 1] + 1, np.float64) for m in range(1, len(sizes))]
    )
    layer_start = np.concatenate([[0], np.cumsum(sizes[1:])])
    prefix = np.concatenate([[0.0], np.cumsum(costs)])
    cuts = [0]
    for t in range(1, n_items):
        r = int(np.searchsorted(prefix, prefix[-1] * t / n_items))
        # the layer holding row r; a cut at the very end (more items than rows) is in the last
        m = min(int(np.searchsorted(layer_start, r, side="right")) - 1, len(sizes) - 2)
        first = int(layer_start[m])
        r = min(first + ROW_TILE * round((r - first) / ROW_TILE), int(layer_start[m + 1]))
        cuts.append(max(r, cuts[-1]))
    cuts.append(len(costs))
    return np.asarray(cuts, dtype=np.int64)


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
        n_items = int(n_items or numba.config.NUMBA_NUM_THREADS)
        if self.sample_block < 1 or n_items < 1:
            raise NumbamlpError("sample_block and n_items must be at least 1")
        self.cuts = balanced_cuts(architecture, n_items)
        self.head = HEAD_CODES[architecture.head]
        self.codes = np.array(architecture.activation_codes, dtype=np.int64)  # φ_m at [m]
        self.layout = self._layout()
        self._labels_checked: tuple[int, int] | None = None

        sizes, L, B, dt = architecture.sizes, architecture.L, self.max_batch, self.dtype
        # The batch buffers start on a cache line: then so does every row h^{k}_{s,:} whose
        # length is a multiple of 64 bytes (784 float32 inputs: 49 lines). NumPy aligns to 16
        # bytes only; rows of h^0 starting 16 bytes into a line cost ~6 % of a reference step
        # (vector loads of F.1 and B.3 split across two lines).
        self.h = aligned_zeros((B * sum(sizes[:L]),), dt)  # h^0, …, h^{L−1}
        self.z = aligned_zeros((B * sum(sizes[1:]),), dt)  # z^1, …, z^L
        self.delta = aligned_zeros((B * sum(sizes[1:]),), dt)  # δ^1, …, δ^L
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
        # The gradient shards of the layers that have them (``_layout``): block b's partial
        # sums of ∇W^m and ∇b^m, written in region 1 by the block's thread, read in region 2.
        self.shards = aligned_zeros((max(self.shard_size, 1),), dt)
        # The span of each sample's h^0 (``input_spans``), copied from X_spans by gather_rows.
        self.spans = np.zeros((B, 2), np.int64)
        self._x_spans: tuple[tuple[int, int, tuple[int, ...]], np.ndarray] | None = None
        self.exchange = exchange

    def _layout(self) -> np.ndarray:
        sizes, L, B = self.architecture.sizes, self.architecture.L, self.max_batch
        layout = np.zeros((11, L + 1), dtype=np.int64)
        layout[SIZE] = sizes
        at = 0
        for k in range(1, L + 1):  # θ = (b^1, W^1, …, b^L, W^L), as network.layer_views
            layout[B_AT, k] = at
            at += sizes[k]
            layout[W_AT, k] = at
            at += sizes[k] * sizes[k - 1]
        layout[H_AT, 1:] = np.cumsum([B * sizes[k] for k in range(L)])
        layout[Z_AT, 2:] = np.cumsum([B * sizes[k] for k in range(1, L)])
        layout[ROW_AT, 2:] = np.cumsum(sizes[1:L])
        for m in range(1, L + 1):
            tiles = GROUP_BYTES // ((sizes[m - 1] + 1) * self.dtype.itemsize * ROW_TILE)
            layout[GROUP, m] = ROW_TILE * min(max(tiles, 1), -(-sizes[m] // ROW_TILE))
        # Gradient shards: one per block of region 1, rows padded to a multiple of ROW_TILE (the
        # B.3 tiles write whole tiles) and each row to a cache line. Their number and the samples
        # each covers follow from the batch and the block size, never from the thread count.
        n_blocks = -(-B // self.sample_block)
        line = CACHE_LINE // self.dtype.itemsize
        at = 0
        for m in range(1, L + 1):
            width = round_up(sizes[m - 1] + 1, line)
            size = round_up(sizes[m], ROW_TILE) * width
            layout[SHARD_WIDTH, m] = width
            small = sizes[m] <= self.sample_block
            if small and n_blocks * size * self.dtype.itemsize <= self.shard_bytes:
                layout[SHARD_AT, m] = at
                at += n_blocks * size
            else:
                layout[SHARD_AT, m] = -1
        # Region 2's bands and chunks (CHUNK_BYTES): one chunk of the whole batch and bands of one
        # group where the batch's rows of h^{m−1} fit in CHUNK_BYTES, or the layer has shards.
        itemsize = self.dtype.itemsize
        for m in range(1, L + 1):
            row_bytes = (sizes[m - 1] + 1) * itemsize
            group = int(layout[GROUP, m])
            if layout[SHARD_AT, m] >= 0 or B * row_bytes <= CHUNK_BYTES:
                layout[BAND, m], layout[CHUNK, m] = group, round_up(B, 4)
            else:
                groups = max(1, BAND_BYTES // (group * layout[SHARD_WIDTH, m] * itemsize))
                layout[BAND, m] = group * min(groups, -(-sizes[m] // group))
                layout[CHUNK, m] = max(4, 4 * (CHUNK_BYTES // row_bytes // 4))
        self.shard_size = at
        return layout

    def adopt_state(self, optimizer: Optimizer) -> np.ndarray:
        """The optimizer's state as one (n_state, P) array. The optimizer's arrays become views
        of its rows (their values kept), so Optimizer.step and ``run`` share one state."""
        return adopt_state(optimizer, self.architecture.n_parameters, self.dtype)

    def run(
        self,
        theta: np.ndarray,
        state: np.ndarray,
        X: np.ndarray,
        scale: float,
        y: np.ndarray,
        index_matrix: np.ndarray,
        batch_sizes: np.ndarray,
        lrs: np.ndarray,
        first_step_count: int,
        first: int,
        count: int,
        batch_losses: np.ndarray,
        batch_correct: np.ndarray | None = None,
    ) -> int:
        """Train on the minibatches in rows first, …, first+count−1 of ``index_matrix``.

        theta: θ, shape (P,), this plan's dtype; updated in place.
        state: the optimizer state, shape (n_state, P) (``adopt_state``); updated in place.
        X, scale: the inputs are h^0 = scale · X_{I_s}: X of shape (n, d_0) is either this
            plan's dtype (scale 1) or uint8 (pixels, scale 1/255); scale is rounded to the dtype.
        y: int64 labels, shape (n,).
        index_matrix: int64, shape (steps, ≥ max batch): row q holds minibatch q in its first
            batch_sizes[q] entries (I.1/I.2); every entry of the rows used must be a row of X.
        batch_sizes: int64, shape (steps,), each in 1..max batch.
        lrs: float64, shape (steps,): γ for the step made on minibatch q (G.1–G.4).
        first_step_count: p before the first step; Adam's corrections use p + 1, p + 2, ….
        batch_losses: float64, shape (steps,); receives ℓ of each minibatch trained on (S.1).
        batch_correct: int64, shape (steps,); receives how many samples of each minibatch
            were classified right before its step (P.1); None: not wanted.
        Returns the number of steps completed: count, or q − first if the loss of minibatch q
        was not finite (it is written; its update is not made).
        """
        self._check(theta, state, X, y, index_matrix, batch_sizes, lrs, first, count, batch_losses)
        batch_correct = self._correct_counts(batch_correct, batch_losses.shape[0])
        X_spans, scale = self._spans_of(X), self.dtype.type(scale)
        if self.exchange is not None:
            return self._run_exchanging(
                theta, state, X, X_spans, scale, y, index_matrix, batch_sizes, lrs,
                int(first_step_count), int(first), int(count), batch_losses, batch_correct,
            )  # fmt: skip
        done = run_steps(
            theta,
            state,
            X,
            X_spans,
            scale,
            y,
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
        )
        return int(done)

    def _run_exchanging(
        self, theta, state, X, X_spans, scale, y, index_matrix, batch_sizes, lrs,
        first_step_count, first, count, batch_losses, batch_correct,
    ) -> int:  # fmt: skip
        """``run_steps``' two calls per step, made from Python with the exchange between them:
        region 1 on this process's share of the batch, the exchange, then ``finish_step``."""
        exchange = self.exchange
        assert exchange is not None
        for t in range(count):
            row = first + t
            B = int(batch_sizes[row])
            share = exchange.share(self, B)
            next_row = row + 1 if t + 1 < count else row
            next_B = int(batch_sizes[next_row])
            s_lo, s_hi = share.s_lo, share.s_hi
            if s_hi > s_lo:
                forward_backward(
                    self.h, self.z, self.delta, share.f, share.losses, share.log_totals,
                    self.shards, share.spans, theta, X, X_spans, scale, y,
                    index_matrix[row, s_lo:s_hi],
                    index_matrix[next_row, min(s_lo, next_B) : min(s_hi, next_B)],
                    share.layout, self.codes, self.head, self.sample_block,
                    self.flush_subnormals, share.correct,
                )  # fmt: skip
            exchange.complete(share)
            if not finish_step(
                theta, state, self.losses, self.correct, row, B, first_step_count + t + 1, lrs,
                batch_losses, batch_correct, self.optimizer_code, self.hyper, self.G,
                self.shards, self.h, self.delta, self.spans, self.coef, self.layout, self.cuts,
                self.sample_block, self.flush_subnormals,
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

    def _check(self, theta, state, X, y, index_matrix, batch_sizes, lrs, first, count, losses):
        """Shapes, dtypes and index ranges: the kernels check no bounds. (The messages are built
        only on failure: a training loop calls this often and must not allocate.)"""
        arch, P, dtype = self.architecture, self.architecture.n_parameters, self.dtype
        steps = index_matrix.shape[0] if index_matrix.ndim == 2 else -1
        problems = (
            (theta.dtype != dtype or theta.shape != (P,), "theta must be (P,) of the plan's dtype"),
            (state.dtype != dtype or state.shape != (self.n_state, P), "state: see adopt_state"),
            (X.ndim != 2 or X.shape[1] != arch.n_inputs, "X must be (n, d_0)"),
            (X.dtype != dtype and X.dtype != np.uint8, "X must be uint8 or the plan's dtype"),
            (y.dtype != np.int64 or y.shape != (X.shape[0],), "y must be int64, one per row of X"),
            (index_matrix.dtype != np.int64 or steps < 0, "index_matrix must be int64, 2-d"),
            (first < 0 or count < 0 or first + count > steps, "first/count exceed the rows"),
            (batch_sizes.dtype != np.int64 or batch_sizes.shape != (steps,), "batch_sizes"),
            (lrs.dtype != np.float64 or lrs.shape != (steps,), "lrs must be float64 (steps,)"),
            (losses.dtype != np.float64 or losses.shape != (steps,), "batch_losses"),
        )
        for failed, what in problems:
            if failed:
                raise NumbamlpError(f"FusedPlan.run: {what}")
        for a in (theta, state, X, y, index_matrix, batch_sizes, lrs, losses):
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
        if self._labels_checked != key:  # O(n): once per label array, not once per call
            if y.min() < 0 or y.max() >= arch.n_classes:
                raise NumbamlpError(f"FusedPlan.run: labels must be in 0..{arch.n_classes - 1}")
            self._labels_checked = key


def preload(dtype: np.dtype | str, x_dtype: np.dtype | str) -> None:
    """Load ``run_steps`` for θ of this dtype and inputs X of x_dtype from Numba's disk cache
    (compile it if the cache is cold), by running zero steps of a tiny plan. The first load
    also builds Numba's typing and target contexts (~0.2 s): ``numbamlp train`` calls this
    while the data set is still being read, so that the first batch does not wait for it."""
    architecture = Architecture((1, 1, 2), ("sigmoid",))
    optimizer = Optimizer.create("adam", architecture.n_parameters, np.dtype(dtype))
    plan = FusedPlan(architecture, 1, dtype, optimizer, n_items=1)
    state = plan.adopt_state(optimizer)
    theta = np.zeros(architecture.n_parameters, plan.dtype)
    X = np.zeros((1, 1), x_dtype)
    y = np.zeros(1, np.int64)
    steps, sizes = np.zeros((1, 1), np.int64), np.ones(1, np.int64)
    plan.run(theta, state, X, 1.0, y, steps, sizes, np.zeros(1), 0, 0, 0, np.zeros(1))


# ---------------------------------------------------------------------------------------------
# Intrinsics: the CPU's floating-point mode, prefetches, bit casts. No equation here.


@intrinsic
def float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bits are the int32 ``bits`` (LLVM ``bitcast``; with an
    exponent field e and zero mantissa: 2^{e−127})."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def prefetch_to_l2(typingctx, array, i, j):
    """Prefetch the cache line holding array[i, j] of a C-contiguous 2-d array into L2
    (``llvm.prefetch``, read, locality 2: x86 ``prefetcht1``). A hint only: it changes no value
    and never faults."""

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        row_stride = builder.extract_value(ary.strides, 0)
        item = context.get_constant(types.intp, signature.args[0].dtype.bitwidth // 8)
        byte = builder.add(builder.mul(args[1], row_stride), builder.mul(args[2], item))
        address = builder.gep(builder.bitcast(ary.data, ir.IntType(8).as_pointer()), [byte])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32])
        prefetch = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(prefetch, [address, i32(0), i32(2), i32(1)])
        return context.get_dummy_value()

    return types.none(array, types.intp, types.intp), codegen


# ---------------------------------------------------------------------------------------------
# Subnormal numbers. While g_r = 0 (an input pixel absent from the minibatch, a saturated unit),
# Adam's m_r ← β₁m_r + (1−β₁)g_r decays geometrically, down through the subnormal range below
# 1.2e-38 (float32); each operation that makes or reads a subnormal number costs the CPU a
# microcode assist of ~100 cycles. Measured: with 784-2048-10 and B = 32, 3% of m is subnormal
# after one epoch and an epoch takes 8.2 s instead of 4.5 s; 784-128-10, B = 32: 0.55 s instead
# of 0.34 s. With ``flush`` the regions set the x86 MXCSR bits FTZ and DAZ (flush to zero,
# denormals are zero: subnormal results and inputs count as 0, as TensorFlow does by default)
# for their own work and restore the thread's mode afterwards. θ cannot feel the difference:
# Adam moves θ_r by at most γ_p · |m_r| / ε ≈ 1e-33 for such an m_r.

FLUSH_TO_ZERO = 0x8040  # MXCSR bit 15 (FTZ) and bit 6 (DAZ)
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


@helper
def enter_flush_mode(flush):
    """With ``flush``, subnormal numbers count as zero on this thread from now on; returns the
    thread's previous mode, for ``leave_flush_mode``. (On CPUs other than x86: nothing.)"""
    saved = read_fp_mode()
    if flush and _X86:
        write_fp_mode(saved | FLUSH_TO_ZERO)
    return saved


@helper
def leave_flush_mode(saved):
    """Restore the thread's mode (other code runs on Numba's threads too)."""
    if _X86:
        write_fp_mode(saved)


@intrinsic
def read_fp_mode(typingctx):
    """The calling thread's MXCSR register, the x86 floating-point control word (LLVM's
    ``llvm.x86.sse.stmxcsr``, which Numba does not expose); 0 on other CPUs."""

    def codegen(context, builder, signature, args):
        if not _X86:
            return ir.Constant(ir.IntType(64), 0)
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        fnty = ir.FunctionType(ir.VoidType(), [slot.type])
        stmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.stmxcsr")
        builder.call(stmxcsr, [slot])
        return builder.zext(builder.load(slot), ir.IntType(64))

    return types.int64(), codegen


@intrinsic
def write_fp_mode(typingctx, mode):
    """Set the calling thread's MXCSR register (``llvm.x86.sse.ldmxcsr``); nothing elsewhere."""

    def codegen(context, builder, signature, args):
        if _X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(builder.trunc(args[0], ir.IntType(32)), slot)
            fnty = ir.FunctionType(ir.VoidType(), [slot.type])
            ldmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr")
            builder.call(ldmxcsr, [slot])
        return context.get_dummy_value()

    return types.none(types.int64), codegen
