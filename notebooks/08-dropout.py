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
# # 08 · Dropout, the same for every thread, process and device (D.1–D.3)
#
# Not in the notes: inverted dropout on the hidden layers (Srivastava et al. 2014). On each
# training step a hidden unit is kept with probability $1 - p_m$ and scaled by $1/(1 - p_m)$;
# evaluation and prediction use every unit. What numbamlp adds is where the masks come from:
# **(D.1)** $r^m_{s,j} = \mathbb 1[u(\text{seed}, p, i_s, m, j) \ge p_m]$, a *function* of the
# seed, the step $p$, the sample's row $i_s$ in the training set, the layer and the unit,
# computed inside the kernels by the counter-based generator Philox4x32-10. No generator state,
# nothing drawn in Python: whichever thread, MPI rank or GPU thread handles a sample computes
# its mask, and θ comes out bitwise the same. **(D.2)** $\tilde h^m_{s,j} = h^m_{s,j}
# r^m_{s,j}/(1 - p_m)$ is what the layer above reads; **(D.3)** $\delta^m_{s,j} = (\sum_i
# W^{m+1}_{ij}\delta^{m+1}_{s,i}) \cdot r^m_{s,j}/(1-p_m) \cdot \varphi_m'(z^m_{s,j})$ is B.4
# through it. The derivation: [docs/derivation.md#dropout](../docs/derivation.md#dropout).
#
# Then a measured result: a wide network (784-1024-10) overfits a small MNIST training set, and
# generalises better with dropout. `NUMBAMLP_NOTEBOOK_QUICK=1` (CI) makes that part small.

# %%
import inspect
import os

import matplotlib.pyplot as plt
import numba
import numpy as np

from numbamlp.datasets.loaders import load_mnist
from numbamlp.equations import describe
from numbamlp.kernels.dropout import (
    Dropout,
    dropout_backward,
    dropout_forward,
    dropout_forward_row,
    dropout_key,
    dropout_mask,
    dropout_scale,
    dropout_threshold,
)
from numbamlp.kernels.philox import philox4x32_10, philox4x32_10_cpu
from numbamlp.model.mlp import MLP
from numbamlp.training.trainer import TrainConfig, Trainer, generators

QUICK = os.environ.get("NUMBAMLP_NOTEBOOK_QUICK") == "1"
plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (7, 3)})


def show(function):
    print(inspect.getsource(getattr(function, "py_func", function)))


# %% [markdown]
# ## (D.1) The mask: Philox4x32-10 of five integers
#
# Philox is ten rounds of two 32 × 32 → 64-bit products and some XORs; the same Python source
# is compiled for the CPU and as a CUDA device function. First, the published known-answer
# vectors (Random123's `kat_vectors`):

# %%
print(describe("D.1"))
show(philox4x32_10)
kat = [
    ((0, 0, 0, 0, 0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 6, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344, 0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]  # fmt: skip
for inputs, expected in kat:
    out = philox4x32_10_cpu(*[np.uint64(v) for v in inputs])
    print([f"{int(w):08x}" for w in out])
    assert tuple(int(w) for w in out) == expected

# %% [markdown]
# The mask of a batch: counter $(p, i_s, m, \lfloor j/4 \rfloor)$, key (seed mod $2^{32}$,
# ⌊seed/$2^{32}$⌋), word $j \bmod 4$; $u = x/2^{32} \ge p_m$ compared as integers,
# $x \ge \lceil p_m 2^{32}\rceil$. **(D.1)** Its mean is $1 - p_m$ (within a binomial bound),
# and it is a pure function: the same integers give the same mask, in any batch order.


# %%
def mask(rate, rows, layer=1, step=1, seed=0, units=64):
    r = np.zeros((len(rows), units), np.uint8)
    dropout_mask(r, np.asarray(rows, np.int64), layer, step, dropout_key(seed),
                 dropout_threshold(rate))  # fmt: skip
    return r


rows = np.arange(4096)
for rate in (0.2, 0.5, 0.8):
    r = mask(rate, rows)
    bound = 5 * np.sqrt(rate * (1 - rate) / r.size)
    print(f"p = {rate}: mean of r = {r.mean():.4f}  (1 − p = {1 - rate}, 5σ = {bound:.4f})")
    assert abs(r.mean() - (1 - rate)) < bound  # (D.1)
shuffled = rows[::-7]
assert np.array_equal(mask(0.5, shuffled), mask(0.5, rows)[shuffled])  # (D.1) same sample, same r
assert not np.array_equal(mask(0.5, rows, step=2), mask(0.5, rows))  # another step p
assert not np.array_equal(mask(0.5, rows, layer=2), mask(0.5, rows))  # another layer m
plt.imshow(mask(0.5, rows[:48]), cmap="gray", aspect="auto")
plt.title("r^1 for 48 samples × 64 units (p = 0.5, step 1)")
plt.show()

# %% [markdown]
# ## (D.2) Inverted dropout, and (D.3) the δ recursion through it
#
# The kernel's row function, then the kernel against the NumPy form $h \odot r / (1-p)$. With
# the factor, $\mathbb E[\tilde h^m_{s,j}] = h^m_{s,j}$: averaged over many steps, the thinned
# activations are the activations, which is why prediction uses no mask.

# %%
print(describe("D.2"))
show(dropout_forward_row)
rng = np.random.default_rng(0)
h = rng.random((256, 64))
rate, step, layer = 0.3, 5, 1
r = mask(rate, rows[:256], layer, step)
h_tilde = h.copy()
dropout_forward(h_tilde, rows[:256], layer, step, dropout_key(0), dropout_threshold(rate),
                dropout_scale(rate, np.float64))  # fmt: skip
print("max |kernel − h ⊙ r/(1−p)| =", np.abs(h_tilde - h * r / (1 - rate)).max())
assert np.array_equal(h_tilde, h * r * (1.0 / (1 - rate)))  # (D.2)
mean = np.zeros_like(h)
steps = 400
for p in range(1, steps + 1):
    t = h.copy()
    dropout_forward(t, rows[:256], layer, p, dropout_key(0), dropout_threshold(rate),
                    dropout_scale(rate, np.float64))  # fmt: skip
    mean += t / steps
print(f"mean over {steps} steps of h̃ / h: {np.mean(mean / h):.4f}")
assert abs(np.mean(mean / h) - 1) < 0.01  # (D.2) E[h̃] = h

# %% [markdown]
# **(D.3)** With the five integers fixed, the mask is a constant and the thinned network an
# ordinary function of θ: the gradient of B.1–B.4 with D.3 must equal central differences of
# its loss, in float64, every component. (`dropout_backward` applies D.3's mask and factor
# after B.4's product, in the plain kernels; the fused engine and the CUDA kernels call the same
# row function.)

# %%
print(describe("D.3"))
show(dropout_backward)
X, y = rng.normal(size=(9, 5)), rng.integers(0, 3, 9)
model = MLP.create(5, [7, 6], 3, activations=["tanh", "relu"], dtype="float64",
                   rng=np.random.default_rng(2))  # fmt: skip
model.params.theta[:] += rng.normal(scale=0.1, size=model.params.theta.shape)
dropout = Dropout.create((0.4, 0.25), seed=11, L=3, dtype=np.float64)
_, grads = model.loss_and_gradient(X, y, dropout=dropout, step=17)
theta, eps = model.params.theta, 1e-6
numeric = np.empty_like(theta)
for k in range(theta.shape[0]):
    keep = theta[k]
    theta[k] = keep + eps
    up, _ = model.loss_and_gradient(X, y, dropout=dropout, step=17)
    theta[k] = keep - eps
    down, _ = model.loss_and_gradient(X, y, dropout=dropout, step=17)
    theta[k] = keep
    numeric[k] = (up - down) / (2 * eps)
print("max |D.3 gradient − central differences| =", np.abs(grads.theta - numeric).max())
assert np.abs(grads.theta - numeric).max() < 1e-8  # (D.3)

# %% [markdown]
# ## The same θ for any thread count and either CPU engine
#
# The fused engine (two parallel regions per step, blocks of samples) and the plain kernels
# (one call per equation) draw the same masks; the fused engine with 1 and with 2 threads gives
# θ bit for bit (1 vs 2 MPI ranks and the CUDA path are in the tests).

# %%
Xs = rng.normal(size=(600, 20))
ys = np.argmax(Xs @ rng.normal(size=(20, 4)), axis=1)


def small_run(engine, threads):
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    init_rng, train_rng = generators(seed=1)
    net = MLP.create(20, [16], 4, activations="relu", dtype="float64", rng=init_rng)
    config = TrainConfig(epochs=2, batch_size=64, lr=1e-2, engine=engine, dropout=(0.5,))
    trainer = Trainer(net, Xs, ys, config, train_rng)
    for _ in range(2):
        trainer.train_epoch()
    return net.params.theta.copy()


threads_before = numba.get_num_threads()
one, two, plain = small_run("fused", 1), small_run("fused", 2), small_run("kernels", 2)
numba.set_num_threads(threads_before)
print("fused, 1 vs 2 threads, bitwise:", one.tobytes() == two.tobytes())
print("fused vs plain kernels: max |Δθ| =", np.abs(one - plain).max())
assert one.tobytes() == two.tobytes()
assert np.abs(one - plain).max() < 1e-10

# %% [markdown]
# ## A wide network on a small MNIST training set
#
# 784-1024-10 (ReLU, Adam 1e-3, batch 128) on a few thousand training images: without dropout
# the training loss falls towards 0 while the test loss turns up — overfitting. With dropout
# 0.5 on the hidden layer the training loss stays higher and the test loss lower. Both losses
# are measured on the whole sets after each epoch, with every unit (no mask), and nothing
# below is asserted about them: it is a measurement.

# %%
data = load_mnist()
n_train = 600 if QUICK else 3000
epochs = 3 if QUICK else 40
hidden = 256 if QUICK else 1024
X_train, y_train = data.X_train_raw[:n_train], data.y_train[:n_train]
X_test, y_test, scale = data.X_test_raw, data.y_test, data.feature_scale
if QUICK:
    X_test, y_test = X_test[:2000], y_test[:2000]
curves = {}
for rate in (0.0, 0.5):
    init_rng, train_rng = generators(seed=0)
    net = MLP.create(784, [hidden], 10, activations="relu", rng=init_rng)
    config = TrainConfig(epochs=epochs, batch_size=128, optimizer="adam",
                         dropout=(rate,) if rate else ())  # fmt: skip
    trainer = Trainer(net, X_train, y_train, config, train_rng, scale=scale)
    history = []
    for _ in range(epochs):
        trainer.train_epoch()
        train_loss, _ = net.loss_and_accuracy(X_train, y_train, scale)
        test_loss, test_acc = net.loss_and_accuracy(X_test, y_test, scale)
        history.append((train_loss, test_loss, test_acc))
    curves[rate] = np.array(history)
    best = int(np.argmin(curves[rate][:, 1]))
    print(f"dropout {rate}: final train loss {history[-1][0]:.4f}, test loss {history[-1][1]:.4f}"
          f", test accuracy {history[-1][2]:.4f}; lowest test loss {curves[rate][best, 1]:.4f}"
          f" at epoch {best + 1}")  # fmt: skip

# %%
e = np.arange(1, epochs + 1)
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(12, 3.2))
for rate, colour in ((0.0, "C0"), (0.5, "C1")):
    c = curves[rate]
    ax1.plot(e, c[:, 0], color=colour, label=f"p = {rate}")
    ax2.plot(e, c[:, 1], color=colour, label=f"p = {rate}")
    ax3.plot(e, c[:, 2], color=colour, label=f"p = {rate}")
ax1.set(xlabel="epoch", ylabel="mean cross-entropy (L.1)", yscale="log",
        title=f"train loss, 784-{hidden}-10, {n_train} images")  # fmt: skip
ax2.set(xlabel="epoch", ylabel="mean cross-entropy (L.1)",
        title=f"test loss ({y_test.shape[0]} images)")  # fmt: skip
ax3.set(xlabel="epoch", ylabel="accuracy", title="test accuracy")
for ax in (ax1, ax2, ax3):
    ax.legend()
fig.tight_layout()
plt.show()
