"""``numbamlp train --device cuda`` on a machine without a usable GPU: one "error: ..." line on
stderr naming the problem, exit status 2, no traceback, before any data is read.

(Training with --device cuda is tested in the CUDA simulator: tests/engines/cuda/test_cli_sim.py.)
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest


def _gpu_usable() -> bool:
    probe = "from numbamlp.engines.cuda.backend import cuda; print(cuda.is_available())"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False
    )
    return result.stdout.strip().endswith("True")


def train_on_cuda(tmp_path, **env_changes: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env.update(env_changes)
    return subprocess.run(
        [
            sys.executable, "-m", "numbamlp", "train", "--device", "cuda", "--epochs", "1",
            "--train-file", str(tmp_path / "missing.npz"), "--save", str(tmp_path / "m.npz"),
        ],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip


def assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_device_cuda_without_a_gpu_is_one_clear_error(tmp_path):
    if _gpu_usable():
        pytest.skip("this machine has a usable GPU")
    result = train_on_cuda(tmp_path)
    # The GPU check comes first: the missing training file is not what it complains about.
    assert_one_error_line(result, "--device cuda", "GPU", "--device cpu")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.skipif(
    importlib.util.find_spec("numba_cuda_mlir") is not None, reason="numba-cuda-mlir installed"
)
def test_device_cuda_without_the_cuda_packages_names_the_extra(tmp_path):
    result = train_on_cuda(tmp_path, NUMBAMLP_CUDA_BACKEND="numba-cuda-mlir")
    assert_one_error_line(result, "numbamlp[cuda]")


def test_unknown_backend_is_one_clear_error(tmp_path):
    result = train_on_cuda(tmp_path, NUMBAMLP_CUDA_BACKEND="opencl")
    assert_one_error_line(result, "NUMBAMLP_CUDA_BACKEND", "opencl")
