"""CUDA twins of numbamlp/kernels/forward.py: same names, argument order, tags and loop bodies.

Each CPU kernel's ``prange`` loop (and, for elementwise kernels, the loop inside it) becomes the
thread grid; what one CPU iteration computes, one thread computes, in the same order:

* elementwise kernels: thread (s, i) from ``s, i = cuda.grid(2)`` owns element [s, i];
* per-sample kernels (softmax, cross-entropy, onecold): thread s owns row s and loops over it;
* ``batch_mean``: one thread sums ℓ_s in sample order (deterministic, no atomics), as
  ``sample_weight_factors`` sums the minibatch's weights;
  ``weight_penalty`` likewise sums (W^m_{ij})² in row order.

Every kernel returns early for threads past the array's end (grids are rounded up to whole
blocks). ``batch_mean``, ``weight_penalty`` and ``count_correct`` are the signatures that differ:
a kernel cannot return a value, so the result is written to ``mean[0]`` / ``total[0]`` /
``count[0]`` (output first, as everywhere).
"""

from __future__ import annotations

import math

from numbamlp.engines.cuda.activations import phi
from numbamlp.engines.cuda.backend import cuda
from numbamlp.engines.cuda.rows import (
    identity_row,
    minibatch_mean,
    modified_softmax_row,
    predicted_class,
    sample_weight_factor,
    squared_error_row,
    weight_total,
)


@cuda.jit
def gather_batch(h0, X, indices, scale):
    """h^0_{s,:} = c · X_{I_s,:}: the minibatch rows (I.1/I.2 chose the indices), scaled."""
    s, j = cuda.grid(2)
    if s < h0.shape[0] and j < h0.shape[1]:
        row = indices[s]
        h0[s, j] = X[row, j] * scale


@cuda.jit
def affine_forward(z, W, b, h_prev):
    """(F.1) z^k = b^k + W^k h^{k−1} for every sample of the batch; thread (s, i)."""
    d_out, d_in = W.shape
    s, i = cuda.grid(2)
    if s < z.shape[0] and i < d_out:
        # (F.1) z^k_{s,i} = b^k_i + Σ_j W^k_{ij} h^{k−1}_{s,j}
        acc = b[i]
        for j in range(d_in):
            acc += W[i, j] * h_prev[s, j]
        z[s, i] = acc


@cuda.jit
def activation_forward(h, z, code):
    """(F.2) h^k = φ_k(z^k), elementwise; thread (s, i)."""
    s, i = cuda.grid(2)
    if s < z.shape[0] and i < z.shape[1]:
        # (F.2) h^k_{s,i} = φ_k(z^k_{s,i})
        h[s, i] = phi(code, z[s, i])


@cuda.jit
def softmax_forward(f, z):
    """(F.3) f = softmax(z^L), computed as e^{z_i − max z} / Σ_j e^{z_j − max z}; thread s."""
    M = z.shape[1]
    s = cuda.grid(1)
    if s < z.shape[0]:
        z_max = z[s, 0]
        for j in range(1, M):
            z_max = max(z_max, z[s, j])
        total = 0.0
        for j in range(M):
            total += math.exp(z[s, j] - z_max)
        for i in range(M):
            # (F.3) f_{s,i} = e^{z_{s,i}} / Σ_j e^{z_{s,j}}   (shifting by max z cancels)
            f[s, i] = math.exp(z[s, i] - z_max) / total


@cuda.jit
def modified_softmax_forward(f, z):
    """(F.4) f = γ̃(z^L): K−1 logits in, K probabilities out; class K has logit 0; thread s."""
    s = cuda.grid(1)
    if s < z.shape[0]:
        # (F.4) f_{s,:} = γ̃(z^L_{s,:}), rows.modified_softmax_row
        modified_softmax_row(f, z, s)


@cuda.jit
def identity_forward(f, z):
    """(F.5) f = z^L: the identity head of regression."""
    s = cuda.grid(1)
    if s < z.shape[0]:
        # (F.5) f_{s,:} = z^L_{s,:}, rows.identity_row
        identity_row(f, z, s)


@cuda.jit
def squared_error(losses, f, targets):
    """(L.2) ℓ_s = ½ Σ_i (f_{s,i} − y_{s,i})², y_{s,:} the minibatch's targets (row s)."""
    s = cuda.grid(1)
    if s < f.shape[0]:
        # (L.2) ℓ_s = ½ Σ_i (f_{s,i} − y_{s,i})², rows.squared_error_row
        losses[s] = squared_error_row(f, targets, s, s)


@cuda.jit
def sample_weight_factors(omega, weights, indices):
    """(S.2) ω_s = B · w_{I_s} / Σ_{s'} w_{I_{s'}} for the minibatch I (float64; the sum in
    sample order). Serial: B numbers, and the sum must be one thread's."""
    if cuda.grid(1) == 0:
        B = omega.shape[0]
        total = weight_total(weights, indices, B)
        for s in range(B):
            # (S.2) ω_s = B · w_s / Σ_{s'} w_{s'}
            omega[s] = sample_weight_factor(weights[indices[s]], B, total)


@cuda.jit
def weight_losses(losses, omega):
    """(S.2) ℓ_s ← ω_s ℓ_s, so that S.1's mean is Σ_s w_s ℓ_s / Σ_s w_s; thread s."""
    s = cuda.grid(1)
    if s < losses.shape[0]:
        # (S.2) ℓ_s ← ω_s ℓ_s
        losses[s] = losses[s] * omega[s]


@cuda.jit
def cross_entropy(losses, z, y, n_classes):
    """(L.1) ℓ_s = −log f_{s,Y_s}, computed as log Σ_k e^{z_{s,k}} − z_{s,Y_s}; thread s.

    Both heads, as on the CPU: with γ̃ the reference class K has the fixed logit 0.
    """
    d_L = z.shape[1]
    has_reference_logit = n_classes > d_L
    s = cuda.grid(1)
    if s < z.shape[0]:
        z_max = 0.0 if has_reference_logit else z[s, 0]
        for k in range(d_L):
            z_max = max(z_max, z[s, k])
        total = math.exp(-z_max) if has_reference_logit else 0.0
        for k in range(d_L):
            total += math.exp(z[s, k] - z_max)
        z_y = z[s, y[s]] if y[s] < d_L else 0.0
        # (L.1) ℓ_s = log Σ_k e^{z_{s,k}} − z_{s,Y_s}
        losses[s] = z_max + math.log(total) - z_y


@cuda.jit
def batch_mean(mean, values):
    """(S.1) ℓ = (1/B) Σ_s ℓ_s, summed in sample order by one thread (deterministic)."""
    if cuda.grid(1) == 0:
        mean[0] = minibatch_mean(values, values.shape[0])


@cuda.jit
def weight_penalty(total, W):
    """(R.1) Σ_{i,j} (W^m_{ij})², summed in row order by one thread (deterministic), written to
    ``total[0]``."""
    if cuda.grid(1) == 0:
        acc = 0.0
        for i in range(W.shape[0]):
            for j in range(W.shape[1]):
                # (R.1) Σ_{i,j} (W^m_{ij})²
                acc += W[i, j] * W[i, j]
        total[0] = acc


@cuda.jit
def predict_classes(classes, f):
    """(P.1) onecold: the class of largest probability for each sample (first one on ties)."""
    s = cuda.grid(1)
    if s < f.shape[0]:
        # (P.1) ŷ_s = argmax_k f_{s,k}
        classes[s] = predicted_class(f, s, f.shape[1])


@cuda.jit
def count_correct(count, z, y, n_classes):
    """(P.1) The number of samples whose ŷ_s = argmax_k f_{s,k} (taken on z^L, the reference
    class of γ̃ at logit 0) equals Y_s, counted in sample order by one thread into count[0]."""
    if cuda.grid(1) == 0:
        correct = 0
        for s in range(z.shape[0]):
            # (P.1) ŷ_s = argmax_k f_{s,k} = argmax_k z_{s,k}
            if predicted_class(z, s, n_classes) == y[s]:
                correct += 1
        count[0] = correct


@cuda.jit
def gather_targets(targets_batch, targets, indices):
    """y_{s,:} = y_{I_s,:}: the minibatch's regression targets (I.1/I.2 chose the indices)."""
    s, i = cuda.grid(2)
    if s < targets_batch.shape[0] and i < targets_batch.shape[1]:
        targets_batch[s, i] = targets[indices[s], i]


@cuda.jit
def gather_labels(labels, y, indices):
    """Y_s = y_{I_s}: the minibatch labels (I.1/I.2 chose the indices); thread s."""
    s = cuda.grid(1)
    if s < labels.shape[0]:
        labels[s] = y[indices[s]]
