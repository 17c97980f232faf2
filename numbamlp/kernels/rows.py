"""Equations of one sample's row, each written once: the modified softmax head (F.4), the
identity head (F.5), the minibatch mean (S.1), the predicted class (P.1), the output error δ^L
(B.1, B.5), the squared error (L.2) and the sample weights' factor (S.2).

Plain Python functions using only arithmetic and comparisons, so that one source compiles for
every target, as activations.py's φ/φ′ and updates.py's U.1–U.6 do: forward.py and backward.py's
kernels call the CPU builds below, the fused engine's region 1 and its driver call them too
(engines/fused/rows.py, regions.py), and cuda/forward.py and cuda/backward.py build the same
functions as device functions.
"""

from __future__ import annotations

import math

from numbamlp.kernels._jit import scalar


# (F.4) f = γ̃(z^L) on row s: K−1 logits in, K probabilities out; class K has logit 0. Returns
# log(1 + Σ_{j<K} e^{z_{s,j}}), the log-sum-exp that L.1 needs (the fused engine keeps it).
def modified_softmax_row(f, z, s):
    K = f.shape[1]
    z_max = 0.0  # the reference class's logit
    for j in range(K - 1):
        z_max = max(z_max, z[s, j])
    total = math.exp(-z_max)
    for j in range(K - 1):
        total += math.exp(z[s, j] - z_max)
    for i in range(K - 1):
        # (F.4) f_{s,i} = e^{z_{s,i}} / (1 + Σ_{j<K} e^{z_{s,j}})
        f[s, i] = math.exp(z[s, i] - z_max) / total
    # (F.4) f_{s,K} = 1 / (1 + Σ_{j<K} e^{z_{s,j}})
    f[s, K - 1] = math.exp(-z_max) / total
    return z_max + math.log(total)


# (S.1) ℓ = (1/B) Σ_s ℓ_s over the first B entries, summed in sample order (deterministic)
def minibatch_mean(values, B):
    total = 0.0
    for s in range(B):
        total += values[s]
    return total / B


# (P.1) ŷ_s = argmax_k f_{s,k}, taken on the row s of ``scores``: f itself, or z^L, whose order
# both heads keep — with γ̃ (n_classes > the row's length) the reference class K has the fixed
# logit 0 and wins where every other logit is negative. The first class wins ties, as in onecold.
def predicted_class(scores, s, n_classes):
    d = scores.shape[1]
    best = 0
    for k in range(1, d):
        if scores[s, k] > scores[s, best]:
            best = k
    if n_classes > d and scores[s, best] < 0.0:
        best = d  # the reference class K of γ̃, logit 0
    return best


# (B.1) δ^L_{s,i} = f_{s,i} − 1_{Y_s=i}
def output_delta_entry(f_si, i, label):
    return f_si - (1.0 if label == i else 0.0)


# (F.5) f_{s,:} = z^L_{s,:} on row s: the identity head of regression
def identity_row(f, z, s):
    for i in range(f.shape[1]):
        # (F.5) f_{s,i} = z^L_{s,i}
        f[s, i] = z[s, i]


# (L.2) ℓ_s = ½ Σ_i (f_{s,i} − y_{s,i})² on row s of f, against row ``row`` of the targets (the
# minibatch's sample s is row I_s of the training set). Summed in float64 in unit order.
def squared_error_row(f, targets, s, row):
    total = 0.0
    for i in range(f.shape[1]):
        # (L.2) ℓ_s = ½ Σ_i (f_{s,i} − y_{s,i})²
        r = f[s, i] - targets[row, i]
        total += r * r
    return 0.5 * total


# (B.5) δ^L_{s,i} = ∂ℓ_s/∂z^L_{s,i} = f_{s,i} − y_{s,i}
def squared_error_delta_entry(f_si, y_si):
    return f_si - y_si


# (S.2) Σ_s w_{I_s} over the B samples of a minibatch, in sample order (deterministic, whoever
# computes it: every rank of an MPI job sums the whole batch alike)
def weight_total(weights, batch, B):
    total = 0.0
    for s in range(B):
        total += weights[batch[s]]
    return total


# (S.2) ω_s = B · w_s / Σ_{s'} w_{s'}: ℓ_s and δ^L_{s,:} are multiplied by it, then S.1's mean
# gives Σ_s w_s ℓ_s / Σ_s w_s. All w_s = 1 gives B/B = 1.0 exactly (bitwise the unweighted run);
# a minibatch whose weights are all 0 counts for nothing (ω_s = 0) instead of 0/0.
def sample_weight_factor(w_s, B, total):
    if total > 0.0:
        return (B * w_s) / total
    return 0.0


# CPU builds.
modified_softmax_row_cpu = scalar(modified_softmax_row)
minibatch_mean_cpu = scalar(minibatch_mean)
predicted_class_cpu = scalar(predicted_class)
output_delta_entry_cpu = scalar(output_delta_entry)
identity_row_cpu = scalar(identity_row)
squared_error_row_cpu = scalar(squared_error_row)
squared_error_delta_entry_cpu = scalar(squared_error_delta_entry)
weight_total_cpu = scalar(weight_total)
sample_weight_factor_cpu = scalar(sample_weight_factor)
