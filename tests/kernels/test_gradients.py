"""Gradients against finite differences: FB §2 Q1 (J.1), Q2 (B.1, with the typo corrected),
Q3 (the δ recursion, B.2–B.4), and the MMiDS §7.2 vector–Jacobian view of the γ̃ head.

Central differences (g(x + h) − g(x − h)) / 2h have error O(h²); in float64 with h = 1e-6 a
correct derivative agrees to about 1e-9 absolutely, a wrong formula is off by O(1).
"""

from __future__ import annotations

import numpy as np
import pytest

from numbamlp.kernels.activations import CODES
from numbamlp.kernels.backward import output_delta, softmax_jacobian
from numbamlp.kernels.forward import cross_entropy, modified_softmax_forward, softmax_forward
from numbamlp.model import passes, reference
from numbamlp.model.gradcheck import check_gradient, numerical_gradient, relative_error
from numbamlp.model.mlp import MLP
from numbamlp.model.network import Parameters

H = 1e-6  # finite-difference step


def softmax_of(z: np.ndarray, head: str) -> np.ndarray:
    """f = softmax(z) (F.3) or γ̃(z) (F.4) of one logit vector, through the kernels."""
    K = z.shape[0] + (1 if head == "modified-softmax" else 0)
    f = np.empty((1, K))
    kernel = softmax_forward if head == "softmax" else modified_softmax_forward
    kernel(f, np.ascontiguousarray(z[None, :]))
    return f[0]


def loss_of(z: np.ndarray, y: int, n_classes: int) -> float:
    """ℓ(z) = −log f_Y (L.1) of one logit vector, through the kernel."""
    out = np.empty(1)
    cross_entropy(out, np.ascontiguousarray(z[None, :]), np.array([y], dtype=np.int64), n_classes)
    return float(out[0])


def central_jacobian(g, z: np.ndarray) -> np.ndarray:
    """D[i, j] = ∂ g(z)_j / ∂ z_i by central differences (rows: the variable z_i)."""
    rows = []
    for i in range(z.shape[0]):
        e = np.zeros_like(z)
        e[i] = H
        rows.append((np.atleast_1d(g(z + e)) - np.atleast_1d(g(z - e))) / (2 * H))
    return np.array(rows)


# --- FB §2 Q1: the softmax Jacobian ---------------------------------------------------------


@pytest.mark.parametrize("M", [2, 3, 7, 13])
def test_softmax_jacobian_matches_finite_differences(M):
    """FB §2 Q1 (J.1): ∂_{z_i} softmax(z)_j = softmax_i (1 − softmax_i) if i = j,
    −softmax_i softmax_j otherwise; the kernel, the oracle and central differences agree."""
    rng = np.random.default_rng(M)
    z = rng.normal(scale=2.0, size=M)
    f = softmax_of(z, "softmax")
    J = np.empty((M, M))
    softmax_jacobian(J, f)
    numeric = central_jacobian(lambda u: softmax_of(u, "softmax"), z)
    np.testing.assert_allclose(J, numeric, atol=1e-9)
    np.testing.assert_allclose(J, reference.softmax_jacobian(f), rtol=1e-12, atol=1e-15)
    # The two cases of Q1, entry by entry.
    for i in range(M):
        for j in range(M):
            expected = f[i] * (1 - f[i]) if i == j else -f[i] * f[j]
            assert J[i, j] == pytest.approx(expected, rel=1e-12, abs=1e-16)


# --- FB §2 Q2: the gradient at the output layer ---------------------------------------------


@pytest.mark.parametrize("head", ["softmax", "modified-softmax"])
@pytest.mark.parametrize("K", [2, 3, 7])
def test_output_gradient_is_f_minus_onehot(K, head):
    """FB §2 Q2 (B.1): ∇_{z^L} ℓ = f_θ(X) − 1_Y, checked against central differences of the
    cross-entropy (L.1) in z^L, for every label Y — for softmax and for γ̃ (K−1 logits, where
    the gradient is the first K−1 entries of f − 1_Y, and Y = K is the reference class).

    The notes print "∇_{z^L} ℓ = ℓ_θ(X,Y) − 1_Y" (in Q2's last step and in Q3); that is a typo
    for f_θ(X) − 1_Y, and the typo's value is shown to be wrong here.
    """
    rng = np.random.default_rng(K)
    d_L = K if head == "softmax" else K - 1
    z = rng.normal(scale=1.5, size=d_L)
    f = softmax_of(z, head)
    for y in range(K):
        numeric = central_jacobian(lambda u, y=y: loss_of(u, y, K), z)[:, 0]
        onehot = np.eye(K)[y]
        corrected = (f - onehot)[:d_L]
        np.testing.assert_allclose(corrected, numeric, atol=1e-9)
        # The kernel (B.1) computes exactly the corrected formula.
        delta = np.empty((1, d_L))
        output_delta(delta, f[None, :], np.array([y], dtype=np.int64))
        np.testing.assert_allclose(delta[0], numeric, atol=1e-9)
        # The formula as printed, ℓ − 1_Y, is not the gradient: it misses by far more than the
        # 1e-9 to which the correct one agrees (for K = 2 and one logit, ℓ and f happen to be
        # within 1e-2 of each other, hence the modest threshold).
        as_printed = (loss_of(z, y, K) - onehot)[:d_L]
        assert np.abs(as_printed - numeric).max() > 1e-3


@pytest.mark.parametrize("K", [2, 3, 7])
def test_modified_softmax_vector_jacobian_product(K):
    """MMiDS §7.2: q_{L+1} = C_K[z]ᵀ q_{L+2} with q_{L+2} = [−y_i / γ̃(z)_i] and C_K = J_γ̃,
    the K × (K−1) Jacobian of γ̃. The vector–Jacobian product is the same δ^L = (f − 1_Y)_{<K}
    that (B.1) computes directly: the two views of the output gradient agree."""
    rng = np.random.default_rng(K + 10)
    z = rng.normal(size=K - 1)
    f = softmax_of(z, "modified-softmax")
    C = central_jacobian(lambda u: softmax_of(u, "modified-softmax"), z).T  # (K, K−1)
    # C_K[z]_{ij} = ∂γ̃_i/∂z_j = f_i (1_{i=j} − f_j): the first K−1 columns of J.1 at (z, 0).
    np.testing.assert_allclose(C, reference.softmax_jacobian(f)[:, : K - 1], atol=1e-9)
    for y in range(K):
        onehot = np.eye(K)[y]
        q = -onehot / f
        np.testing.assert_allclose(C.T @ q, (f - onehot)[: K - 1], atol=1e-8)


# --- FB §2 Q3: the whole network --------------------------------------------------------------

N_INPUTS, N_CLASSES, N_SAMPLES = 4, 3, 6
HIDDEN = [5, 4, 3]  # d_1..d_3; depth L uses the first L−1


def gradcheck_cases():
    for head in ("softmax", "modified-softmax"):
        yield pytest.param(1, None, head, id=f"L1-{head}")  # no hidden layer, no φ
        for L in (2, 3, 4):
            for name in CODES:
                yield pytest.param(L, name, head, id=f"L{L}-{name}-{head}")


def build_problem(L: int, activation: str | None, head: str, dtype: str = "float64"):
    """A small network with random (non-zero) biases and a batch holding every class.

    Reseeds until every hidden pre-activation is at least 1e-4 from 0, so a ±ε perturbation of
    θ never crosses a relu/leaky-relu kink, where central differences and φ′ disagree.
    """
    for seed in range(100):
        rng = np.random.default_rng(seed)
        model = MLP.create(
            N_INPUTS,
            HIDDEN[: L - 1],
            N_CLASSES,
            activations=activation or [],
            head=head,
            dtype=dtype,
            rng=rng,
        )
        for k in range(1, L + 1):
            model.params.b[k][...] = rng.normal(scale=0.5, size=model.params.b[k].shape)
        X = rng.normal(size=(N_SAMPLES, N_INPUTS))
        y = np.arange(N_SAMPLES) % N_CLASSES  # every class, incl. γ̃'s reference class
        Z, _, _ = reference.forward(model.architecture, model.params.W, model.params.b, X)
        if all(np.abs(Z[k]).min() > 1e-4 for k in range(1, L)):
            return model, X, y
    raise AssertionError("no seed keeps the pre-activations off the kinks")


@pytest.mark.parametrize("L,activation,head", list(gradcheck_cases()))
def test_backprop_matches_central_differences(L, activation, head):
    """FB §2 Q2–Q3 (B.1–B.4, S.1): every ∇W^k, ∇b^k of the mean loss, for every activation,
    both heads and depths L = 1..4, equals central differences to relative error < 1e-6."""
    model, X, y = build_problem(L, activation, head)
    checks = check_gradient(model, X, y, eps=1e-6)
    assert [c.name for c in checks] == [f"{p}^{k}" for k in range(1, L + 1) for p in "Wb"]
    for check in checks:
        assert check.relative_error < 1e-6, check


@pytest.mark.parametrize("L,activation,head", list(gradcheck_cases()))
def test_backprop_matches_matrix_form_oracle(L, activation, head):
    """The loop kernels and the matrix-form oracle (reference.loss_and_gradient) give the same
    loss and gradient to rounding: the index form and the matrix form are one equation."""
    model, X, y = build_problem(L, activation, head)
    loss, grads = model.loss_and_gradient(X, y)
    ref_loss, gW, gb = reference.loss_and_gradient(
        model.architecture, model.params.W, model.params.b, X, y
    )
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for k in range(1, L + 1):
        np.testing.assert_allclose(grads.W[k], gW[k], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(grads.b[k], gb[k], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("head", ["softmax", "modified-softmax"])
def test_float32_gradient_is_close_to_float64_oracle(head):
    """The float32 kernels compute the same gradient to float32 precision."""
    model64, X, y = build_problem(3, "tanh", head)
    arch = model64.architecture
    model32 = MLP(arch, Parameters(arch, model64.params.theta.astype(np.float32)))
    _, g32 = model32.loss_and_gradient(X.astype(np.float32), y)
    assert g32.theta.dtype == np.float32
    _, g64 = model64.loss_and_gradient(X, y)
    assert relative_error(g32.theta.astype(np.float64), g64.theta) < 1e-5


def test_gradient_check_detects_the_typo_formula(monkeypatch):
    """The check has teeth: with the output delta replaced by the notes' literal typo
    δ^L = ℓ − 1_Y, the gradient check fails by orders of magnitude."""
    model, X, y = build_problem(2, "sigmoid", "softmax")

    def typo_output_delta(delta_L, f, labels):
        losses = -np.log(f[np.arange(f.shape[0]), labels])
        delta_L[...] = losses[:, None] - np.eye(f.shape[1])[labels][:, : delta_L.shape[1]]

    monkeypatch.setattr(passes, "output_delta", typo_output_delta)
    worst = max(c.relative_error for c in check_gradient(model, X, y))
    assert worst > 1e-2


def test_numerical_gradient_restores_theta():
    """numerical_gradient perturbs θ in place and must leave it exactly as it found it."""
    model, X, y = build_problem(2, "relu", "softmax")
    before = model.params.theta.copy()
    numerical_gradient(model, X, y)
    assert np.array_equal(model.params.theta, before)


def test_relative_error():
    """‖a − b‖ / (‖a‖ + ‖b‖): 0 for equal vectors (including two zero vectors), 1 for a vs −a."""
    a = np.array([3.0, 4.0])
    assert relative_error(a, a) == 0.0
    assert relative_error(np.zeros(2), np.zeros(2)) == 0.0
    assert relative_error(a, -a) == pytest.approx(1.0)
    assert relative_error(a, a * (1 + 1e-9)) == pytest.approx(0.5e-9, rel=1e-3)
