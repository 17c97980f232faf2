"""The one import of a CUDA package: ``numba_cuda_mlir`` if it is installed, else ``numba.cuda``.

Kernels use only the API the two (and the CUDA simulator) share: ``cuda.jit`` (kernels and
``device=True`` functions), ``cuda.grid``, kernel launches ``k[blocks, threads](...)``,
``cuda.to_device``/``device_array``/``copy_to_host``, and ``math.*`` in device code (``np.exp``
does not compile there).

Which backend is chosen:

* ``NUMBA_ENABLE_CUDASIM=1`` (the CUDA simulator, how the tests run without a GPU): ``numba.cuda``,
  since ``numba_cuda_mlir`` has no simulator.
* ``NUMBAMLP_CUDA_BACKEND=numba-cuda-mlir`` or ``=numba.cuda``: that one, or an error.
* otherwise ``numba_cuda_mlir`` when importable, else ``numba.cuda`` (NVIDIA's ``numba-cuda``
  package when installed, Numba's own deprecated copy otherwise).

Importing this module needs no GPU; :func:`require_device` is the check that one is usable.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType

from numbamlp.errors import NumbamlpError

MLIR = "numba-cuda-mlir"
NUMBA = "numba.cuda"
BACKENDS = (MLIR, NUMBA)
INSTALL_HINT = 'pip install "numbamlp[cuda]"'


def simulator_enabled() -> bool:
    """True when Numba's CUDA simulator is on (it must be set before Numba is imported)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _import(name: str) -> ModuleType:
    if name == MLIR:
        from numba_cuda_mlir import cuda as module
    else:
        with warnings.catch_warnings():
            # Numba's own numba.cuda warns that it is deprecated in favour of numba-cuda.
            warnings.simplefilter("ignore", DeprecationWarning)
            from numba import cuda as module
    return module


def _select() -> tuple[ModuleType, str]:
    requested = os.environ.get("NUMBAMLP_CUDA_BACKEND", "").strip()
    if requested and requested not in BACKENDS:
        raise NumbamlpError(
            f"NUMBAMLP_CUDA_BACKEND={requested!r} is not a CUDA backend; "
            f"choose one of: {', '.join(BACKENDS)}"
        )
    if simulator_enabled():
        if requested == MLIR:
            raise NumbamlpError("numba-cuda-mlir has no CUDA simulator; unset NUMBA_ENABLE_CUDASIM")
        return _import(NUMBA), NUMBA
    candidates = (requested,) if requested else BACKENDS
    for name in candidates:
        try:
            return _import(name), name
        except ImportError:
            continue
    raise NumbamlpError(f"no CUDA support is installed ({' or '.join(candidates)}); {INSTALL_HINT}")


cuda, BACKEND = _select()


def require_device() -> None:
    """Raise a NumbamlpError (one line) unless a CUDA GPU is usable (or the simulator is on)."""
    if simulator_enabled():
        return
    try:
        usable = bool(cuda.is_available())
    except Exception:  # a broken driver install raises instead of answering False
        usable = False
    if not usable:
        raise NumbamlpError(
            f"`device=cuda` needs a usable NVIDIA GPU and driver, and this machine has none "
            f"({BACKEND} found no CUDA device); train on the CPU with `device=cpu`"
        )
