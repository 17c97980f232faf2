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
# # 03 · The Jacobian view (MMiDS §7.2)
#
# MMiDS computes the same gradient as FB §2 with explicit Jacobians: layer $i$ is
# $g_i(\mathbf w_i; \mathbf z_i) = \sigma_\odot(\mathcal W_i \mathbf z_i^{;1})$, where
# $\mathbf z_i^{;1} = (\mathbf z_i; 1)$, so the **bias is the last column** of $\mathcal W_i$,
# and $\mathbf w_i$ stacks the rows of $\mathcal W_i$. The forward loop keeps
# $(A_i\ B_i) = J_{g_i}(\mathbf w_i; \mathbf z_i)$; the backward loop multiplies vectors by their
# transposes. Everything here is `course.jacobian` (tags M.1–M.9 and J.2); this notebook
# only calls it and checks it. The derivation of each step, and how MMiDS's names map to FB's,
# is in [docs/derivation.md](../docs/derivation.md#the-jacobian-view-of-mmids-72), one anchor per
# tag (e.g. [M.8](../docs/derivation.md#M.8)).

# %%
import inspect
import sys

import matplotlib.pyplot as plt
import numpy as np

sys.path.insert(0, "..")  # course/, beside the package in the repository (it is not installed)
from course import jacobian as jac  # noqa: E402
from numbamlp.equations import describe
from numbamlp.kernels.activations import SIGMOID
from numbamlp.kernels.backward import weight_gradient
from numbamlp.model.gradcheck import central_jacobian
from numbamlp.model.mlp import MLP

plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (7, 3)})


def show(fn):
    print(inspect.getsource(getattr(fn, "py_func", fn)))


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


rng = np.random.default_rng(0)

# %% [markdown]
# ## The parameter layout (M.1)
#
# $\mathcal W_i = [W^i \mid b^i] \in \mathbb R^{n_{i+1}\times(n_i+1)}$ and
# $\mathbf w_i = (\mathbf w_i^{(1)}; \dots; \mathbf w_i^{(n_{i+1})})$ with
# $\mathbf w_i^{(k)}$ the $k$-th row. MMiDS's layer $i$ is FB's layer $k = i$; MMiDS's widths
# $n_1, \dots, n_{L+1}$ are FB's $d_0, \dots, d_L$. `to_mmids` / `from_mmids` convert a numbamlp
# network (θ = (b¹, W¹, …)) both ways:

# %%
print(describe("M.1"))
show(jac.to_mmids)
model = MLP.create(4, [3], 5, head="modified-softmax", dtype="float64", rng=rng)
model.params.theta[:] = rng.normal(size=model.params.theta.size)
net = jac.to_mmids(model.params)
print("𝒲_1 =\n", np.round(net.weights[1], 3))
print("W^1 =\n", np.round(model.params.W[1], 3), "\nb^1 =", np.round(model.params.b[1], 3))
print("w_1^{(1)} = first n_1 + 1 entries of w:", np.round(net.flat()[:5], 3))
print("(M.1) round trip max difference:", max_diff(jac.from_mmids(net).theta, model.params.theta))
assert max_diff(jac.from_mmids(net).theta, model.params.theta) == 0

# %% [markdown]
# ## One layer and its two Jacobians (M.2, M.3, M.4)
#
# **(M.2)** $\mathbf z_{i+1} = \big[\sigma\big(\sum_{j=1}^{n_i} w^{(k)}_{i,j} z_{i,j} +
# w^{(k)}_{i,n_i+1}\big)\big]_{k=1}^{n_{i+1}} = \sigma_\odot(\mathcal W_i\mathbf z_i^{;1})$:

# %%
print(describe("M.2"))
show(jac.layer_forward)
n_in, n_out = 4, 3
Wc, z = rng.normal(size=(n_out, n_in + 1)), rng.normal(size=n_in)
z_next, t = np.empty(n_out), np.empty(n_out)
jac.layer_forward(z_next, t, Wc, z, SIGMOID)
print("M.2 max |kernel − σ(𝒲 (z; 1))| =", max_diff(z_next, 1 / (1 + np.exp(-Wc @ np.append(z, 1)))))
assert max_diff(z_next, 1 / (1 + np.exp(-Wc @ np.append(z, 1)))) < 1e-15

# %% [markdown]
# **(M.3)** $A_i = \widetilde{\mathbb A}_{n_i,n_{i+1}}[\mathbf w_i;\mathbf z_i] =
# \big(\sigma'((\mathbf w_i^{(1)})^\top\mathbf z_i^{;1})\,\mathbf e_1(\mathbf z_i^{;1})^\top\
# \cdots\ \sigma'((\mathbf w_i^{(n_{i+1})})^\top\mathbf z_i^{;1})\,\mathbf e_{n_{i+1}}
# (\mathbf z_i^{;1})^\top\big)$, shape $n_{i+1}\times n_{i+1}(n_i+1)$, and
# **(M.4)** $B_i = \widetilde{\mathbb B}_{n_i,n_{i+1}}[\mathbf w_i;\mathbf z_i]$, row $k$ equal to
# $\sigma'((\mathbf w_i^{(k)})^\top\mathbf z_i^{;1})\,((\mathbf w_i^{(k)})^{:n_i})^\top$.

# %%
print(describe("M.3"))
show(jac.weight_jacobian)
print(describe("M.4"))
show(jac.input_jacobian)

# %%
A, Bm = np.empty((n_out, n_out * (n_in + 1))), np.empty((n_out, n_in))
jac.weight_jacobian(A, t, z, SIGMOID)  # (M.3)
jac.input_jacobian(Bm, t, Wc, SIGMOID)  # (M.4)


def g_of_w(w):
    out, tt = np.empty(n_out), np.empty(n_out)
    jac.layer_forward(out, tt, w.reshape(n_out, n_in + 1), z, SIGMOID)
    return out


def g_of_z(v):
    out, tt = np.empty(n_out), np.empty(n_out)
    jac.layer_forward(out, tt, Wc, v, SIGMOID)
    return out


print(
    "M.3 max |A_i − finite differences in w_i| =",
    max_diff(A, central_jacobian(g_of_w, Wc.reshape(-1))),
)
print("M.4 max |B_i − finite differences in z_i| =", max_diff(Bm, central_jacobian(g_of_z, z)))
assert max_diff(A, central_jacobian(g_of_w, Wc.reshape(-1))) < 1e-8
assert max_diff(Bm, central_jacobian(g_of_z, z)) < 1e-8

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 2.2), gridspec_kw={"width_ratios": [15, 4]})
ax1.imshow(A != 0, cmap="Greys")
ax1.set_title(f"A_i: {A.size} entries, {np.count_nonzero(A)} nonzero")
ax2.imshow(Bm != 0, cmap="Greys")
ax2.set_title("B_i")
plt.show()

# %% [markdown]
# ## The output layer: γ̃ and 𝕮_K (F.4, J.2), the loss (M.5) and q_{L+2} (M.6)
#
# $\mathbf z_{L+2} = \tilde\gamma(\mathbf z_{L+1})$ turns $K-1$ logits into $K$ probabilities
# (numbamlp's kernel F.4); its Jacobian is
# $\mathbb C_K[\mathbf z]_{i,j} = \tilde\gamma(\mathbf z)_i(\mathbb 1_{i=j} - \tilde\gamma(\mathbf z)_j)$,
# $K\times(K-1)$. Then $z_{L+3} = \ell_{\mathbf y}(\mathbf z_{L+2}) = -\sum_i y_i\log z_{L+2,i}$
# and $\mathbf q_{L+2} = [-y_i/z_{L+2,i}]_{i=1}^K$.

# %%
print(describe("F.4"))
print(describe("J.2"))
show(jac.modified_softmax_jacobian)
K = 5
zK = rng.normal(size=K - 1)
gam, C = jac.head_jacobian("modified-softmax", zK)  # (F.4) and (J.2)
print("γ̃(z) =", np.round(gam, 4), " sums to", gam.sum())
print(
    "J.2 max |𝕮_K − finite differences of γ̃| =",
    max_diff(C, central_jacobian(jac.modified_softmax, zK)),
)
assert max_diff(C, central_jacobian(jac.modified_softmax, zK)) < 1e-8

# %%
print(describe("M.5"))
show(jac.output_loss)
print(describe("M.6"))
show(jac.output_loss_gradient)
y = jac.onehot_vector(1, K)
q = np.empty(K)
jac.output_loss_gradient(q, gam, y)  # (M.6)
numeric_q = central_jacobian(lambda v: jac.output_loss(v, y), gam)[0]  # (M.5) differentiated
print("M.6 max |q_{L+2} − finite differences of M.5| =", max_diff(q, numeric_q))
assert max_diff(q, numeric_q) < 1e-7

# %% [markdown]
# ## The two loops (M.7, M.8, M.9)
#
# Forward: $\mathbf z_1 := \mathbf x$; for $i = 1..L$, $\mathbf z_{i+1} := g_i(\mathbf w_i;
# \mathbf z_i)$ and $(A_i\ B_i) := J_{g_i}(\mathbf w_i;\mathbf z_i)$; then $\mathbf z_{L+2}$,
# $B_{L+1} = \mathbb C_K[\mathbf z_{L+1}]$, $z_{L+3}$, $\mathbf q_{L+2}$.
# Backward: $\mathbf q_{L+1} := B_{L+1}^\top\mathbf q_{L+2}$ and for $i = L..1$,
# **(M.8)** $\mathbf p_i := A_i^\top\mathbf q_{i+1}$, **(M.7)** $\mathbf q_i := B_i^\top\mathbf q_{i+1}$;
# **(M.9)** $\nabla f_{\mathbf x,\mathbf y}(\mathbf w) = (\mathbf p_1;\dots;\mathbf p_L)$ in the
# order of $\mathbf w$ (the notes print $(\mathbf p_L;\dots;\mathbf p_1)$, the order the loop
# produces them; 06-errata shows why the blocks must follow $\mathbf w$).

# %%
show(jac.forward_loop)
show(jac.backward_loop)
print(describe("M.7"))
show(jac.input_vjp)
print(describe("M.8"))
show(jac.weight_vjp)
print(describe("M.9"))
show(jac.gradient_vector)

# %% [markdown]
# MMiDS's own network (σ on every layer, including layer L, then γ̃), widths
# $n = (6, 5, 4, K-1 = 3)$; the whole gradient against central differences of $f_{\mathbf x,\mathbf y}$:

# %%
mnet = jac.MmidsNetwork.sigmoid((6, 5, 4, 3), rng, scale=2.0)
x, label = rng.normal(size=6), 2
value, grad = jac.loss_and_gradient(mnet, x, label)  # (M.2)–(M.9)
numeric = central_jacobian(lambda w: jac.loss_only(mnet.with_flat(w), x, label), mnet.flat())[0]
print(f"f_x,y(w) = {value:.6f};  M.9 max |∇f − finite differences| = {max_diff(grad, numeric):.1e}")
assert max_diff(grad, numeric) < 1e-7

# %% [markdown]
# ## The same gradient as the δ recursion
#
# A numbamlp network (hidden σ and tanh layers, an affine last layer as in the §7.3 Flux code,
# the γ̃ head) converted to MMiDS's layout: the Jacobian loops, averaged over the minibatch
# (S.1), give the loss and gradient that numbamlp's δ recursion (B.1–B.4) gives.

# %%
model = MLP.create(8, [6, 5], 4, activations=["sigmoid", "tanh"], head="modified-softmax",
                   dtype="float64", rng=rng)  # fmt: skip
model.params.theta[:] = rng.normal(size=model.params.theta.size)
X, Y = rng.normal(size=(10, 8)), rng.integers(0, 4, size=10)
loss_delta, grads = model.loss_and_gradient(X, Y)  # δ recursion
net = jac.to_mmids(model.params)
loss_jac, grad_w = jac.mean_loss_and_gradient(net, X, Y)  # Jacobian view
grad_jac = jac.from_mmids(net.with_flat(grad_w)).theta  # back to θ's layout (M.1)
print(f"loss: δ recursion {loss_delta:.12f}, Jacobian view {loss_jac:.12f}")
print("max |∇θ (Jacobian view) − ∇θ (δ recursion)| =", max_diff(grad_jac, grads.theta))
assert max_diff(grad_jac, grads.theta) < 1e-12

# %% [markdown]
# ## Why the δ form is the cheap one
#
# $A_i$ has $n_{i+1}\cdot n_{i+1}(n_i+1)$ entries, but row $k$ is zero outside block $k$: only
# $r_i = n_{i+1}(n_i+1)$ are nonzero. So $\mathbf p_i = A_i^\top\mathbf q_{i+1}$ is just
# $\big(\sigma'_\odot(\mathcal W_i\mathbf z_i^{;1})\odot\mathbf q_{i+1}\big)(\mathbf z_i^{;1})^\top$
# stacked by rows — FB's $\delta^i (h^{i-1})^\top$ (B.3) with
# $\delta^i = \sigma'\odot\mathbf q_{i+1}$ — and $B_i^\top\mathbf q_{i+1} = (W^i)^\top\delta^i$ is
# the sum in B.4. The δ recursion computes exactly these products and never forms a Jacobian.
# Below: $\mathbf p_1$ of a single sample against numbamlp's B.3 kernel on a batch of one.

# %%
rec = jac.forward_loop(net, X[0], jac.onehot_vector(int(Y[0]), 4))
back = jac.backward_loop(net, rec, jac.onehot_vector(int(Y[0]), 4))
# δ^1 = φ′_1(z^1) ⊙ q_2 where q_2 = ∂f/∂z_2 (z_2 = h^1 here, so φ′_1 = σ′ = h(1 − h)):
delta_1 = (back.q[2] * rec.z[2] * (1 - rec.z[2]))[None, :]
gW = np.empty((6, 8))
weight_gradient(gW, delta_1, X[:1], 1.0)  # (B.3) for one sample
p1_as_matrix = back.p[1].reshape(6, 9)  # rows w_1^{(k)}: 8 weights, then the bias
print("max |p_1 (weights part) − B.3 kernel δ¹ xᵀ| =", max_diff(p1_as_matrix[:, :8], gW))
print("max |p_1 (bias column) − δ¹|               =", max_diff(p1_as_matrix[:, 8], delta_1[0]))
assert max_diff(p1_as_matrix[:, :8], gW) < 1e-12

# %% [markdown]
# Exact counts per sample for the MNIST networks (`jacobian.backward_cost`): entries stored
# and multiply-adds of the backward pass, Jacobian view vs δ recursion.

# %%
configs = {"784-32-10 (§7.3)": (784, 32, 10), "784-128-64-10": (784, 128, 64, 10),
           "784-512-10": (784, 512, 10)}  # fmt: skip
for name, sizes in configs.items():
    c = jac.backward_cost(sizes, head="softmax")
    print(f"{name:18s} Jacobian view: {c.jacobian_entries:>12,} entries {c.jacobian_flops:>12,} "
          f"mult-adds | δ form: {c.delta_entries:>5,} entries {c.delta_flops:>9,} mult-adds "
          f"| ×{c.jacobian_flops / c.delta_flops:.0f} the work")  # fmt: skip
fig, ax = plt.subplots(figsize=(7, 2.8))
names = list(configs)
costs = [jac.backward_cost(s, head="softmax") for s in configs.values()]
xs = np.arange(len(names))
ax.bar(xs - 0.2, [c.jacobian_flops for c in costs], 0.4, label="Jacobian view (A_iᵀq, B_iᵀq)")
ax.bar(xs + 0.2, [c.delta_flops for c in costs], 0.4, label="δ recursion (B.3, B.4)")
ax.set(xticks=xs, xticklabels=names, yscale="log", ylabel="multiply-adds per sample")
ax.legend()
plt.show()
