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
# # 01 · Warm-up (FB §1): the 2-hidden-layer softmax model, θ, SGD, and the cost of a step
#
# *feedforward-and-backprop.md* §1, questions 1–3, next to the numbamlp code that implements
# each line. Every formula is followed by the library's own kernel (shown with
# `inspect.getsource`), the NumPy matrix form from `numbamlp.model.reference`, and the largest
# difference between the two. Equation tags (F.1, B.4, …) are those of `numbamlp/equations.py`.
#
# Set `NUMBAMLP_NOTEBOOK_QUICK=1` for a short run (a subset of MNIST, fewer timings).

# %%
import inspect
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from numbamlp.datasets.loaders import load_mnist
from numbamlp.equations import describe
from numbamlp.kernels.activations import CODES, phi, phi_prime
from numbamlp.kernels.forward import (
    activation_forward,
    affine_forward,
    batch_mean,
    cross_entropy,
    predict_classes,
    softmax_forward,
)
from numbamlp.kernels.optimizers import Optimizer
from numbamlp.kernels.sampling import Sampler, uniform_indices
from numbamlp.model import reference
from numbamlp.model.gradcheck import central_jacobian
from numbamlp.model.mlp import MLP
from numbamlp.training.schedules import Schedule
from numbamlp.training.trainer import TrainConfig, Trainer, generators

QUICK = os.environ.get("NUMBAMLP_NOTEBOOK_QUICK") == "1"
plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (7, 3)})
REPO = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()


def show(kernel):
    """The library's own source of a kernel (the Python function behind the njit dispatcher)."""
    print(inspect.getsource(getattr(kernel, "py_func", kernel)))


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


data = load_mnist()
print(data.name, data.X_train.shape, data.X_test.shape, "quick mode" if QUICK else "")

# %% [markdown]
# ## Q1 — the model, layer by layer
#
# $$h^0_\theta(X_i) = X_i,\quad z^k_\theta(X_i) = b^k + W^k h^{k-1}_\theta(X_i),\quad
#   h^k_\theta(X_i) = \varphi_k(z^k_\theta(X_i)),\ k = 1, 2,$$
# $$h^3_\theta(X_i) = \{\mathbb P_\theta(Y_i = k \mid X_i)\}_{1\le k\le M}
#   = \mathrm{Softmax}(z^3_\theta(X_i)),$$
# with $b^k \in \mathbb R^{d_k}$ and $W^k \in \mathbb R^{d_k\times d_{k-1}}$ (the notes write
# "$b^1 \in \mathbb R^{d_2}$, $W^1$" for layers 2 and 3: a typo, see 06-errata).
#
# Here $d = 784$ (MNIST pixels), $d_1 = 32$ with $\varphi_1 = \sigma$, $d_2 = 16$ with
# $\varphi_2 = \tanh$, $M = 10$, in float64 so the comparisons are exact to rounding.

# %%
init_rng, train_rng = generators(seed=0)
model = MLP.create(
    784, [32, 16], 10, activations=["sigmoid", "tanh"], dtype="float64", rng=init_rng
)
W, b = model.params.W, model.params.b
print(model)
for k in (1, 2, 3):
    print(f"W^{k}: {W[k].shape}   b^{k}: {b[k].shape}")

X = data.X_train[:8].astype(np.float64)  # h^0 = X_i for 8 samples i (rows s of a minibatch)
Y = data.y_train[:8]

# %% [markdown]
# **(F.1)** the affine map, $z^k_{s,i} = b^k_i + \sum_j W^k_{ij} h^{k-1}_{s,j}$ — the kernel,
# then the matrix form $Z^k = H^{k-1} (W^k)^\top + b^k$:

# %%
print(describe("F.1"))
show(affine_forward)
show(reference.affine)

# %%
# (F.1) check: kernel against the NumPy matrix form, layer 1
z1 = np.empty((8, 32))
affine_forward(z1, W[1], b[1], X)
print("F.1 max |kernel − matrix form| =", max_diff(z1, reference.affine(W[1], b[1], X)))
assert max_diff(z1, reference.affine(W[1], b[1], X)) < 1e-12

# %% [markdown]
# **(F.2)** the activation, $h^k_{s,i} = \varphi_k(z^k_{s,i})$, elementwise; $\varphi$ is
# selected by an integer code so compiled kernels stay cached:

# %%
print(describe("F.2"))
show(activation_forward)
h1 = np.empty_like(z1)
activation_forward(h1, z1, CODES["sigmoid"])
print("F.2 max |kernel − σ(Z¹)| =", max_diff(h1, reference.PHI["sigmoid"](z1)))
assert max_diff(h1, reference.PHI["sigmoid"](z1)) < 1e-15

z2, h2 = np.empty((8, 16)), np.empty((8, 16))
affine_forward(z2, W[2], b[2], h1)  # (F.1), layer 2
activation_forward(h2, z2, CODES["tanh"])  # (F.2), φ_2 = tanh
z3 = np.empty((8, 10))
affine_forward(z3, W[3], b[3], h2)  # (F.1), layer 3

# %% [markdown]
# **(F.3)** the output layer, $h^3 = \mathrm{Softmax}(z^3)$:
# $f_{s,i} = e^{z^3_{s,i}} / \sum_j e^{z^3_{s,j}}$ (computed shifted by $\max z$):

# %%
print(describe("F.3"))
show(softmax_forward)
h3 = np.empty_like(z3)
softmax_forward(h3, z3)
print("F.3 max |kernel − matrix form| =", max_diff(h3, reference.softmax(z3)))
print("rows sum to 1:", max_diff(h3.sum(axis=1), 1.0))
print("same as model.predict_proba:", max_diff(h3, model.predict_proba(X)))
assert max_diff(h3, model.predict_proba(X)) < 1e-12

# %% [markdown]
# **(P.1)** the predicted class is the most probable one (Flux's `onecold`):

# %%
classes = np.empty(8, dtype=np.int64)
predict_classes(classes, h3)
print(describe("P.1"))
print("P.1 kernel:", classes, " argmax:", h3.argmax(axis=1), " labels:", Y)
assert (classes == h3.argmax(axis=1)).all()

# %% [markdown]
# ### φ may be any activation (A.1–A.6)
#
# numbamlp ships six; each φ′ is checked here against central differences of φ
# (the scalar functions the kernels inline):

# %%
t = np.linspace(-4, 4, 41) + 0.013  # avoid relu's kink at 0
for tag, name in [("A.1", "sigmoid"), ("A.2", "tanh"), ("A.3", "relu"),
                  ("A.4", "leaky_relu"), ("A.5", "softplus"), ("A.6", "identity")]:  # fmt: skip
    code = CODES[name]
    analytic = np.array([phi_prime(code, v) for v in t])
    numeric = np.array([central_jacobian(lambda u, c=code: phi(c, u[0]), [v])[0, 0] for v in t])
    print(f"({tag}) {name:10s} max |φ′ − central difference| = {max_diff(analytic, numeric):.1e}")
    assert max_diff(analytic, numeric) < 1e-7

# %% [markdown]
# ## Q2 — what θ is, and how SGD estimates it
#
# $\theta = (b^1, W^1, b^2, W^2, b^3, W^3)$. numbamlp stores θ as **one flat vector** in
# this order; `W[k]`, `b[k]` are views into it (so an optimizer updates θ in one loop). Its
# length is $\sum_k d_k (d_{k-1} + 1)$:

# %%
arch = model.architecture
theta = model.params.theta
print("len(θ) =", theta.size, "= Σ d_k (d_{k−1}+1) =",
      sum(arch.sizes[k] * (arch.sizes[k - 1] + 1) for k in (1, 2, 3)))  # fmt: skip
print("W^1 is a view into θ:", np.shares_memory(W[1], theta))

# %% [markdown]
# **(N.1)** θ_0 is random: Glorot-uniform weights $W^k_{ij} \sim U(-a, a)$,
# $a = \sqrt{6/(d_k + d_{k-1})}$, and zero biases (Flux's `Dense` default):

# %%
print(describe("N.1"))
for k in (1, 2, 3):
    a = np.sqrt(6 / (arch.sizes[k] + arch.sizes[k - 1]))
    print(
        f"(N.1) layer {k}: max |W| = {np.abs(W[k]).max():.4f} ≤ a = {a:.4f};  b = 0: {not b[k].any()}"
    )
    assert np.abs(W[k]).max() <= a and not b[k].any()

# %% [markdown]
# The loss is the mean negative log-likelihood over a minibatch:
# **(L.1)** $\ell_s = -\sum_k \mathbb 1_{Y_s = k}\log f_{s,k} = \log\sum_k e^{z_{s,k}} - z_{s,Y_s}$,
# **(S.1)** $\ell = \frac1B\sum_s \ell_s$.

# %%
show(cross_entropy)
losses = np.empty(8)
cross_entropy(losses, z3, Y, 10)
print("L.1 max |kernel − (−log f_Y)| =", max_diff(losses, -np.log(h3[np.arange(8), Y])))
print("S.1 batch_mean − np.mean =", max_diff(batch_mean(losses), losses.mean()))
assert max_diff(losses, -np.log(h3[np.arange(8), Y])) < 1e-12

# %% [markdown]
# **SGD with i.i.d. minibatch indices.** At step $p$,
# $\theta_p = \theta_{p-1} - \gamma_p \nabla_\theta\big(-\frac1B\sum_{i=1}^B \log
# \mathbb P_\theta(Y_{I^p_i}\mid X_{I^p_i})\big)$ with $(I^p_i)$ i.i.d. uniform on
# $\{1,\dots,n\}$. **(I.1)** draws them as $\lfloor u\,n \rfloor$, $u \sim U[0,1)$:

# %%
show(uniform_indices)
sampler = Sampler("iid", 10, 5, np.random.default_rng(1))
draws = np.concatenate([sampler.epoch()[0].copy() for _ in range(2000)])
freq = np.bincount(draws, minlength=10) / draws.size
print("(I.1) frequencies of each index over 2000 steps of B = 5:", np.round(freq, 3))
assert np.abs(freq - 0.1).max() < 0.02
perm = np.concatenate(Sampler("shuffle", 10, 4, np.random.default_rng(1)).epoch())
print(
    "(I.2) shuffled epoch, blocks of B = 4:",
    perm,
    "— a permutation:",
    sorted(perm) == list(range(10)),
)
assert sorted(perm) == list(range(10))

# %% [markdown]
# **(U.1)** the SGD update, one kernel, checked against $\theta - \gamma g$; the notes also name
# the improvements numbamlp implements (U.2 momentum, U.3 Adagrad, U.4 Adadelta, U.5 RMSprop,
# U.6 Adam): one step of each, against its formula written in NumPy.

# %%
rng = np.random.default_rng(3)
theta0, g = rng.normal(size=50), rng.normal(size=50)
lr = 0.1


def one_step(name, **hyper):
    opt = Optimizer.create(name, 50, np.dtype(np.float64), lr=lr, **hyper)
    th = theta0.copy()
    opt.step(th, g, lr)
    return th, opt.hyper


eps = 1e-8
expected = {
    ("U.1", "sgd"): lambda h: theta0 - lr * g,
    ("U.2", "momentum"): lambda h: theta0 - lr * g,  # v_1 = g
    ("U.3", "adagrad"): lambda h: theta0 - lr * g / (np.abs(g) + h["eps"]),
    ("U.4", "adadelta"): lambda h: theta0 - lr * np.sqrt(h["eps"]) / np.sqrt((1 - h["rho"]) * g**2 + h["eps"]) * g,
    ("U.5", "rmsprop"): lambda h: theta0 - lr * g / (np.sqrt((1 - h["rho"]) * g**2) + h["eps"]),
    ("U.6", "adam"): lambda h: theta0 - lr * g / (np.abs(g) + h["eps"]),  # m̂ = g, v̂ = g² at p = 1
}  # fmt: skip
for (tag, name), formula in expected.items():
    th, hyper = one_step(name)
    print(f"({tag}) {name:9s} max |kernel − formula| = {max_diff(th, formula(hyper)):.1e}")
    assert max_diff(th, formula(hyper)) < 1e-12

# %% [markdown]
# Step sizes $(\gamma_p)$: **G.1** constant, **G.2** step decay, **G.3** inverse time,
# **G.4** cosine — each against its formula:

# %%
p = np.arange(1, 201)
g0, r, P, T = 0.1, 0.5, 50, 200
formulas = {
    ("G.1", "constant"): g0 + 0 * p,
    ("G.2", "step"): g0 * r ** ((p - 1) // P),
    ("G.3", "inverse-time"): g0 / (1 + (p - 1) / P),
    ("G.4", "cosine"): 0.5 * g0 * (1 + np.cos(np.pi * (p - 1) / T)),
}
fig, ax = plt.subplots()
for (tag, kind), formula in formulas.items():
    sched = Schedule(kind, g0, decay_rate=r, decay_steps=P, total_steps=T)
    values = np.array([sched(int(q)) for q in p])
    print(f"({tag}) {kind:12s} max |schedule − formula| = {max_diff(values, formula):.1e}")
    assert max_diff(values, formula) < 1e-15
    ax.plot(p, values, label=f"{tag} {kind}")
ax.set(xlabel="step p", ylabel="γ_p")
ax.legend()
plt.show()

# %% [markdown]
# Plain SGD with the notes' i.i.d. indices (`sampling="iid"`), a few epochs on MNIST:

# %%
n_train = 6000 if QUICK else 60000
epochs = 2 if QUICK else 5
sgd_model = MLP.create(784, [32, 16], 10, activations=["sigmoid", "tanh"], rng=init_rng)
config = TrainConfig(epochs=epochs, batch_size=64, optimizer="sgd", lr=0.5, sampling="iid")
trainer = Trainer(sgd_model, data.X_train_raw[:n_train], data.y_train[:n_train], config, train_rng,
                  scale=data.feature_scale)  # fmt: skip
history = []
for _ in range(epochs):
    metrics = trainer.train_epoch()
    acc = sgd_model.accuracy(data.X_test_raw, data.y_test, data.feature_scale)
    history.append((metrics.train_loss, acc))
    print(
        f"epoch {metrics.epoch}: mean minibatch loss {metrics.train_loss:.4f}, test accuracy {acc:.4f}"
    )
assert history[-1][0] < history[0][0]

# %% [markdown]
# ## Q3 — the cost of one iteration: ∝ B, independent of n
#
# One step touches B samples, never all n. The measurement is the benchmark suite's own
# (`benchmarks/test_scaling.py::seconds_per_step`, the reference model 784-32-10, Adam,
# numbamlp's default engine, 2 threads): the median wall time per step for several B at
# n = 60000, and for several n at B = 128. On a shared machine these timings are noisy;
# `docs/performance.md` has the quiet-machine figures.

# %%
sys.path.insert(0, str(REPO / "benchmarks"))
from conftest import rng_subset  # noqa: E402
from test_scaling import seconds_per_step  # noqa: E402

steps, rounds = (5, 3) if QUICK else (100, 7)
batches = [16, 64, 256] if QUICK else [16, 32, 64, 128, 256, 512]
ns = [600, 6000] if QUICK else [600, 6000, 60000]
X_all, y_all = rng_subset(data.X_train, data.y_train, 6000 if QUICK else 60000)
per_B = [seconds_per_step(X_all, y_all, B, steps, rounds) for B in batches]
per_n = [
    seconds_per_step(*rng_subset(data.X_train, data.y_train, n), 128, steps, rounds) for n in ns
]
for B, s in zip(batches, per_B, strict=True):
    print(f"B = {B:4d}: {s * 1e6:8.1f} µs per step, {s / B * 1e6:6.2f} µs per sample")
for n, s in zip(ns, per_n, strict=True):
    print(f"n = {n:6d}: {s * 1e6:8.1f} µs per step (B = 128)")

# %% [markdown]
# The plot also shows the benchmark suite's recorded run (`benchmarks/results/*.json`, the same
# measurement under pytest-benchmark on a quiet machine): the live points above move with the
# load of the machine this notebook last ran on, the recorded ones do not.

# %%
sys.path.insert(0, str(REPO / "benchmarks"))
from report import newest_full_run  # noqa: E402

results, run = newest_full_run(REPO / "benchmarks")
recorded = run["benchmarks"]


def recorded_points(prefix, key):
    return sorted(
        (b["extra_info"][key], b["extra_info"]["seconds_per_step"])
        for b in recorded
        if b["name"].startswith(prefix)
    )


rec_B = recorded_points("test_cost_per_step_vs_batch[", "batch")
rec_n = recorded_points("test_cost_per_step_vs_n[", "n")
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
ax1.loglog(batches, per_B, "o-", label="live")
ax1.loglog(*zip(*rec_B, strict=True), "s-", label=f"recorded ({results.stem})")
ax1.loglog(batches, rec_B[-1][1] * np.array(batches) / rec_B[-1][0], "k--", lw=1, label="∝ B")
ax1.set(xlabel="batch size B", ylabel="seconds per step", title="cost vs B (n = 60000)")
ax1.set_xticks(batches, [str(B) for B in batches])
ax1.minorticks_off()
ax1.legend(fontsize=8)
ax2.semilogx(ns, per_n, "o-", label="live")
ax2.semilogx(*zip(*rec_n, strict=True), "s-", label="recorded")
ax2.set_xticks([n for n, _ in rec_n], [str(n) for n, _ in rec_n])
ax2.minorticks_off()
ax2.set(xlabel="training-set size n", ylabel="seconds per step", title="cost vs n (B = 128)",
        ylim=(0, 1.5 * max(per_n + [t for _, t in rec_n])))  # fmt: skip
ax2.legend(fontsize=8)
fig.tight_layout()
plt.show()
