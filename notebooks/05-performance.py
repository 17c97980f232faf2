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
# # 05 · Performance: numbamlp against NumPy (and PyTorch, JAX when installed)
#
# All numbers here come from the benchmark code in `benchmarks/` (the trainers in
# `benchmarks/baselines/`, built by `benchmarks/conftest.py::make_trainer`), never from a
# re-implementation. Two views:
#
# 1. the benchmark suite's recorded run (`benchmarks/results/*.json`, measured with
#    pytest-benchmark on a quiet machine, every implementation in the same run);
# 2. a live run of the same measurement (`benchmarks/test_epoch.py::seconds_per_epoch`) in this
#    kernel — noisier, and small in quick mode.
#
# Speed is reported as ratios to numbamlp measured in the same run; > 1 means numbamlp is faster.

# %%
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from numbamlp.datasets.loaders import load_mnist

QUICK = os.environ.get("NUMBAMLP_NOTEBOOK_QUICK") == "1"
plt.rcParams.update({"figure.dpi": 72, "figure.figsize": (7, 3)})
REPO = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
sys.path.insert(0, str(REPO / "benchmarks"))
from conftest import have, rng_subset  # noqa: E402
from report import newest_full_run  # noqa: E402
from test_epoch import IMPLEMENTATIONS, seconds_per_epoch  # noqa: E402

# %% [markdown]
# ## 1. The recorded benchmark run
#
# Group "epoch: reference workload" (MNIST 60k, 784-32-10, Adam, batch 128, float32, 2 threads):
# the median seconds per epoch of each implementation.

# %%
results, runs = newest_full_run(REPO / "benchmarks")
machine = runs["machine_info"]
cpu = machine.get("cpu", {}).get("brand_raw", "?")
print(f"{results.name}: {cpu}, Python {machine.get('python_version')}")
recorded = {
    b["param"]: b["stats"]["median"]
    for b in runs["benchmarks"]
    if b["name"].startswith("test_reference_epoch[")
}
base = recorded["numbamlp"]
for kind, seconds in recorded.items():
    print(f"{kind:17s} {seconds:7.3f} s/epoch   ×{seconds / base:5.2f} numbamlp's time")


def bar_plot(times, title):
    kinds = list(times)
    ratios = [times[k] / times["numbamlp"] for k in kinds]
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.barh(
        kinds, ratios, color=["tab:blue" if k.startswith("numbamlp") else "tab:gray" for k in kinds]
    )
    ax.axvline(1, color="k", lw=1)
    for y, (k, r) in enumerate(zip(kinds, ratios, strict=True)):
        ax.text(r, y, f" ×{r:.2f} ({times[k]:.3f} s)", va="center", fontsize=8)
    ax.set(xlabel="seconds per epoch / numbamlp's", title=title, xlim=(0, max(ratios) * 1.35))
    ax.invert_yaxis()
    plt.show()


bar_plot(recorded, f"recorded: {results.name}")

# %% [markdown]
# The same recorded run, cost per step against the batch size (FB §1 Q3, the scaling group):

# %%
scaling = sorted(
    (b["extra_info"]["batch"], b["extra_info"]["seconds_per_step"])
    for b in runs["benchmarks"]
    if b["name"].startswith("test_cost_per_step_vs_batch[")
)
Bs, per_step = map(np.array, zip(*scaling, strict=True))
fig, ax = plt.subplots(figsize=(5, 3))
ax.loglog(Bs, per_step * 1e6, "o-", label="numbamlp (recorded)")
ax.loglog(Bs, per_step[-1] * 1e6 * Bs / Bs[-1], "k--", lw=1, label="∝ B")
ax.set(xlabel="batch size B", ylabel="µs per step")
ax.set_xticks(Bs, [str(B) for B in Bs])
ax.minorticks_off()
ax.legend()
plt.show()

# %% [markdown]
# ## 2. A live run of the same measurement
#
# `seconds_per_epoch(kind, X, y)` builds the benchmark's trainer for each implementation,
# runs one warm-up epoch, then takes the median of several epochs. PyTorch (`torch==2.13.0`)
# and JAX are measured only when installed (`pip install -e ".[bench-torch]"` / `".[bench-jax]"`).

# %%
data = load_mnist()
n = 4096 if QUICK else data.y_train.shape[0]
rounds = 2 if QUICK else 5
X, y = rng_subset(data.X_train, data.y_train, n)
live = {}
for kind in IMPLEMENTATIONS:
    module = {"torch": "torch", "torch-fused-adam": "torch", "jax": "jax"}.get(kind)
    if module and not have(module):
        print(f"{kind:17s} not installed, skipped")
        continue
    live[kind] = seconds_per_epoch(kind, X, y, rounds=rounds)
    print(f"{kind:17s} {live[kind]:7.3f} s/epoch (n = {n})")
bar_plot(live, f"live run, n = {n}, {rounds} epochs each (noisy on a shared machine)")
assert all(t is not None and t > 0 for t in live.values())
