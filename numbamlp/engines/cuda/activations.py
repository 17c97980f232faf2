"""φ and φ′ for the device (A.1–A.6), built from the very Python functions the CPU compiles.

``numbamlp.kernels.activations`` holds each scalar φ/φ′ once, as plain Python using only
``math`` and
comparisons; here each becomes a CUDA device function. The dispatchers ``phi(code, t)`` and
``phi_prime(code, t)`` are the CPU ones too: their code object is re-bound to a namespace in
which ``_sigmoid``, ``_tanh``, … name the device builds, so not even the ``if code == …`` chain
is written twice.
"""

from __future__ import annotations

from types import FunctionType

from numbamlp.engines.cuda.backend import cuda
from numbamlp.kernels import activations as cpu

device_function = cuda.jit(device=True)

#: Device builds of the scalar functions, under the names the CPU dispatchers call them by.
_DEVICE_SCALARS = {
    f"_{name}{suffix}": device_function(fn)
    for name, pair in cpu.SCALAR_FUNCTIONS.items()
    for suffix, fn in zip(("", "_prime"), pair, strict=True)
}


def _rebind(dispatcher) -> FunctionType:
    """The Python function behind a CPU dispatcher, with its globals pointing at device builds."""
    fn = dispatcher.py_func
    namespace = dict(fn.__globals__)
    namespace.update(_DEVICE_SCALARS)
    return FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)


#: φ(t) for the activation with this code (the integer codes of numbamlp.kernels.activations).
phi = device_function(_rebind(cpu.phi))
#: φ′(t) for the activation with this code.
phi_prime = device_function(_rebind(cpu.phi_prime))
