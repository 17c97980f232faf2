"""Scalar activations φ and derivatives φ′ (A.1–A.6) against central differences.

FB §2 allows "virtually any activation functions φ_m" for the hidden layers; MMiDS §7.1 derives
σ′ = σ(1 − σ) (the logistic differential equation). Each φ′ is checked three ways: the plain
Python scalar function (the source written once for every target), the compiled ``phi`` /
``phi_prime`` dispatchers selected by integer code (what the kernels call), and the NumPy
oracle ``reference.PHI`` / ``reference.PHI_PRIME``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from numbamlp.kernels.activations import (
    CODES,
    LEAKY_RELU_SLOPE,
    NAMES,
    RELU,
    SCALAR_FUNCTIONS,
    activation_code,
    phi,
    phi_prime,
    phi_prime_from_value,
)
from numbamlp.model import reference

NAMES_ALL = list(SCALAR_FUNCTIONS)

# Many points, including |t| large enough that a naive e^{−t} or e^{t} overflows
# (e^{710} > DBL_MAX), and points close to 0 but further from it than the difference step.
POINTS = [
    -1e4, -800.0, -710.0, -700.0, -50.0, -20.0, -3.0, -1.0, -0.5, -1e-3,
    1e-3, 0.25, 0.5, 1.0, 2.0, 3.0, 20.0, 50.0, 700.0, 710.0, 800.0, 1e4,
]  # fmt: skip


def central_difference(fn, t: float) -> float:
    """(φ(t + h) − φ(t − h)) / 2h with a step relative to |t|: error O(h²) + O(ε_mach |φ| / h)."""
    h = 1e-6 * max(1.0, abs(t))
    return (fn(t + h) - fn(t - h)) / (2 * h)


def close(a: float, b: float, rtol: float = 1e-7, atol: float = 1e-8) -> bool:
    return abs(a - b) <= atol + rtol * abs(b)


def test_codes_and_names_cover_all_six_activations():
    """A.1–A.6: one code per activation, and the name ↔ code maps are inverse."""
    assert set(CODES) == set(SCALAR_FUNCTIONS) == set(reference.PHI) == set(reference.PHI_PRIME)
    assert len(set(CODES.values())) == 6
    for name, code in CODES.items():
        assert NAMES[code] == name
        assert activation_code(name) == code
    with pytest.raises(KeyError):
        activation_code("gelu")


@pytest.mark.parametrize("name", NAMES_ALL)
def test_python_scalar_derivative_matches_central_difference(name):
    """(A.1)–(A.6) φ′(t) ≈ (φ(t+h) − φ(t−h))/2h for the plain-Python source, |t| up to 1e4."""
    fn, fn_prime = SCALAR_FUNCTIONS[name]
    for t in POINTS:
        value, slope = fn(t), fn_prime(t)
        assert math.isfinite(value) and math.isfinite(slope), (name, t)
        numeric = central_difference(fn, t)
        assert close(slope, numeric), f"{name}′({t}) = {slope}, central difference {numeric}"


@pytest.mark.parametrize("name", NAMES_ALL)
def test_compiled_dispatch_by_code_matches_python_and_central_difference(name):
    """(A.1)–(A.6) the jitted ``phi(code, t)`` / ``phi_prime(code, t)`` that the kernels call."""
    code = CODES[name]
    fn, fn_prime = SCALAR_FUNCTIONS[name]
    for t in POINTS:
        value, slope = phi(code, t), phi_prime(code, t)
        assert math.isfinite(value) and math.isfinite(slope), (name, t)
        # φ′ ≤ 1 everywhere; 1 − tanh² cancels, so a 1-ulp libm difference in tanh shows up
        # as ~1e-15 absolute: compare on that scale.
        assert close(value, fn(t), rtol=1e-14, atol=1e-15), (name, t)
        assert close(slope, fn_prime(t), rtol=1e-14, atol=1e-15), (name, t)
        numeric = central_difference(lambda u, c=code: phi(c, u), t)
        assert close(slope, numeric), f"phi_prime({name}, {t}) = {slope}, c.d. {numeric}"


@pytest.mark.parametrize("name", NAMES_ALL)
def test_compiled_dispatch_in_float32(name):
    """The kernels call φ/φ′ on float32 too: same values to float32 precision, all finite."""
    code = CODES[name]
    fn, fn_prime = SCALAR_FUNCTIONS[name]
    for t in POINTS:
        t32 = np.float32(t)
        value, slope = phi(code, t32), phi_prime(code, t32)
        assert np.isfinite(value) and np.isfinite(slope), (name, t)
        assert close(value, fn(float(t32)), rtol=1e-6, atol=1e-6), (name, t)
        assert close(slope, fn_prime(float(t32)), rtol=1e-6, atol=1e-6), (name, t)


@pytest.mark.parametrize("name", NAMES_ALL)
def test_phi_prime_from_value(name):
    """φ′ given the stored φ(t) (what the fused B.4 calls): bitwise φ′(t) in float64, and for
    tanh in float32 too (the stored value is exactly the one φ′ computes); for a float32 σ,
    rounded when stored, σ′ to float32 precision."""
    code = CODES[name]
    for t in POINTS:
        assert phi_prime_from_value(code, phi(code, t), t) == phi_prime(code, t), (name, t)
        t32 = np.float32(t)
        value32 = np.float32(phi(code, t32))  # as the float32 activation buffer holds it
        got, expected = phi_prime_from_value(code, value32, t32), phi_prime(code, t32)
        if name == "sigmoid":
            assert abs(got - expected) <= 1e-7, (t, got, expected)  # |Δσ| ≤ 2⁻²⁴
        else:
            assert np.float32(got) == np.float32(expected), (name, t)


@pytest.mark.parametrize("name", NAMES_ALL)
def test_reference_oracle_agrees_with_scalar_functions(name):
    """reference.PHI / PHI_PRIME (elementwise NumPy) equal the scalar φ / φ′ at every point."""
    t = np.array(POINTS)
    fn, fn_prime = SCALAR_FUNCTIONS[name]
    expected = np.array([fn(u) for u in POINTS])
    expected_prime = np.array([fn_prime(u) for u in POINTS])
    with np.errstate(over="raise", invalid="raise"):
        got, got_prime = reference.PHI[name](t), reference.PHI_PRIME[name](t)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-300)
    # σ′ = σ(1 − σ) cancels in the tail (σ(20) = 1 − 2e-9), so two correct implementations
    # agree there to ε_mach absolutely, not relatively; φ′ ≤ 1 sets the scale.
    np.testing.assert_allclose(got_prime, expected_prime, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", NAMES_ALL)
def test_reference_oracle_keeps_float32(name):
    """The oracle keeps float32 input float32 (float32 kernel comparisons are like-for-like)."""
    t = np.array(POINTS, dtype=np.float32)
    assert reference.PHI[name](t).dtype == np.float32
    assert reference.PHI_PRIME[name](t).dtype == np.float32


def test_sigmoid_values_and_logistic_equation():
    """(A.1) MMiDS §7.1: σ(0) = 1/2, σ(−t) = 1 − σ(t), σ′ = σ(1 − σ), σ′(0) = 1/4."""
    sigmoid, sigmoid_prime = SCALAR_FUNCTIONS["sigmoid"]
    assert sigmoid(0.0) == 0.5
    assert sigmoid_prime(0.0) == 0.25
    for t in POINTS:
        s = sigmoid(t)
        assert 0.0 <= s <= 1.0
        assert close(sigmoid(-t), 1.0 - s, rtol=1e-12, atol=1e-16)
        assert close(sigmoid_prime(t), s * (1.0 - s), rtol=1e-12, atol=1e-300)
    # Saturation without overflow: e^{−t} for t = −1e4 would be inf in a naive 1/(1 + e^{−t}).
    assert sigmoid(1e4) == 1.0 and sigmoid(-1e4) == 0.0
    assert sigmoid_prime(1e4) == 0.0 and sigmoid_prime(-1e4) == 0.0
    assert sigmoid(-700.0) == pytest.approx(math.exp(-700.0), rel=1e-12)


def test_softplus_is_overflow_free_and_asymptotically_linear():
    """(A.5) softplus(t) = log(1 + e^t): ≈ t for t ≫ 0, ≈ e^t for t ≪ 0, never inf."""
    softplus, softplus_prime = SCALAR_FUNCTIONS["softplus"]
    assert softplus(0.0) == pytest.approx(math.log(2.0), rel=1e-15)
    assert softplus(1e4) == 1e4 and softplus(800.0) == 800.0
    assert softplus(-1e4) == 0.0
    assert softplus(-700.0) == pytest.approx(math.exp(-700.0), rel=1e-12)
    assert softplus(30.0) == pytest.approx(30.0 + math.exp(-30.0), rel=1e-15)
    assert softplus_prime(1e4) == 1.0 and softplus_prime(-1e4) == 0.0
    code = CODES["softplus"]
    assert phi(code, 1e4) == 1e4 and phi_prime(code, -1e4) == 0.0


def test_tanh_saturates():
    """(A.2) tanh′ = 1 − tanh²: exactly 0 in the saturated tails."""
    tanh, tanh_prime = SCALAR_FUNCTIONS["tanh"]
    assert tanh(1e4) == 1.0 and tanh(-1e4) == -1.0
    assert tanh_prime(1e4) == 0.0 and tanh_prime(0.0) == 1.0


@pytest.mark.parametrize("impl", ["python", "compiled", "reference"])
def test_relu_convention_at_zero(impl):
    """(A.3) relu′(0) = 0 (the subgradient chosen by convention); leaky_relu′(0) = α (A.4)."""
    if impl == "python":
        relu_prime = SCALAR_FUNCTIONS["relu"][1]
        leaky_prime = SCALAR_FUNCTIONS["leaky_relu"][1]
    elif impl == "compiled":
        relu_prime = lambda t: phi_prime(CODES["relu"], t)  # noqa: E731
        leaky_prime = lambda t: phi_prime(CODES["leaky_relu"], t)  # noqa: E731
    else:
        relu_prime = lambda t: float(reference.PHI_PRIME["relu"](np.array([t]))[0])  # noqa: E731
        leaky_prime = lambda t: float(  # noqa: E731
            reference.PHI_PRIME["leaky_relu"](np.array([t]))[0]
        )
    assert relu_prime(0.0) == 0.0
    assert relu_prime(-0.0) == 0.0
    assert relu_prime(1e-300) == 1.0
    assert relu_prime(-1e-300) == 0.0
    assert leaky_prime(0.0) == LEAKY_RELU_SLOPE
    assert leaky_prime(1e-300) == 1.0


def test_relu_and_leaky_relu_values():
    """(A.3) relu(t) = max(t, 0); (A.4) leaky_relu(t) = t if t > 0 else 0.01 t."""
    relu = SCALAR_FUNCTIONS["relu"][0]
    leaky = SCALAR_FUNCTIONS["leaky_relu"][0]
    for t in POINTS:
        assert relu(t) == max(t, 0.0)
        assert leaky(t) == (t if t > 0 else LEAKY_RELU_SLOPE * t)
    assert relu(0.0) == 0.0 and leaky(0.0) == 0.0


def test_relu_propagates_nan():
    """A NaN pre-activation must stay NaN (so divergence is detected), not become relu(NaN) = 0."""
    assert math.isnan(SCALAR_FUNCTIONS["relu"][0](math.nan))
    assert math.isnan(phi(RELU, math.nan))


def test_identity():
    """(A.6) identity(t) = t, identity′(t) = 1."""
    fn, fn_prime = SCALAR_FUNCTIONS["identity"]
    code = CODES["identity"]
    for t in POINTS:
        assert fn(t) == t and phi(code, t) == t
        assert fn_prime(t) == 1.0 and phi_prime(code, t) == 1.0
