"""Every forward/backward kernel against the NumPy matrix-form oracle (numbamlp.model.reference).

The kernels are the index-level formulas of FB §2 written as loops over samples s and units i, j;
the oracle is the same equation in matrix form (rows are samples, Z^k = H^{k−1} (W^k)ᵀ + b^k).
float64 must agree to rounding (rtol 1e-12), float32 to its own precision (1e-5). Shapes include
1 (B = 1, d = 1, M = 2) and sizes that are not multiples of a SIMD width (7, 13, 33). Every
output buffer starts full of NaN: a kernel must overwrite its outputs, never read them, because
the training loop reuses one workspace for every step.
"""

from __future__ import annotations

import numpy as np
import pytest

from numbamlp.kernels.activations import CODES
from numbamlp.kernels.backward import (
    bias_gradient,
    hidden_delta,
    output_delta,
    softmax_jacobian,
    weight_gradient,
)
from numbamlp.kernels.forward import (
    activation_forward,
    affine_forward,
    batch_mean,
    cross_entropy,
    gather_batch,
    gather_labels,
    modified_softmax_forward,
    predict_classes,
    softmax_forward,
)
from numbamlp.model import reference

DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-12, np.float32: 1e-5}
# (B, d_in, d_out): one sample / one input / the smallest head, and odd widths.
SHAPES = [(1, 1, 2), (7, 13, 33), (13, 33, 7), (33, 7, 13)]
N_CLASSES = [2, 7, 13, 33]


def nan_buffer(shape, dtype):
    return np.full(shape, np.nan, dtype=dtype)


def draw(rng, shape, dtype, scale=1.0):
    """Normal numbers, rounded to ``dtype``; the oracle then sees the same rounded inputs."""
    return (scale * rng.normal(size=shape)).astype(dtype)


def assert_close(got, expected, dtype, scale=1.0):
    """|got − expected| ≤ rtol (|expected| + scale): relative, with the size of the summands as
    the absolute floor (a sum of 33 products can cancel to a small number)."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape
    bound = RTOL[dtype] * (np.abs(expected) + scale)
    err = np.abs(got - expected)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.ndim else ()
    assert (err <= bound).all(), (
        f"max |error| {err.max():.3g}; at {worst}: got {got[worst]!r}, expected "
        f"{expected[worst]!r}, bound {bound[worst]:.3g}"
    )


def test_gather_batch_copies_the_indexed_rows():
    """h^0_{s,:} = X_{I_s,:}, with repeated indices (I.1 draws with replacement)."""
    rng = np.random.default_rng(0)
    for dtype in DTYPES:
        X = draw(rng, (29, 13), dtype)
        indices = np.array([3, 0, 28, 3, 17, 5, 5], dtype=np.int64)
        h0 = nan_buffer((7, 13), dtype)
        gather_batch(h0, X, indices, np.dtype(dtype).type(1.0))
        assert np.array_equal(h0, X[indices])
        y = np.arange(29, dtype=np.int64) * 7 % 10
        labels = np.full(7, -1, dtype=np.int64)
        gather_labels(labels, y, indices)
        assert np.array_equal(labels, y[indices])


def test_gather_batch_scales_raw_bytes_like_the_dataset():
    """uint8 pixels gathered with c = 1/255 equal the Dataset's float32 features bitwise."""
    from numbamlp.datasets.loaders import PIXEL_SCALE, scaled_features

    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, size=(40, 9), dtype=np.uint8)
    indices = np.array([39, 0, 7, 7, 12], dtype=np.int64)
    for dtype in DTYPES:
        h0 = nan_buffer((5, 9), dtype)
        gather_batch(h0, X, indices, np.dtype(dtype).type(PIXEL_SCALE))
        expected = scaled_features(X[indices], PIXEL_SCALE).astype(dtype)
        if dtype == np.float32:
            assert np.array_equal(h0, expected)
        else:
            np.testing.assert_allclose(h0, X[indices] / 255.0, rtol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,d_in,d_out", SHAPES)
def test_affine_forward(B, d_in, d_out, dtype):
    """(F.1) z^k_{s,i} = b^k_i + Σ_j W^k_{ij} h^{k−1}_{s,j}  ⇔  Z = H Wᵀ + b."""
    rng = np.random.default_rng(B * 1000 + d_in)
    W, b, h = draw(rng, (d_out, d_in), dtype), draw(rng, d_out, dtype), draw(rng, (B, d_in), dtype)
    z = nan_buffer((B, d_out), dtype)
    affine_forward(z, W, b, h)
    f64 = np.float64
    expected = reference.affine(W.astype(f64), b.astype(f64), h.astype(f64))
    scale = np.abs(h.astype(f64)) @ np.abs(W.astype(f64)).T + np.abs(b)
    assert_close(z, expected, dtype, scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CODES))
def test_activation_forward(name, dtype):
    """(F.2) h^k_{s,i} = φ_k(z^k_{s,i}), elementwise, for every activation code."""
    rng = np.random.default_rng(CODES[name])
    for B, _, d in SHAPES:
        z = draw(rng, (B, d), dtype, scale=3.0)
        h = nan_buffer((B, d), dtype)
        activation_forward(h, z, CODES[name])
        expected = reference.PHI[name](z.astype(np.float64))
        assert_close(h, expected, dtype, scale=1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", N_CLASSES)
def test_softmax_forward(M, dtype):
    """(F.3) f_{s,i} = e^{z_{s,i}} / Σ_j e^{z_{s,j}}; each row is a probability vector."""
    rng = np.random.default_rng(M)
    for B in (1, 7, 13):
        z = draw(rng, (B, M), dtype, scale=4.0)
        f = nan_buffer((B, M), dtype)
        softmax_forward(f, z)
        assert_close(f, reference.softmax(z.astype(np.float64)), dtype)
        assert_close(f.sum(axis=1), np.ones(B), dtype)
        assert (f > 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("K", N_CLASSES)
def test_modified_softmax_forward(K, dtype):
    """(F.4) γ̃ (MMiDS §7.1): K−1 logits in, K probabilities out, class K with logit 0."""
    rng = np.random.default_rng(K + 100)
    for B in (1, 7, 13):
        z = draw(rng, (B, K - 1), dtype, scale=4.0)
        f = nan_buffer((B, K), dtype)
        modified_softmax_forward(f, z)
        assert_close(f, reference.modified_softmax(z.astype(np.float64)), dtype)
        assert_close(f.sum(axis=1), np.ones(B), dtype)
        # γ̃(z) = softmax((z, 0)): the explicit formula of F.4 for the reference class K.
        expected_last = 1.0 / (1.0 + np.exp(z.astype(np.float64)).sum(axis=1))
        assert_close(f[:, K - 1], expected_last, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head", ["softmax", "modified-softmax"])
@pytest.mark.parametrize("M", N_CLASSES)
def test_cross_entropy(M, head, dtype):
    """(L.1) ℓ_s = −log f_{s,Y_s} = log Σ_k e^{z_{s,k}} − z_{s,Y_s}, for both heads.

    Every class label occurs, including the γ̃ reference class K−1 (0-based), whose logit is the
    fixed 0 and has no column in z.
    """
    rng = np.random.default_rng(M + (500 if head == "softmax" else 900))
    d_L = M if head == "softmax" else M - 1
    B = 2 * M
    z = draw(rng, (B, d_L), dtype, scale=3.0)
    y = np.arange(B, dtype=np.int64) % M  # every class, twice
    losses = nan_buffer(B, dtype)
    cross_entropy(losses, z, y, M)
    z64 = z.astype(np.float64)
    assert_close(losses, reference.cross_entropy(z64, y, M), dtype, scale=1.0)
    # −log f_{Y}: the same number through the head's probabilities.
    f = reference.softmax(z64) if head == "softmax" else reference.modified_softmax(z64)
    assert_close(losses, -np.log(f[np.arange(B), y]), dtype, scale=1.0)
    assert (losses >= 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_mean(dtype):
    """(S.1) ℓ = (1/B) Σ_s ℓ_s."""
    rng = np.random.default_rng(7)
    for B in (1, 7, 33):
        values = np.abs(draw(rng, B, dtype))
        assert_close(batch_mean(values), values.astype(np.float64).mean(), dtype)
    assert batch_mean(np.array([2.5], dtype=dtype)) == 2.5


@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_classes_is_onecold_with_first_on_ties(dtype):
    """onecold(f) (MMiDS §7.3): the index of the largest probability, the first on ties."""
    rng = np.random.default_rng(3)
    f = draw(rng, (13, 7), dtype)
    f[0] = [0.1, 0.3, 0.3, 0.1, 0.1, 0.05, 0.05]  # tie between 1 and 2 → 1
    f[1] = 1.0 / 7  # all equal → 0
    f[2, -1] = 100.0  # the last class
    classes = np.full(13, -1, dtype=np.int64)
    predict_classes(classes, f)
    assert np.array_equal(classes, np.argmax(f, axis=1))
    assert classes[0] == 1 and classes[1] == 0 and classes[2] == 6


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head", ["softmax", "modified-softmax"])
@pytest.mark.parametrize("M", N_CLASSES)
def test_output_delta(M, head, dtype):
    """(B.1) δ^L_{s,i} = f_{s,i} − 1_{Y_s=i} (FB §2 Q2), for the d_L columns that have logits."""
    rng = np.random.default_rng(M + 7)
    d_L = M if head == "softmax" else M - 1
    B = 2 * M
    z = draw(rng, (B, d_L), dtype)
    f = np.empty((B, M), dtype)
    (softmax_forward if head == "softmax" else modified_softmax_forward)(f, z)
    y = np.arange(B, dtype=np.int64)[::-1] % M
    y = np.ascontiguousarray(y)
    delta = nan_buffer((B, d_L), dtype)
    output_delta(delta, f, y)
    expected = reference.output_delta(f.astype(np.float64), y, d_L)
    assert_close(delta, expected, dtype)
    # Each softmax row of δ^L sums to Σ f − 1 = 0; a γ̃ row is missing its K-th entry f_K − 1_{Y=K}.
    if head == "softmax":
        assert_close(delta.sum(axis=1), np.zeros(B), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B,d_in,d_out", SHAPES)
def test_bias_and_weight_gradients(B, d_in, d_out, dtype):
    """(B.2) ∇b^m = (1/B) Σ_s δ^m_s and (B.3) ∇W^m = (1/B) Σ_s δ^m_s (h^{m−1}_s)ᵀ, with (S.1)."""
    rng = np.random.default_rng(B + d_in + d_out)
    delta, h = draw(rng, (B, d_out), dtype), draw(rng, (B, d_in), dtype)
    inv_batch = dtype(1.0 / B)
    grad_b = nan_buffer(d_out, dtype)
    grad_W = nan_buffer((d_out, d_in), dtype)
    bias_gradient(grad_b, delta, inv_batch)
    weight_gradient(grad_W, delta, h, inv_batch)
    d64, h64 = delta.astype(np.float64), h.astype(np.float64)
    assert_close(grad_b, reference.bias_gradient(d64), dtype, scale=np.abs(d64).mean(axis=0))
    scale = np.abs(d64).T @ np.abs(h64) / B
    assert_close(grad_W, reference.weight_gradient(d64, h64), dtype, scale)
    # B = 1: the gradient of one sample is exactly δ hᵀ (FB §2 Q3), no averaging.
    if B == 1:
        assert np.array_equal(grad_W, np.outer(delta[0], h[0]))
        assert np.array_equal(grad_b, delta[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_overwrite_stale_inf_and_nan(dtype):
    """The gradient buffers are reused every step: whatever they held before (even inf/NaN from a
    diverged step) must not leak into the next gradient."""
    rng = np.random.default_rng(11)
    delta, h = draw(rng, (7, 13), dtype), draw(rng, (7, 33), dtype)
    for stale in (np.inf, -np.inf, np.nan):
        grad_b = np.full(13, stale, dtype)
        grad_W = np.full((13, 33), stale, dtype)
        bias_gradient(grad_b, delta, dtype(1 / 7))
        weight_gradient(grad_W, delta, h, dtype(1 / 7))
        assert np.isfinite(grad_b).all() and np.isfinite(grad_W).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CODES))
def test_hidden_delta(name, dtype):
    """(B.4) δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · φ′_m(z^m_{s,j})
    ⇔ Δ^m = (Δ^{m+1} W^{m+1}) ⊙ φ′(Z^m)  (FB §2 Q3)."""
    rng = np.random.default_rng(CODES[name] + 40)
    for B, d_m, d_next in SHAPES:
        W_next = draw(rng, (d_next, d_m), dtype)
        delta_next = draw(rng, (B, d_next), dtype)
        z = draw(rng, (B, d_m), dtype, scale=2.0)
        delta = nan_buffer((B, d_m), dtype)
        hidden_delta(delta, W_next, delta_next, z, CODES[name])
        W64, dn64, z64 = (a.astype(np.float64) for a in (W_next, delta_next, z))
        expected = reference.hidden_delta(W64, dn64, z64, name)
        # φ′ ≤ 1 is known to ±rtol absolutely (1 − tanh² cancels where φ′ is small), so the
        # size of ∇_h ℓ = Σ_i |W_ij δ_i| is the error floor.
        assert_close(delta, expected, dtype, scale=np.abs(dn64) @ np.abs(W64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("M", N_CLASSES)
def test_softmax_jacobian_kernel_matches_oracle(M, dtype):
    """(J.1) ∂_{z_i} softmax(z)_j = softmax(z)_i (1_{i=j} − softmax(z)_j) = (diag f − f fᵀ)_{ij}."""
    rng = np.random.default_rng(M + 3)
    f = np.empty((1, M), dtype)
    softmax_forward(f, draw(rng, (1, M), dtype))
    J = nan_buffer((M, M), dtype)
    softmax_jacobian(J, np.ascontiguousarray(f[0]))
    assert_close(J, reference.softmax_jacobian(f[0].astype(np.float64)), dtype)
    assert_close(J, J.T, dtype)  # symmetric
    assert_close(J.sum(axis=1), np.zeros(M), dtype)  # Σ_j f_j = 1 ⇒ rows sum to 0


# --- Numerics at extreme logits -----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_with_huge_logits_is_finite_and_normalised(dtype):
    """(F.3)/(F.4) with logits ±1e4: e^{1e4} overflows, e^{z − max z} does not."""
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype)
    f = nan_buffer((3, 3), dtype)
    softmax_forward(f, z)
    assert np.isfinite(f).all()
    np.testing.assert_array_equal(f[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(f[1], [1 / 3] * 3, rtol=RTOL[dtype])
    np.testing.assert_array_equal(f[2], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(f.sum(axis=1), 1.0, rtol=RTOL[dtype])
    g = nan_buffer((3, 4), dtype)
    modified_softmax_forward(g, z)  # the reference class adds the logit 0
    assert np.isfinite(g).all()
    np.testing.assert_array_equal(g[0], [1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(g[1], [0.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(g.sum(axis=1), 1.0, rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head", ["softmax", "modified-softmax"])
def test_cross_entropy_with_huge_logits_never_takes_log_zero(head, dtype):
    """(L.1) computed as log Σ e^z − z_Y: a confidently correct sample costs ≈ 0, a confidently
    wrong one ≈ 2e4 (the logit gap), where −log f_Y would be −log 0 = inf."""
    M = 3
    z = np.array([[1e4, -1e4, -1e4], [1e4, -1e4, -1e4], [-1e4, -1e4, -1e4]], dtype)
    if head == "modified-softmax":
        z = np.ascontiguousarray(z[:, : M - 1])
    y = np.array([0, 1, 2], dtype=np.int64)  # correct, wrong, (γ̃: the reference class)
    losses = nan_buffer(3, dtype)
    cross_entropy(losses, z, y, M)
    assert np.isfinite(losses).all()
    assert losses[0] == pytest.approx(0.0, abs=1e-12)
    assert losses[1] == pytest.approx(2e4, rel=RTOL[dtype])
    if head == "softmax":
        assert losses[2] == pytest.approx(np.log(3.0), rel=RTOL[dtype])  # three equal logits
    else:
        assert losses[2] == pytest.approx(0.0, abs=1e-12)  # logit 0 ≫ −1e4: certain of class K
    np.testing.assert_allclose(
        losses, reference.cross_entropy(z.astype(np.float64), y, M), rtol=RTOL[dtype], atol=1e-12
    )
