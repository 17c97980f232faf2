"""Gradients of the regression head and of the weighted risk against finite differences, in
float64: the identity head (F.5) with the squared error (L.2), whose output delta is f − y (B.5),
for 1 and 3 targets, L = 1..3 and every activation; and the weighted minibatch mean (S.2) of
either loss. Each gradient is also compared with the matrix-form oracle (reference.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from numbamlp.kernels.activations import CODES
from numbamlp.model import passes, reference
from numbamlp.model.gradcheck import check_gradient
from numbamlp.model.mlp import MLP

N_INPUTS, N_SAMPLES = 4, 7
HIDDEN = [5, 3]  # d_1, d_2; depth L uses the first L−1


def cases():
    for T in (1, 3):
        yield pytest.param(1, None, T, id=f"L1-T{T}")  # no hidden layer: linear regression
        for L in (2, 3):
            for name in CODES:
                yield pytest.param(L, name, T, id=f"L{L}-{name}-T{T}")


def build_problem(L: int, activation: str | None, T: int, head: str = "identity"):
    """Random non-zero biases, targets y ~ N(0, 1) (n, T) (labels for a classifier), the
    pre-activations at least 1e-4 from relu's kink."""
    for seed in range(100):
        rng = np.random.default_rng(seed)
        model = MLP.create(
            N_INPUTS, HIDDEN[: L - 1], T, activations=activation or [], head=head,
            dtype="float64", rng=rng,
        )  # fmt: skip
        for k in range(1, L + 1):
            model.params.b[k][...] = rng.normal(scale=0.5, size=model.params.b[k].shape)
        X = rng.normal(size=(N_SAMPLES, N_INPUTS))
        if head == "identity":
            y = rng.normal(size=(N_SAMPLES, T))
        else:
            y = np.arange(N_SAMPLES) % model.architecture.n_classes
        Z, _, _ = reference.forward(model.architecture, model.params.W, model.params.b, X)
        if all(np.abs(Z[k]).min() > 1e-4 for k in range(1, L)):
            return model, X, y, rng
    raise AssertionError("no seed keeps the pre-activations off the kinks")


def assert_gradient_checks(model, X, y, sample_weight=None):
    checks = check_gradient(model, X, y, eps=1e-6, sample_weight=sample_weight)
    L = model.architecture.L
    assert [c.name for c in checks] == [f"{p}^{k}" for k in range(1, L + 1) for p in "Wb"]
    for check in checks:
        assert check.relative_error < 1e-6, check


@pytest.mark.parametrize("L,activation,T", list(cases()))
def test_squared_error_gradient_matches_central_differences(L, activation, T):
    """(F.5, L.2, B.5) with B.2–B.4 and S.1: every ∇W^k, ∇b^k of ½‖f − y‖²'s mean."""
    model, X, y, _ = build_problem(L, activation, T)
    assert_gradient_checks(model, X, y)


@pytest.mark.parametrize("L,activation,T", list(cases()))
def test_weighted_squared_error_gradient_matches_central_differences(L, activation, T):
    """(S.2) Σ_s w_s ℓ_s / Σ_s w_s, with weights of very different sizes and one zero."""
    model, X, y, rng = build_problem(L, activation, T)
    weights = rng.uniform(0.0, 5.0, size=N_SAMPLES)
    weights[2] = 0.0
    assert_gradient_checks(model, X, y, weights)


@pytest.mark.parametrize("head", ["softmax", "modified-softmax"])
@pytest.mark.parametrize("L", [1, 2, 3])
def test_weighted_cross_entropy_gradient_matches_central_differences(L, head):
    """(S.2) on the classifier's loss (L.1, B.1)."""
    model, X, y, rng = build_problem(L, "tanh", 3, head)
    assert_gradient_checks(model, X, y, rng.uniform(0.0, 5.0, size=N_SAMPLES))


@pytest.mark.parametrize("head", ["identity", "softmax"])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_the_matrix_form_oracle(weighted, head):
    """The loop kernels and reference.loss_and_gradient: one equation, to rounding."""
    model, X, y, rng = build_problem(3, "sigmoid", 3, head)
    weights = rng.uniform(0.0, 5.0, size=N_SAMPLES) if weighted else None
    loss, grads = model.loss_and_gradient(X, y, sample_weight=weights)
    ref_loss, gW, gb = reference.loss_and_gradient(
        model.architecture, model.params.W, model.params.b, X, y, sample_weight=weights
    )
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert model.loss(X, y, sample_weight=weights) == pytest.approx(ref_loss, rel=1e-12)
    for k in range(1, 4):
        np.testing.assert_allclose(grads.W[k], gW[k], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(grads.b[k], gb[k], rtol=1e-12, atol=1e-15)


def test_gradient_check_detects_a_wrong_output_delta(monkeypatch):
    """The check has teeth: δ^L = y − f (the sign flipped) or 2(f − y) (the ½ of L.2 dropped)
    fails it by orders of magnitude."""
    model, X, y, _ = build_problem(2, "tanh", 3)
    for wrong in (lambda f, t: t - f, lambda f, t: 2.0 * (f - t)):

        def wrong_delta(delta_L, f, targets, wrong=wrong):
            delta_L[...] = wrong(f, targets)

        monkeypatch.setattr(passes, "squared_error_delta", wrong_delta)
        assert max(c.relative_error for c in check_gradient(model, X, y)) > 1e-2


def test_gradient_check_detects_unweighted_deltas(monkeypatch):
    """The check has teeth for S.2 too: weighting ℓ_s but not δ^L fails it."""
    model, X, y, rng = build_problem(2, "tanh", 3)
    monkeypatch.setattr(passes, "weight_output_delta", lambda delta_L, omega: None)
    worst = max(
        c.relative_error
        for c in check_gradient(model, X, y, sample_weight=rng.uniform(0.0, 5.0, N_SAMPLES))
    )
    assert worst > 1e-2


def test_targets_are_checked():
    """(n,) targets are one target; wrong shapes and NaN are refused with the shape named."""
    from numbamlp.errors import NumbamlpError

    model, X, y, _ = build_problem(1, None, 1)
    assert model.check_targets(y[:, 0], N_SAMPLES).shape == (N_SAMPLES, 1)
    with pytest.raises(NumbamlpError, match="rows × 1 target"):
        model.check_targets(np.zeros((N_SAMPLES, 2)), N_SAMPLES)
    with pytest.raises(NumbamlpError, match="NaN"):
        model.check_targets(np.full(N_SAMPLES, np.nan), N_SAMPLES)
    with pytest.raises(NumbamlpError, match="`sample_weight`"):
        model.check_sample_weight(-np.ones(N_SAMPLES), N_SAMPLES)
    with pytest.raises(NumbamlpError, match="positive sum"):
        model.check_sample_weight(np.zeros(N_SAMPLES), N_SAMPLES)
