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

#: The side of the square float32 matrices whose product measures the machine's sgemm peak.
PEAK_MATRIX = 2048
#: An sgemm peak given by hand (GFLOP/s) replaces the measurement: NUMBAMLP_PEAK_GFLOPS.
PEAK_ENV = "NUMBAMLP_PEAK_GFLOPS"


def measure_peak_gflops(n: int = PEAK_MATRIX, repeats: int = 5, threads: int = 2) -> float:
    """This machine's float32 sgemm rate through NumPy's BLAS with ``threads`` threads, in
    GFLOP/s: the best of ``repeats`` products of two n × n matrices (2n³ FLOPs each), after one
    warm-up. Every "fraction of the FLOP limit" divides by it, so the limit is this machine's,
    measured in the same session, not a constant from another one. Run the benchmarks with
    OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset (README.md here), or BLAS runs a slow kernel and
    the limit comes out low."""
    import time

    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((2, n, n)).astype(np.float32)
    C = np.empty((n, n), np.float32)
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=threads, user_api="blas")
    except ImportError:  # BLAS's own thread count: the machine's 2 cores on the project's VMs
        import contextlib

        limits = contextlib.nullcontext()
    with limits:
        np.matmul(A, B, out=C)
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            np.matmul(A, B, out=C)
            best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


@pytest.fixture(scope="session")
def peak_gflops() -> float:
    """The sgemm peak every "of FLOP limit" figure of this session uses: measured once
    (measure_peak_gflops), or NUMBAMLP_PEAK_GFLOPS when set."""
    given = os.environ.get(PEAK_ENV)
    return float(given) if given else measure_peak_gflops()


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
