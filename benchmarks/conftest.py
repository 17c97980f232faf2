"""Shared fixtures for the benchmarks: MNIST once per session, trainer factories, FLOP counts.

Run with OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset (see README.md here) so NumPy's BLAS runs its
best kernel; the session records which BLAS kernel it ran in every benchmark's extra_info.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

#: float32 sgemm peak of the reference machine (2-core AVX-512 VM), measured with
#: benchmarks/test_kernels.py::test_blas_peak; the FLOP limit is FLOPs / this.
PEAK_GFLOPS = float(os.environ.get("NUMBAMLP_PEAK_GFLOPS", "320"))


def epoch_flops(n: int, sizes: list[int]) -> float:
    """FLOPs of one training epoch: forward 2·d_k·d_{k−1} per sample and layer, ∇W the same,
    δ recursion 2·d_{m+1}·d_m per hidden layer (none into the input)."""
    per_sample = 0.0
    for k in range(1, len(sizes)):
        per_sample += 2 * sizes[k] * sizes[k - 1] * 2  # forward + ∇W
        if k > 1:
            per_sample += 2 * sizes[k] * sizes[k - 1]  # δ^{k−1}
    return per_sample * n


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="session")
def mnist():
    from numbamlp.datasets.loaders import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        infos = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(f"{i['internal_api']} {i.get('architecture')}" for i in infos)
    except ImportError:
        return "threadpoolctl not installed"


def make_trainer(kind: str, X, y, hidden: int, batch: int, threads: int = 2):
    """A trainer of the named implementation; skips when its package is absent."""
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if kind.startswith("numbamlp"):
        from baselines.numbamlp_mlp import Trainer

        if kind == "numbamlp-pixels":
            return Trainer(X, y, hidden, batch, pixels=True)
        engine = kind.split("-", 1)[1] if "-" in kind else "fused"
        return Trainer(X, y, hidden, batch, engine=engine)
    if kind == "numpy":
        from baselines.numpy_mlp import Trainer

        return Trainer(X, y, hidden, batch)
    if kind.startswith("torch"):
        if not have("torch"):
            pytest.skip("torch not installed (pip install torch==2.13.0)")
        from baselines.torch_mlp import Trainer

        return Trainer(X, y, hidden, batch, fused=kind == "torch-fused-adam", threads=threads)
    if kind == "jax":
        if not have("jax"):
            pytest.skip("jax not installed (pip install jax)")
        from baselines.jax_mlp import Trainer

        return Trainer(X, y, hidden, batch)
    raise ValueError(kind)


@pytest.fixture(autouse=True)
def _restore_threads():
    import numba

    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)


def quick(benchmark) -> bool:
    """True under --benchmark-disable (CI's smoke run): use tiny workloads."""
    return bool(getattr(benchmark, "disabled", False))


def rng_subset(X, y, n, seed=0):
    idx = np.random.default_rng(seed).permutation(X.shape[0])[:n]
    return np.ascontiguousarray(X[idx]), y[idx]


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Keep each benchmark's statistics in --benchmark-json, not its every round: the kernel
    groups time ~10^5 rounds each, which made a run's file ~19 MB instead of ~0.2 MB."""
    for bench in output_json["benchmarks"]:
        bench["stats"].pop("data", None)
