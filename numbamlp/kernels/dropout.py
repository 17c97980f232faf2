"""Dropout (D.1–D.3): inverted dropout on the hidden layers, its masks a pure function of five
integers, drawn inside the kernels from Philox4x32-10 (philox.py).

(D.1) r^m_{s,j} = 1[u(seed, p, i_s, m, j) ≥ p_m], where u = x / 2^32 and x is word j mod 4 of
      Philox4x32-10 with the counter (p, i_s, m, ⌊j/4⌋) and the key (seed mod 2^32,
      ⌊seed / 2^32⌋ mod 2^32): p the step (1, 2, …), i_s the sample's row in the training set,
      m the layer, j the unit. One call of Philox gives the masks of four units.
      u ≥ p_m is compared as integers, x ≥ ⌈p_m 2^32⌉ (``dropout_threshold``): exact.
(D.2) h̃^m_{s,j} = h^m_{s,j} · r^m_{s,j} / (1 − p_m): the layer above reads h̃^m (F.1 and B.3).
(D.3) δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) · r^m_{s,j} / (1 − p_m) · φ′_m(z^m_{s,j}):
      B.4 with the same mask and factor.

The row functions are plain Python, compiled for the CPU below and for the device by
engines/cuda/dropout.py (which rebinds ``_philox`` to the device build), so every engine draws
the same masks: the fused engine's region 1 calls them on its block's rows
(engines/fused/regions.py), the plain kernels here on every row.
Nothing is drawn in Python and nothing is kept between steps, so the masks — and θ — are the
same for any thread count, process count, engine or device, and after a resume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import prange

from numbamlp.errors import NumbamlpError
from numbamlp.kernels._jit import kernel, scalar
from numbamlp.kernels.philox import MASK32, philox4x32_10_cpu

_philox = philox4x32_10_cpu  # the device build replaces it (engines/cuda/dropout.py)

FOUR = np.uint64(4)
WORD32 = 2.0**32


def dropout_key(seed: int) -> np.ndarray:
    """The Philox key of D.1 for a run's seed: (seed mod 2^32, ⌊seed / 2^32⌋ mod 2^32)."""
    seed = int(seed)
    return np.array([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF], dtype=np.uint64)


def dropout_threshold(rate: float) -> np.uint64:
    """⌈p_m 2^32⌉: u ≥ p_m ⇔ x ≥ this, for the word x = u 2^32 (D.1). 0 for rate 0 (kept)."""
    return np.uint64(math.ceil(float(rate) * WORD32))


def dropout_scale(rate: float, dtype: np.dtype | str) -> np.floating:
    """1 / (1 − p_m), computed in float64 and rounded to θ's dtype (D.2, D.3)."""
    return np.dtype(dtype).type(1.0 / (1.0 - float(rate)))


def check_rates(rates: tuple[float, ...], n_hidden: int) -> tuple[float, ...]:
    """The rates p_1..p_{L−1} of the hidden layers: one for every hidden layer, or one per
    hidden layer; each 0 ≤ p < 1."""
    rates = tuple(float(p) for p in rates)
    if len(rates) == 1:
        rates = rates * n_hidden
    if len(rates) != n_hidden:
        raise NumbamlpError(
            f"`dropout`: give one rate, or one per hidden layer ({n_hidden}), got {len(rates)}"
        )
    for p in rates:
        if not (math.isfinite(p) and 0.0 <= p < 1.0):
            raise NumbamlpError(f"`dropout`: each rate must be in [0, 1), got {p:g}")
    return rates


def mask_bit(words, w, threshold):
    """(D.1) r = 1[u ≥ p_m] for word w of a Philox output: 1 if words[w] ≥ ⌈p_m 2^32⌉."""
    return 1 if words[w] >= threshold else 0


# (D.1) r^m_{s,j} for the units of row s: r[s, j] ∈ {0, 1}. ``sample`` is i_s, ``step`` p;
# sample, layer, step and the key are uint64 below 2^32.
def dropout_mask_row(r, s, sample, layer, step, k0, k1, threshold):
    d = r.shape[1]
    for q in range((d + 3) // 4):
        words = _philox(step, sample, layer, np.uint64(q), k0, k1)
        for w in range(min(4, d - 4 * q)):
            # (D.1) r^m_{s,j} = 1[u(seed, p, i_s, m, j) ≥ p_m],  j = 4q + w
            r[s, 4 * q + w] = 1 if words[w] >= threshold else 0


# (D.2) h̃^m_{s,:} on row s of h, in place: h^m_{s,j} · r^m_{s,j} / (1 − p_m), scale = 1/(1 − p_m).
# Four units per Philox call; the factor r/(1 − p_m) ∈ {0, scale} is a select, not a branch (a
# branch on a coin flip is mispredicted half the time).
def dropout_forward_row(h, s, sample, layer, step, k0, k1, threshold, scale):
    d = h.shape[1]
    zero = scale - scale
    for q in range(d // 4):
        x0, x1, x2, x3 = _philox(step, sample, layer, np.uint64(q), k0, k1)
        j = 4 * q
        # (D.1) r^m_{s,j} = 1[u(seed, p, i_s, m, j) ≥ p_m], u = x / 2^32: x ≥ ⌈p_m 2^32⌉
        # (D.2) h̃^m_{s,j} = h^m_{s,j} · r^m_{s,j} / (1 − p_m),  j = 4q, …, 4q + 3
        h[s, j] = h[s, j] * (scale if x0 >= threshold else zero)
        h[s, j + 1] = h[s, j + 1] * (scale if x1 >= threshold else zero)
        h[s, j + 2] = h[s, j + 2] * (scale if x2 >= threshold else zero)
        h[s, j + 3] = h[s, j + 3] * (scale if x3 >= threshold else zero)
    if d % 4:
        words = _philox(step, sample, layer, np.uint64(d // 4), k0, k1)
        for w in range(d % 4):
            j = d - d % 4 + w
            # (D.2) the same for the last d mod 4 units
            h[s, j] = h[s, j] * (scale if words[w] >= threshold else zero)


# (D.3) δ^m_{s,:} on row s, in place, once it holds (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i}) φ′_m(z^m_{s,j})
# (B.4): the same mask and factor as D.2 (the same five integers give the same r^m_{s,j})
def dropout_delta_row(delta, s, sample, layer, step, k0, k1, threshold, scale):
    d = delta.shape[1]
    zero = scale - scale
    for q in range(d // 4):
        x0, x1, x2, x3 = _philox(step, sample, layer, np.uint64(q), k0, k1)
        j = 4 * q
        # (D.1) r^m_{s,j} = 1[u(seed, p, i_s, m, j) ≥ p_m], u = x / 2^32: x ≥ ⌈p_m 2^32⌉
        # (D.3) δ^m_{s,j} = (Σ_i W^{m+1}_{ij} δ^{m+1}_{s,i})
        #       · r^m_{s,j}/(1 − p_m) · φ′_m(z^m_{s,j}),  j = 4q, …, 4q + 3
        delta[s, j] = delta[s, j] * (scale if x0 >= threshold else zero)
        delta[s, j + 1] = delta[s, j + 1] * (scale if x1 >= threshold else zero)
        delta[s, j + 2] = delta[s, j + 2] * (scale if x2 >= threshold else zero)
        delta[s, j + 3] = delta[s, j + 3] * (scale if x3 >= threshold else zero)
    if d % 4:
        words = _philox(step, sample, layer, np.uint64(d // 4), k0, k1)
        for w in range(d % 4):
            j = d - d % 4 + w
            # (D.3) the same for the last d mod 4 units
            delta[s, j] = delta[s, j] * (scale if words[w] >= threshold else zero)


@dataclass(frozen=True)
class Dropout:
    """What the steps of a run with dropout need: the key of D.1 and, for each layer
    m = 0..L (only the hidden ones 1..L−1 may drop), ⌈p_m 2^32⌉ (0: no dropout on layer m, and
    no call of D.2 or D.3 there) and 1/(1 − p_m) in θ's dtype."""

    rates: tuple[float, ...]  # p_1..p_{L−1}
    key: np.ndarray  # uint64 (2,)
    thresholds: np.ndarray  # uint64 (L+1,)
    scales: np.ndarray  # θ's dtype (L+1,)

    @classmethod
    def create(cls, rates: tuple[float, ...], seed: int, L: int, dtype) -> Dropout:
        rates = check_rates(rates, L - 1)
        thresholds = np.zeros(L + 1, np.uint64)
        scales = np.ones(L + 1, np.dtype(dtype))
        for m, p in enumerate(rates, start=1):
            thresholds[m] = dropout_threshold(p)
            scales[m] = dropout_scale(p, dtype)
        return cls(rates, dropout_key(seed), thresholds, scales)

    @property
    def active(self) -> bool:
        """Whether any layer drops units (rate 0 everywhere: the run without dropout)."""
        return bool(self.thresholds.any())

    def drops(self, m: int) -> bool:
        return bool(self.thresholds[m])


# CPU builds.
dropout_mask_row_cpu = scalar(dropout_mask_row)
dropout_forward_row_cpu = scalar(dropout_forward_row)
dropout_delta_row_cpu = scalar(dropout_delta_row)


@kernel
def dropout_mask(r, indices, layer, step, key, threshold):
    """(D.1) r^m_{s,j} for the samples of a batch: ``indices[s]`` is i_s, ``step`` p, ``key``
    the seed's two words (``dropout_key``). For tests and the notebook: the training steps
    draw the mask inside D.2 and D.3 and never store it."""
    for s in prange(r.shape[0]):
        sample = np.uint64(indices[s]) & MASK32
        dropout_mask_row_cpu(
            r, s, sample, np.uint64(layer), np.uint64(step), key[0], key[1], threshold
        )


@kernel
def dropout_forward(h, indices, layer, step, key, threshold, scale):
    """(D.2) h̃^m = h^m ⊙ r^m / (1 − p_m) in place, after F.2; parallel over samples."""
    for s in prange(h.shape[0]):
        sample = np.uint64(indices[s]) & MASK32
        dropout_forward_row_cpu(
            h, s, sample, np.uint64(layer), np.uint64(step), key[0], key[1], threshold, scale
        )


@kernel
def dropout_backward(delta, indices, layer, step, key, threshold, scale):
    """(D.3) δ^m ← δ^m ⊙ r^m / (1 − p_m) in place, after B.4 multiplied by φ′_m; parallel over
    samples."""
    for s in prange(delta.shape[0]):
        sample = np.uint64(indices[s]) & MASK32
        dropout_delta_row_cpu(
            delta, s, sample, np.uint64(layer), np.uint64(step), key[0], key[1], threshold, scale
        )
