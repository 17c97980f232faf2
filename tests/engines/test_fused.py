"""The fused training loop (numbamlp.engines.fused) against the per-kernel path, step by step.

The per-kernel path is the notes' equations one kernel at a time: gather, passes.forward
(F.1–F.4), passes.loss (L.1, S.1), passes.backward (B.1–B.4), Optimizer.step (U.1–U.6). The fused
path computes the same equations in two parallel regions per step, in register tiles. Both sum
every gradient over the samples in order, so float64 must agree to rounding (rtol 1e-12);
float32 to its own precision. Shapes are odd on purpose: batches of 1, 7 and 13 samples (the
tiles take 4 samples and 4 units at a time, region 1 takes 8 samples per block), widths 1, 5
and 33, and a last layer of width 1 (γ̃ with 2 classes).

Then the properties the fused loop promises: bitwise the same θ for any number of threads and
any split of the work, a stop before the update of a step whose loss is not finite, and no
memory allocated by the loop.
"""

from __future__ import annotations

import ast
import gc
import re
import tracemalloc
from pathlib import Path

import numba
import numpy as np
import pytest
from numba.core.runtime import _nrt_python

from numbamlp.engines.fused import FusedPlan, expf, layout, preload, regions, rows, tiles
from numbamlp.errors import NumbamlpError
from numbamlp.kernels import intrinsics
from numbamlp.kernels.activations import CODES
from numbamlp.kernels.forward import (
    gather_batch,
    gather_labels,
    gather_targets,
    sample_weight_factors,
)
from numbamlp.kernels.optimizers import OPTIMIZERS, Optimizer
from numbamlp.model import passes
from numbamlp.model.network import Architecture, Parameters
from numbamlp.model.workspace import Workspace

OPTIMIZER_NAMES = list(OPTIMIZERS)
ACTIVATIONS = list(CODES)
HEADS = ["softmax", "modified-softmax"]
# Non-default hyperparameters, as in test_optimizers.py; γ_p varies from step to step.
HYPER = {
    "sgd": {},
    "momentum": {"mu": 0.8},
    "adagrad": {"eps": 1e-7},
    "adadelta": {"rho": 0.85, "eps": 1e-5},
    "rmsprop": {"rho": 0.8, "eps": 1e-7},
    "adam": {"beta1": 0.8, "beta2": 0.95, "eps": 1e-7},
}
BATCH_SIZES = [13, 7, 1, 13, 5]  # the largest is the plan's maximum
N_ROWS = 40  # rows of X


needs_two_threads = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads"
)


# --- Problems ----------------------------------------------------------------------------------


def architecture(depth: int, head: str, activations: list[str], n_inputs: int = 33):
    """L = depth layers: 33 inputs, hidden widths 5 and 1, and 3 classes (γ̃ with 2 classes for
    depth 3, so that its last layer has width 1)."""
    hidden = [5, 1][: depth - 1]
    n_classes = 2 if (head == "modified-softmax" and depth == 3) else 3
    return Architecture.for_classes(n_inputs, hidden, n_classes, activations[: depth - 1], head)


def inputs(x_kind: str, dtype, n_classes: int = 3, n_inputs: int = 33, seed: int = 0):
    """(X, scale, y): uint8 pixels with scale 1/255, or floats of the model's dtype with 1.
    "bordered": uint8 pixels whose rows start and end with runs of zeros of random lengths (as
    MNIST's blank border; one row all zeros, one without zeros), which F.1 and B.3 skip."""
    rng = np.random.default_rng(seed)
    if x_kind in ("uint8", "bordered"):
        X = rng.integers(1, 256, size=(N_ROWS, n_inputs), dtype=np.uint8)
        scale = 1.0 / 255.0
        if x_kind == "bordered":
            for n in range(1, N_ROWS):
                lo = rng.integers(0, n_inputs)
                X[n, :lo] = 0
                X[n, rng.integers(lo, n_inputs + 1) :] = 0
            X[N_ROWS // 2] = 0
            X[rng.random(X.shape) < 0.1] = 0  # zeros inside the span too
    else:
        X = rng.normal(size=(N_ROWS, n_inputs)).astype(dtype)
        scale = 1.0
    y = rng.integers(0, n_classes, size=N_ROWS).astype(np.int64)
    return X, scale, y


def minibatches(sizes: list[int], seed: int = 1):
    """The index matrix (one row per step, padded with row 0) and the batch sizes."""
    rng = np.random.default_rng(seed)
    matrix = np.zeros((len(sizes), max(sizes)), dtype=np.int64)
    for q, B in enumerate(sizes):
        matrix[q, :B] = rng.choice(N_ROWS, size=B, replace=False)
    return matrix, np.asarray(sizes, dtype=np.int64)


def initial_theta(arch: Architecture, dtype, seed: int = 2) -> np.ndarray:
    return Parameters.glorot_uniform(arch, dtype, np.random.default_rng(seed)).theta


def step_sizes(name: str, steps: int) -> np.ndarray:
    lr = OPTIMIZERS[name][1]["lr"]
    return lr * (1.0 + 0.5 * (np.arange(steps) % 3))  # γ_p changes between steps


# --- The two paths -----------------------------------------------------------------------------


def per_kernel_steps(
    arch, theta, name, X, scale, y, matrix, sizes, lrs, targets=None, weights=None
):
    """θ, the optimizer state (stacked) and ℓ of each step, one kernel at a time; with the
    identity head's ``targets`` (n, T), and with sample ``weights`` (S.2)."""
    params = Parameters(arch, theta.copy())
    dtype = theta.dtype
    grads = Parameters.zeros(arch, dtype)
    optimizer = Optimizer.create(name, arch.n_parameters, dtype, **HYPER[name])
    ws_full = Workspace(arch, int(sizes.max()), dtype)
    losses = []
    for q, B in enumerate(sizes):
        ws = ws_full.rows(int(B))
        indices = matrix[q, :B]
        gather_batch(ws.h[0], X, indices, dtype.type(scale))
        if targets is None:
            gather_labels(ws.labels, y, indices)
            labels = ws.labels
        else:
            gather_targets(ws.targets, targets, indices)
            labels = ws.targets
        omega = None
        if weights is not None:
            sample_weight_factors(ws.omega, weights, indices)
            omega = ws.omega
        passes.forward(ws, params)
        losses.append(passes.loss(ws, params, labels, omega))
        passes.backward(ws, params, grads, labels, 0.0, omega)
        optimizer.step(params.theta, grads.theta, lrs[q])
    state = np.stack([optimizer.state[k] for k in OPTIMIZERS[name][0]] or [np.zeros(0, dtype)])
    return params.theta, state, np.asarray(losses)


def fused_plan(arch, dtype, name, **options):
    optimizer = Optimizer.create(name, arch.n_parameters, np.dtype(dtype), **HYPER[name])
    plan = FusedPlan(arch, max(BATCH_SIZES), dtype, optimizer, **options)
    return plan, plan.adopt_state(optimizer)


def fused_steps(
    arch, theta, name, X, scale, y, matrix, sizes, lrs, splits=(None,), targets=None,
    weights=None, **options,
):  # fmt: skip
    """The same steps through FusedPlan.run, in calls of ``splits`` steps each (None: all)."""
    plan, state = fused_plan(arch, theta.dtype, name, **options)
    theta = theta.copy()
    losses = np.full(len(sizes), np.nan)
    first = 0
    for count in splits:
        count = len(sizes) - first if count is None else count
        done = plan.run(
            theta, state, X, scale, y, matrix, sizes, lrs, first, first, count, losses, None,
            targets, weights,
        )  # fmt: skip
        assert done == count
        first += count
    return theta, state, losses


def assert_close(got, expected, rtol):
    """|got − expected| ≤ rtol · (|expected| + max |expected|): relative, with the largest entry as
    the floor, since Adam-like steps of γ·g/|g| make entries near 0 as exact as the big ones."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape
    floor = np.abs(expected).max(initial=0.0)
    err = np.abs(got - expected)
    bound = rtol * (np.abs(expected) + floor)
    assert (err <= bound).all(), f"max error {err.max():.3g} (bound {bound.min():.3g})"


def compare(depth, head, activations, name, x_kind, dtype, rtol, steps=None):
    steps = steps or len(BATCH_SIZES)
    arch = architecture(depth, head, activations)
    X, scale, y = inputs(x_kind, dtype, arch.n_classes)
    matrix, sizes = minibatches(BATCH_SIZES[:steps])
    lrs = step_sizes(name, steps)
    theta0 = initial_theta(arch, dtype)
    ref_theta, ref_state, ref_losses = per_kernel_steps(
        arch, theta0, name, X, scale, y, matrix, sizes, lrs
    )
    # One call for step 1, one for the rest: the second call continues from p = 1.
    splits = (1, None) if steps > 1 else (None,)
    theta, state, losses = fused_steps(
        arch, theta0, name, X, scale, y, matrix, sizes, lrs, splits=splits
    )
    assert not np.array_equal(theta, theta0)  # the steps did move θ
    assert_close(losses, ref_losses, rtol)
    assert_close(theta, ref_theta, rtol)
    if state.size:
        assert_close(state, ref_state, rtol)


# --- Equality with the per-kernel path ----------------------------------------------------------


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_float64_matches_the_per_kernel_path(name, head, depth):
    """Every optimizer, both heads, L = 1..3, after 1 step and after 5; uint8 inputs for the
    softmax head and float inputs for γ̃. Each optimizer uses other activations."""
    k = OPTIMIZER_NAMES.index(name)
    activations = [ACTIVATIONS[k], ACTIVATIONS[(k + 1) % len(ACTIVATIONS)]]
    x_kind = "uint8" if head == "softmax" else "float"
    compare(depth, head, activations, name, x_kind, np.float64, rtol=1e-12, steps=1)
    compare(depth, head, activations, name, x_kind, np.float64, rtol=1e-12)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_activation(activation, dtype):
    """φ_1 and φ_2 of a 33 → 5 → 1 → 3 network, both float64 and float32."""
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    compare(3, "softmax", [activation, activation], "adam", "uint8", dtype, rtol)


@pytest.mark.parametrize("x_kind", ["uint8", "float"])
@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_float32_matches_the_per_kernel_path(name, x_kind):
    """float32 agrees to float32 precision (the register tiles add the terms of F.1 in another
    order than the per-kernel loop, so the last bits differ)."""
    compare(2, "softmax", ["tanh"], name, x_kind, np.float32, rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shard_bytes", [None, 0])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_inputs_with_blank_borders_match_the_per_kernel_path(depth, shard_bytes, dtype):
    """Layer 1's F.1 and B.3 skip the columns outside the span of a tile's inputs (their terms
    are 0): the same θ as the per-kernel path, which adds every term — with gradient shards
    (region 1 sums B.3) and without (region 2 does, over the batch)."""
    arch = architecture(depth, "softmax", ["sigmoid", "tanh"])
    X, scale, y = inputs("bordered", dtype, arch.n_classes)
    spans = np.empty((N_ROWS, 2), np.int64)
    tiles.input_spans(spans, X)
    assert (spans[:, 1] - spans[:, 0]).mean() < 0.6 * X.shape[1]  # the skipping is exercised
    matrix, sizes = minibatches(BATCH_SIZES)
    lrs = step_sizes("adam", len(sizes))
    theta0 = initial_theta(arch, dtype)
    expected = per_kernel_steps(arch, theta0, "adam", X, scale, y, matrix, sizes, lrs)
    options = {} if shard_bytes is None else {"shard_bytes": shard_bytes}
    got = fused_steps(arch, theta0, "adam", X, scale, y, matrix, sizes, lrs, **options)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for a, b in zip(got, expected, strict=True):
        assert_close(a, b, rtol)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_input_spans(dtype):
    """X[n, j] = 0 outside spans[n]; (d, 0) for a row of zeros; a NaN counts as non-zero."""
    X = np.zeros((5, 10), dtype)
    X[0, 3], X[0, 6] = 1, 2  # span 3..7
    X[1, :] = 1  # the whole row
    X[3, 9] = 7  # the last column only
    if dtype != np.uint8:
        X[4, 0] = np.nan
    spans = np.empty((5, 2), np.int64)
    tiles.input_spans(spans, X)
    expected = [(3, 7), (0, 10), (10, 0), (9, 10), (0, 1) if dtype != np.uint8 else (10, 0)]
    assert [tuple(row) for row in spans] == expected


def test_tile_columns_cover_the_tile_in_whole_cache_lines():
    """The union of the tile's spans, rounded out to lines of 16 columns and cut at d; all of
    them for a hidden layer (whole); nothing for a tile of empty rows."""
    spans = np.array([[20, 40], [33, 70], [100, 0], [5, 6]], np.int64)  # row 2: all zeros
    assert tiles.tile_columns(spans, 0, 2, 100, 16, False) == (16, 80)
    assert tiles.tile_columns(spans, 0, 4, 100, 16, False) == (0, 80)
    assert tiles.tile_columns(spans, 1, 2, 66, 16, False) == (32, 66)
    assert tiles.tile_columns(spans, 2, 3, 100, 16, False) == (96, 0)  # an empty range
    assert tiles.tile_columns(spans, 0, 4, 100, 16, True) == (0, 100)


def test_float32_exponential_is_within_one_ulp():
    """exp_nonpositive_float32, which the float32 σ of region 1 uses instead of expf: within
    1 ulp of e^x over [−87.3, 0], e^0 = 1, NaN stays NaN, and −∞ and arguments below
    ln 2^{−126} ≈ −87.34 give 2^{−126} (≈ 1.2e-38, where expf is subnormal)."""
    x = -np.linspace(0.0, 87.3, 1_000_001).astype(np.float32)
    got = np.array([expf.exp_nonpositive_float32(v) for v in x[::97]], np.float64)
    exact = np.exp(x[::97].astype(np.float64))
    ulps = np.abs(got - exact) / np.spacing(exact.astype(np.float32)).astype(np.float64)
    assert ulps.max() <= 1.0
    assert expf.exp_nonpositive_float32(np.float32(0.0)) == 1.0
    assert np.isnan(expf.exp_nonpositive_float32(np.float32(np.nan)))
    floor = expf.exp_nonpositive_float32(np.float32(-87.4))
    assert floor == pytest.approx(np.finfo(np.float32).tiny, rel=1e-6)
    for below in (-88.0, -1e4, -np.inf):
        assert expf.exp_nonpositive_float32(np.float32(below)) == floor


def test_float32_sigmoid_rows_match_the_scalar_sigmoid():
    """activation_rows takes σ in float32 through sigmoid_rows_float32: within 4 ulp of
    activations.sigmoid where σ is a normal float32, within 2e-38 where it is smaller,
    NaN for NaN."""
    from numbamlp.kernels.activations import _sigmoid

    z = np.linspace(-100.0, 40.0, 70_001).astype(np.float32).reshape(-1, 1)
    z[0, 0] = np.nan
    h = np.zeros_like(z)
    rows.activation_rows(h, z, CODES["sigmoid"], 0, z.shape[0])
    expected = np.array([_sigmoid(t) for t in z[:, 0]], np.float32)
    assert np.isnan(h[0, 0])
    h, expected = h[1:, 0], expected[1:]
    normal = expected >= np.finfo(np.float32).tiny
    assert (np.abs(h - expected) / np.spacing(expected))[normal].max() <= 4
    assert np.abs(h - expected)[~normal].max() <= 2e-38


def test_element_updates_are_the_optimizer_kernels():
    """U.1–U.6 of one component, as fused.py applies them, against optimizers.py's kernels on
    the same gradients: the same statements, so at most one unit in the last place apart (LLVM
    may fuse a·b − c into one FMA in one loop and not in the other). One exception: Adadelta's
    Δ_r² state D_r, whose Δ_r = −√(D_r+ε)/√(E_r+ε) g_r takes a quotient of square roots, where
    the ``arcp`` flag lets LLVM divide through a reciprocal that it may estimate and refine for
    one CPU and not another: 5 ulp apart measured on AMD Zen 4 (float32), 1 on Intel."""
    rng = np.random.default_rng(3)
    P, B = 1001, 7
    for dtype in (np.float64, np.float32):
        for name in OPTIMIZER_NAMES:
            reference = Optimizer.create(name, P, np.dtype(dtype), **HYPER[name])
            hyper = np.array([reference.hyper[key] for key in layout.HYPER_ORDER[name]])
            theta_ref = rng.normal(size=P).astype(dtype)
            theta = theta_ref.copy()
            state = np.zeros((len(OPTIMIZERS[name][0]), P), dtype)
            coef = np.zeros(layout.N_COEF, dtype)
            for p, lr in enumerate([0.1, 0.05, 0.025], start=1):
                sums = (rng.normal(size=P) * 10.0 ** rng.integers(-6, 2, size=P)).astype(dtype)
                reference.step(theta_ref, sums * dtype(1.0 / B), lr)  # g = (1/B) Σ_s
                code = layout.OPTIMIZER_CODES[name]
                regions.step_coefficients(coef, lr, B, code, hyper, p)
                regions.update_run(theta, state, 0, sums, P, code, coef)
            np.testing.assert_array_max_ulp(theta, theta_ref, maxulp=1, dtype=dtype)
            for row, key in enumerate(OPTIMIZERS[name][0]):
                ulps = 8 if key == "avg_sq_step" else 1
                np.testing.assert_array_max_ulp(state[row], reference.state[key], ulps, dtype)


# --- Determinism ------------------------------------------------------------------------------


def train_bits(threads: int, dtype, x_kind: str, **options) -> tuple[bytes, bytes, bytes]:
    numba.set_num_threads(threads)
    assert numba.get_num_threads() == threads
    arch = architecture(3, "softmax", ["sigmoid", "relu"])
    X, scale, y = inputs(x_kind, dtype)
    sizes = BATCH_SIZES * 2
    matrix, sizes = minibatches(sizes)
    lrs = step_sizes("adam", len(sizes))
    theta, state, losses = fused_steps(
        arch, initial_theta(arch, dtype), "adam", X, scale, y, matrix, sizes, lrs, **options
    )
    return theta.tobytes(), state.tobytes(), losses.tobytes()


@needs_two_threads
@pytest.mark.parametrize(("dtype", "x_kind"), [(np.float32, "uint8"), (np.float64, "float")])
def test_one_and_two_threads_give_bitwise_identical_results(dtype, x_kind, restore_threads):
    """θ, the Adam state and every loss after 10 steps are the same bytes with 1 and 2 threads."""
    assert train_bits(1, dtype, x_kind) == train_bits(2, dtype, x_kind)


@pytest.mark.parametrize(
    "options",
    [
        {"n_items": 1},
        {"n_items": 3},
        {"n_items": 7, "sample_block": 1, "shard_bytes": 0},
        {"sample_block": 13, "shard_bytes": 0},
        {"flush_subnormals": False},
    ],
)
def test_the_split_of_the_work_changes_no_bit(options, restore_threads):
    """How region 2 cuts the rows into items and region 1 the samples into blocks decides who
    computes what, never how; flushing subnormals changes nothing where none occur. (The blocks
    are also the gradient shards, whose sums are added in block order: with shards, the block
    size is part of the sum's order, so it is varied here without them.)"""
    threads = numba.config.NUMBA_NUM_THREADS
    base = {"shard_bytes": 0} if options.get("shard_bytes") == 0 else {}
    assert train_bits(threads, np.float32, "uint8", **options) == train_bits(
        threads, np.float32, "uint8", **base
    )


@pytest.mark.parametrize(
    "limits",
    [
        {"CHUNK_BYTES": 600, "BAND_BYTES": 1},  # 3 chunks of 5 samples, bands of one tile of rows
        {"CHUNK_BYTES": 1000, "BAND_BYTES": 10**9},  # 2 chunks of 7 samples, one band of all rows
    ],
)
def test_chunks_and_bands_of_region_2_change_no_bit(limits, monkeypatch, restore_threads):
    """Region 2 sums a wide layer band by band over chunks of samples (CHUNK_BYTES): each sum
    still runs over the samples in order, one term at a time, so θ, the state and the losses
    are the same bytes as with one pass over the whole batch, whatever the chunks' size (here
    not a multiple of 4; the batch is cut into chunks of equal size). Without shards, so region
    2 sums all."""
    threads = numba.config.NUMBA_NUM_THREADS
    whole = train_bits(threads, np.float32, "uint8", shard_bytes=0)
    for name, value in limits.items():
        monkeypatch.setattr(layout, name, value)  # what layout_table reads
    arch = architecture(3, "softmax", ["sigmoid", "relu"])
    plan, _ = fused_plan(arch, np.float32, "adam", shard_bytes=0)
    row_bytes = (arch.sizes[0] + 1) * 4
    B = max(BATCH_SIZES)
    chunk = -(-B // -(-B * row_bytes // limits["CHUNK_BYTES"]))
    assert chunk in (5, 7)
    assert plan.layout[layout.CHUNK, 1] == chunk < max(BATCH_SIZES)  # chunks are in use
    bands = 1 if limits["BAND_BYTES"] > 1 else -(-arch.sizes[1] // layout.ROW_TILE)
    assert -(-arch.sizes[1] // plan.layout[layout.BAND, 1]) == bands
    assert train_bits(threads, np.float32, "uint8", shard_bytes=0) == whole


@numba.njit(fastmath={"contract"})
def sequential_weight_gradient(G, delta, h_prev, i_first, i_end, s_first, s_end, zero):
    """(B.3) and (B.2) as backward.py writes them, one sum per entry over s in order (no
    ``reassoc``: LLVM keeps the order; ``contract``: each term a fused multiply-add, as in the
    tiles)."""
    d_prev = h_prev.shape[1]
    for r in range(i_end - i_first):
        for j in range(d_prev):
            total = zero
            for s in range(s_first, s_end):
                total = total + delta[s, i_first + r] * h_prev[s, j]
            G[r, j] = total
        total = zero
        for s in range(s_first, s_end):
            total = total + delta[s, i_first + r]
        G[r, d_prev] = total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d_prev", [13, 33, 85, 200])
@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("d_m", [23, 300])
def test_weight_gradient_rows_sums_each_entry_in_sample_order(dtype, d_prev, whole, d_m):
    """The register tiles of B.3 (wide and narrow strips of columns, the quads of the last
    d mod 16 columns, runs of at most STRIP_SAMPLES samples, chunks of any size, the samples a
    strip skips where their inputs are 0, δ's rows read in place or, 300 long, copied a group
    of rows at a time) and B.2's strips of 16 rows: bitwise the sum of each entry over the
    samples in order, one term at a time."""
    rng = np.random.default_rng(d_prev)
    B = 2 * tiles.STRIP_SAMPLES + 37
    assert (d_m * np.dtype(dtype).itemsize >= tiles.LONG_DELTA_ROW_BYTES) == (d_m == 300)
    h_prev = rng.normal(size=(B, d_prev)).astype(dtype)
    for n in range(B):  # blank borders of random widths, as MNIST's; row 5 all zeros
        lo, hi = sorted(rng.integers(0, d_prev + 1, size=2))
        h_prev[n, :lo], h_prev[n, hi:] = 0, 0
    h_prev[5] = 0
    delta = rng.normal(size=(B, d_m)).astype(dtype)
    spans = np.empty((B, 2), np.int64)
    tiles.input_spans(spans, h_prev)
    for i_first, i_end, s_first, s_end, chunk in [
        (0, d_m, 0, B, B),  # all rows, one chunk longer than a run
        (3, d_m - 3, 2, B - 1, 7),  # an offset band, chunks of 7 samples
        (5, 6, 4, 5, 1),  # one row, one sample
        (0, 17, 0, 0, 4),  # no samples: every sum is 0
    ]:
        rows = i_end - i_first
        padded = -(-rows // layout.ROW_TILE) * layout.ROW_TILE
        fused = np.full((padded, d_prev + 1), np.nan, dtype)
        expected = np.empty((rows, d_prev + 1), dtype)
        tiles.weight_gradient_rows(
            fused, delta, h_prev, i_first, i_end, s_first, s_end, chunk, spans, whole
        )  # fmt: skip
        sequential_weight_gradient(
            expected, delta, h_prev, i_first, i_end, s_first, s_end, dtype(0)
        )  # fmt: skip
        assert fused[:rows].tobytes() == expected.tobytes(), (i_first, s_first, chunk)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_b4_takes_phi_prime_again_from_z_bitwise(dtype, activation):
    """B.4's dropout path (h^m holds h̃^m, so φ′ comes through φ taken again from z^m) gives
    bitwise the δ^m of the path that reads the stored h^m = φ(z^m) of F.2: ``phi_prime_row``
    computes both without fast-math, each product as written."""
    rng = np.random.default_rng(3)
    code = CODES[activation]
    B, d_m, d_next = 37, 45, 6
    z = (3 * rng.normal(size=(B, d_m))).astype(dtype)
    h = np.empty_like(z)
    rows.activation_rows(h, z, code, 0, B)
    W_next = rng.normal(size=(d_next, d_m)).astype(dtype)
    delta_next = rng.normal(size=(B, d_next)).astype(dtype)
    stored, again = np.empty_like(z), np.empty_like(z)
    tiles.hidden_delta_rows(stored, W_next, delta_next, z, h, code, False, 0, B)
    tiles.hidden_delta_rows(again, W_next, delta_next, z, h, code, True, 0, B)
    assert stored.tobytes() == again.tobytes()


@pytest.mark.parametrize("d_out", [4, 10, 13, 32])
def test_the_tiles_of_f1_in_pairs_are_the_tiles_one_by_one(d_out):
    """affine_rows runs two tiles of 4 units on each 4 samples' rows; each tile computes its
    sums as it would alone, so z is bitwise that of the tiles one by one, units outer."""
    rng = np.random.default_rng(11)
    B, d_in = 9, 70
    W = rng.normal(size=(d_out, d_in)).astype(np.float32)
    b = rng.normal(size=d_out).astype(np.float32)
    h_prev = rng.normal(size=(B, d_in)).astype(np.float32)
    spans = np.zeros((B, 2), np.int64)
    paired, single = np.zeros((B, d_out), np.float32), np.zeros((B, d_out), np.float32)
    tiles.affine_rows(paired, W, b, h_prev, 0, B, spans, True, 0)
    for i in range(0, d_out, 4):
        for s in range(0, B, 4):
            tiles.affine_tile(single, W, b, h_prev, s, i, B - 1, d_out - 1, 0, d_in)
    assert paired.tobytes() == single.tobytes()
    np.testing.assert_allclose(paired, h_prev @ W.T + b, rtol=1e-5, atol=1e-5)


@numba.njit(fastmath={"contract"})
def sequential_affine(z, W, b, h_prev):
    """(F.1) as forward.py writes it, one sum per entry, b^k_i first, then the terms in order
    of j (no ``reassoc``; ``contract``: each term a fused multiply-add, as in the tiles)."""
    for s in range(h_prev.shape[0]):
        for i in range(W.shape[0]):
            total = b[i]
            for j in range(W.shape[1]):
                total = total + W[i, j] * h_prev[s, j]
            z[s, i] = total


def packed_transpose(W, width):
    """W^k's packed transpose as ``layout.packed_weights`` lays it out: [q, j, c] = W[qw+c, j]."""
    n = W.shape[0] // width
    return np.ascontiguousarray(W[: n * width].reshape(n, width, W.shape[1]).transpose(0, 2, 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("whole", [True, False])
def test_f1_strips_sum_each_entry_in_order_of_j(dtype, whole):
    """F.1's register tiles (``affine_strip``: 4 samples × a strip of units of the packed
    (W^k)ᵀ, the last samples of a block repeating its last one, the columns outside the
    tile's inputs skipped) are bitwise the sum b^k_i + Σ_j in order of j, one term at a time;
    the units past the last whole strip (``affine_rows``) equal it to rounding; and
    ``pack_weight_rows`` lays W^k out as ``packed_weights`` reads it."""
    rng = np.random.default_rng(3)
    width = layout.WIDE_STRIP_BYTES // np.dtype(dtype).itemsize
    B, d_in, d_out = 23, 85, 2 * width + 5
    W = rng.normal(size=(d_out, d_in)).astype(dtype)
    b = rng.normal(size=d_out).astype(dtype)
    h_prev = rng.normal(size=(B, d_in)).astype(dtype)
    if not whole:  # blank borders of random widths; row 5 all zeros
        for n in range(B):
            lo, hi = sorted(rng.integers(0, d_in + 1, size=2))
            h_prev[n, :lo], h_prev[n, hi:] = 0, 0
        h_prev[5] = 0
    spans = np.empty((B, 2), np.int64)
    tiles.input_spans(spans, h_prev)
    packed = np.full((2, d_in, width), np.nan, dtype)
    tiles.pack_weight_rows(packed, W, 0, d_out)
    assert packed.tobytes() == packed_transpose(W, width).tobytes()
    fused, expected = np.full((B, d_out), np.nan, dtype), np.empty((B, d_out), dtype)
    for s0, s1 in [(0, 9), (9, 10), (10, B)]:  # blocks of 9 and 13 samples, and of one
        tiles.affine_layer(fused, packed, W, b, h_prev, s0, s1, spans, whole)
    sequential_affine(expected, W, b, h_prev)
    strips = 2 * width
    assert fused[:, :strips].tobytes() == expected[:, :strips].tobytes()
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(fused[:, strips:], expected[:, strips:], rtol=rtol, atol=rtol)


WIDE_STRIPS = 4


def wide_architecture(dtype) -> Architecture:
    """33 inputs, a hidden layer of WIDE_STRIPS strips of F.1's register tiles and 5 units
    more, and 3 classes: F.1 of layer 1 runs its packed strips and its rows, and δ^1's rows are
    long enough for B.3 to copy them (``tiles.LONG_DELTA_ROW_BYTES``)."""
    width = layout.WIDE_STRIP_BYTES // np.dtype(dtype).itemsize
    units = WIDE_STRIPS * width + 5
    assert units * np.dtype(dtype).itemsize >= tiles.LONG_DELTA_ROW_BYTES
    return Architecture.for_classes(33, [units], 3, ["sigmoid"], "softmax")


@pytest.fixture
def packed_in_small_batches(monkeypatch):
    """F.1's packed strips for the small batches of these tests (``layout_table`` reads the
    threshold when a plan is made)."""
    monkeypatch.setattr(layout, "PACKED_MIN_BATCH", 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shard_bytes", [None, 0])
def test_wide_layers_match_the_per_kernel_path(dtype, shard_bytes, packed_in_small_batches):
    """With F.1's packed strips in use: the same θ, state and losses as the per-kernel path
    over several calls of ``run`` (each packs θ anew; region 2 repacks each updated row), and
    the packed copy the plan holds at the end is exactly the final W^1 transposed."""
    arch = wide_architecture(dtype)
    X, scale, y = inputs("bordered", dtype, arch.n_classes)
    matrix, sizes = minibatches(BATCH_SIZES)
    lrs = step_sizes("adam", len(sizes))
    theta0 = initial_theta(arch, dtype)
    expected = per_kernel_steps(arch, theta0, "adam", X, scale, y, matrix, sizes, lrs)
    options = {} if shard_bytes is None else {"shard_bytes": shard_bytes}
    plan, state = fused_plan(arch, dtype, "adam", **options)
    assert plan.layout[layout.PACKED_AT, 1] >= 0 and plan.layout[layout.PACKED_AT, 2] < 0
    theta, losses = theta0.copy(), np.full(len(sizes), np.nan)
    for first, count in [(0, 2), (2, len(sizes) - 2)]:
        done = plan.run(theta, state, X, scale, y, matrix, sizes, lrs, first, first, count, losses)
        assert done == count
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    for a, b in zip((theta, state, losses), expected, strict=True):
        assert_close(a, b, rtol)
    W1 = theta[arch.sizes[1] : arch.sizes[1] * (1 + arch.sizes[0])].reshape(arch.sizes[1], -1)
    width = layout.WIDE_STRIP_BYTES // np.dtype(dtype).itemsize
    packed = plan.packed[: WIDE_STRIPS * width * arch.sizes[0]]
    assert packed.tobytes() == packed_transpose(W1, width).tobytes()


@needs_two_threads
def test_wide_layers_bitwise_for_any_thread_count_and_split(
    restore_threads, packed_in_small_batches
):
    """The packed strips change nothing of the determinism: 1 and 2 threads, and region 2's
    rows cut into 3 items (so that items repack parts of one strip), give the same bytes."""

    def bits(threads, **options):
        numba.set_num_threads(threads)
        arch = wide_architecture(np.float32)
        X, scale, y = inputs("bordered", np.float32, arch.n_classes)
        matrix, sizes = minibatches(BATCH_SIZES * 2)
        lrs = step_sizes("adam", len(sizes))
        theta = initial_theta(arch, np.float32)
        got = fused_steps(arch, theta, "adam", X, scale, y, matrix, sizes, lrs, **options)
        return tuple(a.tobytes() for a in got)

    assert bits(1) == bits(2) == bits(2, n_items=3)


def test_only_big_batches_pack_the_weights():
    """The packed copy is made for the layers a strip wide or wider, in batches of
    PACKED_MIN_BATCH samples or more; elsewhere F.1 reads W^k's rows, and the plan holds no
    copy."""
    arch = Architecture.for_classes(33, [70, 7], 3, ["sigmoid", "tanh"], "softmax")
    optimizer = Optimizer.create("sgd", arch.n_parameters, np.dtype(np.float32))
    big = FusedPlan(arch, layout.PACKED_MIN_BATCH, np.float32, optimizer)
    assert list(big.layout[layout.PACKED_AT]) == [-1, 0, -1, -1]
    assert big.packed.size == 64 * 33  # one strip of 64 of the 70 units
    small = FusedPlan(arch, layout.PACKED_MIN_BATCH - 1, np.float32, optimizer)
    assert (small.layout[layout.PACKED_AT] == -1).all() and small.packed.size == 1


def test_gradient_shards_only_reorder_the_sums(restore_threads):
    """With and without gradient shards the same steps agree to rounding, and shards are used
    for the test's layers (otherwise the comparison would prove nothing)."""
    arch = architecture(3, "softmax", ["sigmoid", "tanh"])
    plan, _ = fused_plan(arch, np.float64, "adam", sample_block=8)  # 2 blocks, 8 and 5 samples
    assert (plan.layout[layout.SHARD_AT, 1:] >= 0).all()
    X, scale, y = inputs("float", np.float64)
    matrix, sizes = minibatches(BATCH_SIZES)
    lrs = step_sizes("adam", len(sizes))
    theta = initial_theta(arch, np.float64)
    steps = (arch, theta, "adam", X, scale, y, matrix, sizes, lrs)
    runs = [fused_steps(*steps, sample_block=8, shard_bytes=limit) for limit in (None, 0)]
    for sharded, whole in zip(runs[0], runs[1], strict=True):
        np.testing.assert_allclose(sharded, whole, rtol=1e-10, atol=1e-12)


# --- Subnormal numbers -------------------------------------------------------------------------


@numba.njit
def fp_control():
    """The thread's floating-point control bits (MXCSR without its six sticky status flags,
    which NumPy clears and sets as it computes)."""
    return intrinsics.read_fp_mode() & ~0x3F


@pytest.mark.parametrize("flush", [True, False])
def test_flush_mode_flushes_subnormal_state_and_is_restored(flush):
    """An Adam moment m_r = 1e-40 (subnormal in float32) whose gradient is 0 decays to
    β₁ · 1e-40 without flushing and to 0 with it; θ is the same bytes either way, and the
    calling thread's floating-point control bits are what they were before the call."""
    dtype = np.float32
    arch = architecture(2, "softmax", ["tanh"])
    X, scale, y = inputs("uint8", dtype)
    X[:, 0] = 0  # input 0 is off in every sample: ∂ℓ/∂W^1_{i,0} = 0
    matrix, sizes = minibatches(BATCH_SIZES[:1])
    plan, state = fused_plan(arch, dtype, "adam", flush_subnormals=flush)
    theta, losses = initial_theta(arch, dtype), np.zeros(1)
    r = 5  # W^1_{0,0} follows b^1 in θ
    state[0, r] = 1e-40
    mode = fp_control()
    assert plan.run(
        theta, state, X, scale, y, matrix, sizes, step_sizes("adam", 1), 0, 0, 1, losses
    )
    assert fp_control() == mode
    assert state[0, r] == (0.0 if flush else np.float32(np.float32(0.8) * np.float32(1e-40)))
    plan2, state2 = fused_plan(arch, dtype, "adam", flush_subnormals=not flush)
    theta2 = initial_theta(arch, dtype)
    state2[0, r] = 1e-40
    plan2.run(theta2, state2, X, scale, y, matrix, sizes, step_sizes("adam", 1), 0, 0, 1, losses)
    assert theta.tobytes() == theta2.tobytes()


# --- Divergence ---------------------------------------------------------------------------------


def test_a_non_finite_loss_stops_before_its_update():
    """A NaN input in the minibatch of step 3 makes ℓ_3 NaN: run returns 2, writes ℓ_3, and θ
    and the state are those after step 2, bit for bit."""
    dtype = np.float64
    arch = architecture(2, "softmax", ["tanh"])
    X, scale, y = inputs("float", dtype)
    matrix, sizes = minibatches(BATCH_SIZES)
    X[matrix[2, 0]] = np.nan
    assert matrix[2, 0] not in matrix[:2]  # only step 3 sees the NaN
    lrs = step_sizes("adam", len(sizes))
    theta0 = initial_theta(arch, dtype)

    plan, state = fused_plan(arch, dtype, "adam")
    theta, losses = theta0.copy(), np.zeros(len(sizes))
    done = plan.run(theta, state, X, scale, y, matrix, sizes, lrs, 0, 0, len(sizes), losses)
    assert done == 2
    assert np.isfinite(losses[:2]).all() and np.isnan(losses[2])

    plan2, state2 = fused_plan(arch, dtype, "adam")
    theta2, losses2 = theta0.copy(), np.zeros(len(sizes))
    assert plan2.run(theta2, state2, X, scale, y, matrix, sizes, lrs, 0, 0, 2, losses2) == 2
    assert theta.tobytes() == theta2.tobytes()
    assert state.tobytes() == state2.tobytes()


# --- No allocation ----------------------------------------------------------------------------


@pytest.mark.parametrize("dropout", [False, True], ids=["plain", "dropout"])
def test_run_steps_allocates_nothing(dropout):
    """After a warm-up call, 40 steps allocate no more than 4: nothing per step, neither Python
    objects (tracemalloc) nor arrays of Numba's runtime (its allocation counter); with dropout
    too (D.1–D.3: Philox's words are a tuple of integers, no array)."""
    dtype = np.float32
    arch = architecture(3, "softmax", ["tanh", "sigmoid"])
    X, scale, y = inputs("uint8", dtype)
    matrix, sizes = minibatches(BATCH_SIZES * 8)  # 40 steps
    lrs = step_sizes("adam", len(sizes))
    plan, state = fused_plan(arch, dtype, "adam")
    theta, losses = initial_theta(arch, dtype), np.zeros(len(sizes))
    args = (theta, state, X, plan._spans_of(X), dtype(scale), y, plan._no_targets)
    args += (plan._no_weights, matrix, sizes, lrs)
    tail = (plan.optimizer_code, plan.hyper, plan.h, plan.z, plan.delta, plan.packed, plan.f)
    tail += (plan.losses,)
    tail += (plan.log_totals,)
    tail += (plan.G, plan.shards, plan.spans, plan.coef, plan.layout, plan.codes, plan.head)
    tail += (plan.cuts,)
    tail += (plan.sample_block, plan.flush_subnormals)
    tail += (np.zeros(len(sizes), np.int64), plan.correct)  # batch_correct, correct
    if dropout:  # p = 0.5 on both hidden layers
        plan.drop_key[:] = (7, 1)
        plan.drop_thresholds[1:3] = 2**31
        plan.drop_scales[1:3] = 2.0
    tail += (plan.drop_key, plan.drop_thresholds, plan.drop_scales)

    def run(count: int) -> tuple[int, int, int]:
        gc.collect()
        stats_before = _nrt_python.memsys_get_stats_alloc()
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            done = regions.run_steps(*args, 0, 0, count, losses, *tail)
            after, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert done == count
        return after - before, peak - before, _nrt_python.memsys_get_stats_alloc() - stats_before

    enabled = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    try:
        run(len(sizes))  # warm-up: compilation
        held_4, peak_4, nrt_4 = run(4)
        held_40, peak_40, nrt_40 = run(40)
    finally:
        if not enabled:
            _nrt_python.memsys_disable_stats()
    # The call itself wraps each array argument once (a constant per call); the steps allocate
    # nothing, so 40 steps cost exactly what 4 do.
    n_arrays = sum(isinstance(a, np.ndarray) for a in (*args, losses, *tail))
    assert nrt_4 == nrt_40 <= n_arrays, (nrt_4, nrt_40, n_arrays)
    assert abs(held_40 - held_4) <= 256 and abs(peak_40 - peak_4) <= 256
    assert held_40 <= 1024 and peak_40 <= 4096


# --- The plan ---------------------------------------------------------------------------------


def test_preload_readies_the_run_steps_that_training_calls():
    """plan.preload (called by ``numbamlp train`` while the data loads) makes run_steps ready
    for the signature a real plan then calls with: no new compilation at the first step."""
    preload("float32", np.uint8)
    before = set(regions.run_steps.signatures)
    arch = Architecture.for_classes(9, [5], 3)
    optimizer = Optimizer.create("adam", arch.n_parameters, np.dtype(np.float32))
    plan = FusedPlan(arch, 4, np.float32, optimizer)
    state = plan.adopt_state(optimizer)
    theta = np.random.default_rng(0).normal(size=arch.n_parameters).astype(np.float32)
    X = np.arange(6 * 9, dtype=np.uint8).reshape(6, 9)
    y = np.array([0, 1, 2, 0, 1, 2], np.int64)
    steps = np.array([[0, 1, 2, 3], [4, 5, 0, 1]], np.int64)
    sizes, lrs, losses = np.array([4, 3], np.int64), np.full(2, 0.1), np.zeros(2)
    assert plan.run(theta, state, X, 1 / 255, y, steps, sizes, lrs, 0, 0, 2, losses) == 2
    assert set(regions.run_steps.signatures) == before


def test_work_items_cover_every_row_once():
    """The cuts of region 2 are increasing, start at 0, end at the number of rows of
    W^1..W^L, fall on multiples of 4 rows inside a layer, and give items of about equal cost
    (a row of W^m costs d_{m−1} + 1)."""
    arch = Architecture.for_classes(784, [32], 10)
    costs = np.concatenate([np.full(32, 785), np.full(10, 33)])
    for n_items in (1, 2, 3, 4, 8):
        cuts = layout.balanced_cuts(arch, n_items)
        assert cuts[0] == 0 and cuts[-1] == 42 and len(cuts) == n_items + 1
        assert (np.diff(cuts) >= 0).all()
        assert all(c % 4 == 0 or c >= 32 for c in cuts[1:-1])
        item_costs = [costs[a:b].sum() for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
        assert max(item_costs) - min(item_costs) <= 4 * 785 + 10 * 33
    assert list(layout.balanced_cuts(arch, 2)) == [0, 16, 42]


def test_run_rejects_what_the_kernels_cannot_check():
    arch = architecture(2, "softmax", ["tanh"])
    X, scale, y = inputs("uint8", np.float32)
    matrix, sizes = minibatches(BATCH_SIZES)
    lrs, losses = step_sizes("adam", len(sizes)), np.zeros(len(sizes))
    y_bad = y.copy()
    y_bad[0] = 3
    plan, state = fused_plan(arch, np.float32, "adam")
    theta = initial_theta(arch, np.float32)
    with pytest.raises(NumbamlpError, match="theta"):
        plan.run(theta.astype(np.float64), state, X, scale, y, matrix, sizes, lrs, 0, 0, 1, losses)
    bad = matrix.copy()
    bad[1, 0] = N_ROWS
    with pytest.raises(NumbamlpError, match="rows of X"):
        plan.run(theta, state, X, scale, y, bad, sizes, lrs, 0, 0, 3, losses)
    with pytest.raises(NumbamlpError, match="labels"):
        plan.run(theta, state, X, scale, y_bad, matrix, sizes, lrs, 0, 0, 1, losses)
    too_big = sizes.copy()
    too_big[0] = max(BATCH_SIZES) + 1
    with pytest.raises(NumbamlpError, match="batch sizes"):
        plan.run(theta, state, X, scale, y, matrix, too_big, lrs, 0, 0, 1, losses)


def test_fused_cites_every_equation_it_computes():
    """Each equation of a training step is cited next to the code of the fused engine that
    computes it (test_equations.py checks that every cited tag is registered)."""
    cited = set()
    for path in sorted(Path(layout.__file__).parent.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
                while first > 0 and lines[first - 1].lstrip().startswith("#"):
                    first -= 1
                source = "\n".join(lines[first : node.end_lineno])
                cited |= set(re.findall(r"\b[A-Z]\.\d+\b", source))
    needed = {"F.1", "F.2", "F.3", "F.4", "L.1", "S.1", "B.1", "B.2", "B.3", "B.4"}
    needed |= {f"U.{k}" for k in range(1, 7)} | {"R.1"}
    assert needed <= cited, sorted(needed - cited)


# --- Regression (F.5, L.2, B.5) and sample weights (S.2) ---------------------------------------


def regression_targets(dtype, T: int = 3, seed: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(N_ROWS, T)).astype(dtype)


def sample_weights(seed: int = 5) -> np.ndarray:
    """Weights of very different sizes, a few of them 0."""
    w = np.random.default_rng(seed).uniform(0.0, 4.0, size=N_ROWS)
    w[::7] = 0.0
    return w


def compare_extended(depth, head, activations, name, dtype, rtol, weighted, shard_bytes=None):
    """compare() for the identity head (3 targets) and/or sample weights."""
    arch = architecture(depth, head, activations)
    X, scale, y = inputs("float", dtype, arch.n_classes)
    targets = regression_targets(dtype, arch.n_outputs) if head == "identity" else None
    weights = sample_weights() if weighted else None
    matrix, sizes = minibatches(BATCH_SIZES)
    lrs = step_sizes(name, len(sizes))
    theta0 = initial_theta(arch, dtype)
    expected = per_kernel_steps(
        arch, theta0, name, X, scale, y, matrix, sizes, lrs, targets, weights
    )
    options = {} if shard_bytes is None else {"shard_bytes": shard_bytes}
    got = fused_steps(
        arch, theta0, name, X, scale, y, matrix, sizes, lrs, (1, None), targets, weights,
        **options,
    )  # fmt: skip
    assert not np.array_equal(got[0], theta0)
    for a, b in zip(got, expected, strict=True):
        if b.size:
            assert_close(a, b, rtol)
    return got


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shard_bytes", [None, 0])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_regression_matches_the_per_kernel_path(name, depth, shard_bytes, weighted):
    """The identity head with the squared error, L = 1..3, with and without gradient shards
    and sample weights: float64 to rounding, as the classifier."""
    compare_extended(depth, "identity", ["tanh", "relu"], name, np.float64, 1e-12, weighted,
                     shard_bytes)  # fmt: skip


@pytest.mark.parametrize("activation", ["sigmoid", "softplus"])
def test_regression_float32_matches_the_per_kernel_path(activation):
    compare_extended(3, "identity", [activation, activation], "adam", np.float32, 1e-5, True)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_weighted_classification_matches_the_per_kernel_path(dtype, depth, head):
    """Sample weights (S.2) on the cross-entropy of both heads."""
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    compare_extended(depth, head, ["sigmoid", "tanh"], "momentum", dtype, rtol, True)


def test_weights_change_the_steps():
    """The weights are not ignored: weighted and unweighted runs differ."""
    weighted = compare_extended(2, "identity", ["tanh"], "sgd", np.float64, 1e-12, True)
    plain = compare_extended(2, "identity", ["tanh"], "sgd", np.float64, 1e-12, False)
    assert not np.allclose(weighted[0], plain[0])
    assert not np.allclose(weighted[2], plain[2])


@needs_two_threads
@pytest.mark.parametrize("head", ["identity", "softmax"])
def test_regression_and_weights_bitwise_for_any_thread_count(head, restore_threads):
    """1 and 2 threads, 1 and 3 work items: the same bits (the weights' sum is one thread's)."""
    results = []
    for threads, n_items in ((1, 1), (2, 2), (2, 3)):
        numba.set_num_threads(threads)
        arch = architecture(3, head, ["tanh", "sigmoid"])
        X, scale, y = inputs("float", np.float32, arch.n_classes)
        targets = regression_targets(np.float32, arch.n_outputs) if head == "identity" else None
        matrix, sizes = minibatches(BATCH_SIZES)
        lrs = step_sizes("adam", len(sizes))
        got = fused_steps(
            arch, initial_theta(arch, np.float32), "adam", X, scale, y, matrix, sizes, lrs,
            (None,), targets, sample_weights(), n_items=n_items,
        )  # fmt: skip
        results.append(tuple(a.tobytes() for a in got))
    assert results[0] == results[1] == results[2]


def test_plan_checks_targets_and_weights():
    arch = architecture(2, "identity", ["tanh"])
    X, scale, y = inputs("float", np.float64, arch.n_classes)
    matrix, sizes = minibatches(BATCH_SIZES)
    lrs = step_sizes("sgd", len(sizes))
    plan, state = fused_plan(arch, np.float64, "sgd")
    theta, losses = initial_theta(arch, np.float64), np.zeros(len(sizes))
    with pytest.raises(NumbamlpError, match="targets"):
        plan.run(theta, state, X, scale, None, matrix, sizes, lrs, 0, 0, 1, losses)
    with pytest.raises(NumbamlpError, match="weights"):
        plan.run(
            theta, state, X, scale, None, matrix, sizes, lrs, 0, 0, 1, losses, None,
            regression_targets(np.float64), np.ones(3),
        )  # fmt: skip
