"""The forward and backward passes on the device: numbamlp/model/passes.py, launch for launch.

Orchestration only: every number is computed by a tagged kernel in cuda/forward.py or
cuda/backward.py, in the order passes.py calls their CPU twins. ``ws`` is a Workspace of device
arrays and ``params``/``grads`` are :class:`DeviceParameters`.
"""

from __future__ import annotations

import numpy as np

from numbamlp.engines.cuda.backend import cuda
from numbamlp.engines.cuda.backward import (
    bias_gradient,
    hidden_delta,
    output_delta,
    squared_error_delta,
    weight_decay_gradient,
    weight_gradient,
    weight_output_delta,
)
from numbamlp.engines.cuda.dropout import dropout_backward, dropout_forward
from numbamlp.engines.cuda.forward import (
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
)
from numbamlp.engines.cuda.launch import THREADS_1D, THREADS_2D, grid_1d, grid_2d
from numbamlp.kernels.dropout import Dropout
from numbamlp.model.network import Architecture
from numbamlp.model.workspace import Workspace


class DeviceParameters:
    """θ as one flat device vector plus per-layer views W[k], b[k] (k = 1..L), as Parameters."""

    def __init__(self, architecture: Architecture, theta) -> None:
        self.architecture = architecture
        self.theta = theta
        self.W, self.b = architecture.layer_views(theta)

    @classmethod
    def from_host(cls, architecture: Architecture, theta: np.ndarray) -> DeviceParameters:
        return cls(architecture, cuda.to_device(np.ascontiguousarray(theta)))


class DeviceDropout:
    """A run's Dropout (kernels/dropout.py) for the device: the key uploaded once, the
    thresholds and factors kept as host scalars (launch arguments)."""

    def __init__(self, dropout: Dropout) -> None:
        self.key = cuda.to_device(dropout.key)
        self.thresholds = dropout.thresholds
        self.scales = dropout.scales


def device_zeros(shape, dtype):
    """A zero-filled device array (the Workspace's ``zeros`` on the device)."""
    return cuda.to_device(np.zeros(shape, dtype))


def device_workspace(architecture: Architecture, batch_size: int, dtype) -> Workspace:
    """Workspace buffers on the device; ``rows(n)`` views work as on the host."""
    return Workspace(architecture, batch_size, dtype, zeros=device_zeros)


class Threads:
    """Threads per block for the 1-D kernels and per side of the 2-D blocks."""

    def __init__(self, one_d: int = THREADS_1D, two_d: int = THREADS_2D) -> None:
        self.one_d = one_d
        self.two_d = two_d

    def per_sample(self, B: int):
        return grid_1d(B, self.one_d)

    def elementwise(self, rows: int, cols: int):
        return grid_2d(rows, cols, self.two_d)


def forward(
    ws: Workspace,
    params: DeviceParameters,
    threads: Threads,
    dropout: DeviceDropout | None = None,
    indices=None,
    step: int = 0,
) -> None:
    """h^0 (already in ws.h[0]) → z^1, h^1, …, z^L → f; with ``dropout``, h̃^k (D.2) after F.2
    on the layers that drop, as passes.forward."""
    arch = params.architecture
    codes = arch.activation_codes
    L, B = arch.L, ws.batch_size
    for k in range(1, L + 1):
        d_k = arch.sizes[k]
        affine_forward[threads.elementwise(B, d_k)](
            ws.z[k], params.W[k], params.b[k], ws.h[k - 1]
        )  # (F.1)
        if k < L:
            activation_forward[threads.elementwise(B, d_k)](ws.h[k], ws.z[k], codes[k])  # (F.2)
            if dropout is not None and dropout.thresholds[k]:
                dropout_forward[threads.per_sample(B)](
                    ws.h[k], indices, np.uint64(k), np.uint64(step), dropout.key,
                    dropout.thresholds[k], dropout.scales[k],
                )  # (D.2)  # fmt: skip
    if arch.head == "softmax":
        softmax_forward[threads.per_sample(B)](ws.f, ws.z[L])  # (F.3)
    elif arch.head == "modified-softmax":
        modified_softmax_forward[threads.per_sample(B)](ws.f, ws.z[L])  # (F.4)
    else:
        identity_forward[threads.per_sample(B)](ws.f, ws.z[L])  # (F.5)


def loss(ws: Workspace, params: DeviceParameters, y, mean, threads: Threads, omega=None) -> None:
    """Minibatch loss ℓ = (1/B) Σ_s ℓ_s after a forward pass, written to ``mean[0]``: y the
    labels (L.1) or the identity head's targets (L.2); with ``omega`` weighted (S.2)."""
    arch = params.architecture
    B = ws.batch_size
    if arch.task == "regression":
        squared_error[threads.per_sample(B)](ws.losses, ws.f, y)  # (L.2)
    else:
        cross_entropy[threads.per_sample(B)](ws.losses, ws.z[arch.L], y, arch.n_classes)  # (L.1)
    if omega is not None:
        weight_losses[threads.per_sample(B)](ws.losses, omega)  # (S.2)
    batch_mean[grid_1d(1, 1)](mean, ws.losses)  # (S.1)


def correct(ws: Workspace, params: DeviceParameters, y, count) -> None:
    """How many samples of the batch the forward pass classified right (P.1, on z^L), written
    to ``count[0]`` (left as it is, 0, for regression)."""
    arch = params.architecture
    if arch.task == "regression":
        return
    count_correct[grid_1d(1, 1)](count, ws.z[arch.L], y, arch.n_classes)  # (P.1)


def backward(
    ws: Workspace,
    params: DeviceParameters,
    grads: DeviceParameters,
    y,
    threads: Threads,
    weight_decay: float = 0.0,
    omega=None,
    dropout: DeviceDropout | None = None,
    indices=None,
    step: int = 0,
) -> None:
    """δ^L, then for m = L..1: ∇W^m, ∇b^m, and δ^{m−1}. Gradients are minibatch means, of ℓ_λ
    when ``weight_decay`` λ ≠ 0 (R.1), weighted by ``omega`` (S.2), through ``dropout``'s masks
    (D.3), as passes.backward."""
    arch = params.architecture
    codes = arch.activation_codes
    L, B, sizes = arch.L, ws.batch_size, arch.sizes
    inv_batch = np.dtype(params.theta.dtype).type(1.0 / B)
    decay = np.dtype(params.theta.dtype).type(weight_decay)
    if arch.task == "regression":
        squared_error_delta[threads.elementwise(B, sizes[L])](ws.delta[L], ws.f, y)  # (B.5)
    else:
        output_delta[threads.elementwise(B, sizes[L])](ws.delta[L], ws.f, y)  # (B.1)
    if omega is not None:
        weight_output_delta[threads.elementwise(B, sizes[L])](ws.delta[L], omega)  # (S.2)
    for m in range(L, 0, -1):
        weight_gradient[threads.elementwise(sizes[m], sizes[m - 1])](
            grads.W[m], ws.delta[m], ws.h[m - 1], inv_batch
        )  # (B.3)
        if weight_decay != 0:
            weight_decay_gradient[threads.elementwise(sizes[m], sizes[m - 1])](
                grads.W[m], params.W[m], decay
            )  # (R.1)
        bias_gradient[grid_1d(sizes[m], threads.one_d)](grads.b[m], ws.delta[m], inv_batch)  # (B.2)
        if m > 1:
            hidden_delta[threads.elementwise(B, sizes[m - 1])](
                ws.delta[m - 1], params.W[m], ws.delta[m], ws.z[m - 1], codes[m - 1]
            )  # (B.4)
            if dropout is not None and dropout.thresholds[m - 1]:
                dropout_backward[threads.per_sample(B)](
                    ws.delta[m - 1], indices, np.uint64(m - 1), np.uint64(step), dropout.key,
                    dropout.thresholds[m - 1], dropout.scales[m - 1],
                )  # (D.3)  # fmt: skip
