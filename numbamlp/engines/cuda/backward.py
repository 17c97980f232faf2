"""CUDA twins of numbamlp/kernels/backward.py: same names, argument order, tags and loop bodies.

Each thread owns the outputs it writes, as each CPU ``prange`` iteration does, so no atomics
are needed and every sum runs in one fixed order (a run is reproducible bit for bit):

* δ (B.1, B.5, S.2's weighting, B.4): thread (s, i) owns δ[s, i]; B.4 sums over i of the layer
  above in order;
* ∇W (B.3): thread (i, j) owns ∇W[i, j] and sums over the samples s in order, the same
  order as the CPU loop, which sums over s for each (i, j) too;
* ∇b (B.2): thread i owns ∇b[i] and sums over s in order;
* the weight decay (R.1): thread (i, j) adds λ W[i, j] to the ∇W[i, j] it owns.
"""

from __future__ import annotations

from numbamlp.engines.cuda.activations import phi_prime
from numbamlp.engines.cuda.backend import cuda
from numbamlp.engines.cuda.rows import output_delta_entry, squared_error_delta_entry


@cuda.jit
def output_delta(delta_L, f, y):
    """(B.1) δ^L = ∇_{z^L} ℓ = f − 1_Y, for both heads; thread (s, i)."""
    s, i = cuda.grid(2)
    if s < delta_L.shape[0] and i < delta_L.shape[1]:
        # (B.1) δ^L_{s,i} = f_{s,i} − 1_{Y_s=i}
        delta_L[s, i] = output_delta_entry(f[s, i], i, y[s])


@cuda.jit
def squared_error_delta(delta_L, f, targets):
    """(B.5) δ^L = ∇_{z^L} ℓ = f − y: squared error (L.2) after the identity head (F.5); thread
    (s, i)."""
    s, i = cuda.grid(2)
    if s < delta_L.shape[0] and i < delta_L.shape[1]:
        # (B.5) δ^L_{s,i} = f_{s,i} − y_{s,i}
        delta_L[s, i] = squared_error_delta_entry(f[s, i], targets[s, i])


@cuda.jit
def weight_output_delta(delta_L, omega):
    """(S.2) δ^L_{s,:} ← ω_s δ^L_{s,:}: the weighted minibatch mean's output error (then S.1's
    (1/B) Σ_s in B.2 and B.3 gives Σ_s w_s ∇ℓ_s / Σ_s w_s); thread (s, i)."""
    s, i = cuda.grid(2)
    if s < delta_L.shape[0] and i < delta_L.shape[1]:
        # (S.2) δ^L_{s,i} ← ω_s δ^L_{s,i}
        delta_L[s, i] = delta_L[s, i] * omega[s]


@cuda.jit
def bias_gradient(grad_b, delta, inv_batch):
    """(B.2) with (S.1): ∇b^m = (1/B) Σ_s δ^m_s; thread i owns ∇b^m_i."""
    B = delta.shape[0]
    i = cuda.grid(1)
    if i < grad_b.shape[0]:
        # Never read what the buffer held before (a stale inf or NaN would poison the sum).
        grad_b[i] = 0.0
        for s in range(B):
            # (B.2) ∂ℓ_s/∂b^m_i = δ^m_{s,i}
            grad_b[i] += delta[s, i]
        # (S.1) mean over the minibatch
        grad_b[i] *= inv_batch


@cuda.jit
def weight_gradient(grad_W, delta, h_prev, inv_batch):
    """(B.3) with (S.1): ∇W^m = (1/B) Σ_s δ^m_s (h^{m−1}_s)ᵀ; thread (i, j) owns ∇W^m_{ij}."""
    d_out, d_in = grad_W.shape
    B = delta.shape[0]
    i, j = cuda.grid(2)
    if i < d_out and j < d_in:
        grad_W[i, j] = 0.0
        for s in range(B):
            delta_si = delta[s, i]
            # (B.3) ∂ℓ_s/∂W^m_{ij} = δ^m_{s,i} h^{m−1}_{s,j}
            grad_W[i, j] += delta_si * h_prev[s, j]
        # (S.1) mean over the minibatch
        grad_W[i, j] *= inv_batch


@cuda.jit
def weight_decay_gradient(grad_W, W, weight_decay):
    """(R.1) ∇W^m ℓ_λ = ∇W^m ℓ + λ W^m, added in place; thread (i, j) owns ∇W^m_{ij}. Biases
    have no penalty."""
    d_out, d_in = grad_W.shape
    i, j = cuda.grid(2)
    if i < d_out and j < d_in:
        # (R.1) ∂ℓ_λ/∂W^m_{ij} = (1/B) Σ_s δ^m_{s,i} h^{m−1}_{s,j} + λ W^m_{ij}
        grad_W[i, j] += weight_decay * W[i, j]


@cuda.jit
def hidden_delta(delta, W_next, delta_next, z, code):
    """(B.4) δ^m = ((W^{m+1})ᵀ δ^{m+1}) ⊙ φ′_m(z^m); thread (s, j) owns δ^m_{s,j}.

    δ^m[s, j] accumulates ∇_{h^m} ℓ_s over i in order (the CPU's order for each element), then
    takes the product with φ′.
    """
    d_next, d_m = W_next.shape
    s, j = cuda.grid(2)
    if s < delta.shape[0] and j < d_m:
        delta[s, j] = 0.0
        for i in range(d_next):
            delta_next_si = delta_next[s, i]
            # (B.4) ∇_{h^m} ℓ_s: (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i})
            delta[s, j] += W_next[i, j] * delta_next_si
        # (B.4) δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · φ′_m(z^m_{s,j})
        delta[s, j] *= phi_prime(code, z[s, j])


@cuda.jit
def softmax_jacobian(J, f):
    """(J.1) J[i, j] = ∂_{z_i} softmax(z)_j = f_i (1_{i=j} − f_j), for one sample's f."""
    M = f.shape[0]
    i, j = cuda.grid(2)
    if i < M and j < M:
        # (J.1) ∂_{z_i} softmax(z)_j = softmax(z)_i (1_{i=j} − softmax(z)_j)
        J[i, j] = f[i] * ((1.0 if i == j else 0.0) - f[j])
