# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Backpropagation (FB §2, Q1–Q3)
#
# For an L-layer MLP, $z^k = b^k + W^k h^{k-1}$, $h^k = \varphi_k(z^k)$, $f_\theta = h^L =
# \mathrm{softmax}(z^L)$, and $\ell_\theta(X, Y) = -\sum_k \mathbb 1_{Y=k}\log f_\theta(X)_k$.
# Each equation below comes as: the formula, the library's own kernel (`inspect.getsource` of
# the function behind the njit dispatcher), the NumPy matrix form (`numbamlp.model.reference`),
# and a cell printing the largest difference — against central finite differences where the
# claim is a derivative. All in float64. Each equation's derivation, in index form, is in
# [docs/derivation.md](../docs/derivation.md) (the tags in the headings below link to it).

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np

from numbamlp.equations import describe
from numbamlp.kernels.backward import (
    bias_gradient,
    hidden_delta,
    output_delta,
    softmax_jacobian,
    weight_gradient,
)
from numbamlp.kernels.forward import cross_entropy, modified_softmax_forward, softmax_forward
from numbamlp.model import reference
from numbamlp.model.gradcheck import central_jacobian, check_gradient
from numbamlp.model.mlp import MLP

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (7, 3)})


def show(kernel):
    print(inspect.getsource(getattr(kernel, "py_func", kernel)))


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def softmax(z):
    """(F.3) numbamlp's softmax kernel on one vector."""
    out = np.empty((1, len(z)))
    softmax_forward(out, np.ascontiguousarray(z, dtype=np.float64)[None, :])
    return out[0]


rng = np.random.default_rng(0)

# %% [markdown]
# ## Q1 — the softmax Jacobian ([J.1](../docs/derivation.md#J.1))
#
# $$\partial_{z_i}(\varphi_L(z))_j = \begin{cases}\mathrm{softmax}(z)_i(1 - \mathrm{softmax}(z)_i)
#   & i = j,\\ -\mathrm{softmax}(z)_i\,\mathrm{softmax}(z)_j & i \ne j,\end{cases}
#   \quad\text{i.e.}\quad J = \mathrm{diag}(f) - f f^\top.$$
#
# (The proof in the notes writes $\sum_{j=1}^M e^{z_j}$ with the summation index equal to the
# free index $j$; it means $\sum_{\ell=1}^M e^{z_\ell}$ — see 06-errata.)

# %%
print(describe("J.1"))
show(softmax_jacobian)
show(reference.softmax_jacobian)

# %%
z = rng.normal(scale=2.0, size=6)
f = softmax(z)
J = np.empty((6, 6))
softmax_jacobian(J, f)  # (J.1) J[i, j] = ∂_{z_i} softmax(z)_j
numeric = central_jacobian(softmax, z).T  # transpose: J.1 puts the derivative variable first
print("J.1 max |kernel − matrix form diag(f) − ffᵀ| =", max_diff(J, reference.softmax_jacobian(f)))
print("J.1 max |kernel − central differences|       =", max_diff(J, numeric))
assert max_diff(J, numeric) < 1e-8

fig, axes = plt.subplots(1, 2, figsize=(6, 3))
for ax, M, title in zip(axes, (J, numeric), ("J.1 kernel", "finite differences"), strict=True):
    ax.imshow(M, cmap="RdBu", vmin=-0.25, vmax=0.25)
    ax.set_title(title)
plt.show()

# %% [markdown]
# ## Q2 — the gradient at the output
#
# The loss, **(L.1)** $\ell = -\log f_Y = \log\sum_k e^{z^L_k} - z^L_Y$ (one kernel for both
# heads; shifted by $\max z$):

# %%
print(describe("L.1"))
show(cross_entropy)


def loss_of_logits(zL, label):
    out = np.empty(1)
    cross_entropy(out, np.ascontiguousarray(zL)[None, :], np.array([label]), len(zL))  # (L.1)
    return out[0]


# %% [markdown]
# **(B.1)** $\nabla_{z^L_\theta(X)}\ell_\theta(X, Y) = f_\theta(X) - \mathbb 1_Y$, i.e.
# $\delta^L_{s,i} = f_{s,i} - \mathbb 1_{Y_s = i}$. The notes state this as
# "$\nabla_{h^L}\ell$" and later start Q3's recursion with "$\ell_\theta(X, Y) - \mathbb 1_Y$";
# both are typos (06-errata). The cell compares the kernel with finite differences of
# ℓ with respect to $z^L$ — and shows that with respect to $h^L = f$ the gradient is
# $-\mathbb 1_Y / f$ instead.

# %%
print(describe("B.1"))
show(output_delta)
show(reference.output_delta)

# %%
label = 2
y = np.array([label])
zL = rng.normal(size=5)
fL = softmax(zL)[None, :]
delta_L = np.empty((1, 5))
output_delta(delta_L, fL, y)  # (B.1)
grad_z = central_jacobian(lambda v: loss_of_logits(v, label), zL)[0]
grad_h = central_jacobian(lambda h: -np.log(h[label]), fL[0])[0]
print(
    "B.1 max |kernel − matrix form F − 1_Y|        =",
    max_diff(delta_L, reference.output_delta(fL, y, 5)),
)
print("B.1 max |kernel − ∂ℓ/∂z^L (differences)|      =", max_diff(delta_L[0], grad_z))
print("    max |f − 1_Y − ∂ℓ/∂h^L (differences)|     =", max_diff(delta_L[0], grad_h), "(the typo)")
assert max_diff(delta_L[0], grad_z) < 1e-8 and max_diff(delta_L[0], grad_h) > 0.1

# %% [markdown]
# With MMiDS's modified softmax γ̃ (**F.4**: $K-1$ logits, the reference class $K$ has logit 0)
# the same kernel gives $\delta^L_i = \tilde\gamma(z)_i - \mathbb 1_{Y=i}$ for $i < K$:

# %%
print(describe("F.4"))
show(modified_softmax_forward)
g = np.empty((1, 6))
modified_softmax_forward(g, zL[None, :])  # (F.4) γ̃: 5 logits → 6 probabilities
print("F.4 max |γ̃(z) − softmax((z; 0))| =", max_diff(g[0], softmax(np.append(zL, 0.0))))
delta_tilde = np.empty((1, 5))
output_delta(delta_tilde, g, y)  # (B.1) for the γ̃ head: only the K − 1 logits get a δ
grad_tilde = central_jacobian(lambda v: loss_of_logits(np.append(v, 0.0), label), zL)[0]
print("B.1 (γ̃ head) max |kernel − differences| =", max_diff(delta_tilde[0], grad_tilde))
assert max_diff(delta_tilde[0], grad_tilde) < 1e-8

# %% [markdown]
# **(B.3)** $\nabla_{W^L}\ell = (f_\theta(X) - \mathbb 1_Y)(h^{L-1}_\theta(X))^\top$, and
# **(B.2)** $\nabla_{b^L}\ell = f_\theta(X) - \mathbb 1_Y$. numbamlp averages over the
# minibatch as it sums (**S.1**: $\frac1B\sum_s$), so the kernels are
# $\nabla W^m = \frac1B\sum_s \delta^m_s (h^{m-1}_s)^\top$ and $\nabla b^m = \frac1B\sum_s\delta^m_s$:

# %%
print(describe("B.3"))
show(weight_gradient)
show(reference.weight_gradient)
print(describe("B.2"))
show(bias_gradient)
print(describe("S.1"))

# %% [markdown]
# A network with two hidden layers (σ, tanh), a minibatch of B = 4, float64; its
# intermediate values from the NumPy forward pass:

# %%
model = MLP.create(6, [5, 4], 3, activations=["sigmoid", "tanh"], dtype="float64", rng=rng)
model.params.theta[:] = rng.normal(size=model.params.theta.size)
arch, W, b = model.architecture, model.params.W, model.params.b
X, Y = rng.normal(size=(4, 6)), rng.integers(0, 3, size=4)
Z, H, F = reference.forward(arch, W, b, X)
L = arch.L
_, grads = model.loss_and_gradient(X, Y)  # the kernels' δ recursion (passes.backward)
from numbamlp.model.gradcheck import numerical_gradient  # noqa: E402

numeric_W, numeric_b = arch.layer_views(numerical_gradient(model, X, Y))

delta = np.empty((4, 3))
output_delta(delta, F, Y)  # (B.1)
gW, gb = np.empty_like(W[L]), np.empty_like(b[L])
weight_gradient(gW, delta, H[L - 1], 1.0 / 4)  # (B.3) with (S.1)
bias_gradient(gb, delta, 1.0 / 4)  # (B.2) with (S.1)
print(
    "B.3 m = L: max |kernel − matrix form Δᵀ H / B| =",
    max_diff(gW, reference.weight_gradient(delta, H[L - 1])),
)
print("B.3 m = L: max |kernel − finite differences|   =", max_diff(gW, numeric_W[L]))
print(
    "B.2 m = L: max |kernel − matrix form mean Δ|   =", max_diff(gb, reference.bias_gradient(delta))
)
print("B.2 m = L: max |kernel − finite differences|   =", max_diff(gb, numeric_b[L]))
assert max_diff(gW, numeric_W[L]) < 1e-8 and max_diff(gb, numeric_b[L]) < 1e-8

# %% [markdown]
# ## Q3 — the δ recursion ([B.4](../docs/derivation.md#B.4))
#
# $$\nabla_{h^m}\ell = (W^{m+1})^\top\nabla_{z^{m+1}}\ell,\qquad
#   \nabla_{z^m}\ell = \nabla_{h^m}\ell\odot\varphi_m'(z^m),$$
# i.e. $\delta^m_{s,j} = \big(\sum_i W^{m+1}_{ij}\delta^{m+1}_{s,i}\big)\,\varphi'_m(z^m_{s,j})$;
# then $\nabla W^m = \delta^m (h^{m-1})^\top$ and $\nabla b^m = \delta^m$ (B.3, B.2 again).

# %%
print(describe("B.4"))
show(hidden_delta)
show(reference.hidden_delta)

# %%
codes = arch.activation_codes
deltas = {L: delta}
for m in range(L - 1, 0, -1):
    deltas[m] = np.empty((4, arch.sizes[m]))
    hidden_delta(deltas[m], W[m + 1], deltas[m + 1], Z[m], codes[m])  # (B.4)
    matrix_form = reference.hidden_delta(W[m + 1], deltas[m + 1], Z[m], arch.activations[m - 1])
    gW, gb = np.empty_like(W[m]), np.empty_like(b[m])
    weight_gradient(gW, deltas[m], H[m - 1], 1.0 / 4)  # (B.3)
    bias_gradient(gb, deltas[m], 1.0 / 4)  # (B.2)
    print(
        f"B.4 δ^{m}: max |kernel − matrix form (Δ^{m + 1} W^{m + 1}) ⊙ φ′(Z^{m})| = {max_diff(deltas[m], matrix_form):.1e}"
    )
    print(f"B.3 ∇W^{m}: max |kernel − finite differences| = {max_diff(gW, numeric_W[m]):.1e}")
    print(f"B.2 ∇b^{m}: max |kernel − finite differences| = {max_diff(gb, numeric_b[m]):.1e}")
    assert max_diff(gW, numeric_W[m]) < 1e-8 and max_diff(gb, numeric_b[m]) < 1e-8
print("model.loss_and_gradient (passes.backward) − the cells above:",
      max(max_diff(grads.W[m], numeric_W[m]) for m in range(1, L + 1)))  # fmt: skip

# %% [markdown]
# ## The whole gradient, for every activation and both heads
#
# `numbamlp.model.gradcheck.check_gradient` compares backprop with central differences over every
# parameter; relative errors around 1e-9 or below mean the formulas above are right.

# %%
rows = []
for activation in ["sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity"]:
    for head in ["softmax", "modified-softmax"]:
        net = MLP.create(5, [4, 3], 4, activations=activation, head=head, dtype="float64", rng=rng)
        net.params.theta[:] = rng.normal(size=net.params.theta.size)
        Xs, Ys = rng.normal(size=(3, 5)), rng.integers(0, 4, size=3)
        worst = max(c.relative_error for c in check_gradient(net, Xs, Ys))
        rows.append((activation, head, worst))
        assert worst < 1e-6, (activation, head, worst)
for activation, head, worst in rows:
    print(f"{activation:10s} {head:17s} worst relative error {worst:.1e}")

# %% [markdown]
# ## An extension: L2 weight decay ([R.1](../docs/derivation.md#R.1))
#
# Not in the notes: `numbamlp train --weight-decay λ` minimises FB §1 Q2's objective plus an
# L2 penalty on the weights (not the biases),
# $$\ell_\lambda(\theta) = \ell(\theta) + \frac\lambda2\sum_m\sum_{i,j}(W^m_{ij})^2,\qquad
#   \frac{\partial\ell_\lambda}{\partial W^m_{ij}} = \frac1B\sum_s\delta^m_{s,i}h^{m-1}_{s,j}
#   + \lambda W^m_{ij},\qquad \frac{\partial\ell_\lambda}{\partial b^m_i} =
#   \frac{\partial\ell}{\partial b^m_i}.$$
# The term $\lambda W^m$ is added to the gradient before the optimizer sees it (coupled decay,
# as PyTorch's `Adam(weight_decay=λ)`, not AdamW). Central differences of $\ell_\lambda$, the
# penalty included, check the kernels' gradient:

# %%
from numbamlp.kernels.backward import weight_decay_gradient  # noqa: E402

print(describe("R.1"))
show(weight_decay_gradient)
lam = 0.3
net = MLP.create(5, [4, 3], 4, activations="tanh", dtype="float64", rng=rng)
net.params.theta[:] = rng.normal(size=net.params.theta.size)
Xs, Ys = rng.normal(size=(6, 5)), rng.integers(0, 4, size=6)
checks = check_gradient(net, Xs, Ys, weight_decay=lam)  # (R.1) differences of ℓ_λ
for c in checks:
    print(f"R.1 {c.name}: relative error {c.relative_error:.1e}")
assert max(c.relative_error for c in checks) < 1e-6
_, plain = net.loss_and_gradient(Xs, Ys)
_, decayed = net.loss_and_gradient(Xs, Ys, weight_decay=lam)
for m in range(1, net.architecture.L + 1):
    assert max_diff(decayed.W[m] - plain.W[m], lam * net.params.W[m]) < 1e-12  # + λW^m
    assert np.array_equal(decayed.b[m], plain.b[m])  # biases: not decayed
print("∇W^m ℓ_λ − ∇W^m ℓ = λ W^m, and ∇b^m ℓ_λ = ∇b^m ℓ, for every layer m")
