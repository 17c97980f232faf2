"""Tests of the CUDA kernels in Numba's CUDA simulator (no GPU needed).

They run in their own pytest process with NUMBA_ENABLE_CUDASIM=1 set before Numba is imported:
tests/engines/test_cuda_simulator.py starts it, so plain ``pytest`` covers them. In any other
process this directory is skipped (the simulator cannot be switched on after Numba has loaded).
Run them directly with ``NUMBA_ENABLE_CUDASIM=1 pytest tests/engines/cuda``.
"""

from __future__ import annotations

import os

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")

if not SIMULATOR:
    collect_ignore_glob = ["test_*.py"]
