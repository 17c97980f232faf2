"""Runs tests/engines/cuda/ in its own pytest process with NUMBA_ENABLE_CUDASIM=1, so plain
``pytest``
checks every CUDA kernel without a GPU (the simulator must be on before Numba is imported,
which in this process it already was)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: Not in the inner-loop subset (pytest -m 'not slow'): runs tests/engines/cuda in the simulator.
pytestmark = pytest.mark.slow

CUDA_TESTS = Path(__file__).parent / "cuda"


def test_cuda_kernels_in_the_simulator():
    pytest.importorskip("numba.cuda")  # Numba's own copy, or the numba-cuda package
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env.pop("NUMBAMLP_CUDA_BACKEND", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(CUDA_TESTS), "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
        check=False,
    )
    summary = result.stdout.strip().splitlines()[-1:] or ["(no output)"]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in summary[0] and "failed" not in summary[0], summary
