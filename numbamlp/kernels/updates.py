"""The optimizer updates U.1–U.6, each written once, for one component r of θ.

Each update is a plain Python function of the arrays it updates in place (θ, then the state),
the index r, the gradient's component g = g_r and the scalars (γ_p, the hyperparameters), using
only ``math`` and arithmetic, so that one source compiles for every target, as activations.py's
φ/φ′ do:

* the CPU builds below (``sgd_element`` …), compiled with the kernels' fast-math flags, are what
  optimizers.py's kernels call for every r of θ (the ``kernels`` engine) and what the fused
  engine's region 2 calls for the components of the rows it owns (engines/fused/regions.py) —
  except Adadelta's kernel (optimizers.adadelta_update says why);
* cuda/optimizers.py builds the same functions as CUDA device functions, one thread per r.

They update the arrays in place, rather than return new values, so that each intermediate is
rounded to the arrays' precision where it is stored (m_r is stored, then read back, before it
divides). ``math.sqrt`` is the correctly rounded square root on every target (``np.sqrt`` does
not compile for a CUDA device).
"""

from __future__ import annotations

import math

from numbamlp.kernels._jit import helper


# (U.1) θ_r ← θ_r − γ_p g_r
def sgd(theta, r, g, lr):
    theta[r] -= lr * g


# (U.2) v_r ← μ v_r + g_r;  θ_r ← θ_r − γ_p v_r
def momentum(theta, velocity, r, g, lr, mu):
    velocity[r] = mu * velocity[r] + g
    theta[r] -= lr * velocity[r]


# (U.3) G_r ← G_r + g_r²;  θ_r ← θ_r − γ_p g_r / (√G_r + ε)
def adagrad(theta, sum_sq_grad, r, g, lr, eps):
    sum_sq_grad[r] += g * g
    theta[r] -= lr * g / (math.sqrt(sum_sq_grad[r]) + eps)


# (U.4) E_r ← ρE_r + (1−ρ)g_r²;  Δ_r = −√(D_r+ε)/√(E_r+ε) g_r;
#       D_r ← ρD_r + (1−ρ)Δ_r²;  θ_r ← θ_r + γ_p Δ_r
def adadelta(theta, avg_sq_grad, avg_sq_step, r, g, lr, rho, eps):
    avg_sq_grad[r] = rho * avg_sq_grad[r] + (1 - rho) * g * g
    step = -math.sqrt(avg_sq_step[r] + eps) / math.sqrt(avg_sq_grad[r] + eps) * g
    avg_sq_step[r] = rho * avg_sq_step[r] + (1 - rho) * step * step
    theta[r] += lr * step


# (U.5) E_r ← ρE_r + (1−ρ)g_r²;  θ_r ← θ_r − γ_p g_r / (√E_r + ε)
def rmsprop(theta, avg_sq_grad, r, g, lr, rho, eps):
    avg_sq_grad[r] = rho * avg_sq_grad[r] + (1 - rho) * g * g
    theta[r] -= lr * g / (math.sqrt(avg_sq_grad[r]) + eps)


# (U.6) m_r ← β₁m_r + (1−β₁)g_r;  v_r ← β₂v_r + (1−β₂)g_r²;
#       θ_r ← θ_r − γ_p (m_r/(1−β₁^p)) / (√(v_r/(1−β₂^p)) + ε)
#       (bias1 = 1 − β₁^p and bias2 = 1 − β₂^p are computed once per step by the caller)
def adam(theta, m, v, r, g, lr, beta1, beta2, eps, bias1, bias2):
    m[r] = beta1 * m[r] + (1 - beta1) * g
    v[r] = beta2 * v[r] + (1 - beta2) * g * g
    theta[r] -= lr * (m[r] / bias1) / (math.sqrt(v[r] / bias2) + eps)


#: optimizer name → its update of one component, as plain Python (what every target builds)
ELEMENT_FUNCTIONS = {
    "sgd": sgd,
    "momentum": momentum,
    "adagrad": adagrad,
    "adadelta": adadelta,
    "rmsprop": rmsprop,
    "adam": adam,
}

# CPU builds, with the fast-math flags of the kernels that call them (_jit.FASTMATH_FLAGS):
# optimizers.py's kernels call them in their loop over every r of θ, the fused engine's region 2
# on the components of the rows it owns (engines/fused/regions.py).
sgd_element = helper(fastmath=True)(sgd)
momentum_element = helper(fastmath=True)(momentum)
adagrad_element = helper(fastmath=True)(adagrad)
adadelta_element = helper(fastmath=True)(adadelta)
rmsprop_element = helper(fastmath=True)(rmsprop)
adam_element = helper(fastmath=True)(adam)
