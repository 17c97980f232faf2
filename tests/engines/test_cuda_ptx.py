"""Every CUDA kernel compiles to PTX for recent GPUs (sm_80, sm_90), with each installed
backend, on a machine without a GPU: the type check that the simulator does not do.

Needs NVVM, which the ``cuda`` extra installs as wheels (numba-cuda[cu13]); skipped without it
(.ci/run installs the extra and runs this file in a separate step). Each compile runs in a fresh
interpreter, without the simulator.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("numba_cuda") is None,
    reason='needs NVVM: pip install -e ".[cuda]"',
)

BACKENDS = [
    "numba.cuda",
    pytest.param(
        "numba-cuda-mlir",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("numba_cuda_mlir") is None, reason="numba-cuda-mlir absent"
        ),
    ),
]


def run(args: list[str], backend: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["NUMBAMLP_CUDA_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=900, check=False
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_kernel_compiles_to_ptx(backend):
    result = run(["-m", "numbamlp.engines.cuda.ptx", "--cc", "8.0", "--cc", "9.0"], backend)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("140 kernel builds compiled to PTX"), lines[-1]
    assert sum("sm_90" in line for line in lines) == 70


def test_ptx_compilation_catches_what_the_simulator_does_not():
    """np.exp runs in the simulator (it is plain Python there) but is no device function: the
    PTX step must reject it, or it would not be checking anything."""
    script = textwrap.dedent(
        """
        import numpy as np
        from numbamlp.engines.cuda.backend import cuda
        from numbamlp.engines.cuda.ptx import _target_device
        from numba import types

        def bad(out, x):
            i = cuda.grid(1)
            if i < x.shape[0]:
                out[i] = np.exp(x[i])

        arr = types.Array(types.float64, 1, "C")
        with _target_device((9, 0)):
            try:
                cuda.compile_ptx(bad, (arr, arr), cc=(9, 0))
            except Exception as exc:
                print("REJECTED", type(exc).__name__)
            else:
                print("ACCEPTED")
        """
    )
    result = run(["-c", script], "numba.cuda")
    assert "REJECTED" in result.stdout, result.stdout + result.stderr[-3000:]
