"""Region 1's row-wise helpers: one equation each, for the samples s0 ≤ s < s1 of one block —
the gather, φ (F.2), the heads (F.3, F.4, F.5), the loss ℓ_s (L.1, L.2), the count (P.1), δ^L
(B.1, B.5) and the sample weights' factors (S.2).
"""

from __future__ import annotations

import math

import numpy as np

from numbamlp.engines.fused.expf import exp_nonpositive_float32
from numbamlp.kernels._jit import helper, inlined
from numbamlp.kernels.activations import SIGMOID, phi
from numbamlp.kernels.dropout import dropout_delta_row_cpu, dropout_forward_row_cpu
from numbamlp.kernels.intrinsics import prefer_wide_vectors, prefetch_to_l2
from numbamlp.kernels.memory import CACHE_LINE
from numbamlp.kernels.philox import MASK32
from numbamlp.kernels.rows import (
    identity_row_cpu,
    modified_softmax_row_cpu,
    output_delta_entry_cpu,
    predicted_class_cpu,
    sample_weight_factor_cpu,
    squared_error_delta_entry_cpu,
    squared_error_row_cpu,
)

GATHER_AHEAD = 2  # gather_rows prefetches the row of the sample this many places on


@helper
def gather_rows(h0, spans, X, X_spans, scale, batch, s0, s1):
    """h^0_{s,:} = c · X_{I_s,:}: the block's inputs (I.1/I.2 chose the row indices I_s), and
    the span of each (``input_spans``). While it copies row I_s it prefetches the row
    GATHER_AHEAD samples on: the rows are scattered over X, so each comes from memory, and the
    hardware's prefetcher only follows a row once it has started."""
    prefer_wide_vectors()
    line = CACHE_LINE // X.itemsize
    for s in range(s0, s1):
        row = batch[s]
        ahead = batch[min(s + GATHER_AHEAD, s1 - 1)]
        for j in range(0, X.shape[1], line):
            prefetch_to_l2(X, ahead, j)
        spans[s, 0], spans[s, 1] = X_spans[row, 0], X_spans[row, 1]
        for j in range(h0.shape[1]):
            h0[s, j] = X[row, j] * scale


@helper
def activation_rows(h, z, code, s0, s1):
    """(F.2) h^k = φ_k(z^k) for the block's samples (σ in float32: ``sigmoid_rows_float32``)."""
    if code == SIGMOID and h.itemsize == 4:
        sigmoid_rows_float32(h, z, s0, s1)
        return
    for s in range(s0, s1):
        for i in range(z.shape[1]):
            # (F.2) h^k_{s,i} = φ_k(z^k_{s,i})
            h[s, i] = phi(code, z[s, i])


@inlined
def sigmoid_float32(t):
    """(A.1) σ(t) in float32 as ``sigmoid_rows_float32`` computes it: 1/(1+e) for t ≥ 0 and
    e/(1+e) for t < 0, with e = e^{−|t|} from ``exp_nonpositive_float32``. Inlined by Numba, so
    that a loop calling it vectorises; tiles.hidden_delta_rows takes σ′ through it on a layer
    whose h^m the forward pass replaced by h̃^m (D.2)."""
    one = np.float32(1.0)
    e = exp_nonpositive_float32(-abs(t))
    return one / (one + e) if t >= 0 else e / (one + e)


@helper
def sigmoid_rows_float32(h, z, s0, s1):
    """(F.2) with (A.1) σ, in float32, for the block's samples: ``sigmoid`` of activations.py
    with its e^{−|t|} taken by ``exp_nonpositive_float32`` instead of the C library's expf, which
    LLVM cannot vectorise (Numba has no vector maths library here), so that this loop vectorises
    (the timings: docs/performance.md, "Figures moved out of the code"). The results differ
    from expf's by ≤ 1 ulp."""
    prefer_wide_vectors()
    one = np.float32(1.0)
    for s in range(s0, s1):
        for i in range(z.shape[1]):
            t = np.float32(z[s, i])
            e = exp_nonpositive_float32(-abs(t))
            # (F.2) h^k_{s,i} = φ_k(z^k_{s,i}),  (A.1) σ(t) = 1/(1+e^{−t}), written with
            #       e = e^{−|t|}: 1/(1+e) for t ≥ 0 and e/(1+e) for t < 0
            h[s, i] = one / (one + e) if t >= 0 else e / (one + e)


@helper
def softmax_rows(f, log_totals, z, s0, s1):
    """(F.3) f = softmax(z^L), computed as e^{z_i − max z} / Σ_j e^{z_j − max z}; each
    exponential is taken once and kept in f until it is divided. Their sum is float64, as L.1
    takes it, and log Σ_j e^{z_{s,j}} = max z + log Σ_j e^{z_{s,j} − max z} goes to
    log_totals[s]: ``cross_entropy_rows`` needs nothing else, so it takes no exponential of its
    own. In float32 the exponentials are ``exp_nonpositive_float32``'s (z − max z ≤ 0), ≤ 1 ulp
    from expf's, in a loop of their own so that LLVM vectorises it (the timings:
    docs/performance.md, "Figures moved out of the code")."""
    prefer_wide_vectors()
    M = z.shape[1]
    for s in range(s0, s1):
        z_max = z[s, 0]
        for j in range(1, M):
            z_max = max(z_max, z[s, j])
        if f.itemsize == 4:
            for j in range(M):
                f[s, j] = exp_nonpositive_float32(np.float32(z[s, j] - z_max))
        else:
            for j in range(M):
                f[s, j] = math.exp(z[s, j] - z_max)
        total = 0.0
        for j in range(M):
            total += np.float64(f[s, j])
        log_totals[s] = z_max + math.log(total)
        for i in range(M):
            # (F.3) f_{s,i} = e^{z_{s,i}} / Σ_j e^{z_{s,j}}   (shifting by max z cancels)
            f[s, i] = f[s, i] / total


@helper
def modified_softmax_rows(f, log_totals, z, s0, s1):
    """(F.4) f = γ̃(z^L): K−1 logits in, K probabilities out; class K has logit 0. Like
    ``softmax_rows`` it leaves log(1 + Σ_{j<K} e^{z_{s,j}}) in log_totals[s] for L.1."""
    for s in range(s0, s1):
        # (F.4) f_{s,:} = γ̃(z^L_{s,:}), rows.modified_softmax_row
        log_totals[s] = modified_softmax_row_cpu(f, z, s)


@helper
def cross_entropy_rows(losses, log_totals, z, y, batch, s0, s1):
    """(L.1) ℓ_s = log Σ_k e^{z_{s,k}} − z_{s,Y_s}: the head (``softmax_rows`` or
    ``modified_softmax_rows``) left the log-sum-exp, shifted by max z, in log_totals[s] (with
    γ̃ the reference class K has the fixed logit 0, and z_{s,K} = 0 here)."""
    d_L = z.shape[1]
    for s in range(s0, s1):
        label = y[batch[s]]
        z_y = z[s, label] if label < d_L else 0.0
        # (L.1) ℓ_s = log Σ_k e^{z_{s,k}} − z_{s,Y_s}
        losses[s] = log_totals[s] - z_y


@helper
def correct_rows(correct, z, y, batch, n_classes, s0, s1):
    """(P.1) correct[s] = 1 if ŷ_s = argmax_k f_{s,k} equals Y_s, else 0, taken on z^L as
    forward.count_correct takes it (rows.predicted_class, so both engines count the same):
    the running training accuracy, at the cost of B · d_L comparisons per step."""
    for s in range(s0, s1):
        # (P.1) ŷ_s = argmax_k f_{s,k} = argmax_k z_{s,k}
        correct[s] = 1 if predicted_class_cpu(z, s, n_classes) == y[batch[s]] else 0


@helper
def output_delta_rows(delta_L, f, y, batch, s0, s1):
    """(B.1) δ^L = f − 1_Y (both heads: with γ̃, δ^L has the K−1 entries i < K)."""
    for s in range(s0, s1):
        label = y[batch[s]]
        for i in range(delta_L.shape[1]):
            # (B.1) δ^L_{s,i} = f_{s,i} − 1_{Y_s=i}
            delta_L[s, i] = output_delta_entry_cpu(f[s, i], i, label)


@helper
def identity_rows(f, z, s0, s1):
    """(F.5) f = z^L for the block's samples: the identity head of regression."""
    for s in range(s0, s1):
        # (F.5) f_{s,:} = z^L_{s,:}, rows.identity_row
        identity_row_cpu(f, z, s)


@helper
def squared_error_rows(losses, f, targets, batch, s0, s1):
    """(L.2) ℓ_s = ½ Σ_i (f_{s,i} − y_{I_s,i})² for the block's samples (forward.squared_error's
    row function)."""
    for s in range(s0, s1):
        # (L.2) ℓ_s = ½ Σ_i (f_{s,i} − y_{s,i})², rows.squared_error_row
        losses[s] = squared_error_row_cpu(f, targets, s, batch[s])


@helper
def squared_error_delta_rows(delta_L, f, targets, batch, s0, s1):
    """(B.5) δ^L = f − y for the block's samples."""
    for s in range(s0, s1):
        row = batch[s]
        for i in range(delta_L.shape[1]):
            # (B.5) δ^L_{s,i} = f_{s,i} − y_{s,i}
            delta_L[s, i] = squared_error_delta_entry_cpu(f[s, i], targets[row, i])


@helper
def no_correct_rows(correct, s0, s1):
    """(P.1) has no meaning for regression: its count is 0."""
    for s in range(s0, s1):
        correct[s] = 0


@helper
def sample_weight_rows(losses, delta_L, weights, batch, B, total, s0, s1):
    """(S.2) ℓ_s ← ω_s ℓ_s and δ^L_{s,:} ← ω_s δ^L_{s,:}, ω_s = B · w_{I_s} / Σ_{s'} w_{I_{s'}},
    for the block's samples: B and the total are the whole minibatch's (``run_steps`` sums the
    weights in sample order, once per step), as forward.weight_losses and
    backward.weight_output_delta take them."""
    for s in range(s0, s1):
        omega_s = sample_weight_factor_cpu(weights[batch[s]], B, total)
        # (S.2) ℓ_s ← ω_s ℓ_s
        losses[s] = losses[s] * omega_s
        for i in range(delta_L.shape[1]):
            # (S.2) δ^L_{s,i} ← ω_s δ^L_{s,i}
            delta_L[s, i] = delta_L[s, i] * omega_s


@helper
def dropout_forward_rows(h, batch, layer, step, key, threshold, scale, s0, s1):
    """(D.2) h̃^m_{s,:} = h^m_{s,:} ⊙ r^m_{s,:} / (1 − p_m) for the block's samples, in place
    after F.2; the mask of sample s is that of its row batch[s] of the training set (D.1),
    whichever block or process holds it."""
    for s in range(s0, s1):
        sample = np.uint64(batch[s]) & MASK32
        # (D.2) h̃^m_{s,j} = h^m_{s,j} · r^m_{s,j} / (1 − p_m)
        dropout_forward_row_cpu(h, s, sample, layer, step, key[0], key[1], threshold, scale)


@helper
def dropout_delta_rows(delta, batch, layer, step, key, threshold, scale, s0, s1):
    """(D.3) δ^m_{s,:} ← δ^m_{s,:} ⊙ r^m_{s,:} / (1 − p_m) for the block's samples, once
    ``hidden_delta_rows`` wrote (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) φ′_m(z^m_{s,j})."""
    for s in range(s0, s1):
        sample = np.uint64(batch[s]) & MASK32
        # (D.3) δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · r^m_{s,j}/(1 − p_m) · φ′_m(z^m_{s,j})
        dropout_delta_row_cpu(delta, s, sample, layer, step, key[0], key[1], threshold, scale)
