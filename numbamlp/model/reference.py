"""Plain NumPy, matrix-form reference of every equation: the test oracle and the notebooks'
"matrix form". Rows are samples: H^k has shape (B, d_k), so z^k = b^k + W^k h^{k−1} for all
samples at once reads Z^k = H^{k−1} (W^k)ᵀ + b^k. Nothing here is used for training.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from numbamlp.kernels.activations import LEAKY_RELU_SLOPE
from numbamlp.model.network import Architecture


def _sigmoid(t):
    return np.exp(-np.logaddexp(0.0, -t))


# (A.1)–(A.6) φ and φ′ elementwise.
PHI: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda t: np.maximum(t, 0.0),
    "leaky_relu": lambda t: np.where(t > 0, t, LEAKY_RELU_SLOPE * t),
    "softplus": lambda t: np.logaddexp(0.0, t),
    "identity": lambda t: t,
}
PHI_PRIME: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": lambda t: _sigmoid(t) * (1 - _sigmoid(t)),
    "tanh": lambda t: 1 - np.tanh(t) ** 2,
    "relu": lambda t: (t > 0).astype(np.result_type(t, np.float32)),
    "leaky_relu": lambda t: np.where(t > 0, 1.0, LEAKY_RELU_SLOPE).astype(
        np.result_type(t, np.float32)
    ),
    "softplus": _sigmoid,
    "identity": lambda t: np.ones_like(t),
}


def affine(W, b, H_prev):
    """(F.1) Z = H^{k−1} Wᵀ + b."""
    return H_prev @ W.T + b


def softmax(Z):
    """(F.3) row-wise softmax."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def modified_softmax(Z):
    """(F.4) γ̃: append the reference logit 0, then softmax."""
    return softmax(np.hstack([Z, np.zeros((Z.shape[0], 1), Z.dtype)]))


def softmax_jacobian(f):
    """(J.1) diag(f) − f fᵀ."""
    return np.diag(f) - np.outer(f, f)


def cross_entropy(Z, y, n_classes):
    """(L.1) ℓ_s = logsumexp(z_s) − z_{s,Y_s}, with the reference logit 0 when d_L < n_classes."""
    if Z.shape[1] < n_classes:
        Z = np.hstack([Z, np.zeros((Z.shape[0], 1), Z.dtype)])
    z_max = Z.max(axis=1, keepdims=True)
    lse = (z_max + np.log(np.exp(Z - z_max).sum(axis=1, keepdims=True)))[:, 0]
    return lse - Z[np.arange(Z.shape[0]), y]


def squared_error(F, Y):
    """(L.2) ℓ_s = ½ ‖f_s − y_s‖²."""
    return 0.5 * ((F - Y) ** 2).sum(axis=1)


def squared_error_delta(F, Y):
    """(B.5) Δ^L = F − Y."""
    return F - Y


def sample_weight_factors(w):
    """(S.2) ω_s = B w_s / Σ_s w_s."""
    w = np.asarray(w, dtype=np.float64)
    return w.shape[0] * w / w.sum()


def onehot(y, n_classes):
    """1_Y as rows: (n, M)."""
    return np.eye(n_classes)[y]


def output_delta(f, y, d_L):
    """(B.1) Δ^L = F − 1_Y, restricted to the d_L columns that have logits."""
    return (f - onehot(y, f.shape[1]))[:, :d_L]


def weight_gradient(Delta, H_prev):
    """(B.3)+(S.1) ∇W = (1/B) Δᵀ H^{m−1}."""
    return Delta.T @ H_prev / Delta.shape[0]


def bias_gradient(Delta):
    """(B.2)+(S.1) ∇b = (1/B) Σ_s δ_s."""
    return Delta.mean(axis=0)


def hidden_delta(W_next, Delta_next, Z, activation):
    """(B.4) Δ^m = (Δ^{m+1} W^{m+1}) ⊙ φ′(Z^m)."""
    return (Delta_next @ W_next) * PHI_PRIME[activation](Z)


def weight_penalty(W, weight_decay):
    """(R.1) (λ/2) Σ_m ‖W^m‖²_F over the layers' weights (W indexed by layer, W[0] unused)."""
    return 0.5 * weight_decay * sum(float(np.sum(Wm * Wm)) for Wm in W[1:])


def weight_decay_gradient(gW, W, weight_decay):
    """(R.1) ∇W^m ℓ_λ = ∇W^m ℓ + λ W^m (the biases' gradient is unchanged)."""
    return gW + weight_decay * W if weight_decay else gW


def forward(arch: Architecture, W, b, X):
    """All Z^k, H^k and the output F for a batch X."""
    H = [X]
    Z: list[np.ndarray | None] = [None]  # Z[0] unused: indexed by layer
    for k in range(1, arch.L + 1):
        z = affine(W[k], b[k], H[k - 1])
        Z.append(z)
        if k < arch.L:
            H.append(PHI[arch.activations[k - 1]](z))
    if arch.head == "softmax":
        F = softmax(Z[-1])
    elif arch.head == "modified-softmax":
        F = modified_softmax(Z[-1])
    else:
        F = np.array(Z[-1])  # (F.5) identity head: f = z^L
    return Z, H, F


def loss_and_gradient(arch: Architecture, W, b, X, y, weight_decay=0.0, sample_weight=None):
    """Mean loss and (∇W, ∇b) lists indexed by layer, by the matrix-form backprop; with
    ``weight_decay`` λ, of ℓ_λ (R.1); y the targets (n, T) for the identity head (L.2, B.5);
    with ``sample_weight``, the weighted mean (S.2)."""
    Z, H, F = forward(arch, W, b, X)
    omega = np.ones(X.shape[0]) if sample_weight is None else sample_weight_factors(sample_weight)
    if arch.head == "identity":
        losses, Delta = squared_error(F, y), squared_error_delta(F, y)
    else:
        losses = cross_entropy(Z[arch.L], y, arch.n_classes)
        Delta = output_delta(F, y, arch.sizes[-1])
    loss = (omega * losses).mean() + weight_penalty(W, weight_decay)
    Delta = Delta * omega[:, None]
    gW = [None] * (arch.L + 1)
    gb = [None] * (arch.L + 1)
    for m in range(arch.L, 0, -1):
        gW[m] = weight_decay_gradient(weight_gradient(Delta, H[m - 1]), W[m], weight_decay)
        gb[m] = bias_gradient(Delta)
        if m > 1:
            Delta = hidden_delta(W[m], Delta, Z[m - 1], arch.activations[m - 2])
    return loss, gW, gb
