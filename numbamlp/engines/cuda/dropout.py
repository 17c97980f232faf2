"""CUDA twins of numbamlp/kernels/dropout.py (D.1–D.3): same names, argument order and tags.

The row functions are the CPU's own Python source (kernels/dropout.py), built as device
functions with ``_philox`` rebound to the device build of kernels/philox.py's Philox4x32-10, as
cuda/activations.py rebinds φ's dispatcher: the device computes the very integers the CPU does,
so a run on the GPU draws the masks of a run on the CPU. Thread s owns row s (its mask, its
h̃^m_{s,:}, its δ^m_{s,:}), as one CPU ``prange`` iteration does.
"""

from __future__ import annotations

from types import FunctionType

import numpy as np

from numbamlp.engines.cuda.backend import cuda
from numbamlp.kernels import dropout as cpu
from numbamlp.kernels import philox
from numbamlp.kernels.philox import MASK32

device_function = cuda.jit(device=True)

#: Philox4x32-10 on the device: kernels/philox.py's source.
philox4x32_10 = device_function(philox.philox4x32_10)


def _rebind(fn) -> FunctionType:
    """A row function of kernels/dropout.py whose ``_philox`` is the device build."""
    namespace = dict(fn.__globals__)
    namespace["_philox"] = philox4x32_10
    return FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__, fn.__closure__)


#: (D.1) r^m_{s,:} of row s.
dropout_mask_row = device_function(_rebind(cpu.dropout_mask_row))
#: (D.2) h̃^m_{s,:} of row s, in place.
dropout_forward_row = device_function(_rebind(cpu.dropout_forward_row))
#: (D.3) δ^m_{s,:} ⊙ r^m_{s,:} / (1 − p_m) of row s, in place.
dropout_delta_row = device_function(_rebind(cpu.dropout_delta_row))


@cuda.jit
def dropout_mask(r, indices, layer, step, key, threshold):
    """(D.1) r^m_{s,j} for the samples of a batch; thread s."""
    s = cuda.grid(1)
    if s < r.shape[0]:
        sample = np.uint64(indices[s]) & MASK32
        dropout_mask_row(r, s, sample, np.uint64(layer), np.uint64(step), key[0], key[1], threshold)


@cuda.jit
def dropout_forward(h, indices, layer, step, key, threshold, scale):
    """(D.2) h̃^m = h^m ⊙ r^m / (1 − p_m) in place, after F.2; thread s."""
    s = cuda.grid(1)
    if s < h.shape[0]:
        sample = np.uint64(indices[s]) & MASK32
        dropout_forward_row(
            h, s, sample, np.uint64(layer), np.uint64(step), key[0], key[1], threshold, scale
        )


@cuda.jit
def dropout_backward(delta, indices, layer, step, key, threshold, scale):
    """(D.3) δ^m ← δ^m ⊙ r^m / (1 − p_m) in place, after B.4 multiplied by φ′_m; thread s."""
    s = cuda.grid(1)
    if s < delta.shape[0]:
        sample = np.uint64(indices[s]) & MASK32
        dropout_delta_row(
            delta, s, sample, np.uint64(layer), np.uint64(step), key[0], key[1], threshold, scale
        )
