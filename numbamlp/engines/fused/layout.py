"""The fused engine's layout: its tuning constants, the codes its kernels take, the rows of the
``layout`` table, the views into θ and the flat batch buffers, and the cuts of the work into
blocks (region 1) and items (region 2). No equation here.
"""

from __future__ import annotations

import numpy as np

from numbamlp.kernels._jit import helper
from numbamlp.kernels.memory import CACHE_LINE, round_up
from numbamlp.model.network import Architecture

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
# When the batch's rows of h^{m−1} do not fit in L2 (wide inputs, large batches: 1024 × 784
# float32 is 3.2 MB), region 2 sums a band of rows of W^m over one chunk of samples at a time:
# the chunk's rows of h^{m−1} (at most CHUNK_BYTES) stay in L2 while every tile of the band
# passes over them, and the band's partial sums (at most BAND_BYTES) wait in L2 for the next
# chunk. Without this every tile read all of h^{m−1} from memory, and region 2 of a wide layer
# at a large batch waited on that traffic (docs/performance.md, "Figures moved out of the
# code"). The sums keep their order: the chunks come in sample order, and each sum runs over
# the samples one term at a time whatever the chunks.
CHUNK_BYTES = 384 * 1024
BAND_BYTES = 256 * 1024
# Where the whole batch is one chunk, a band's sums stay in L1 for the update that follows them.
L1_BAND_BYTES = 64 * 1024
# The register tiles' strips (tiles.py): 4 vectors of 512 bits per row, 64 float32 or 32 float64
# entries. B.3's tiles cover a strip of columns of ∇W^m; F.1's a strip of units of z^k, which
# reads W^k transposed, packed strip by strip (``packed_weights``). A layer with at least one
# strip's width of units gets the packed copy where the batch has PACKED_MIN_BATCH samples or
# more: region 2 rewrites the copy at every step, at a cost that does not grow with the batch,
# while F.1's gain does; at batch 128 the two cancel, at 32 the copy costs more than F.1 gains
# (docs/performance.md, session 9).
WIDE_STRIP_BYTES = 256
PACKED_MIN_BATCH = 256

# Output heads.
SOFTMAX = 0  # (F.3)
MODIFIED_SOFTMAX = 1  # (F.4)
IDENTITY = 2  # (F.5), with the squared error (L.2, B.5)
HEAD_CODES = {"softmax": SOFTMAX, "modified-softmax": MODIFIED_SOFTMAX, "identity": IDENTITY}

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
SHARD_AT = 6  # where layer k's gradient shards start in the flat shard buffer; −1: no shards
SHARD_WIDTH = 7  # entries per row of a shard of layer k: d_{k−1} + 1, padded to a cache line
BAND = 8  # rows of W^k whose sums region 2 holds at once (a multiple of ROW_TILE)
CHUNK = 9  # samples per chunk of region 2's sums for layer k
PACKED_AT = 10  # where layer k's packed (W^k)ᵀ starts in the flat packed buffer; −1: none

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
# one signature, which shortens a cold compile (docs/performance.md, "One signature per helper"
# in its Session 4).


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


@helper
def packed_weights(packed, layout, k):
    """(W^k)ᵀ in strips, shape (n, d_{k−1}, w): entry [q, j, c] is W^k_{qw+c, j}, for the first
    n·w units, n = ⌊d_k / w⌋ strips of w = WIDE_STRIP_BYTES / itemsize units (n = 0 where the
    layer has no packed copy). Each strip's rows j are contiguous: F.1's register tile reads
    W^k_{i,j} for w units i at once (``tiles.affine_strip``). A view into the flat buffer."""
    width = WIDE_STRIP_BYTES // packed.itemsize
    d_prev = layout[SIZE, k - 1]
    n = layout[SIZE, k] // width if layout[PACKED_AT, k] >= 0 else 0
    start = max(layout[PACKED_AT, k], 0)
    return packed[start : start + n * d_prev * width].reshape((n, d_prev, width))


# ---------------------------------------------------------------------------------------------
# Blocks, items and the layout table.


def default_sample_block(max_batch: int) -> int:
    """Samples per block of region 1. From a batch of 2 · MAX_SAMPLE_BLOCK = 128 up, blocks of
    MAX_SAMPLE_BLOCK: a batch of 128 makes 2 blocks of 64, a batch of 1024 16. Each block reads
    every W^k once per step and is one gradient shard, so bigger blocks read less and leave
    fewer shards to add up (on the reference workload, 2 threads, blocks of 64 are faster than
    blocks of 32). Smaller batches get a quarter of the batch, rounded down to a multiple of the
    F.1 tile (4), at least 4: a batch of 32 makes 4 blocks of 8 (faster there than 2 blocks of
    16). The figures: docs/performance.md, "Figures moved out of the code"."""
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


def layout_table(
    architecture: Architecture, max_batch: int, dtype: np.dtype, sample_block: int, shard_bytes: int
) -> tuple[np.ndarray, int, int]:
    """The ``layout`` table of a plan (its rows: SIZE … PACKED_AT) and the sizes of its flat
    shard buffer and packed-weights buffer. Where each layer's θ, batch buffers, shards and
    packed (W^k)ᵀ start, region 2's bands and chunks, and which layers get gradient shards: a
    function of the architecture, the batch size, the dtype and the block size alone, never of
    the thread count."""
    sizes, L, B = architecture.sizes, architecture.L, max_batch
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
    # Gradient shards: one per block of region 1, rows padded to a multiple of ROW_TILE (the
    # B.3 tiles write whole tiles) and each row to a cache line. Their number and the samples
    # each covers follow from the batch and the block size, never from the thread count.
    n_blocks = -(-B // sample_block)
    line = CACHE_LINE // dtype.itemsize
    at = 0
    for m in range(1, L + 1):
        width = round_up(sizes[m - 1] + 1, line)
        size = round_up(sizes[m], ROW_TILE) * width
        layout[SHARD_WIDTH, m] = width
        small = sizes[m] <= sample_block
        if small and n_blocks * size * dtype.itemsize <= shard_bytes:
            layout[SHARD_AT, m] = at
            at += n_blocks * size
        else:
            layout[SHARD_AT, m] = -1
    # Region 2's bands and chunks: one chunk of the whole batch and bands of rows whose sums fit
    # in L1_BAND_BYTES where the batch's rows of h^{m−1} fit in CHUNK_BYTES (or the layer has
    # shards); else chunks of equal size, at most CHUNK_BYTES, and bands of BAND_BYTES.
    itemsize = dtype.itemsize
    for m in range(1, L + 1):
        row_bytes = (sizes[m - 1] + 1) * itemsize
        if layout[SHARD_AT, m] >= 0 or B * row_bytes <= CHUNK_BYTES:
            layout[CHUNK, m], band_bytes = B, L1_BAND_BYTES
        else:
            chunks = -(-B * row_bytes // CHUNK_BYTES)  # of equal size: no short last chunk
            layout[CHUNK, m], band_bytes = -(-B // chunks), BAND_BYTES
        tiles = band_bytes // (ROW_TILE * layout[SHARD_WIDTH, m] * itemsize)
        layout[BAND, m] = ROW_TILE * min(max(tiles, 1), -(-sizes[m] // ROW_TILE))
    # F.1's packed (W^k)ᵀ: the layers with a strip's width of units or more, in big batches.
    width = WIDE_STRIP_BYTES // dtype.itemsize
    packed = 0
    layout[PACKED_AT, 0] = -1
    for k in range(1, L + 1):
        strips = sizes[k] // width if B >= PACKED_MIN_BATCH else 0
        layout[PACKED_AT, k] = packed if strips else -1
        packed += strips * width * sizes[k - 1]
    return layout, at, packed
