"""Optimizer updates U.1–U.6: three steps of each kernel against its formula written out in NumPy.

FB §1 Q2 gives plain SGD (U.1) and names Adagrad, Adadelta, RMSprop and Adam as improvements;
MMiDS §7.3 trains with Flux's ADAM(). Each test runs three steps p = 1, 2, 3 on a small vector
with a fixed gradient sequence g_1, g_2, g_3 and step sizes γ_1, γ_2, γ_3, non-default
hyperparameters, and compares θ_p and the optimizer state after every step.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from numbamlp.errors import NumbamlpError
from numbamlp.kernels.optimizers import OPTIMIZERS, Optimizer

THETA0 = np.array([0.5, -1.0, 2.0, 0.0, 1e-3, -0.25, 3.0])
GRADS = [
    np.array([0.1, -0.2, 0.0, 1.5, -3.0, 1e-4, 0.7]),
    np.array([0.3, 0.2, -0.5, 1.0, -1.0, 2e-4, -0.7]),
    np.array([-0.2, 0.0, 0.5, 0.5, 2.0, -1e-4, 0.1]),
]
LRS = [0.1, 0.05, 0.025]  # γ_p changes between steps, as a schedule would make it
HYPER = {
    "sgd": {},
    "momentum": {"mu": 0.8},
    "adagrad": {"eps": 1e-7},
    "adadelta": {"rho": 0.85, "eps": 1e-5},
    "rmsprop": {"rho": 0.8, "eps": 1e-7},
    "adam": {"beta1": 0.8, "beta2": 0.95, "eps": 1e-7},
}


def formula_steps(name: str, hyper: dict[str, float]) -> list[tuple[np.ndarray, dict]]:
    """θ_p and the state after p = 1, 2, 3, straight from the formulas of U.1–U.6 (float64)."""
    theta = THETA0.copy()
    zeros = np.zeros_like(theta)
    v, G, E, D, m = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
    out = []
    for p, (g, lr) in enumerate(zip(GRADS, LRS, strict=True), start=1):
        if name == "sgd":
            # (U.1) θ_p = θ_{p−1} − γ_p g_p
            theta = theta - lr * g
            state = {}
        elif name == "momentum":
            # (U.2) v_p = μ v_{p−1} + g_p,  θ_p = θ_{p−1} − γ_p v_p
            v = hyper["mu"] * v + g
            theta = theta - lr * v
            state = {"velocity": v}
        elif name == "adagrad":
            # (U.3) G_p = G_{p−1} + g_p²,  θ_p = θ_{p−1} − γ_p g_p / (√G_p + ε)
            G = G + g**2
            theta = theta - lr * g / (np.sqrt(G) + hyper["eps"])
            state = {"sum_sq_grad": G}
        elif name == "adadelta":
            # (U.4) E_p = ρE_{p−1} + (1−ρ)g_p²,  Δ_p = −√(D_{p−1}+ε)/√(E_p+ε) g_p,
            #       D_p = ρD_{p−1} + (1−ρ)Δ_p²,  θ_p = θ_{p−1} + γ_p Δ_p
            rho, eps = hyper["rho"], hyper["eps"]
            E = rho * E + (1 - rho) * g**2
            step = -np.sqrt(D + eps) / np.sqrt(E + eps) * g
            D = rho * D + (1 - rho) * step**2
            theta = theta + lr * step
            state = {"avg_sq_grad": E, "avg_sq_step": D}
        elif name == "rmsprop":
            # (U.5) E_p = ρE_{p−1} + (1−ρ)g_p²,  θ_p = θ_{p−1} − γ_p g_p / (√E_p + ε)
            rho, eps = hyper["rho"], hyper["eps"]
            E = rho * E + (1 - rho) * g**2
            theta = theta - lr * g / (np.sqrt(E) + eps)
            state = {"avg_sq_grad": E}
        else:
            # (U.6) m_p = β₁m_{p−1} + (1−β₁)g_p,  v_p = β₂v_{p−1} + (1−β₂)g_p²,
            #       θ_p = θ_{p−1} − γ_p (m_p/(1−β₁^p)) / (√(v_p/(1−β₂^p)) + ε)
            b1, b2, eps = hyper["beta1"], hyper["beta2"], hyper["eps"]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g**2
            theta = theta - lr * (m / (1 - b1**p)) / (np.sqrt(v / (1 - b2**p)) + eps)
            state = {"m": m, "v": v}
        out.append((theta.copy(), {k: a.copy() for k, a in state.items()}))
    return out


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_three_steps_follow_the_formula(name, dtype, rtol):
    """(U.1)–(U.6) the kernels' θ_p and state equal the formula's for p = 1, 2, 3."""
    opt = Optimizer.create(name, THETA0.size, np.dtype(dtype), **HYPER[name])
    theta = THETA0.astype(dtype)
    for p, (expected_theta, expected_state) in enumerate(formula_steps(name, opt.hyper), start=1):
        opt.step(theta, GRADS[p - 1].astype(dtype), LRS[p - 1])
        assert opt.step_count == p
        assert theta.dtype == dtype
        np.testing.assert_allclose(theta, expected_theta, rtol=rtol, atol=rtol)
        assert set(opt.state) == set(expected_state)
        for key, expected in expected_state.items():
            assert opt.state[key].dtype == dtype
            np.testing.assert_allclose(opt.state[key], expected, rtol=rtol, atol=rtol * 1e-3)


def test_adam_first_step_is_about_lr_times_sign():
    """(U.6) at p = 1 the bias corrections give m̂ = g, v̂ = g², so the step is γ g/(|g| + ε):
    ±γ wherever g ≠ 0 (Kingma & Ba §2), whatever the gradient's scale."""
    opt = Optimizer.create("adam", 4, np.dtype(np.float64), lr=0.01)
    theta = np.zeros(4)
    opt.step(theta, np.array([1e-3, -5.0, 0.0, 200.0]), 0.01)
    np.testing.assert_allclose(theta, [-0.01, 0.01, 0.0, -0.01], rtol=1e-4)


def test_defaults_match_the_usual_libraries():
    """Flux's ADAM() (MMiDS §7.3): η = 1e-3, β = (0.9, 0.999), ε = 1e-8; and every optimizer
    has a learning rate γ_0."""
    opt = Optimizer.create("adam", 3, np.dtype(np.float32))
    assert opt.hyper == {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    for name in OPTIMIZERS:
        assert Optimizer.create(name, 3, np.dtype(np.float64)).hyper["lr"] > 0


def test_none_overrides_keep_the_defaults():
    opt = Optimizer.create("momentum", 3, np.dtype(np.float64), lr=None, mu=None)
    assert opt.hyper == OPTIMIZERS["momentum"][1]


def test_state_starts_at_zero_and_has_theta_shape():
    for name, (state_names, _) in OPTIMIZERS.items():
        opt = Optimizer.create(name, 5, np.dtype(np.float32))
        assert set(opt.state) == set(state_names)
        for arr in opt.state.values():
            assert arr.shape == (5,) and arr.dtype == np.float32 and not arr.any()


@pytest.mark.parametrize(
    "name,overrides,message",
    [
        ("sgd", {"lr": -0.1}, "learning rate must be positive"),
        ("sgd", {"lr": 0.0}, "learning rate must be positive"),
        ("adam", {"lr": float("nan")}, "finite"),
        ("adam", {"lr": float("inf")}, "finite"),
        ("adam", {"beta1": 1.0}, "beta1 must be in [0, 1)"),
        ("adam", {"beta2": 1.5}, "beta2 must be in [0, 1)"),
        ("adam", {"beta1": -0.1}, "beta1 must be in [0, 1)"),
        ("momentum", {"mu": 1.0}, "mu must be in [0, 1)"),
        ("rmsprop", {"rho": 1.0}, "rho must be in [0, 1)"),
        ("adadelta", {"rho": 2.0}, "rho must be in [0, 1)"),
        ("adagrad", {"eps": 0.0}, "eps must be positive"),
        ("rmsprop", {"eps": -1e-8}, "eps must be positive"),
        ("sgd", {"mu": 0.9}, "has no hyperparameter 'mu'"),
        ("adamw", {}, "unknown optimizer 'adamw'"),
    ],
)
def test_invalid_hyperparameters_raise_user_errors(name, overrides, message):
    with pytest.raises(NumbamlpError, match=re.escape(message)):
        Optimizer.create(name, 3, np.dtype(np.float64), **overrides)
