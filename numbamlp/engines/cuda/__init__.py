"""The CUDA path: twins of the CPU kernels, written in Numba's CUDA dialect.

Nothing here is imported by the CPU path (``import numbamlp`` and the CPU trainer never load a
CUDA package). The kernels import the CUDA module through one shim,
``numbamlp.engines.cuda.backend``,
which prefers ``numba_cuda_mlir`` and falls back to ``numba.cuda``. Install the GPU packages
with ``pip install "numbamlp[cuda]"``.

Modules read side by side with their CPU twins: ``activations`` (φ/φ′ built for the device
from the same Python source), ``forward``, ``backward`` and ``optimizers`` (one kernel per CPU
kernel: same name, same argument order, same equation tag, same loop body; only the index →
thread mapping differs), ``passes`` (the order the kernels run in) and ``engine`` (the engine
of ``Trainer(..., device="cuda")``, whose θ, optimizer state and data stay on the device).
"""

from __future__ import annotations
