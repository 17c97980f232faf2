"""The fused engine's two parallel regions and their driver.

Region 1, ``forward_backward``, parallel over blocks of samples; region 2, ``gradient_update``,
parallel over ranges of rows of the weights; ``run_steps``, serial, makes many steps per call:
region 1, then ``finish_step`` (the minibatch loss, and region 2). engines/fused/__init__.py
describes the whole.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from numbamlp.engines.fused.layout import (
    ADADELTA,
    ADAGRAD,
    ADAM,
    B_AT,
    BAND,
    BIAS1,
    BIAS2,
    CHUNK,
    DECAY,
    HYPER,
    IDENTITY,
    INV_BATCH,
    LR,
    MOMENTUM,
    PACKED_AT,
    RMSPROP,
    ROW_AT,
    SGD,
    SHARD_AT,
    SIZE,
    SOFTMAX,
    W_AT,
    activations,
    biases,
    gradient_shard,
    layer_rows,
    packed_weights,
    weights,
)
from numbamlp.engines.fused.rows import (
    activation_rows,
    correct_rows,
    cross_entropy_rows,
    dropout_delta_rows,
    dropout_forward_rows,
    gather_rows,
    identity_rows,
    modified_softmax_rows,
    no_correct_rows,
    output_delta_rows,
    sample_weight_rows,
    softmax_rows,
    squared_error_delta_rows,
    squared_error_rows,
)
from numbamlp.engines.fused.tiles import (
    affine_layer,
    hidden_delta_rows,
    pack_weight_rows,
    weight_gradient_rows,
)
from numbamlp.kernels._jit import helper, kernel, serial
from numbamlp.kernels.intrinsics import enter_flush_mode, leave_flush_mode
from numbamlp.kernels.philox import MASK32
from numbamlp.kernels.rows import minibatch_mean_cpu, weight_total_cpu
from numbamlp.kernels.updates import (
    adadelta_element,
    adagrad_element,
    adam_element,
    momentum_element,
    rmsprop_element,
    sgd_element,
)


@kernel(fastmath=False)
def forward_backward(
    h, z, delta, packed, f, losses, log_totals, shards, spans, theta, X, X_spans, scale, y, targets,
    sample_weights, B_step, weight_sum, batch, layout, codes, head, sample_block, flush, correct,
    step, drop_key, drop_thresholds, drop_scales,
):  # fmt: skip
    """Region 1: for each block of samples, h^0, F.1–F.5, L.1 or L.2, B.1 or B.5 (with S.2's
    ω_s when there are sample weights) and B.4, then B.3 and B.2 summed over the block's samples
    into its gradient shard, for the layers that have shards. ``correct[s]``: whether sample s
    is classified right (P.1), for the training accuracy (0 for regression).

    ``batch`` holds the step's row indices I_s into X and y (labels), or targets (the identity
    head's, (n, T)); ``sample_weights``: w (n,), or zero-length for none; ``B_step`` and
    ``weight_sum`` are the whole minibatch's size and Σ_s w_{I_s} (with an exchange, ``batch``
    is this process's share only). ``codes[k]`` is φ_k's code. ``packed``: the packed (W^k)ᵀ
    that F.1 reads for the layers that have one (``layout.packed_weights``), as region 2 or
    ``pack_weights`` last wrote them from θ.
    Dropout: a hidden layer k with ``drop_thresholds[k]`` ≠ 0 (⌈p_k 2^32⌉) turns h^k into h̃^k
    after F.2 (D.2) and multiplies δ^k by the same mask after B.4 (D.3), the mask drawn from
    ``drop_key``, the step p ``step``, the sample's row batch[s] and (k, j) (D.1); layers with
    0 skip both (rate 0 is the run without dropout).
    """
    B = batch.shape[0]
    L = layout.shape[1] - 1
    for block in prange((B + sample_block - 1) // sample_block):
        saved = enter_flush_mode(flush)
        s0 = block * sample_block
        s1 = min(s0 + sample_block, B)
        gather_rows(activations(h, layout, np.int64(0), B), spans, X, X_spans, scale, batch, s0, s1)
        for k in range(1, L + 1):
            z_k = layer_rows(z, layout, k, B)
            h_prev = activations(h, layout, k - 1, B)
            W_k, b_k = weights(theta, layout, k), biases(theta, layout, k)
            packed_k = packed_weights(packed, layout, k)
            affine_layer(z_k, packed_k, W_k, b_k, h_prev, s0, s1, spans, k > 1)
            if k < L:
                h_k = activations(h, layout, k, B)
                activation_rows(h_k, z_k, codes[k], s0, s1)
                if drop_thresholds[k] != 0:  # (D.2) h̃^k, which F.1 and B.3 of layer k+1 read
                    dropout_forward_rows(
                        h_k, batch, np.uint64(k), step, drop_key, drop_thresholds[k],
                        drop_scales[k], s0, s1,
                    )  # fmt: skip
        z_L = layer_rows(z, layout, L, B)
        delta_L = layer_rows(delta, layout, L, B)
        if head == IDENTITY:  # regression: f = z^L, ½‖f − y‖², δ^L = f − y
            identity_rows(f, z_L, s0, s1)
            squared_error_rows(losses, f, targets, batch, s0, s1)
            no_correct_rows(correct, s0, s1)
            squared_error_delta_rows(delta_L, f, targets, batch, s0, s1)
        else:
            if head == SOFTMAX:
                softmax_rows(f, log_totals, z_L, s0, s1)
            else:
                modified_softmax_rows(f, log_totals, z_L, s0, s1)
            cross_entropy_rows(losses, log_totals, z_L, y, batch, s0, s1)
            correct_rows(correct, z_L, y, batch, f.shape[1], s0, s1)
            output_delta_rows(delta_L, f, y, batch, s0, s1)
        if sample_weights.shape[0] > 0:  # (S.2) before B.4 and the shards read δ^L
            sample_weight_rows(losses, delta_L, sample_weights, batch, B_step, weight_sum, s0, s1)
        for m in range(L - 1, 0, -1):
            delta_m = layer_rows(delta, layout, m, B)
            delta_next = layer_rows(delta, layout, m + 1, B)
            W_next = weights(theta, layout, m + 1)
            z_m = layer_rows(z, layout, m, B)
            h_m = activations(h, layout, m, B)
            dropped = drop_thresholds[m] != 0
            hidden_delta_rows(delta_m, W_next, delta_next, z_m, h_m, codes[m], dropped, s0, s1)
            if dropped:  # (D.3) the mask and factor of D.2 on δ^m
                dropout_delta_rows(
                    delta_m, batch, np.uint64(m), step, drop_key, drop_thresholds[m],
                    drop_scales[m], s0, s1,
                )  # fmt: skip
        for m in range(1, L + 1):
            if layout[SHARD_AT, m] >= 0:
                weight_gradient_rows(
                    gradient_shard(shards, layout, m, np.int64(block)),
                    layer_rows(delta, layout, m, B),
                    activations(h, layout, m - 1, B),
                    np.int64(0),
                    layout[SIZE, m],
                    s0,
                    s1,
                    s1 - s0,
                    spans,
                    m > 1,
                )
        leave_flush_mode(saved)


# ---------------------------------------------------------------------------------------------
# The update of a run of components: updates.py's U.1–U.6, the kernels' own, for each of them.


@helper
def update_run(theta, state, start, sums, n, optimizer, coef):
    """(S.1) g_r = (1/B) · sums[j], then one update U.1–U.6, for the n components
    r = start + j of θ.

    The branch on the optimizer is taken once, outside the loop; the loop indexes slices from 0
    (an index start + j of unknown sign would keep Numba's negative-index wraparound inside the
    loop). Compiled without fast-math, so that g_r is rounded once, as optimizers.py's gradient
    array rounds it: with ``reassoc`` LLVM may turn γ_p · ((1/B) · sums[j]) into
    (γ_p/B) · sums[j]."""
    inv_batch, lr = coef[INV_BATCH], coef[LR]
    c0, c1, c2 = coef[HYPER], coef[HYPER + 1], coef[HYPER + 2]
    stop = start + n
    th = theta[start:stop]
    if optimizer == SGD:
        for j in range(n):
            # (U.1) θ_r ← θ_r − γ_p g_r
            sgd_element(th, j, sums[j] * inv_batch, lr)
    elif optimizer == MOMENTUM:
        velocity = state[0, start:stop]
        for j in range(n):
            # (U.2) v_r ← μ v_r + g_r;  θ_r ← θ_r − γ_p v_r
            momentum_element(th, velocity, j, sums[j] * inv_batch, lr, c0)
    elif optimizer == ADAGRAD:
        sum_sq_grad = state[0, start:stop]
        for j in range(n):
            # (U.3) G_r ← G_r + g_r²;  θ_r ← θ_r − γ_p g_r / (√G_r + ε)
            adagrad_element(th, sum_sq_grad, j, sums[j] * inv_batch, lr, c0)
    elif optimizer == ADADELTA:
        avg_sq_grad, avg_sq_step = state[0, start:stop], state[1, start:stop]
        for j in range(n):
            # (U.4) E_r ← ρE_r + (1−ρ)g_r²;  Δ_r = −√(D_r+ε)/√(E_r+ε) g_r; D_r, θ_r
            adadelta_element(th, avg_sq_grad, avg_sq_step, j, sums[j] * inv_batch, lr, c0, c1)
    elif optimizer == RMSPROP:
        avg_sq_grad = state[0, start:stop]
        for j in range(n):
            # (U.5) E_r ← ρE_r + (1−ρ)g_r²;  θ_r ← θ_r − γ_p g_r / (√E_r + ε)
            rmsprop_element(th, avg_sq_grad, j, sums[j] * inv_batch, lr, c0, c1)
    else:
        m, v = state[0, start:stop], state[1, start:stop]
        bias1, bias2 = coef[BIAS1], coef[BIAS2]
        for j in range(n):
            # (U.6) m_r, v_r;  θ_r ← θ_r − γ_p (m_r/(1−β₁^p)) / (√(v_r/(1−β₂^p)) + ε)
            adam_element(th, m, v, j, sums[j] * inv_batch, lr, c0, c1, c2, bias1, bias2)


# ---------------------------------------------------------------------------------------------
# Region 2 helpers.


@helper
def sum_shards(G, shards, layout, m, n_blocks, i_first, i_end):
    """The whole batch's sums of B.3 and B.2 for the rows i_first ≤ i < i_end of W^m, from the
    blocks' shards: G[i − i_first, :] = Σ_b shard_b[i, :], added in block order b = 0, 1, …
    (a fixed order, whichever thread wrote each shard). The columns are those of
    ``weight_gradient_rows``: d_{m−1} weights, then the bias."""
    n = layout[SIZE, m - 1] + 1
    first = gradient_shard(shards, layout, m, np.int64(0))
    for r in range(i_end - i_first):
        g = G[r]
        row = first[i_first + r]
        # (B.3) and (S.1) the sum starts with block 0's partial sums
        for j in range(n):
            g[j] = row[j]
    for b in range(1, n_blocks):
        shard = gradient_shard(shards, layout, m, b)
        for r in range(i_end - i_first):
            g = G[r]
            row = shard[i_first + r]
            # (B.3) and (S.1) Σ_s δ^m_{s,i} h^{m−1}_{s,j} = Σ_b Σ_{s in block b} δ^m_{s,i}
            #       h^{m−1}_{s,j}   — the blocks' partial sums in block order, j vectorised
            for j in range(n):
                g[j] = g[j] + row[j]


@helper
def weight_decay_run(sums, theta, start, n, decay_sum):
    """(R.1) for the n weights r = start + j of one row i of W^m, in the scale of the sums
    (B times the mean): sums[j] ← Σ_s δ^m_{s,i} h^{m−1}_{s,j} + Bλ W^m_{ij}, so that
    update_run's (1/B) · sums[j] is ∂ℓ_λ/∂W^m_{ij}. decay_sum is Bλ."""
    w = theta[start : start + n]
    for j in range(n):
        # (R.1) ∂ℓ_λ/∂W^m_{ij} = (1/B) Σ_s δ^m_{s,i} h^{m−1}_{s,j} + λ W^m_{ij}
        sums[j] += decay_sum * w[j]


@kernel(fastmath=False)
def gradient_update(
    theta, state, packed, G, shards, h, delta, spans, layout, cuts, B, sample_block, optimizer,
    coef, flush,
):  # fmt: skip
    """Region 2: item t owns the rows cuts[t] ≤ r < cuts[t+1] of W^1..W^L (counted as one
    sequence). For each of its rows i of W^m: B.3 and B.2 over the whole batch — the sum of the
    block's shards where layer m has them, else summed here — plus λ W^m_{i,:} when the plan has
    a weight decay (R.1), then U.* on W^m_{i,:} and b^m_i, then the new W^m_{i,:} into the
    packed (W^m)ᵀ where layer m has one (``pack_weight_rows``: the item's rows only, so no two
    items write one entry).
    ``G[t]`` holds item t's sums, one band of rows at a time.
    """
    L = layout.shape[1] - 1
    n_blocks = (B + sample_block - 1) // sample_block
    decay_sum = coef[DECAY] * B  # Bλ, the weight decay (R.1) in the scale of the sums
    for t in prange(cuts.shape[0] - 1):
        saved = enter_flush_mode(flush)
        for m in range(1, L + 1):
            first_row = layout[ROW_AT, m]
            d_prev = layout[SIZE, m - 1]
            lo = max(cuts[t], first_row) - first_row
            hi = min(cuts[t + 1], first_row + layout[SIZE, m]) - first_row
            delta_m = layer_rows(delta, layout, m, B)
            h_prev = activations(h, layout, m - 1, B)
            band, chunk = layout[BAND, m], layout[CHUNK, m]
            for i in range(lo, hi, band):
                i_end = min(i + band, hi)
                if layout[SHARD_AT, m] >= 0:
                    sum_shards(G[t], shards, layout, m, n_blocks, i, i_end)
                else:
                    weight_gradient_rows(
                        G[t], delta_m, h_prev, i, i_end, np.int64(0), B, chunk, spans, m > 1
                    )  # fmt: skip
                for r in range(i_end - i):
                    sums = G[t, r]  # Σ_s of row i + r: d_{m−1} weights, then the bias
                    w_at = layout[W_AT, m] + (i + r) * d_prev
                    b_at = layout[B_AT, m] + i + r
                    if decay_sum != 0:  # (R.1) the weights only; b^m_i is not decayed
                        weight_decay_run(sums, theta, w_at, d_prev, decay_sum)
                    update_run(theta, state, w_at, sums, d_prev, optimizer, coef)
                    update_run(theta, state, b_at, sums[d_prev:], np.int64(1), optimizer, coef)
                if layout[PACKED_AT, m] >= 0:
                    pack_weight_rows(
                        packed_weights(packed, layout, m), weights(theta, layout, m), i, i_end
                    )  # fmt: skip
        leave_flush_mode(saved)


@kernel
def pack_weights(packed, theta, layout):
    """Every layer's packed (W^k)ᵀ from θ (``pack_weight_rows``), one strip per item: at the
    start of each run, since θ may have changed between runs."""
    L = layout.shape[1] - 1
    for k in range(1, L + 1):
        packed_k = packed_weights(packed, layout, k)
        width = packed_k.shape[2]
        W_k = weights(theta, layout, k)
        for q in prange(packed_k.shape[0]):
            pack_weight_rows(packed_k, W_k, q * width, (q + 1) * width)


# ---------------------------------------------------------------------------------------------
# The driver: one call, many steps.


@serial
def step_coefficients(coef, lr, B, optimizer, hyper, p):
    """γ_p, 1/B, the hyperparameters and Adam's 1 − β₁^p, 1 − β₂^p, computed in float64 and
    rounded to θ's precision by storing them in ``coef``, as Optimizer.step does."""
    coef[LR] = lr
    coef[INV_BATCH] = 1.0 / B
    for c in range(hyper.shape[0]):
        coef[HYPER + c] = hyper[c]
    if optimizer == ADAM:
        coef[BIAS1] = 1.0 - hyper[0] ** np.float64(p)
        coef[BIAS2] = 1.0 - hyper[1] ** np.float64(p)


@serial
def finish_step(
    theta, state, packed, losses, correct, row, B, p, lrs, batch_losses, batch_correct, optimizer,
    hyper, G, shards, h, delta, spans, coef, layout, cuts, sample_block, flush,
):  # fmt: skip
    """The rest of step p on minibatch ``row`` of B samples, once region 1 has written every
    row of the batch buffers and every gradient shard: the minibatch loss ℓ (S.1) into
    ``batch_losses`` and the number of its samples classified right (P.1) into
    ``batch_correct``; then, if ℓ is finite, γ_p and the step's coefficients and region 2.
    Returns whether the update was made (if ℓ is not finite θ and the optimizer state stay
    those of the last good step)."""
    # (S.1) ℓ = (1/B) Σ_s ℓ_s, summed in sample order
    loss = minibatch_mean_cpu(losses, B)
    batch_losses[row] = loss
    right = 0
    for s in range(B):
        right += correct[s]
    batch_correct[row] = right
    if not np.isfinite(loss):
        return False
    step_coefficients(coef, lrs[row], B, optimizer, hyper, p)
    gradient_update(
        theta, state, packed, G, shards, h, delta, spans, layout, cuts, B, sample_block,
        optimizer, coef, flush,
    )  # fmt: skip
    return True


@serial
def run_steps(
    theta,
    state,
    X,
    X_spans,
    scale,
    y,
    targets,
    sample_weights,
    batches,
    batch_sizes,
    lrs,
    step_count,
    first,
    count,
    batch_losses,
    optimizer,
    hyper,
    h,
    z,
    delta,
    packed,
    f,
    losses,
    log_totals,
    G,
    shards,
    spans,
    coef,
    layout,
    codes,
    head,
    cuts,
    sample_block,
    flush,
    batch_correct,
    correct,
    drop_key,
    drop_thresholds,
    drop_scales,
):
    """Steps p = step_count+1, …, step_count+count on the minibatches in rows first, …,
    first+count−1 of ``batches``; returns how many steps were completed.

    Per step: with sample weights their sum over the batch in sample order (S.2), region 1 on
    the whole batch, then ``finish_step`` (ℓ, the correct count, and
    region 2 unless ℓ is not finite: then the function returns). ``FusedPlan.run`` with an
    exchange makes the same two calls per step from Python, with the exchange between them.
    Serial itself; the two regions it calls run in parallel (a parallel function called from
    a serial one opens its own region).
    """
    for t in range(count):
        row = first + t
        B = batch_sizes[row]
        batch = batches[row, :B]
        # (S.2) Σ_s w_{I_s}, in sample order; nothing to sum without weights
        weight_sum = (
            weight_total_cpu(sample_weights, batch, B) if sample_weights.shape[0] > 0 else 0.0
        )
        forward_backward(
            h, z, delta, packed, f, losses, log_totals, shards, spans, theta, X, X_spans, scale, y,
            targets, sample_weights, B, weight_sum, batch, layout, codes, head,
            sample_block, flush, correct, np.uint64(step_count + t + 1) & MASK32, drop_key,
            drop_thresholds, drop_scales,
        )  # fmt: skip
        if not finish_step(
            theta, state, packed, losses, correct, row, B, step_count + t + 1, lrs, batch_losses,
            batch_correct, optimizer, hyper, G, shards, h, delta, spans, coef, layout, cuts,
            sample_block, flush,
        ):  # fmt: skip
            return t
    return count
