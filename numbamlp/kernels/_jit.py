"""The one place where JIT options are chosen, so no kernel hard-codes them.

* ``kernel``: a parallel loop nest (``prange``) over the outputs it owns.
* ``helper``: a serial function a kernel calls inside its ``prange`` loop on a block of rows.
* ``scalar``: a small scalar helper (φ, φ′), inlined by LLVM into the kernels that call it.
* ``inlined``: a scalar helper inlined by Numba itself (Philox), for loops LLVM must vectorise.

``cache=True`` keeps compiled machine code on disk (next to the module, or in
``NUMBA_CACHE_DIR``), so a second run starts without compiling. Kernels never take functions
as arguments and are never built in closures: either would miss that cache on every run.

``intrinsics.prefer_wide_vectors()``, called first in a function, lets LLVM vectorise that
function's loops with 512-bit vectors where the CPU has them (AVX-512). LLVM's x86 cost model
otherwise stays at 256 bits on every Intel CPU, and Numba can change that only for the whole
process.

Fast-math is an explicit flag set, never ``fastmath=True``: that would also switch on
``nnan``/``ninf``, under which ``isnan`` is always false and exp/log overflow is undefined.
``reassoc`` is what lets a dot-product loop vectorise. Kernels that compute softmax, logs or
NaN checks pass ``fastmath=False``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])

FASTMATH_FLAGS: frozenset[str] = frozenset({"reassoc", "contract", "nsz", "arcp"})


def kernel(fn: F | None = None, *, fastmath: bool = True) -> Any:
    """Compile a parallel kernel (a ``prange`` loop nest)."""
    flags: Any = set(FASTMATH_FLAGS) if fastmath else False

    def build(f: F) -> Any:
        return njit(parallel=True, cache=True, fastmath=flags, nogil=True)(f)

    return build(fn) if fn is not None else build


def serial(fn: F) -> Any:
    """Compile a serial kernel (cheap work where a thread launch would cost more than it saves)."""
    return njit(cache=True, nogil=True)(fn)


def helper(fn: F | None = None, *, fastmath: bool = False) -> Any:
    """Compile a serial helper that a kernel calls inside its ``prange`` loop, on a block of rows.

    It gets the arithmetic of the loop body it runs in: NumPy's error model (x/0 gives inf or
    nan, as inside ``prange``, instead of raising ZeroDivisionError, whose check would also keep
    a loop with a division from vectorising) and, with ``fastmath=True``, the flag set above.
    """
    flags: Any = set(FASTMATH_FLAGS) if fastmath else False

    def build(f: F) -> Any:
        return njit(cache=True, nogil=True, fastmath=flags, error_model="numpy")(f)

    return build(fn) if fn is not None else build


def scalar(fn: F) -> Any:
    """Compile a scalar helper called from kernels."""
    return njit(cache=True, nogil=True)(fn)


def inlined(fn: F) -> Any:
    """Compile a scalar helper that Numba inlines into every caller at its own level, before
    LLVM sees the code, so that a loop calling it can be vectorised across iterations (Philox:
    a called function stays a call, one counter at a time; inlined, LLVM runs several counters
    per vector instruction — about 5× faster per call, docs/performance.md)."""
    return njit(inline="always", nogil=True)(fn)
