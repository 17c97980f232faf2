"""Forward-pass kernels: one equation each (F.1–F.5, L.1, L.2, S.1, S.2, R.1's penalty), parallel
over samples s.

Layout: a minibatch activation is an array ``h[s, j]`` of shape (B, d): sample s of the batch,
unit j of the layer, one sample per row. Weights are ``W[i, j]`` of shape (d_k, d_{k−1}) as in
the notes, so z^k = b^k + W^k h^{k−1} reads ``z[s, i] = b[i] + Σ_j W[i, j] h[s, j]``.
Signatures put outputs first, then inputs. Every loop writes only rows s it owns, so there are
no races and the result does not depend on the number of threads.
"""

from __future__ import annotations

import math

from numba import prange

from numbamlp.kernels._jit import kernel, serial
from numbamlp.kernels.activations import phi
from numbamlp.kernels.rows import (
    identity_row_cpu,
    minibatch_mean_cpu,
    modified_softmax_row_cpu,
    predicted_class_cpu,
    sample_weight_factor_cpu,
    squared_error_row_cpu,
    weight_total_cpu,
)


@kernel
def gather_batch(h0, X, indices, scale):
    """h^0_{s,:} = c · X_{I_s,:}: the minibatch rows (I.1/I.2 chose the indices), scaled.

    X may hold raw bytes (MNIST pixels, c = 1/255) or floats (c = 1); ``scale`` has h0's dtype,
    so the product is computed in the model's precision.
    """
    for s in prange(h0.shape[0]):
        row = indices[s]
        for j in range(h0.shape[1]):
            h0[s, j] = X[row, j] * scale


@kernel
def affine_forward(z, W, b, h_prev):
    """(F.1) z^k = b^k + W^k h^{k−1} for every sample of the batch."""
    d_out, d_in = W.shape
    for s in prange(z.shape[0]):
        for i in range(d_out):
            # (F.1) z^k_{s,i} = b^k_i + Σ_j W^k_{ij} h^{k−1}_{s,j}
            acc = b[i]
            for j in range(d_in):
                acc += W[i, j] * h_prev[s, j]
            z[s, i] = acc


@kernel
def activation_forward(h, z, code):
    """(F.2) h^k = φ_k(z^k), elementwise."""
    for s in prange(z.shape[0]):
        for i in range(z.shape[1]):
            # (F.2) h^k_{s,i} = φ_k(z^k_{s,i})
            h[s, i] = phi(code, z[s, i])


@kernel(fastmath=False)
def softmax_forward(f, z):
    """(F.3) f = softmax(z^L), computed as e^{z_i − max z} / Σ_j e^{z_j − max z}."""
    M = z.shape[1]
    for s in prange(z.shape[0]):
        z_max = z[s, 0]
        for j in range(1, M):
            z_max = max(z_max, z[s, j])
        total = 0.0
        for j in range(M):
            total += math.exp(z[s, j] - z_max)
        for i in range(M):
            # (F.3) f_{s,i} = e^{z_{s,i}} / Σ_j e^{z_{s,j}}   (shifting by max z cancels)
            f[s, i] = math.exp(z[s, i] - z_max) / total


@kernel(fastmath=False)
def modified_softmax_forward(f, z):
    """(F.4) f = γ̃(z^L): K−1 logits in, K probabilities out; class K has logit 0."""
    for s in prange(z.shape[0]):
        # (F.4) f_{s,:} = γ̃(z^L_{s,:}), rows.modified_softmax_row
        modified_softmax_row_cpu(f, z, s)


@kernel
def identity_forward(f, z):
    """(F.5) f = z^L: the identity head of regression."""
    for s in prange(z.shape[0]):
        # (F.5) f_{s,:} = z^L_{s,:}, rows.identity_row
        identity_row_cpu(f, z, s)


@kernel(fastmath=False)
def squared_error(losses, f, targets):
    """(L.2) ℓ_s = ½ Σ_i (f_{s,i} − y_{s,i})², y_{s,:} the minibatch's targets (row s)."""
    for s in prange(f.shape[0]):
        # (L.2) ℓ_s = ½ Σ_i (f_{s,i} − y_{s,i})², rows.squared_error_row
        losses[s] = squared_error_row_cpu(f, targets, s, s)


@serial
def sample_weight_factors(omega, weights, indices):
    """(S.2) ω_s = B · w_{I_s} / Σ_{s'} w_{I_{s'}} for the minibatch I (float64; the sum in
    sample order). Serial: B numbers, and the sum must be one thread's."""
    B = omega.shape[0]
    total = weight_total_cpu(weights, indices, B)
    for s in range(B):
        # (S.2) ω_s = B · w_s / Σ_{s'} w_{s'}
        omega[s] = sample_weight_factor_cpu(weights[indices[s]], B, total)


@serial
def weight_losses(losses, omega):
    """(S.2) ℓ_s ← ω_s ℓ_s, so that S.1's mean is Σ_s w_s ℓ_s / Σ_s w_s."""
    for s in range(losses.shape[0]):
        # (S.2) ℓ_s ← ω_s ℓ_s
        losses[s] = losses[s] * omega[s]


@kernel(fastmath=False)
def cross_entropy(losses, z, y, n_classes):
    """(L.1) ℓ_s = −log f_{s,Y_s}, computed as log Σ_k e^{z_{s,k}} − z_{s,Y_s}.

    One kernel for both heads: with softmax z has n_classes columns; with γ̃ it has
    n_classes − 1 and the reference class K has the fixed logit z_{s,K} = 0. The log-sum-exp is
    shifted by max z, so it never overflows and never takes log(0).
    """
    d_L = z.shape[1]
    has_reference_logit = n_classes > d_L
    for s in prange(z.shape[0]):
        z_max = 0.0 if has_reference_logit else z[s, 0]
        for k in range(d_L):
            z_max = max(z_max, z[s, k])
        total = math.exp(-z_max) if has_reference_logit else 0.0
        for k in range(d_L):
            total += math.exp(z[s, k] - z_max)
        z_y = z[s, y[s]] if y[s] < d_L else 0.0
        # (L.1) ℓ_s = log Σ_k e^{z_{s,k}} − z_{s,Y_s}
        losses[s] = z_max + math.log(total) - z_y


@serial
def batch_mean(values):
    """(S.1) ℓ = (1/B) Σ_s ℓ_s, summed in sample order (deterministic): rows.minibatch_mean."""
    return minibatch_mean_cpu(values, values.shape[0])


@serial
def weight_penalty(W):
    """(R.1) Σ_{i,j} (W^m_{ij})², summed in row order (deterministic); the penalty of ℓ_λ is
    λ/2 times its sum over the layers. Only for reporting ℓ_λ (and checking its gradient):
    training needs the penalty's gradient alone (backward.weight_decay_gradient)."""
    total = 0.0
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            # (R.1) Σ_{i,j} (W^m_{ij})²
            total += W[i, j] * W[i, j]
    return total


@kernel
def predict_classes(classes, f):
    """(P.1) onecold: the class of largest probability for each sample (first one on ties)."""
    for s in prange(f.shape[0]):
        # (P.1) ŷ_s = argmax_k f_{s,k}
        classes[s] = predicted_class_cpu(f, s, f.shape[1])


@serial
def count_correct(z, y, n_classes):
    """(P.1) The number of samples whose ŷ_s = argmax_k f_{s,k} equals Y_s, taken on z^L: both
    heads keep the order of the logits, so the largest f_{s,k} is the largest z_{s,k} (with γ̃
    the reference class K has the fixed logit 0). The first class wins ties, as in onecold.
    The running training accuracy counts this on each minibatch as it is trained (serial: B
    comparisons, summed in sample order)."""
    correct = 0
    for s in range(z.shape[0]):
        # (P.1) ŷ_s = argmax_k f_{s,k} = argmax_k z_{s,k}
        if predicted_class_cpu(z, s, n_classes) == y[s]:
            correct += 1
    return correct


@kernel
def gather_targets(targets_batch, targets, indices):
    """y_{s,:} = y_{I_s,:}: the minibatch's regression targets (I.1/I.2 chose the indices)."""
    for s in prange(targets_batch.shape[0]):
        row = indices[s]
        for i in range(targets_batch.shape[1]):
            targets_batch[s, i] = targets[row, i]


@serial
def gather_labels(labels, y, indices):
    """Y_s = y_{I_s}: the minibatch labels (I.1/I.2 chose the indices).

    Serial: B integers are not worth a thread launch.
    """
    for s in range(labels.shape[0]):
        labels[s] = y[indices[s]]
