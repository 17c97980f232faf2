"""Per-kernel benchmarks: each equation's kernel against the NumPy expression of it.

Shapes (B, d_out, d_in): the reference model's two layers and two wider ones. Also measures the
machine's float32 sgemm rate (the FLOP limit used in extra_info) through NumPy's BLAS.
"""

from __future__ import annotations

import numpy as np
import pytest

from numbamlp.kernels.activations import SIGMOID
from numbamlp.kernels.backward import hidden_delta, weight_gradient
from numbamlp.kernels.forward import affine_forward
from numbamlp.kernels.optimizers import adam_update

SHAPES = [(128, 32, 784), (128, 10, 32), (128, 512, 784), (1024, 2048, 784)]


def _arrays(B, d_out, d_in, seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    return dict(
        W=rng.standard_normal((d_out, d_in)).astype(f32),
        b=rng.standard_normal(d_out).astype(f32),
        h=rng.random((B, d_in)).astype(f32),
        z=np.empty((B, d_out), f32),
        delta=rng.standard_normal((B, d_out)).astype(f32),
        gW=np.empty((d_out, d_in), f32),
        d_in_buf=np.empty((B, d_in), f32),
        z_in=rng.standard_normal((B, d_in)).astype(f32),
    )


def _gflops(benchmark, flops, peak_gflops):
    benchmark.extra_info["gflop"] = flops / 1e9
    if benchmark.stats:
        rate = flops / benchmark.stats.stats.median / 1e9
        benchmark.extra_info["gflops"] = rate
        benchmark.extra_info["fraction_of_peak"] = rate / peak_gflops
        benchmark.extra_info["peak_gflops"] = peak_gflops  # measured in this session


def _numpy_affine(a):
    np.matmul(a["h"], a["W"].T, out=a["z"])
    a["z"] += a["b"]


def _numpy_weight_gradient(a):
    np.matmul(a["delta"].T, a["h"], out=a["gW"])
    a["gW"] *= np.float32(1 / a["h"].shape[0])


def _numpy_hidden_delta(a):
    np.matmul(a["delta"], a["W"], out=a["d_in_buf"])
    s = 1 / (1 + np.exp(-a["z_in"]))
    a["d_in_buf"] *= s * (1 - s)


@pytest.mark.parametrize("impl", ["numbamlp", "numpy"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_forward_affine(benchmark, peak_gflops, shape, impl):
    """(F.1) z^k = b^k + W^k h^{k−1}."""
    benchmark.group = f"kernel F.1 affine {shape}"
    a = _arrays(*shape)
    fn = (
        (lambda: affine_forward(a["z"], a["W"], a["b"], a["h"]))
        if impl == "numbamlp"
        else (lambda: _numpy_affine(a))
    )
    fn()
    benchmark(fn)
    _gflops(benchmark, 2 * np.prod(shape), peak_gflops)
    expected = a["h"] @ a["W"].T + a["b"]
    np.testing.assert_allclose(a["z"], expected, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("impl", ["numbamlp", "numpy"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_weight_gradient(benchmark, peak_gflops, shape, impl):
    """(B.3)+(S.1) ∇W^m = (1/B) Σ_s δ^m_s (h^{m−1}_s)ᵀ."""
    benchmark.group = f"kernel B.3 weight gradient {shape}"
    a = _arrays(*shape)
    inv = np.float32(1 / shape[0])
    fn = (
        (lambda: weight_gradient(a["gW"], a["delta"], a["h"], inv))
        if impl == "numbamlp"
        else (lambda: _numpy_weight_gradient(a))
    )
    fn()
    benchmark(fn)
    _gflops(benchmark, 2 * np.prod(shape), peak_gflops)


@pytest.mark.parametrize("impl", ["numbamlp", "numpy"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_hidden_delta(benchmark, peak_gflops, shape, impl):
    """(B.4) δ^m = ((W^{m+1})ᵀ δ^{m+1}) ⊙ φ′(z^m), here with m+1 = the layer of shape."""
    benchmark.group = f"kernel B.4 delta recursion {shape}"
    a = _arrays(*shape)
    fn = (
        (lambda: hidden_delta(a["d_in_buf"], a["W"], a["delta"], a["z_in"], SIGMOID))
        if impl == "numbamlp"
        else (lambda: _numpy_hidden_delta(a))
    )
    fn()
    benchmark(fn)
    _gflops(benchmark, 2 * np.prod(shape), peak_gflops)


@pytest.mark.parametrize("impl", ["numbamlp", "numpy"])
@pytest.mark.parametrize("n", [25_450, 1_628_170])
def test_adam_update(benchmark, n, impl):
    """(U.6) one Adam step over a flat θ of n parameters (the reference model; hidden 2048)."""
    benchmark.group = f"kernel U.6 Adam update n={n}"
    rng = np.random.default_rng(0)
    theta, g = rng.standard_normal((2, n)).astype(np.float32)
    m, v, tmp = np.zeros((3, n), np.float32)
    f = np.float32

    def numpy_adam():
        m[:] = f(0.9) * m + f(0.1) * g
        v[:] = f(0.999) * v + f(0.001) * g * g
        np.sqrt(v / f(0.01), out=tmp)
        np.add(tmp, f(1e-8), out=tmp)
        theta[:] -= f(1e-3) * (m / f(0.1)) / tmp

    def numbamlp_adam():
        adam_update(theta, m, v, g, f(1e-3), f(0.9), f(0.999), f(1e-8), f(0.1), f(0.01))

    fn = numbamlp_adam if impl == "numbamlp" else numpy_adam
    fn()
    benchmark(fn)


def test_blas_peak(benchmark, blas_info, peak_gflops):
    """The machine's float32 sgemm rate through NumPy's BLAS: the yardstick for 'FLOP limit'."""
    benchmark.group = "machine: float32 sgemm (BLAS)"
    rng = np.random.default_rng(0)
    A, Bm = rng.standard_normal((2, 2048, 2048)).astype(np.float32)
    C = np.empty((2048, 2048), np.float32)
    np.matmul(A, Bm, out=C)
    benchmark(np.matmul, A, Bm, out=C)
    _gflops(benchmark, 2 * 2048**3, peak_gflops)
    benchmark.extra_info["blas"] = blas_info
