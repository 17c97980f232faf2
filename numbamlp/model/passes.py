"""The forward and backward passes: the order in which the kernels run, and nothing else.

This is orchestration only: every number is computed by a tagged kernel in forward.py or
backward.py. The loop variables are the notes' layer numbers.
"""

from __future__ import annotations

import numpy as np

from numbamlp.kernels.backward import (
    bias_gradient,
    hidden_delta,
    output_delta,
    squared_error_delta,
    weight_decay_gradient,
    weight_gradient,
    weight_output_delta,
)
from numbamlp.kernels.dropout import Dropout, dropout_backward, dropout_forward
from numbamlp.kernels.forward import (
    activation_forward,
    affine_forward,
    batch_mean,
    count_correct,
    cross_entropy,
    identity_forward,
    modified_softmax_forward,
    softmax_forward,
    squared_error,
    weight_losses,
    weight_penalty,
)
from numbamlp.model.network import Parameters
from numbamlp.model.workspace import Workspace


def forward(
    ws: Workspace,
    params: Parameters,
    dropout: Dropout | None = None,
    indices: np.ndarray | None = None,
    step: int = 0,
) -> None:
    """h^0 (already in ws.h[0]) → z^1, h^1, …, z^L → f. With ``dropout`` (training only), h^k
    of a layer that drops becomes h̃^k (D.2) after F.2, its mask drawn from the run's key, the
    step p and the samples' rows ``indices`` in the training set (D.1)."""
    arch = params.architecture
    codes = arch.activation_codes
    L = arch.L
    for k in range(1, L + 1):
        affine_forward(ws.z[k], params.W[k], params.b[k], ws.h[k - 1])  # (F.1)
        if k < L:
            activation_forward(ws.h[k], ws.z[k], codes[k])  # (F.2)
            if dropout is not None and dropout.thresholds[k]:
                dropout_forward(
                    ws.h[k], indices, k, step, dropout.key, dropout.thresholds[k],
                    dropout.scales[k],
                )  # (D.2)  # fmt: skip
    if arch.head == "softmax":
        softmax_forward(ws.f, ws.z[L])  # (F.3)
    elif arch.head == "modified-softmax":
        modified_softmax_forward(ws.f, ws.z[L])  # (F.4)
    else:
        identity_forward(ws.f, ws.z[L])  # (F.5)


def loss(
    ws: Workspace, params: Parameters, y: np.ndarray, omega: np.ndarray | None = None
) -> float:
    """Minibatch loss ℓ = (1/B) Σ_s ℓ_s after a forward pass: y the labels (L.1) or, for the
    identity head, the targets (B, T) (L.2). With the sample weights' factors ``omega`` (S.2)
    ℓ_s ← ω_s ℓ_s first, so the mean is Σ_s w_s ℓ_s / Σ_s w_s."""
    arch = params.architecture
    if arch.task == "regression":
        squared_error(ws.losses, ws.f, y)  # (L.2)
    else:
        cross_entropy(ws.losses, ws.z[arch.L], y, arch.n_classes)  # (L.1)
    if omega is not None:
        weight_losses(ws.losses, omega)  # (S.2)
    return batch_mean(ws.losses)  # (S.1)


def penalty(params: Parameters, weight_decay: float) -> float:
    """The weight decay's term of ℓ_λ = ℓ + (λ/2) Σ_m Σ_{i,j} (W^m_{ij})² (0 for λ = 0)."""
    if weight_decay == 0:
        return 0.0
    total = 0.0
    for m in range(1, params.architecture.L + 1):
        total += weight_penalty(params.W[m])  # (R.1)
    return 0.5 * weight_decay * total


def correct(ws: Workspace, params: Parameters, y: np.ndarray) -> int:
    """How many samples of the batch the forward pass classified right (P.1, on z^L); 0 for
    regression."""
    if params.architecture.task == "regression":
        return 0
    return count_correct(ws.z[params.architecture.L], y, params.architecture.n_classes)  # (P.1)


def backward(
    ws: Workspace,
    params: Parameters,
    grads: Parameters,
    y: np.ndarray,
    weight_decay: float = 0.0,
    omega: np.ndarray | None = None,
    dropout: Dropout | None = None,
    indices: np.ndarray | None = None,
    step: int = 0,
) -> None:
    """δ^L, then for m = L..1: ∇W^m, ∇b^m, and δ^{m−1}. Gradients are minibatch means, of ℓ_λ
    when ``weight_decay`` λ ≠ 0 (λ W^m added to ∇W^m; with λ = 0 that kernel is not called);
    y as in ``loss``; with ``omega`` (S.2) δ^L_{s,:} ← ω_s δ^L_{s,:}, the weighted mean. With
    ``dropout`` (as ``forward`` had it), δ^{m−1} of a layer that drops is B.4 times the same
    mask and factor (D.3); ws.h holds h̃, which B.3 reads."""
    arch = params.architecture
    codes = arch.activation_codes
    L = arch.L
    inv_batch = params.theta.dtype.type(1.0 / ws.batch_size)
    decay = params.theta.dtype.type(weight_decay)
    if arch.task == "regression":
        squared_error_delta(ws.delta[L], ws.f, y)  # (B.5)
    else:
        output_delta(ws.delta[L], ws.f, y)  # (B.1)
    if omega is not None:
        weight_output_delta(ws.delta[L], omega)  # (S.2)
    for m in range(L, 0, -1):
        weight_gradient(grads.W[m], ws.delta[m], ws.h[m - 1], inv_batch)  # (B.3)
        if weight_decay != 0:
            weight_decay_gradient(grads.W[m], params.W[m], decay)  # (R.1)
        bias_gradient(grads.b[m], ws.delta[m], inv_batch)  # (B.2)
        if m > 1:
            hidden_delta(
                ws.delta[m - 1], params.W[m], ws.delta[m], ws.z[m - 1], codes[m - 1]
            )  # (B.4)
            if dropout is not None and dropout.thresholds[m - 1]:
                dropout_backward(
                    ws.delta[m - 1], indices, m - 1, step, dropout.key,
                    dropout.thresholds[m - 1], dropout.scales[m - 1],
                )  # (D.3)  # fmt: skip
