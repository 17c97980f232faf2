"""memory.py's cache-line-aligned arrays, and θ on a cache line (the fused engine's 512-bit loads
of the rows of W^k would straddle two lines otherwise)."""

from __future__ import annotations

import numpy as np
import pytest

from numbamlp.kernels.memory import CACHE_LINE, aligned, aligned_zeros, is_aligned, round_up
from numbamlp.model.network import Architecture, Parameters


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 3, 4)])
def test_aligned_zeros_start_a_cache_line(shape, dtype):
    for _ in range(5):  # NumPy's own placement varies from one allocation to the next
        a = aligned_zeros(shape, dtype)
        assert a.ctypes.data % CACHE_LINE == 0
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
        assert not a.any()


def test_aligned_keeps_an_aligned_array_and_copies_another():
    a = aligned_zeros((100,), np.float32)
    assert aligned(a) is a
    off = aligned_zeros((101,), np.float32)[1:]  # 4 bytes into a line
    assert not is_aligned(off)
    off[:] = np.arange(100)
    copy = aligned(off)
    assert copy is not off and is_aligned(copy)
    np.testing.assert_array_equal(copy, off)
    strided = np.arange(20.0)[::2]
    assert not is_aligned(strided) and is_aligned(aligned(strided))


def test_round_up():
    assert [round_up(n, 16) for n in (0, 1, 16, 17)] == [0, 16, 16, 32]


def test_parameters_put_theta_on_a_cache_line():
    arch = Architecture.for_classes(784, [32], 10, ["sigmoid"], "softmax")
    off = aligned_zeros((arch.n_parameters + 1,), np.float32)[1:]
    off[:] = 1.5
    params = Parameters(arch, off)
    assert is_aligned(params.theta)
    assert (params.theta == 1.5).all()
    params.W[1][0, 0] = 2.0  # the views are views of the aligned θ
    assert params.theta[params.theta == 2.0].size == 1
    for copy in (params.copy(), Parameters.zeros(arch, np.float64)):
        assert is_aligned(copy.theta)


# Intel CPUs with AVX-512 for which LLVM prefers 256-bit vectors unless told otherwise.
INTEL_256_BIT_DEFAULT = {
    "skylake-avx512", "cascadelake", "cooperlake", "icelake-server", "icelake-client",
    "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids", "graniterapids",
}  # fmt: skip


def _host_has_avx512() -> bool:
    import llvmlite.binding as llvm

    return "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")


@pytest.mark.skipif(not _host_has_avx512(), reason="the CPU has no AVX-512")
def test_prefer_wide_vectors_gives_512_bit_loops():
    """The intrinsic marks its function so that LLVM vectorises with 512-bit (zmm) registers;
    the same loop without it stays at 256 bits, LLVM's default on Intel CPUs."""
    from numba import njit

    from numbamlp.kernels._jit import FASTMATH_FLAGS
    from numbamlp.kernels.intrinsics import prefer_wide_vectors

    def axpy(y, a, x):
        for j in range(x.shape[0]):
            y[j] += a * x[j]

    def wide_axpy(y, a, x):
        prefer_wide_vectors()
        for j in range(x.shape[0]):
            y[j] += a * x[j]

    x = np.arange(64, dtype=np.float32)
    asm = {}
    for fn in (axpy, wide_axpy):
        jitted = njit(fastmath=set(FASTMATH_FLAGS))(fn)
        y = np.ones(64, np.float32)
        jitted(y, np.float32(2), x)
        np.testing.assert_array_equal(y, 1 + 2 * x)
        asm[fn.__name__] = jitted.inspect_asm(jitted.signatures[0])
    assert "zmm" in asm["wide_axpy"]
    import llvmlite.binding as llvm

    if llvm.get_host_cpu_name() in INTEL_256_BIT_DEFAULT:  # the control: LLVM's own choice
        assert "zmm" not in asm["axpy"]
