"""Backward-pass kernels: one equation each (B.1–B.5, with the minibatch mean S.1 and its
weighted form S.2, J.1, and the weight decay R.1).

Same layout as forward.py: ``delta[s, i]`` is δ^m_{s,i} = ∂ℓ_s/∂z^m_{s,i} for sample s of the
batch. Each loop is parallel over the index whose outputs it owns: samples s for δ (B.1, B.4),
output rows i for the gradients (B.2, B.3), which sum over s inside one thread. No two threads
write the same element, so results are bitwise identical for any thread count.
"""

from __future__ import annotations

from numba import prange

from numbamlp.kernels._jit import kernel
from numbamlp.kernels.activations import phi_prime
from numbamlp.kernels.rows import output_delta_entry_cpu, squared_error_delta_entry_cpu


@kernel
def output_delta(delta_L, f, y):
    """(B.1) δ^L = ∇_{z^L} ℓ = f − 1_Y  (the notes' "ℓ_θ(X,Y) − 1_Y" is a typo for f_θ(X) − 1_Y).

    Holds for both heads: with γ̃, z^L has K−1 entries and δ^L_i = γ̃(z)_i − 1_{Y=i}, i < K.
    """
    d_L = delta_L.shape[1]
    for s in prange(delta_L.shape[0]):
        for i in range(d_L):
            # (B.1) δ^L_{s,i} = f_{s,i} − 1_{Y_s=i}
            delta_L[s, i] = output_delta_entry_cpu(f[s, i], i, y[s])


@kernel
def squared_error_delta(delta_L, f, targets):
    """(B.5) δ^L = ∇_{z^L} ℓ = f − y: squared error (L.2) after the identity head (F.5)."""
    for s in prange(delta_L.shape[0]):
        for i in range(delta_L.shape[1]):
            # (B.5) δ^L_{s,i} = f_{s,i} − y_{s,i}
            delta_L[s, i] = squared_error_delta_entry_cpu(f[s, i], targets[s, i])


@kernel
def weight_output_delta(delta_L, omega):
    """(S.2) δ^L_{s,:} ← ω_s δ^L_{s,:}: the weighted minibatch mean's output error (then S.1's
    (1/B) Σ_s in B.2 and B.3 gives Σ_s w_s ∇ℓ_s / Σ_s w_s)."""
    for s in prange(delta_L.shape[0]):
        omega_s = omega[s]
        for i in range(delta_L.shape[1]):
            # (S.2) δ^L_{s,i} ← ω_s δ^L_{s,i}
            delta_L[s, i] = delta_L[s, i] * omega_s


@kernel
def bias_gradient(grad_b, delta, inv_batch):
    """(B.2) with (S.1): ∇b^m = (1/B) Σ_s δ^m_s."""
    B = delta.shape[0]
    for i in prange(grad_b.shape[0]):
        # Accumulate in grad_b itself (its dtype), as weight_gradient does; never read what the
        # buffer held before: 0 · (a stale inf or NaN) would poison every later step.
        grad_b[i] = 0.0
        for s in range(B):
            # (B.2) ∂ℓ_s/∂b^m_i = δ^m_{s,i}
            grad_b[i] += delta[s, i]
        # (S.1) mean over the minibatch
        grad_b[i] *= inv_batch


@kernel
def weight_gradient(grad_W, delta, h_prev, inv_batch):
    """(B.3) with (S.1): ∇W^m = (1/B) Σ_s δ^m_s (h^{m−1}_s)ᵀ."""
    d_out, d_in = grad_W.shape
    B = delta.shape[0]
    for i in prange(d_out):
        for j in range(d_in):
            grad_W[i, j] = 0.0
        for s in range(B):
            delta_si = delta[s, i]
            for j in range(d_in):
                # (B.3) ∂ℓ_s/∂W^m_{ij} = δ^m_{s,i} h^{m−1}_{s,j}
                grad_W[i, j] += delta_si * h_prev[s, j]
        for j in range(d_in):
            # (S.1) mean over the minibatch
            grad_W[i, j] *= inv_batch


@kernel
def weight_decay_gradient(grad_W, W, weight_decay):
    """(R.1) ∇W^m ℓ_λ = ∇W^m ℓ + λ W^m: adds the L2 penalty's gradient to the minibatch mean
    that weight_gradient left in grad_W (coupled decay: every optimizer then sees ℓ_λ's
    gradient). Biases have no penalty, so ∇b^m is left as bias_gradient made it."""
    d_out, d_in = grad_W.shape
    for i in prange(d_out):
        for j in range(d_in):
            # (R.1) ∂ℓ_λ/∂W^m_{ij} = (1/B) Σ_s δ^m_{s,i} h^{m−1}_{s,j} + λ W^m_{ij}
            grad_W[i, j] += weight_decay * W[i, j]


@kernel
def hidden_delta(delta, W_next, delta_next, z, code):
    """(B.4) δ^m = ((W^{m+1})ᵀ δ^{m+1}) ⊙ φ′_m(z^m).

    The sum over i runs as the outer loop so the inner loop over j is unit-stride in both
    W^{m+1}[i, :] and δ^m[s, :]; δ^m[s, :] itself accumulates ∇_{h^m} ℓ_s before the product.
    """
    d_next, d_m = W_next.shape
    for s in prange(delta.shape[0]):
        for j in range(d_m):
            delta[s, j] = 0.0
        for i in range(d_next):
            delta_next_si = delta_next[s, i]
            for j in range(d_m):
                # (B.4) ∇_{h^m} ℓ_s: (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i})
                delta[s, j] += W_next[i, j] * delta_next_si
        for j in range(d_m):
            # (B.4) δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · φ′_m(z^m_{s,j})
            delta[s, j] *= phi_prime(code, z[s, j])


@kernel(fastmath=False)
def softmax_jacobian(J, f):
    """(J.1) J[i, j] = ∂_{z_i} softmax(z)_j = f_i (1_{i=j} − f_j), for one sample's f."""
    M = f.shape[0]
    for i in prange(M):
        for j in range(M):
            # (J.1) ∂_{z_i} softmax(z)_j = softmax(z)_i (1_{i=j} − softmax(z)_j)
            J[i, j] = f[i] * ((1.0 if i == j else 0.0) - f[j])
