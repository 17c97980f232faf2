"""Dropout's equations (D.1–D.3, kernels/dropout.py): the mask's statistics and purity, and the
gradient of the thinned network against finite differences.

D.1 makes r^m_{s,j} a function of (seed, p, i_s, m, j) through Philox4x32-10; D.2 scales the
kept units by 1/(1 − p_m); D.3 carries the same mask and factor through B.4. With the five
integers fixed the mask is a constant, so the thinned network is an ordinary function of θ whose
gradient central differences can check (error O(h²): about 1e-9 in float64).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from numbamlp.errors import NumbamlpError
from numbamlp.kernels.dropout import (
    Dropout,
    check_rates,
    dropout_backward,
    dropout_forward,
    dropout_key,
    dropout_mask,
    dropout_scale,
    dropout_threshold,
)
from numbamlp.model.mlp import MLP


def mask(rate: float, seed: int = 3, step: int = 1, layer: int = 1, n: int = 512, d: int = 37,
         first: int = 0) -> np.ndarray:  # fmt: skip
    """(D.1) r^m_{s,j} of samples first..first+n−1 (their rows i_s) and d units."""
    r = np.zeros((n, d), np.uint8)
    rows = np.arange(first, first + n, dtype=np.int64)
    dropout_mask(r, rows, layer, step, dropout_key(seed), dropout_threshold(rate))
    return r


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("layer", [1, 2, 3])
def test_mask_mean_is_one_minus_rate_within_a_binomial_bound(rate, layer):
    """(D.1) the mean of n·d Bernoulli(1 − p) draws is 1 − p within 5 standard deviations
    √(p(1 − p)/(n d)) (a chance of about 6e-7 to fail if the masks are right; a mask with a
    mean off by 1 % fails it)."""
    r = mask(rate, layer=layer)
    count = r.size
    bound = 5 * math.sqrt(rate * (1 - rate) / count)
    assert abs(r.mean() - (1 - rate)) < bound
    # every unit and every sample is thinned, not some columns always kept
    assert 0 < r.mean(axis=0).min() and r.mean(axis=0).max() < 1


def test_rate_zero_keeps_everything_and_threshold_is_exact():
    assert dropout_threshold(0.0) == 0 and mask(0.0).all()
    assert dropout_threshold(0.5) == 2**31  # u ≥ 1/2 ⇔ x ≥ 2^31
    assert dropout_threshold(0.1) == math.ceil(0.1 * 2**32)


def test_mask_is_a_pure_function_of_its_five_integers():
    """The same (seed, p, i_s, m, j) give the same mask, in any order of the samples; changing
    any one of seed, step, sample or layer gives another."""
    a = mask(0.5)
    assert np.array_equal(a, mask(0.5))
    r = np.zeros((4, 37), np.uint8)  # the same samples in another order and batch
    rows = np.array([9, 3, 500, 0], np.int64)
    dropout_mask(r, rows, 1, 1, dropout_key(3), dropout_threshold(0.5))
    assert np.array_equal(r, a[rows])
    for other in (mask(0.5, seed=4), mask(0.5, step=2), mask(0.5, layer=2), mask(0.5, first=1)):
        assert not np.array_equal(a, other)
        # independent, not merely different: the two masks agree on about half the entries
        assert abs((a == other).mean() - 0.5) < 0.02
    # units: no two columns (units j) of the 512 samples coincide
    columns = {a[:, j].tobytes() for j in range(a.shape[1])}
    assert len(columns) == a.shape[1]


def test_seeds_above_32_bits_use_both_key_words():
    assert list(dropout_key(2**32 + 5)) == [5, 1]
    assert not np.array_equal(mask(0.5, seed=5), mask(0.5, seed=2**32 + 5))


def test_forward_and_backward_apply_the_same_mask_and_factor():
    """(D.2) h̃ = h r/(1 − p) and (D.3) δ ← δ r/(1 − p), on the mask of D.1."""
    rate, rows = 0.3, np.arange(40, dtype=np.int64) * 11
    r = np.zeros((40, 13), np.uint8)
    key, threshold = dropout_key(8), dropout_threshold(rate)
    dropout_mask(r, rows, 2, 7, key, threshold)
    h = np.random.default_rng(0).normal(size=(40, 13))
    expected = h * r * (1.0 / (1.0 - rate))
    got = h.copy()
    dropout_forward(got, rows, 2, 7, key, threshold, dropout_scale(rate, np.float64))
    assert np.array_equal(got, expected)
    got = h.copy()
    dropout_backward(got, rows, 2, 7, key, threshold, dropout_scale(rate, np.float64))
    assert np.array_equal(got, expected)


def test_rates_are_checked():
    assert check_rates((0.5,), 3) == (0.5, 0.5, 0.5)
    assert check_rates((0.1, 0.2), 2) == (0.1, 0.2)
    for bad in ((1.0,), (-0.1,), (math.nan,), (0.1, 0.2, 0.3)):
        with pytest.raises(NumbamlpError, match="`dropout`"):
            check_rates(bad, 2)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "softplus"])
def test_gradient_of_a_fixed_mask_network_matches_finite_differences(activation):
    """(D.3) with B.1–B.4: ∇θ ℓ of the thinned network (its masks fixed by seed, step and the
    rows) against central differences of ℓ(θ) in float64, every component."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(9, 5)), rng.integers(0, 3, 9)
    model = MLP.create(5, [7, 6], 3, activations=[activation, activation], dtype="float64",
                       rng=np.random.default_rng(2))  # fmt: skip
    model.params.theta[:] += rng.normal(scale=0.1, size=model.params.theta.shape)  # biases ≠ 0
    dropout = Dropout.create((0.4, 0.25), seed=11, L=3, dtype=np.float64)
    step = 17
    _, grads = model.loss_and_gradient(X, y, dropout=dropout, step=step)
    theta, h = model.params.theta, 1e-6
    numeric = np.empty_like(theta)
    for r in range(theta.shape[0]):
        keep = theta[r]
        theta[r] = keep + h
        up, _ = model.loss_and_gradient(X, y, dropout=dropout, step=step)
        theta[r] = keep - h
        down, _ = model.loss_and_gradient(X, y, dropout=dropout, step=step)
        theta[r] = keep
        numeric[r] = (up - down) / (2 * h)
    assert np.abs(grads.theta - numeric).max() < 1e-8
    # the mask matters: without dropout the gradient is another one
    _, plain = model.loss_and_gradient(X, y)
    assert np.abs(grads.theta - plain.theta).max() > 1e-3
