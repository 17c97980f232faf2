"""Philox4x32-10 (kernels/philox.py) against the published known-answer vectors.

The vectors are the three "philox4x32 10" lines of Random123's ``examples/kat_vectors``
(D. E. Shaw Research, Random123 1.09; also in github.com/girving/random123-manual,
examples/kat_vectors): name, rounds, counter (4 words), key (2 words), expected output (4 words).
"""

from __future__ import annotations

import numpy as np
import pytest

from numbamlp.kernels.philox import philox4x32_10, philox4x32_10_cpu

KAT_VECTORS = """
philox4x32 10 00000000 00000000 00000000 00000000 00000000 00000000   6627e8d5 e169c58d bc57ac4c 9b00dbd8
philox4x32 10 ffffffff ffffffff ffffffff ffffffff ffffffff ffffffff   408f276d 41c83b0e a20bc7c6 6d5451fd
philox4x32 10 243f6a88 85a308d3 13198a2e 03707344 a4093822 299f31d0   d16cfe09 94fdcceb 5001e420 24126ea1
"""  # noqa: E501


def _vectors() -> list[tuple[list[int], list[int]]]:
    cases = []
    for line in KAT_VECTORS.strip().splitlines():
        name, rounds, *words = line.split()
        assert (name, rounds) == ("philox4x32", "10")
        values = [int(w, 16) for w in words]
        cases.append((values[:6], values[6:]))
    return cases


@pytest.mark.parametrize("inputs, expected", _vectors())
def test_known_answers_compiled(inputs, expected):
    """The CPU build, on uint64 words as the kernels pass them."""
    out = philox4x32_10_cpu(*[np.uint64(v) for v in inputs])
    assert [int(w) for w in out] == expected


@pytest.mark.parametrize("inputs, expected", _vectors())
def test_known_answers_python(inputs, expected):
    """The same source run by the Python interpreter (the CUDA simulator's path)."""
    out = philox4x32_10(*[np.uint64(v) for v in inputs])
    assert [int(w) for w in out] == expected


def test_words_stay_32_bit_and_differ_by_counter():
    key = (np.uint64(7), np.uint64(0))
    a = philox4x32_10_cpu(np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(4), *key)
    b = philox4x32_10_cpu(np.uint64(1), np.uint64(2), np.uint64(3), np.uint64(5), *key)
    assert all(0 <= int(w) < 2**32 for w in a + b)
    assert a != b
