"""Memory layout: arrays whose first element starts a cache line. No equation here.

NumPy aligns its arrays to 16 bytes only. A vector load that straddles two cache lines costs
more than one that does not, and with the 64-byte (512-bit) vectors of the fused engine every
load of a row that starts 16 bytes into a line straddles: the F.1 tile of the reference model
runs measurably slower with θ and h^0 off cache lines, by how much depending on where NumPy
happened to put them (docs/performance.md, "Figures moved out of the code"). So θ, the
optimizer state and every batch buffer are allocated here.
"""

from __future__ import annotations

import numpy as np

CACHE_LINE = 64  # bytes


def round_up(n: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is ≥ n."""
    return -(-n // multiple) * multiple


def aligned_zeros(shape: int | tuple[int, ...], dtype: np.dtype | str) -> np.ndarray:
    """np.zeros(shape, dtype) whose first element starts a cache line."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.zeros(nbytes + CACHE_LINE, np.uint8)
    skip = -raw.ctypes.data % CACHE_LINE
    return raw[skip : skip + nbytes].view(dtype).reshape(shape)


def is_aligned(array: np.ndarray) -> bool:
    """Whether ``array`` is C-contiguous and starts a cache line."""
    return bool(array.flags.c_contiguous) and array.ctypes.data % CACHE_LINE == 0


def aligned(array: np.ndarray) -> np.ndarray:
    """``array`` itself if it is C-contiguous and starts a cache line, else such a copy."""
    if is_aligned(array):
        return array
    copy = aligned_zeros(array.shape, array.dtype)
    copy[...] = array
    return copy
