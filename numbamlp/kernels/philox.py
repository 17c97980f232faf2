"""Philox4x32-10, the counter-based generator of Salmon, Moraes, Dror and Shaw, "Parallel random
numbers: as easy as 1, 2, 3" (SC'11; the Random123 library, which JAX and cuRAND also follow):
four 32-bit output words are a pure function of a 128-bit counter (c0, c1, c2, c3) and a 64-bit
key (k0, k1). No state: the same integers give the same words on any thread, process or device.

Written once as plain Python integer arithmetic, built for the CPU below (``philox4x32_10_cpu``,
inlined by Numba into the row functions that call it, whose loops over counters LLVM then
vectorises) and as a CUDA device function by
engines/cuda/dropout.py. Each 32-bit word is held in a uint64 and kept below 2^32 by masking, so
that the round's 32 × 32 → 64-bit product (``mulhilo``) is one uint64 multiply on both targets;
every constant is a uint64 (Numba types uint64 mixed with int64 as float64).

One round, with the multipliers M0, M1 (Random123's PHILOX_M4x32_0/1):
    (hi0, lo0) = M0 · c0,  (hi1, lo1) = M1 · c2
    (c0, c1, c2, c3) ← (hi1 ⊕ c1 ⊕ k0, lo1, hi0 ⊕ c3 ⊕ k1, lo0)
and between rounds the key is bumped by the Weyl constants W0, W1 (mod 2^32). Ten rounds.
tests/kernels/test_philox.py checks the published known-answer vectors.
"""

from __future__ import annotations

import numpy as np

from numbamlp.kernels._jit import inlined

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = np.uint64(0x9E3779B9)  # the golden ratio's fraction, 32 bits
W1 = np.uint64(0xBB67AE85)  # √3 − 1, 32 bits
MASK32 = np.uint64(0xFFFFFFFF)
SHIFT32 = np.uint64(32)
ROUNDS = 10


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """The four output words of Philox4x32-10 for the counter (c0, c1, c2, c3) and key
    (k0, k1): six uint64 values below 2^32 in, a tuple of four such values out."""
    for r in range(ROUNDS):
        if r > 0:  # the key schedule: bump before every round but the first
            k0 = (k0 + W0) & MASK32
            k1 = (k1 + W1) & MASK32
        p0 = M0 * c0  # < 2^64: exact
        p1 = M1 * c2
        hi0, lo0 = p0 >> SHIFT32, p0 & MASK32
        hi1, lo1 = p1 >> SHIFT32, p1 & MASK32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


# CPU build, inlined into its callers so that their loops over counters vectorise.
philox4x32_10_cpu = inlined(philox4x32_10)
