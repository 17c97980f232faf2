"""Minibatch indices: FB §1 Q2's i.i.d. uniform indices I^p_s (I.1) and shuffled epochs (I.2)."""

from __future__ import annotations

import numpy as np
import pytest

from numbamlp.errors import NumbamlpError
from numbamlp.kernels.sampling import Sampler, uniform_indices


def epochs(sampler: Sampler, count: int) -> list[list[np.ndarray]]:
    """``count`` epochs of batches, copied (the sampler refills one buffer in place)."""
    return [[b.copy() for b in sampler.epoch()] for _ in range(count)]


def test_shuffle_is_a_permutation_cut_into_batches_with_a_shorter_last_one():
    """(I.2) each epoch visits every sample exactly once, in blocks of B; the last block is
    n mod B long when B does not divide n."""
    sampler = Sampler("shuffle", 23, 5, np.random.default_rng(0))
    assert sampler.steps_per_epoch == 5
    for batches in epochs(sampler, 4):
        assert [b.shape[0] for b in batches] == [5, 5, 5, 5, 3]
        assert all(b.dtype == np.int64 for b in batches)
        assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(23))


def test_shuffle_when_batch_size_divides_n_or_exceeds_it():
    sampler = Sampler("shuffle", 20, 5, np.random.default_rng(0))
    assert [b.shape[0] for b in sampler.epoch()] == [5, 5, 5, 5]
    sampler = Sampler("shuffle", 7, 100, np.random.default_rng(0))
    assert sampler.batch_size == 7 and sampler.steps_per_epoch == 1
    (batch,) = sampler.epoch()
    assert np.array_equal(np.sort(batch), np.arange(7))


def test_iid_draws_ceil_n_over_b_full_batches_in_range():
    """(I.1) FB §1 Q2: ⌈n/B⌉ steps, each of B indices i.i.d. uniform on {0..n−1}; every batch is
    full, including the last one."""
    sampler = Sampler("iid", 23, 5, np.random.default_rng(0))
    assert sampler.steps_per_epoch == 5
    all_indices = []
    for batches in epochs(sampler, 20):
        assert [b.shape[0] for b in batches] == [5] * 5
        for b in batches:
            assert b.dtype == np.int64
            assert b.min() >= 0 and b.max() < 23
        all_indices.append(np.concatenate(batches))
    # With replacement: some epoch repeats an index (P(no repeat in 25 of 23) = 0).
    assert any(np.unique(e).size < e.size for e in all_indices)
    big = Sampler("iid", 7, 100, np.random.default_rng(0))
    assert big.batch_size == 100 and big.steps_per_epoch == 1


@pytest.mark.parametrize("mode", ["shuffle", "iid"])
def test_reproducible_for_a_seed_and_different_between_epochs(mode):
    """One seed, one sequence of minibatches; consecutive epochs differ."""
    a = epochs(Sampler(mode, 50, 8, np.random.default_rng(42)), 3)
    b = epochs(Sampler(mode, 50, 8, np.random.default_rng(42)), 3)
    c = epochs(Sampler(mode, 50, 8, np.random.default_rng(43)), 3)
    for ea, eb in zip(a, b, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(ea, eb, strict=True))
    flat = [np.concatenate(e) for e in a]
    assert not np.array_equal(flat[0], flat[1])
    assert not np.array_equal(flat[1], flat[2])
    assert not np.array_equal(flat[0], np.concatenate(c[0]))


@pytest.mark.parametrize("mode", ["shuffle", "iid"])
def test_epoch_depends_only_on_the_generator_state(mode):
    """A resumed run (a fresh sampler with the generator state saved after epoch 1) draws the
    same epoch 2 as the uninterrupted run."""
    rng = np.random.default_rng(7)
    sampler = Sampler(mode, 31, 4, rng)
    sampler.epoch()
    saved = rng.bit_generator.state
    second = [b.copy() for b in sampler.epoch()]
    resumed_rng = np.random.default_rng()
    resumed_rng.bit_generator.state = saved
    resumed = Sampler(mode, 31, 4, resumed_rng).epoch()
    assert all(np.array_equal(x, y) for x, y in zip(second, resumed, strict=True))


@pytest.mark.parametrize("mode", ["shuffle", "iid"])
def test_epoch_reuses_its_buffers(mode):
    """No allocation per epoch: the same list of views into one buffer, refilled in place."""
    sampler = Sampler(mode, 23, 5, np.random.default_rng(0))
    first = sampler.epoch()
    ids = [b.__array_interface__["data"][0] for b in first]
    second = sampler.epoch()
    assert second is first
    assert [b.__array_interface__["data"][0] for b in second] == ids


def test_iid_indices_are_roughly_uniform():
    """(I.1) a loose χ² check: 50,000 draws on n = 10 values, 9 degrees of freedom. The statistic
    of a uniform sampler is ≈ 9 (sd ≈ 4.2); 30 would happen by chance with p ≈ 4e-4 and the seed
    is fixed, so this never flakes — but a biased ⌊u·n⌋ (e.g. off by one, never n−1) fails."""
    n, B = 10, 1000
    sampler = Sampler("iid", n, B, np.random.default_rng(2024))
    counts = np.zeros(n)
    for _ in range(50):
        (batch,) = sampler.epoch()
        counts += np.bincount(batch, minlength=n)
    expected = counts.sum() / n
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert counts.sum() == 50_000
    assert chi2 < 30, (chi2, counts)


def test_uniform_indices_floor_and_clamp():
    """(I.1) I_s = ⌊u_s n⌋ for u_s ∈ [0, 1), never n even for the largest double below 1."""
    u = np.array([0.0, 0.5, 0.999, np.nextafter(1.0, 0.0), 1 / 7, 6 / 7])
    out = np.full(6, -1, dtype=np.int64)
    uniform_indices(out, u, 7)
    assert out.tolist() == [0, 3, 6, 6, 1, 6]


@pytest.mark.parametrize(
    "args,message",
    [
        (("random", 10, 2), "unknown sampling"),
        (("shuffle", 10, 0), "batch size must be at least 1"),
        (("iid", 0, 4), "the training set is empty"),
    ],
)
def test_invalid_sampler_options(args, message):
    with pytest.raises(NumbamlpError, match=message):
        Sampler(*args, np.random.default_rng(0))
