"""A vectorisable e^x for float32 x ≤ 0 (σ and softmax in float32). No equation here."""

from __future__ import annotations

import numpy as np

from numbamlp.kernels._jit import helper
from numbamlp.kernels.intrinsics import float32_from_bits

# e^x = 2^n · e^r with n = round(x / ln 2) and r = x − n ln 2 (|r| ≤ ln 2 / 2), ln 2 split in
# two parts so that n ln 2 is subtracted exactly (Cody–Waite); e^r from a degree-7 polynomial
# (the coefficients of Cephes' expf, Moshier 1984: error ≤ 1 ulp on this range).
LOG2_E = np.float32(1.4426950408889634)
LN2_HIGH = np.float32(0.693359375)  # ln 2 to 9 bits: n · LN2_HIGH is exact for |n| ≤ 2^15
LN2_LOW = np.float32(-2.12194440e-4)  # ln 2 − LN2_HIGH
EXP_COEFFICIENTS = (
    np.float32(1.9875691500e-4),
    np.float32(1.3981999507e-3),
    np.float32(8.3334519073e-3),
    np.float32(4.1665795894e-2),
    np.float32(1.6666665459e-1),
    np.float32(5.0000001201e-1),
)
EXP_MIN_ARGUMENT = np.float32(-87.33654)  # ln 2^{−126}: 2^n stays a normal float32 (n ≥ −126)


@helper
def exp_nonpositive_float32(x):
    """e^x for a float32 x ≤ 0 (no equation: a vectorisable exponential). Below ln 2^{−126}
    ≈ −87.34 it returns 2^{−126} ≈ 1.2e-38, the smallest normal float32 (expf's results there
    are subnormal, flushed to 0 in the regions anyway); a NaN comes back as NaN."""
    clamped = x if x > EXP_MIN_ARGUMENT else EXP_MIN_ARGUMENT
    n = np.floor(clamped * LOG2_E + np.float32(0.5))
    r = clamped - n * LN2_HIGH
    r = r - n * LN2_LOW
    c0, c1, c2, c3, c4, c5 = EXP_COEFFICIENTS
    p = ((((c0 * r + c1) * r + c2) * r + c3) * r + c4) * r + c5
    e_r = p * r * r + r + np.float32(1.0)
    value = e_r * float32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))
    return value if x == x else x
