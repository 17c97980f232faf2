"""Optimizers: θ_p = θ_{p−1} − γ_p · (a direction built from the gradient), U.1–U.6.

Each update is one explicit loop over the components r of the flat parameter vector θ
(which holds b^1, W^1, …, b^L, W^L back to back), parallel over r: each thread owns the
components it updates. What it does to component r is written once, in updates.py, and called
here, by the fused engine's region 2 and (built for the device) by cuda/optimizers.py. The
optimizer's state (velocities, running averages) is flat arrays of the same length and dtype
as θ, allocated once. Step sizes γ_p come from schedules.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import prange

from numbamlp.errors import NumbamlpError
from numbamlp.kernels._jit import kernel
from numbamlp.kernels.updates import (
    adagrad_element,
    adam_element,
    momentum_element,
    rmsprop_element,
    sgd_element,
)

# ---------------------------------------------------------------------------------------------
# Kernels (one per equation). Outputs first (θ, then the state it updates), then inputs. Each
# applies its update, written once in updates.py, to every component r of θ.


@kernel
def sgd_update(theta, grad, lr):
    for r in prange(theta.shape[0]):
        # (U.1) θ_r ← θ_r − γ_p g_r
        sgd_element(theta, r, grad[r], lr)


@kernel
def momentum_update(theta, velocity, grad, lr, mu):
    for r in prange(theta.shape[0]):
        # (U.2) v_r ← μ v_r + g_r;  θ_r ← θ_r − γ_p v_r
        momentum_element(theta, velocity, r, grad[r], lr, mu)


@kernel
def adagrad_update(theta, sum_sq_grad, grad, lr, eps):
    for r in prange(theta.shape[0]):
        # (U.3) G_r ← G_r + g_r²;  θ_r ← θ_r − γ_p g_r / (√G_r + ε)
        adagrad_element(theta, sum_sq_grad, r, grad[r], lr, eps)


@kernel
def adadelta_update(theta, avg_sq_grad, avg_sq_step, grad, lr, rho, eps):
    """updates.adadelta's statements, with g_r read from ``grad`` where they use it. Not a call of
    updates.adadelta_element, as the other kernels make: ``reassoc`` lets LLVM order the product
    (1−ρ)·g·g by the form of its operand g, a load here, a product (1/B)·Σ in the fused engine's
    region 2; called with a loaded g_r, E_r came out up to 3 ulp from the fused engine's in
    float64 (Intel, AVX-512), against 0 with these statements (tests/engines/test_fused.py bounds
    it by 1 ulp)."""
    for r in prange(theta.shape[0]):
        # (U.4) E_r ← ρE_r + (1−ρ)g_r²;  Δ_r = −√(D_r+ε)/√(E_r+ε) g_r;
        #       D_r ← ρD_r + (1−ρ)Δ_r²;  θ_r ← θ_r + γ_p Δ_r
        avg_sq_grad[r] = rho * avg_sq_grad[r] + (1 - rho) * grad[r] * grad[r]
        step = -np.sqrt(avg_sq_step[r] + eps) / np.sqrt(avg_sq_grad[r] + eps) * grad[r]
        avg_sq_step[r] = rho * avg_sq_step[r] + (1 - rho) * step * step
        theta[r] += lr * step


@kernel
def rmsprop_update(theta, avg_sq_grad, grad, lr, rho, eps):
    for r in prange(theta.shape[0]):
        # (U.5) E_r ← ρE_r + (1−ρ)g_r²;  θ_r ← θ_r − γ_p g_r / (√E_r + ε)
        rmsprop_element(theta, avg_sq_grad, r, grad[r], lr, rho, eps)


@kernel
def adam_update(theta, m, v, grad, lr, beta1, beta2, eps, bias1, bias2):
    """bias1 = 1 − β₁^p and bias2 = 1 − β₂^p are computed once per step by the caller."""
    for r in prange(theta.shape[0]):
        # (U.6) m_r ← β₁m_r + (1−β₁)g_r;  v_r ← β₂v_r + (1−β₂)g_r²;
        #       θ_r ← θ_r − γ_p (m_r/(1−β₁^p)) / (√(v_r/(1−β₂^p)) + ε)
        adam_element(theta, m, v, r, grad[r], lr, beta1, beta2, eps, bias1, bias2)


# ---------------------------------------------------------------------------------------------
# Orchestration: hyperparameters, state, and the step counter p.

#: name → (state array names, default hyperparameters; "lr" is γ_0)
OPTIMIZERS: dict[str, tuple[tuple[str, ...], dict[str, float]]] = {
    "sgd": ((), {"lr": 0.1}),
    "momentum": (("velocity",), {"lr": 0.01, "mu": 0.9}),
    "adagrad": (("sum_sq_grad",), {"lr": 0.01, "eps": 1e-10}),
    "adadelta": (("avg_sq_grad", "avg_sq_step"), {"lr": 1.0, "rho": 0.9, "eps": 1e-6}),
    "rmsprop": (("avg_sq_grad",), {"lr": 1e-3, "rho": 0.9, "eps": 1e-8}),
    "adam": (("m", "v"), {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}),
}


@dataclass
class Optimizer:
    """An optimizer's hyperparameters, its flat state arrays and its step counter p."""

    name: str
    hyper: dict[str, float]
    state: dict[str, np.ndarray] = field(default_factory=dict)
    step_count: int = 0

    @classmethod
    def create(
        cls, name: str, n_parameters: int, dtype: np.dtype, **overrides: float | None
    ) -> Optimizer:
        if name not in OPTIMIZERS:
            raise NumbamlpError(
                f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}"
            )
        state_names, defaults = OPTIMIZERS[name]
        hyper = dict(defaults)
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in hyper:
                raise NumbamlpError(f"optimizer {name!r} has no hyperparameter {key!r}")
            hyper[key] = float(value)
        _check_hyper(name, hyper)
        state = {key: np.zeros(n_parameters, dtype=dtype) for key in state_names}
        return cls(name=name, hyper=hyper, state=state)

    def step(
        self,
        theta: np.ndarray,
        grad: np.ndarray,
        lr: float,
        kernels: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        """Apply one update θ_p from θ_{p−1} and ∇ℓ(θ_{p−1}) with step size γ_p = lr.

        ``kernels`` (optimizer name → update kernel, default ``UPDATES``) and ``state`` (default
        ``self.state``) let the device path run its twins (cuda/optimizers.py) on device arrays
        with exactly these arguments.
        """
        update = (kernels or UPDATES)[self.name]
        st = self.state if state is None else state
        self.step_count += 1
        t = theta.dtype.type  # pass scalars in θ's precision so float32 stays float32
        h = self.hyper
        if self.name == "sgd":
            update(theta, grad, t(lr))
        elif self.name == "momentum":
            update(theta, st["velocity"], grad, t(lr), t(h["mu"]))
        elif self.name == "adagrad":
            update(theta, st["sum_sq_grad"], grad, t(lr), t(h["eps"]))
        elif self.name == "adadelta":
            update(
                theta, st["avg_sq_grad"], st["avg_sq_step"], grad, t(lr), t(h["rho"]), t(h["eps"])
            )
        elif self.name == "rmsprop":
            update(theta, st["avg_sq_grad"], grad, t(lr), t(h["rho"]), t(h["eps"]))
        else:  # adam
            p = self.step_count
            bias1 = 1.0 - h["beta1"] ** p
            bias2 = 1.0 - h["beta2"] ** p
            update(
                theta,
                st["m"],
                st["v"],
                grad,
                t(lr),
                t(h["beta1"]),
                t(h["beta2"]),
                t(h["eps"]),
                t(bias1),
                t(bias2),
            )


#: optimizer name → its update kernel (U.1–U.6)
UPDATES = {
    "sgd": sgd_update,
    "momentum": momentum_update,
    "adagrad": adagrad_update,
    "adadelta": adadelta_update,
    "rmsprop": rmsprop_update,
    "adam": adam_update,
}


def _check_hyper(name: str, hyper: dict[str, float]) -> None:
    import math

    for key, value in hyper.items():
        if not math.isfinite(value):
            raise NumbamlpError(f"{name} {key} must be a finite number, got {value}")
    if hyper["lr"] <= 0:
        raise NumbamlpError(f"learning rate must be positive, got {hyper['lr']}; try `lr=1e-3`")
    for key in ("mu", "rho", "beta1", "beta2"):
        if key in hyper and not 0 <= hyper[key] < 1:
            raise NumbamlpError(f"{name} {key} must be in [0, 1), got {hyper[key]}")
    if "eps" in hyper and hyper["eps"] <= 0:
        raise NumbamlpError(f"{name} eps must be positive, got {hyper['eps']}")
