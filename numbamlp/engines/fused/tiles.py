"""The tiled loops of the fused engine: F.1 (register tiles ``affine_strip`` on the packed
(W^k)ᵀ that ``pack_weight_rows`` writes, and ``affine_tile``), B.3 with B.2
(``weight_gradient_rows``: register tiles ``weight_gradient_strip``, ``bias_gradient_strip``)
and B.4 (``hidden_delta_rows``) — the only equations with a fast body beside the plain kernel,
which each names: it computes the same sums, in the same order of the samples, blocked for
registers and caches. Also the spans of the inputs' zeros that F.1 and B.3 of layer 1 skip
(``input_spans``, ``tile_columns``, ``strip_members``).
"""

from __future__ import annotations

import numpy as np
from numba import prange, types
from numba.extending import overload

from numbamlp.engines.fused.layout import ROW_TILE, WIDE_STRIP_BYTES
from numbamlp.engines.fused.rows import sigmoid_float32
from numbamlp.kernels._jit import helper, kernel
from numbamlp.kernels.activations import SIGMOID, phi, phi_prime_from_value
from numbamlp.kernels.intrinsics import prefer_wide_vectors, prefetch_to_l2, stack_array
from numbamlp.kernels.memory import CACHE_LINE

# B.3's register tiles (``weight_gradient_strip``): 4 rows of W^m × a strip of columns, the sums
# in vector registers. A wide strip is 4 vectors of 512 bits per row (WIDE_STRIP_BYTES: 64
# float32 or 32 float64 columns: 16 registers of sums, half of AVX-512's 32); a narrow one 16
# columns; the bias sums (B.2) 16 rows at a time. A strip's pass covers at most STRIP_SAMPLES
# samples, whose strip of h^{m−1} (16 KiB for float32) stays in L1 while the tiles of ROW_GROUP
# rows pass over it; the group's δ^m of those samples (16 KiB) stays in L1 from strip to strip,
# copied side by side first where δ's rows are LONG_DELTA_ROW_BYTES or longer.
# F.1's register tiles (``affine_strip``) are the same shape: 4 samples × a wide strip of units.
WIDE_STRIP_SLOTS = 64  # the stack array's columns: the widest strip (float32)
NARROW_STRIP = 16
BIAS_STRIP = 16
STRIP_SAMPLES = 64
ROW_GROUP = 64  # rows of W^m, a multiple of ROW_TILE
LONG_DELTA_ROW_BYTES = 1024  # B.3 copies a run's δ^m of a group of rows where its rows are longer
# F.1 prefetches the next rows of W^k while it computes with the current ones where W^k is
# bigger than this (it comes from L3 or memory for every block of samples; smaller ones stay
# in L2 from block to block).
STREAMED_WEIGHT_BYTES = 1024 * 1024
PREFETCH_SAMPLES = 64  # blocks of fewer samples prefetch nothing: the bursts stall their tiles


def entries_in(a, n_bytes):  # pragma: no cover - replaced by the overload in compiled code
    """How many entries of a's dtype fill n_bytes (a constant: WIDE_STRIP_BYTES for a wide
    strip's columns, CACHE_LINE for a line), itself a constant of the compiled code."""
    return n_bytes // a.itemsize


@overload(entries_in)
def _entries_in(a, n_bytes):
    if not isinstance(n_bytes, types.IntegerLiteral):
        return None
    n = n_bytes.literal_value // (a.dtype.bitwidth // 8)
    return lambda a, n_bytes: n


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
# (F.1)


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
def affine_rows(z, W, b, h_prev, s0, s1, spans, whole, i_first):
    """(F.1) z^k = b^k + W^k h^{k−1} for the block's samples and the units i ≥ i_first (those
    that no strip of ``affine_strips`` covers), tile by tile: units outer, 8 at a
    time, so that 8 rows of W^k (25 KB for 784 inputs) serve all the block's samples while they
    are in L1, and each 4 samples' rows, once loaded, serve two tiles of 4 units before the next
    4 samples' rows replace them. ``spans``, ``whole``: the columns each tile reads
    (``tile_columns``). Each tile computes its sums as alone: the pairs change no bit. Where W^k
    is too big to stay in L2 from block to block (STREAMED_WEIGHT_BYTES), each 4 samples of a
    block of PREFETCH_SAMPLES or more also prefetch their share of the next 8 rows' cache lines,
    so that they come from L3 or memory while the current rows are in use.

    The fast body of ``forward.affine_forward``, the plain kernel it must equal: the same sum
    b^k_i + Σ_j W^k_{ij} h^{k−1}_{s,j} for each (s, i), its terms in a vectorised order
    (``reassoc``), so equal to rounding (tests/engines/test_fused.py)."""
    d_out, d_in = W.shape
    line = CACHE_LINE // h_prev.itemsize
    w_line = CACHE_LINE // W.itemsize
    W_flat = W.reshape((1, d_out * d_in))
    streamed = d_out * d_in * W.itemsize > STREAMED_WEIGHT_BYTES and s1 - s0 >= PREFETCH_SAMPLES
    quads = (s1 - s0 + 3) // 4
    for i in range(i_first, d_out, 8):
        ahead = max(0, min(8, d_out - i - 8)) * d_in if streamed else 0  # next rows' entries
        share = -(-ahead // (quads * w_line)) * w_line  # entries each quad prefetches
        for s in range(s0, s1, 4):
            q = (s - s0) // 4
            for e in range(q * share, min((q + 1) * share, ahead), w_line):
                prefetch_to_l2(W_flat, 0, (i + 8) * d_in + e)
            j_lo, j_hi = tile_columns(spans, s, min(s + 4, s1), d_in, line, whole)
            affine_tile(z, W, b, h_prev, s, i, s1 - 1, d_out - 1, j_lo, j_hi)
            if i + 4 < d_out:  # the next 4 units, on the same 4 samples' rows
                affine_tile(z, W, b, h_prev, s, i + 4, s1 - 1, d_out - 1, j_lo, j_hi)


@helper(fastmath=True)
def affine_strip(z, strip, b, h_prev, s, s_last, i0, j_lo, j_hi):
    """(F.1) for the samples s..s+3 and the units i0..i0+w−1 of one strip of the packed
    (W^k)ᵀ (``layout.packed_weights``: strip[j, c] = W^k_{i0+c, j}; w units fill
    WIDE_STRIP_BYTES):
    z^k_{s,i} = b^k_i + Σ_j W^k_{ij} h^{k−1}_{s,j} over j_lo ≤ j < j_hi (the other terms are 0:
    ``tile_columns``). The 4 × w sums stay in registers while j runs (``stack_array``): per j,
    4 broadcasts of h^{k−1}_{s,j} and w entries of the strip feed 4w multiply-adds, as in B.3's
    ``weight_gradient_strip`` — with no sum across a vector at the end. Samples past s_last
    repeat the last one: the tile computes that value again, the same way, and stores it
    again."""
    prefer_wide_vectors()
    width = entries_in(h_prev, WIDE_STRIP_BYTES)
    sums = stack_array(4, WIDE_STRIP_SLOTS, z)
    s1, s2, s3 = min(s + 1, s_last), min(s + 2, s_last), min(s + 3, s_last)
    bias = b[i0 : i0 + width]
    for c in range(width):
        sums[0, c], sums[1, c], sums[2, c], sums[3, c] = bias[c], bias[c], bias[c], bias[c]
    # The rows from column j_lo on, indexed from 0 (as in affine_tile).
    x0, x1 = h_prev[s, j_lo:j_hi], h_prev[s1, j_lo:j_hi]
    x2, x3 = h_prev[s2, j_lo:j_hi], h_prev[s3, j_lo:j_hi]
    rows = strip[j_lo:j_hi]
    for t in range(j_hi - j_lo):
        # The slice before the loads of h: as in weight_gradient_strip, the loads then share
        # the multiply-adds' basic block, where LLVM folds each into its broadcast.
        w = rows[t]
        a0, a1, a2, a3 = x0[t], x1[t], x2[t], x3[t]
        # (F.1) z^k_{s,i} = b^k_i + Σ_j W^k_{ij} h^{k−1}_{s,j}   — tile: 4 samples × w units,
        #       the sums in registers over j, in order of j; i = i0 + c vectorised
        for c in range(width):
            w_c = w[c]
            sums[0, c] = sums[0, c] + w_c * a0
            sums[1, c] = sums[1, c] + w_c * a1
            sums[2, c] = sums[2, c] + w_c * a2
            sums[3, c] = sums[3, c] + w_c * a3
    z0, z1 = z[s, i0 : i0 + width], z[s1, i0 : i0 + width]
    z2, z3 = z[s2, i0 : i0 + width], z[s3, i0 : i0 + width]
    for c in range(width):
        z0[c], z1[c], z2[c], z3[c] = sums[0, c], sums[1, c], sums[2, c], sums[3, c]


@helper
def affine_strips(z, packed, b, h_prev, s0, s1, spans, whole):
    """(F.1) z^k = b^k + W^k h^{k−1} for the block's samples and the units of the packed
    strips of (W^k)ᵀ (``layout.packed_weights``), strip by strip, 4 samples at a time
    (``affine_strip``): a strip (200 KB for 784 inputs) stays in L2 while the block's tiles pass
    over it. ``spans``, ``whole``: the columns each tile reads (``tile_columns``, not widened:
    j is not vectorised here).

    The fast body of ``forward.affine_forward``, the plain kernel it must equal: the same sum
    b^k_i + Σ_j W^k_{ij} h^{k−1}_{s,j} for each (s, i), its terms added in order of j (the
    plain kernel's order, which ``reassoc`` lets it change); equal to rounding
    (tests/engines/test_fused.py)."""
    n_strips, d_in, width = packed.shape
    for q in range(n_strips):
        for s in range(s0, s1, 4):
            j_lo, j_hi = tile_columns(spans, s, min(s + 4, s1), d_in, 1, whole)
            affine_strip(z, packed[q], b, h_prev, s, s1 - 1, q * width, j_lo, j_hi)


@helper
def affine_layer(z, packed, W, b, h_prev, s0, s1, spans, whole):
    """(F.1) z^k = b^k + W^k h^{k−1} for the block's samples: the units of the packed strips
    by ``affine_strips``, the rest by ``affine_rows``."""
    n_strips, _, width = packed.shape
    affine_strips(z, packed, b, h_prev, s0, s1, spans, whole)
    if n_strips * width < W.shape[0]:
        affine_rows(z, W, b, h_prev, s0, s1, spans, whole, n_strips * width)


@helper
def pack_line(strip, rows, c, d_in):
    """strip[j, c + r] = rows[r, j] for every j and the r of one cache line of the strip's
    row j (``entries_in``: a constant, so the copy of a line is unrolled). A copy."""
    n = entries_in(strip, CACHE_LINE)
    for j in range(d_in):
        out = strip[j, c : c + n]
        for r in range(n):
            out[r] = rows[r, j]


@helper
def pack_weight_rows(packed, W, i_first, i_end):
    """The rows i_first ≤ i < i_end of W^k into its packed transpose:
    packed[q, j, c] = W^k_{qw+c, j} for i = qw + c (rows past the last whole strip have no
    place there and are skipped). No equation: the copy of the weights that F.1's strips read
    (``affine_strip``), written after each update of W^k's rows (region 2) and whole at the
    start of each run (``pack_weights``). The rows go a cache line's worth at a time (the units
    of one line of the strip's row j), each line written whole before the next: row by row,
    every store would land on a line of its own, and the line leave L1 before its next store."""
    n_strips, d_in, width = packed.shape
    line = CACHE_LINE // packed.itemsize
    i_stop = min(i_end, n_strips * width)
    i = i_first
    while i < i_stop:
        group_end = min((i // line + 1) * line, i_stop)  # to the end of i's line of units
        strip = packed[i // width]
        c = i % width
        rows = W[i:group_end]
        if group_end - i == line:
            pack_line(strip, rows, c, d_in)
        else:
            for j in range(d_in):
                for r in range(group_end - i):
                    strip[j, c + r] = rows[r, j]
        i = group_end


# ---------------------------------------------------------------------------------------------
# (B.4)


@helper(fastmath=True)
def hidden_delta_rows(delta, W_next, delta_next, z, h, code, dropped, s0, s1):
    """(B.4) δ^m = ((W^{m+1})ᵀ δ^{m+1}) ⊙ φ′_m(z^m) for the block's samples. The sum over i is
    added term by term in order of i, into δ^m_{s,:} itself, as in backward.py. φ′_m(z^m) comes
    from h^m = φ_m(z^m) where the notes allow (``phi_prime_from_value``): for σ and tanh the
    exponentials of the forward pass are not taken again.

    The fast body of ``backward.hidden_delta``, the plain kernel it must equal: the same sum,
    4 terms i per pass, and φ′ through the stored φ; equal to rounding
    (tests/engines/test_fused.py). ``dropped``: h holds h̃^m (D.2), so φ′_m comes from z^m: σ
    taken again as F.2 took it (``sigmoid_float32``, vectorised; any other φ_m by ``phi``, as
    ``activation_rows``), then φ′ through it as above: bitwise what the stored h^m would give.
    D.3's mask follows (``dropout_delta_rows``)."""
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
        phi_prime_row(out, z[s], h[s], code, dropped)


@helper
def phi_prime_row(out, z_row, h_row, code, dropped):
    """The factor φ′_m(z^m_{s,j}) of (B.4) on one sample's row of δ^m (``out``, holding the sums
    over i). Compiled without fast-math, unlike the sums: each product is the one written, in
    IEEE arithmetic, so that with ``dropped`` (h_row holds h̃^m, and φ′ comes through σ or φ
    taken again from z^m exactly as F.2 took it) δ^m is bitwise what the stored h^m gives.
    Under fast-math LLVM may rewrite v(1 − v) one way in one loop and another way in the
    other, depending on what it inlined, which changed between compilations."""
    d_m = out.shape[0]
    if dropped and code == SIGMOID and out.itemsize == 4:
        for j in range(d_m):
            value = sigmoid_float32(np.float32(z_row[j]))  # h^m_{s,j}, as F.2 computed it
            # (B.4) δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · φ′_m(z^m_{s,j}),
            #       (A.1) σ′ = σ(1 − σ) of the σ recomputed from z^m
            out[j] *= phi_prime_from_value(SIGMOID, value, z_row[j])
    elif dropped and code == SIGMOID:  # float64: σ by ``phi``, then the branch below's σ′
        for j in range(d_m):
            value = phi(SIGMOID, z_row[j])  # h^m_{s,j}, as F.2 computed it
            # (B.4) δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · φ′_m(z^m_{s,j}),
            #       (A.1) σ′ = σ(1 − σ) of the σ recomputed from z^m
            out[j] *= phi_prime_from_value(SIGMOID, value, z_row[j])
    elif dropped:
        for j in range(d_m):
            g = out[j]
            out[j] = phi(code, z_row[j])  # h^m_{s,j} as F.2 stored it (activation_rows)
            # (B.4) δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · φ′_m(z^m_{s,j}), through
            #       the recomputed h^m_{s,j} where the notes write φ′ through φ
            out[j] = g * phi_prime_from_value(code, out[j], z_row[j])
    elif code == SIGMOID:  # the constant code lets LLVM drop the branches and vectorise
        for j in range(d_m):
            # (B.4) δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · φ′_m(z^m_{s,j}),
            #       φ′_m(z^m_{s,j}) written through h^m_{s,j} = φ_m(z^m_{s,j})
            out[j] *= phi_prime_from_value(SIGMOID, h_row[j], z_row[j])
    else:
        for j in range(d_m):
            # (B.4) the same, for any other φ_m
            out[j] *= phi_prime_from_value(code, h_row[j], z_row[j])


# ---------------------------------------------------------------------------------------------
# (B.3) and (B.2)


@helper(fastmath=True)
def weight_gradient_quad(G, r, delta, h_prev, s, i, i_last, j_lo, j_hi):
    """(B.3) for the rows i..i+3 of W^m and the samples s..s+3: adds the 4 samples' terms, in
    sample order, to the columns j_lo ≤ j < j_hi of the rows r..r+3 of G (the other terms are
    0: ``tile_columns``; rows past i_last repeat the last row of W^m, each into a row of G of
    its own, which the caller ignores). For the last d_{m−1} mod 16 columns, which no strip
    of ``weight_gradient_strip`` covers: the same sums, the partial sums in memory."""
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


@helper(fastmath=True)
def weight_gradient_strip(G, r, delta, h_prev, members, count, i, i_last, j0, width, fresh):
    """(B.3) for the rows i..i+3 of W^m and the columns j0 ≤ j < j0 + width (a constant: the
    columns that fill WIDE_STRIP_BYTES, or NARROW_STRIP): adds the terms of the samples
    members[0..count) (in sample order), to the rows r..r+3 of G, or with ``fresh`` writes their
    sums there. The 4 × width sums stay in registers across all the samples (``stack_array``);
    each sample's δ^m_{s,i} are broadcast and its row of h^{m−1} loaded once for the 4 rows.
    Rows past i_last repeat the last row of W^m, each into a row of G of its own, which the
    caller ignores."""
    prefer_wide_vectors()
    i0, i1, i2, i3 = i, min(i + 1, i_last), min(i + 2, i_last), min(i + 3, i_last)
    sums = stack_array(4, WIDE_STRIP_SLOTS, G)
    g0, g1 = G[r, j0 : j0 + width], G[r + 1, j0 : j0 + width]
    g2, g3 = G[r + 2, j0 : j0 + width], G[r + 3, j0 : j0 + width]
    if fresh:  # the sums start at 0 (G's entries are not read: no pass to zero them first)
        for c in range(width):
            sums[0, c], sums[1, c], sums[2, c], sums[3, c] = 0.0, 0.0, 0.0, 0.0
    else:  # the sums go on from those of the samples before
        for c in range(width):
            sums[0, c], sums[1, c], sums[2, c], sums[3, c] = g0[c], g1[c], g2[c], g3[c]
    for k in range(count):
        s = members[k]  # unsigned: no negative-index wraparound in the loop
        # The slice before the loads of δ: its bounds check ends a basic block, and loads after
        # it share the multiply-adds' block, where LLVM folds each into its broadcast: a load,
        # not a load and a shuffle on a port the multiply-adds need (docs/performance.md).
        x = h_prev[s, j0 : j0 + width]
        a0, a1, a2, a3 = delta[s, i0], delta[s, i1], delta[s, i2], delta[s, i3]
        # (B.3) ∂ℓ_s/∂W^m_{ij} = δ^m_{s,i} h^{m−1}_{s,j}   — tile: 4 rows i × width columns j,
        #       the sums in registers over the samples s, j = j0 + c vectorised
        for c in range(width):
            x_sc = x[c]
            sums[0, c] = sums[0, c] + a0 * x_sc
            sums[1, c] = sums[1, c] + a1 * x_sc
            sums[2, c] = sums[2, c] + a2 * x_sc
            sums[3, c] = sums[3, c] + a3 * x_sc
    for c in range(width):
        g0[c], g1[c], g2[c], g3[c] = sums[0, c], sums[1, c], sums[2, c], sums[3, c]


@helper
def strip_members(members, spans, s_first, s_end, j0, j_end, whole):
    """The samples s_first ≤ s < s_end, in order, whose h^{m−1}_{s,j} are not all 0 for
    j0 ≤ j < j_end (with ``whole``: all of them) into members, counted from s_first (s −
    s_first); returns their count. Without a branch per sample: a sample whose digit lies
    outside the strip is written and then overwritten."""
    count = 0
    for s in range(s_first, s_end):
        members[count] = s - s_first
        count += whole | ((spans[s, 0] < j_end) & (spans[s, 1] > j0))
    return count


@helper(fastmath=True)
def bias_gradient_strip(G, r, delta, s_first, s_end, i, column):
    """(B.2) for the BIAS_STRIP rows i..i+15 of W^m: G[r + q, column] = Σ_s δ^m_{s,i+q} over
    s_first ≤ s < s_end, in sample order, the 16 sums in registers."""
    prefer_wide_vectors()
    sums = stack_array(1, BIAS_STRIP, G)
    for q in range(BIAS_STRIP):
        sums[0, q] = 0.0
    rows = delta[s_first:s_end]
    for t in range(s_end - s_first):
        e = rows[t, i : i + BIAS_STRIP]
        for q in range(BIAS_STRIP):
            # (B.2) ∂ℓ_s/∂b^m_i = δ^m_{s,i}   — 16 rows i vectorised
            sums[0, q] = sums[0, q] + e[q]
    for q in range(BIAS_STRIP):
        G[r + q, column] = sums[0, q]


@helper
def group_gradient(
    G, g, g_end, delta_run, h_run, members, spans, run, run_end, i_offset, i_last, whole, fresh
):  # fmt: skip
    """(B.3) of ``weight_gradient_rows`` for one run of samples and the group of rows
    g ≤ r < g_end of G: every strip of columns, and in each the group's tiles of 4 rows
    (``weight_gradient_strip``). h_run and delta_run hold the run's rows of h^{m−1} and δ^m
    (indexed from the run's first sample, as ``strip_members`` counts them); G's row r is
    δ's row r + i_offset there, the last one i_last."""
    d_prev = h_run.shape[1]
    wide = entries_in(h_run, WIDE_STRIP_BYTES)
    j_wide = d_prev - d_prev % wide
    j_narrow = d_prev - d_prev % NARROW_STRIP
    # The wide strips, then the narrow ones: two calls, each with its width a constant, since
    # LLVM keeps a tile in registers only where it knows its columns.
    for j0 in range(0, j_wide, wide):
        count = strip_members(members, spans, run, run_end, j0, j0 + wide, whole)
        for r in range(g, g_end, ROW_TILE):
            weight_gradient_strip(
                G, r, delta_run, h_run, members, count, r + i_offset, i_last, j0, wide, fresh
            )  # fmt: skip
    for j0 in range(j_wide, j_narrow, NARROW_STRIP):
        count = strip_members(members, spans, run, run_end, j0, j0 + NARROW_STRIP, whole)
        for r in range(g, g_end, ROW_TILE):
            weight_gradient_strip(
                G, r, delta_run, h_run, members, count, r + i_offset, i_last, j0, NARROW_STRIP,
                fresh,
            )  # fmt: skip


@helper
def copied_group_gradient(
    G, g, g_end, delta_run, h_run, members, spans, run, run_end, i_first, whole, fresh
):  # fmt: skip
    """``group_gradient`` on a copy of the run's δ^m of the group's rows, side by side (a
    block on the stack, rows ROW_GROUP entries apart), where δ's rows are long: 8 KiB apart at
    d_m = 2048, too far for the hardware to prefetch from sample to sample, while the tiles
    read them once per strip (docs/performance.md). The same sums, in the same order."""
    block = stack_array(STRIP_SAMPLES, ROW_GROUP, delta_run)
    for t in range(delta_run.shape[0]):
        source, copy = delta_run[t, i_first + g : i_first + g_end], block[t]
        for c in range(g_end - g):
            copy[c] = source[c]
    group_gradient(
        G, g, g_end, block, h_run, members, spans, run, run_end, -g, g_end - 1 - g, whole, fresh
    )  # fmt: skip


@helper
def weight_gradient_rows(G, delta, h_prev, i_first, i_end, s_first, s_end, chunk, spans, whole):
    """(B.3) and (B.2) summed over the samples s_first ≤ s < s_end (the whole batch in region
    2, or one block into its gradient shard in region 1) for the rows i_first ≤ i < i_end of
    W^m: G[i − i_first, j] = Σ_s δ^m_{s,i} h^{m−1}_{s,j} and, in the extra column j = d_{m−1},
    G[i − i_first, d_{m−1}] = Σ_s δ^m_{s,i}. Each sum runs over s in order, one term at a time,
    as backward.py adds it; (S.1)'s factor 1/B comes with the update.

    Chunks of ``chunk`` samples outer (their rows of h^{m−1} stay in L2), then runs of at most
    STRIP_SAMPLES samples, groups of ROW_GROUP rows, strips of columns, and the group's tiles of
    4 rows, each tile's sums in registers over the run (``weight_gradient_strip``): the strip's
    h^{m−1} and the group's δ^m stay in L1 (``group_gradient``; δ^m copied side by side first
    where its rows are long: ``copied_group_gradient``). The columns past the last whole narrow
    strip come in the quads of 4 samples × 4 rows below. ``spans``, ``whole``: the samples whose
    terms in a strip are all 0 are skipped (``strip_members``, ``tile_columns``).

    The fast body of ``backward.weight_gradient`` and ``backward.bias_gradient``, the plain
    kernels it must equal: the same sums over s in sample order, blocked, without their factor
    1/B (the update applies it); equal to rounding (tests/engines/test_fused.py)."""
    d_prev = h_prev.shape[1]
    line = CACHE_LINE // h_prev.itemsize
    n = i_end - i_first
    j_narrow = d_prev - d_prev % NARROW_STRIP
    members = stack_array(1, STRIP_SAMPLES, np.uint64)[0]
    long_rows = delta.shape[1] * delta.itemsize >= LONG_DELTA_ROW_BYTES
    for r in range(n):  # the strips start their sums at 0 themselves; the quads' columns here
        for j in range(j_narrow if s_end > s_first else 0, d_prev):
            G[r, j] = 0.0
    for c_first in range(s_first, s_end, chunk):
        c_end = min(c_first + chunk, s_end)
        for run in range(c_first, c_end, STRIP_SAMPLES):
            run_end = min(run + STRIP_SAMPLES, c_end)
            fresh = run == s_first  # the first samples of the sums: they start at 0
            # The run's rows, indexed from its first sample (as strip_members lists them)
            h_run, delta_run = h_prev[run:run_end], delta[run:run_end]
            for g in range(0, n, ROW_GROUP):
                g_end = min(g + ROW_GROUP, n)
                if long_rows:
                    copied_group_gradient(
                        G, g, g_end, delta_run, h_run, members, spans, run, run_end, i_first,
                        whole, fresh,
                    )  # fmt: skip
                else:
                    group_gradient(
                        G, g, g_end, delta_run, h_run, members, spans, run, run_end, i_first,
                        i_first + g_end - 1, whole, fresh,
                    )  # fmt: skip
        if j_narrow < d_prev:  # the last d_{m−1} mod 16 columns
            s_quads = c_end - (c_end - c_first) % 4
            for s in range(c_first, s_quads, 4):
                j_lo, j_hi = tile_columns(spans, s, s + 4, d_prev, line, whole)
                for r in range(0, n, ROW_TILE):
                    weight_gradient_quad(
                        G, r, delta, h_prev, s, i_first + r, i_end - 1, max(j_lo, j_narrow),
                        j_hi,
                    )  # fmt: skip
            for s in range(s_quads, c_end):
                j_lo, j_hi = tile_columns(spans, s, s + 1, d_prev, line, whole)
                for r in range(0, n, ROW_TILE):
                    weight_gradient_single(
                        G, r, delta, h_prev, s, i_first + r, i_end - 1, max(j_lo, j_narrow),
                        j_hi,
                    )  # fmt: skip
    n_strips = n - n % BIAS_STRIP
    for r in range(0, n_strips, BIAS_STRIP):
        bias_gradient_strip(G, r, delta, s_first, s_end, i_first + r, d_prev)
    for r in range(n_strips, n):
        G[r, d_prev] = 0.0
        for s in range(s_first, s_end):
            # (B.2) ∂ℓ_s/∂b^m_i = δ^m_{s,i}
            G[r, d_prev] += delta[s, i_first + r]
