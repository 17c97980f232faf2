"""A device-side finiteness check of θ, reduced without atomics.

Thread t counts the non-finite components r = t, t + T, t + 2T, … (T threads in all) into
``partial[t]``; the host adds the T counts. Each thread owns its slot, so the count is exact and
the same on every run. (The CPU trainer calls ``np.isfinite(θ).all()``; this is its device form.)
"""

from __future__ import annotations

import math

from numbamlp.engines.cuda.backend import cuda


@cuda.jit
def count_nonfinite(partial, theta):
    t = cuda.grid(1)
    T = partial.shape[0]
    if t < T:
        count = 0
        for r in range(t, theta.shape[0], T):
            if not math.isfinite(theta[r]):
                count += 1
        partial[t] = count
