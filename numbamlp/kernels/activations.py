"""Scalar activations φ and their derivatives φ′ (A.1–A.6).

Each φ/φ′ is written once as a plain Python function of a scalar using only ``math`` and
comparisons, so the same source compiles for the CPU (``numba.njit``) and, later, as a CUDA
device function. Kernels select an activation by an integer code rather than by receiving a
function: passing functions would defeat Numba's on-disk cache.
"""

from __future__ import annotations

import math

from numbamlp.kernels._jit import scalar

LEAKY_RELU_SLOPE = 0.01

SIGMOID = 0
TANH = 1
RELU = 2
LEAKY_RELU = 3
SOFTPLUS = 4
IDENTITY = 5

CODES: dict[str, int] = {
    "sigmoid": SIGMOID,
    "tanh": TANH,
    "relu": RELU,
    "leaky_relu": LEAKY_RELU,
    "softplus": SOFTPLUS,
    "identity": IDENTITY,
}
NAMES: dict[int, str] = {code: name for name, code in CODES.items()}


def activation_code(name: str) -> int:
    """The integer code of an activation name; raises KeyError for unknown names."""
    return CODES[name]


# (A.1) σ(t) = 1/(1+e^{−t}), written so that exp never overflows: with e = e^{−|t|},
# σ(t) = 1/(1+e) for t ≥ 0 and e/(1+e) for t < 0 (one exp, no branch around it).
def sigmoid(t):
    e = math.exp(-abs(t))
    return 1.0 / (1.0 + e) if t >= 0 else e / (1.0 + e)


# (A.1) σ′(t) = σ(t)(1 − σ(t))   (MMiDS §7.1, the logistic differential equation)
# Scalar functions do not call each other: each must compile alone for every target.
def sigmoid_prime(t):
    e = math.exp(-abs(t))
    s = 1.0 / (1.0 + e) if t >= 0 else e / (1.0 + e)
    return s * (1.0 - s)


# (A.2) tanh(t)
def tanh(t):
    return math.tanh(t)


# (A.2) tanh′(t) = 1 − tanh²(t)
def tanh_prime(t):
    y = math.tanh(t)
    return 1.0 - y * y


# (A.3) relu(t) = max(t, 0)
def relu(t):
    return t if t > 0 else 0.0 * t


# (A.3) relu′(t) = 1_{t>0}   (0 at t = 0, by convention)
def relu_prime(t):
    return 1.0 if t > 0 else 0.0


# (A.4) leaky_relu(t) = t if t > 0 else α t
def leaky_relu(t):
    return t if t > 0 else LEAKY_RELU_SLOPE * t


# (A.4) leaky_relu′(t) = 1 if t > 0 else α
def leaky_relu_prime(t):
    return 1.0 if t > 0 else LEAKY_RELU_SLOPE


# (A.5) softplus(t) = log(1 + e^t) = max(t, 0) + log1p(e^{−|t|}), overflow-free
def softplus(t):
    return max(t, 0.0) + math.log1p(math.exp(-abs(t)))


# (A.5) softplus′(t) = σ(t)
def softplus_prime(t):
    e = math.exp(-abs(t))
    return 1.0 / (1.0 + e) if t >= 0 else e / (1.0 + e)


# (A.6) identity(t) = t
def identity(t):
    return t


# (A.6) identity′(t) = 1
def identity_prime(t):
    return 1.0


SCALAR_FUNCTIONS = {
    "sigmoid": (sigmoid, sigmoid_prime),
    "tanh": (tanh, tanh_prime),
    "relu": (relu, relu_prime),
    "leaky_relu": (leaky_relu, leaky_relu_prime),
    "softplus": (softplus, softplus_prime),
    "identity": (identity, identity_prime),
}

# CPU builds of the scalar functions.
_sigmoid = scalar(sigmoid)
_sigmoid_prime = scalar(sigmoid_prime)
_tanh = scalar(tanh)
_tanh_prime = scalar(tanh_prime)
_relu = scalar(relu)
_relu_prime = scalar(relu_prime)
_leaky_relu = scalar(leaky_relu)
_leaky_relu_prime = scalar(leaky_relu_prime)
_softplus = scalar(softplus)
_softplus_prime = scalar(softplus_prime)
_identity = scalar(identity)
_identity_prime = scalar(identity_prime)


@scalar
def phi(code, t):
    """φ(t) for the activation with this code."""
    if code == SIGMOID:
        return _sigmoid(t)
    if code == TANH:
        return _tanh(t)
    if code == RELU:
        return _relu(t)
    if code == LEAKY_RELU:
        return _leaky_relu(t)
    if code == SOFTPLUS:
        return _softplus(t)
    return _identity(t)


@scalar
def phi_prime(code, t):
    """φ′(t) for the activation with this code."""
    if code == SIGMOID:
        return _sigmoid_prime(t)
    if code == TANH:
        return _tanh_prime(t)
    if code == RELU:
        return _relu_prime(t)
    if code == LEAKY_RELU:
        return _leaky_relu_prime(t)
    if code == SOFTPLUS:
        return _softplus_prime(t)
    return _identity_prime(t)


@scalar
def phi_prime_from_value(code, value, t):
    """φ′(t) for the activation with this code, given also value = φ(t) as the forward pass
    stored it. Where the notes write φ′ through φ — (A.1) σ′ = σ(1−σ), (A.2) tanh′ = 1 − tanh² —
    it is computed from the value, without a second exponential; otherwise as ``phi_prime``.
    With the value in float64 (or tanh in any precision) the result is bitwise that of
    ``phi_prime``; a float32 σ, already rounded, gives σ′ to float32 precision."""
    if code == SIGMOID:
        # (A.1) σ′(t) = σ(t)(1 − σ(t))
        return value * (1.0 - value)
    if code == TANH:
        # (A.2) tanh′(t) = 1 − tanh²(t)
        return 1.0 - value * value
    return phi_prime(code, t)
