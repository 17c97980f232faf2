"""CUDA twins of the update kernels in numbamlp/kernels/optimizers.py (U.1–U.6), and the device-side
optimizer state.

Thread r owns component r of θ and of the state arrays, as each CPU ``prange`` iteration does,
and applies the same update: the function of updates.py, built here as a device function, as
cuda/activations.py builds φ/φ′ (the CPU kernels call its CPU build).
"""

from __future__ import annotations

import numpy as np

from numbamlp.engines.cuda.backend import cuda
from numbamlp.engines.cuda.launch import grid_1d
from numbamlp.kernels import updates
from numbamlp.kernels.optimizers import Optimizer

device_function = cuda.jit(device=True)

# Device builds of updates.py's functions, under the names the CPU kernels call their CPU builds.
sgd_element = device_function(updates.sgd)
momentum_element = device_function(updates.momentum)
adagrad_element = device_function(updates.adagrad)
adadelta_element = device_function(updates.adadelta)
rmsprop_element = device_function(updates.rmsprop)
adam_element = device_function(updates.adam)

# ---------------------------------------------------------------------------------------------
# Kernels (one per equation). Outputs first (θ, then the state it updates), then inputs.


@cuda.jit
def sgd_update(theta, grad, lr):
    r = cuda.grid(1)
    if r < theta.shape[0]:
        # (U.1) θ_r ← θ_r − γ_p g_r
        sgd_element(theta, r, grad[r], lr)


@cuda.jit
def momentum_update(theta, velocity, grad, lr, mu):
    r = cuda.grid(1)
    if r < theta.shape[0]:
        # (U.2) v_r ← μ v_r + g_r;  θ_r ← θ_r − γ_p v_r
        momentum_element(theta, velocity, r, grad[r], lr, mu)


@cuda.jit
def adagrad_update(theta, sum_sq_grad, grad, lr, eps):
    r = cuda.grid(1)
    if r < theta.shape[0]:
        # (U.3) G_r ← G_r + g_r²;  θ_r ← θ_r − γ_p g_r / (√G_r + ε)
        adagrad_element(theta, sum_sq_grad, r, grad[r], lr, eps)


@cuda.jit
def adadelta_update(theta, avg_sq_grad, avg_sq_step, grad, lr, rho, eps):
    r = cuda.grid(1)
    if r < theta.shape[0]:
        # (U.4) E_r ← ρE_r + (1−ρ)g_r²;  Δ_r = −√(D_r+ε)/√(E_r+ε) g_r;
        #       D_r ← ρD_r + (1−ρ)Δ_r²;  θ_r ← θ_r + γ_p Δ_r
        adadelta_element(theta, avg_sq_grad, avg_sq_step, r, grad[r], lr, rho, eps)


@cuda.jit
def rmsprop_update(theta, avg_sq_grad, grad, lr, rho, eps):
    r = cuda.grid(1)
    if r < theta.shape[0]:
        # (U.5) E_r ← ρE_r + (1−ρ)g_r²;  θ_r ← θ_r − γ_p g_r / (√E_r + ε)
        rmsprop_element(theta, avg_sq_grad, r, grad[r], lr, rho, eps)


@cuda.jit
def adam_update(theta, m, v, grad, lr, beta1, beta2, eps, bias1, bias2):
    """bias1 = 1 − β₁^p and bias2 = 1 − β₂^p are computed once per step by the caller."""
    r = cuda.grid(1)
    if r < theta.shape[0]:
        # (U.6) m_r ← β₁m_r + (1−β₁)g_r;  v_r ← β₂v_r + (1−β₂)g_r²;
        #       θ_r ← θ_r − γ_p (m_r/(1−β₁^p)) / (√(v_r/(1−β₂^p)) + ε)
        adam_element(theta, m, v, r, grad[r], lr, beta1, beta2, eps, bias1, bias2)


# ---------------------------------------------------------------------------------------------
# Orchestration: the host's Optimizer keeps the hyperparameters and p; the state lives here.


class DeviceOptimizer:
    """An :class:`~numbamlp.kernels.optimizers.Optimizer` whose state arrays live on the device.

    ``optimizer`` (on the host) keeps the name, hyperparameters and step counter p, and its
    ``state`` arrays are the host copies that :meth:`to_host` fills and :meth:`from_host` reads
    (for checkpoints). ``step`` mirrors ``Optimizer.step`` kernel for kernel.
    """

    def __init__(self, optimizer: Optimizer, threads: int) -> None:
        self.optimizer = optimizer
        self.threads = threads
        self.state = {key: cuda.to_device(value) for key, value in optimizer.state.items()}

    def to_host(self) -> None:
        """Copy the device state into ``optimizer.state`` (in place)."""
        for key, array in self.state.items():
            array.copy_to_host(self.optimizer.state[key])

    def from_host(self) -> None:
        """Copy ``optimizer.state`` onto the device (after a checkpoint was loaded into it)."""
        for key, array in self.state.items():
            array.copy_to_device(np.ascontiguousarray(self.optimizer.state[key]))

    def step(self, theta, grad, lr: float) -> None:
        """Apply one update θ_p from θ_{p−1} and ∇ℓ(θ_{p−1}) with step size γ_p = lr: the
        host optimizer's own ``step``, calling the device twins on the device state."""
        launch = grid_1d(theta.shape[0], self.threads)
        name = self.optimizer.name
        self.optimizer.step(theta, grad, lr, {name: DEVICE_UPDATES[name][launch]}, self.state)


#: optimizer name → its device update kernel, the twin of optimizers.UPDATES
DEVICE_UPDATES = {
    "sgd": sgd_update,
    "momentum": momentum_update,
    "adagrad": adagrad_update,
    "adadelta": adadelta_update,
    "rmsprop": rmsprop_update,
    "adam": adam_update,
}
