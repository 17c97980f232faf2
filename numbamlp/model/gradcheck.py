"""Finite-difference gradient check: the kernels' ∇θ ℓ against central differences of ℓ.

Central differences (ℓ(θ + εe_r) − ℓ(θ − εe_r)) / 2ε have error O(ε²); in float64 with
ε ≈ 1e-6 the relative error of a correct gradient is around 1e-8 or smaller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from numbamlp.model.mlp import MLP


@dataclass
class LayerCheck:
    name: str  # "W^k" or "b^k"
    relative_error: float
    max_abs_error: float


def numerical_gradient(
    model: MLP,
    X: np.ndarray,
    y: np.ndarray,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Central differences of the mean loss (ℓ_λ with ``weight_decay`` λ, R.1; the weighted
    mean with ``sample_weight``, S.2) with respect to every component of θ."""
    theta = model.params.theta
    grad = np.zeros_like(theta, dtype=np.float64)
    for r in range(theta.shape[0]):
        saved = theta[r]
        theta[r] = saved + eps
        plus = model.loss(X, y, weight_decay=weight_decay, sample_weight=sample_weight)
        theta[r] = saved - eps
        minus = model.loss(X, y, weight_decay=weight_decay, sample_weight=sample_weight)
        theta[r] = saved
        grad[r] = (plus - minus) / (2 * eps)
    return grad


def central_jacobian(
    fn: Callable[[np.ndarray], np.ndarray | float], x: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """J[k, c] = ∂fn(x)_k / ∂x_c by central differences (rows are outputs, columns inputs).

    ``fn`` maps a float64 vector to a vector (or a scalar, giving one row).
    """
    x = np.array(x, dtype=np.float64)
    columns = []
    for c in range(x.shape[0]):
        step = np.zeros_like(x)
        step[c] = eps
        plus = np.atleast_1d(np.asarray(fn(x + step), dtype=np.float64))
        minus = np.atleast_1d(np.asarray(fn(x - step), dtype=np.float64))
        columns.append((plus - minus) / (2 * eps))
    return np.stack(columns, axis=1)


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖ / max(‖a‖ + ‖b‖, tiny): 0 for equal vectors, about 1 for unrelated ones."""
    denom = max(float(np.linalg.norm(a) + np.linalg.norm(b)), 1e-300)
    return float(np.linalg.norm(a - b)) / denom


def check_gradient(
    model: MLP,
    X: np.ndarray,
    y: np.ndarray,
    eps: float = 1e-6,
    weight_decay: float = 0.0,
    sample_weight: np.ndarray | None = None,
) -> list[LayerCheck]:
    """Compare the backprop gradient with central differences, layer by layer; with
    ``weight_decay`` λ, of the objective ℓ_λ with its penalty (R.1); with ``sample_weight``,
    of the weighted mean (S.2). y: labels, or the identity head's targets."""
    _, grads = model.loss_and_gradient(X, y, weight_decay, sample_weight)
    numeric = model.architecture.layer_views(
        numerical_gradient(model, X, y, eps, weight_decay, sample_weight)
    )
    checks = []
    for k in range(1, model.architecture.L + 1):
        for name, analytic, approx in (
            (f"W^{k}", grads.W[k], numeric[0][k]),
            (f"b^{k}", grads.b[k], numeric[1][k]),
        ):
            checks.append(
                LayerCheck(
                    name, relative_error(analytic, approx), float(np.abs(analytic - approx).max())
                )
            )
    return checks
