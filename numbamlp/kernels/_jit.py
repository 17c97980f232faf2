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

``cache=True`` alone would key each function's cached code on its own source file: a kernel whose
helper in another module changed (a tile in engines/fused/tiles.py, Philox in philox.py) would go
on loading its old machine code, and a developer would test and time the old helper. Here the
cache of every function in numbamlp/kernels/ and numbamlp/engines/ is keyed on all their source
files together (``kernel_source_stamp``): any change to any of them recompiles them all.

Fast-math is an explicit flag set, never ``fastmath=True``: that would also switch on
``nnan``/``ninf``, under which ``isnan`` is always false and exp/log overflow is undefined.
``reassoc`` is what lets a dot-product loop vectorise. Kernels that compute softmax, logs or
NaN checks pass ``fastmath=False``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from numba import njit

F = TypeVar("F", bound=Callable[..., Any])

FASTMATH_FLAGS: frozenset[str] = frozenset({"reassoc", "contract", "nsz", "arcp"})

#: The package's folder, and its subfolders whose modules hold compiled code.
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
COMPILED_FOLDERS = ("kernels", "engines")


@functools.cache
def kernel_source_stamp(root: Path = PACKAGE_ROOT) -> str:
    """A digest of every module under root/kernels and root/engines (their paths relative to
    root and their bytes): the freshness stamp of each of their functions' cached code."""
    digest = hashlib.sha256()
    for folder in COMPILED_FOLDERS:
        for path in sorted((root / folder).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _compiled_here(py_file: str) -> bool:
    try:
        parts = Path(py_file).resolve().relative_to(PACKAGE_ROOT).parts
    except ValueError:
        return False
    return len(parts) > 1 and parts[0] in COMPILED_FOLDERS


def _stamped(base: type) -> type:
    """Numba's cache locator ``base``, for the functions of numbamlp/kernels and
    numbamlp/engines only, with ``kernel_source_stamp`` as their source stamp."""

    class Locator(base):
        def get_source_stamp(self) -> Any:
            return ("numbamlp kernel sources", kernel_source_stamp())

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if not _compiled_here(py_file):
                return None
            return super().from_function(py_func, py_file)

    Locator.__name__ = Locator.__qualname__ = "Numbamlp" + base.__name__.lstrip("_")
    return Locator


def _install_kernel_source_stamp() -> None:
    """Put the stamped locators first in Numba's list (before any function here is decorated:
    each module with compiled code imports this one first). Numba versions name these classes
    with or without a leading underscore; where they are missing, Numba's own keys stay."""
    from numba.core import caching

    def named(name: str) -> Any:
        return getattr(caching, name, None) or getattr(caching, "_" + name, None)

    impl = named("CacheImpl")
    bases = [named(name) for name in ("UserProvidedCacheLocator", "InTreeCacheLocator")]
    bases.append(named("UserWideCacheLocator"))
    if impl is None or None in bases:
        return
    if any(cls.__name__.startswith("Numbamlp") for cls in impl._locator_classes):
        return
    impl._locator_classes = [_stamped(base) for base in bases] + list(impl._locator_classes)


_install_kernel_source_stamp()


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
