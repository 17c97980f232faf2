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
# # 07 · Tables: regression, weights, standardisation and the metrics
#
# The notes train on MNIST, whose pixels are already in $[0, 1]$ and whose labels are the digits.
# A table brings features on every scale, labels that are words, sometimes a real number to
# predict instead of a class, and rows that should count more than others. This notebook takes
# each equation numbamlp adds for them — the identity head and the squared error (F.5, L.2,
# B.5), the weighted minibatch mean (S.2) and balanced class weights (C.1), standardisation of
# inputs and targets (Z.1, Z.2), the metrics (E.1–E.4) — shows the library's code, and checks it
# numerically: derivatives against central finite differences in float64, the rest against
# their definition or scikit-learn. Each derivation is in
# [docs/derivation.md](../docs/derivation.md). It ends with what a practitioner sees: scikit-
# learn's bundled tables trained with no options, beside scikit-learn's own MLP.

# %%
import inspect
import warnings

import numpy as np

from numbamlp.equations import describe
from numbamlp.kernels.backward import squared_error_delta, weight_output_delta
from numbamlp.kernels.forward import (
    identity_forward,
    sample_weight_factors,
    squared_error,
)
from numbamlp.model.gradcheck import central_jacobian
from numbamlp.model.mlp import MLP


def show(function):
    print(inspect.getsource(getattr(function, "py_func", function)))


def max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


rng = np.random.default_rng(0)

# %% [markdown]
# ## The regression head and its loss
#
# **(F.5)** $f_{s,i} = z^L_{s,i}$: one output unit per target, no squashing. **(L.2)**
# $\ell_s = \tfrac12 \sum_i (f_{s,i} - y_{s,i})^2$. **(B.5)** $\delta^L_{s,i} = f_{s,i} - y_{s,i}$
# — the form of B.1, prediction minus target.

# %%
for tag in ("F.5", "L.2", "B.5"):
    print(describe(tag))
show(identity_forward)
show(squared_error)
show(squared_error_delta)

# %%
T = 3
zL = rng.normal(size=(1, T))
y_target = rng.normal(size=(1, T))


def loss_of_logits(z):
    f = np.empty((1, T))
    identity_forward(f, np.ascontiguousarray(z)[None, :])  # (F.5)
    out = np.empty(1)
    squared_error(out, f, y_target)  # (L.2)
    return out[0]


f = np.empty((1, T))
identity_forward(f, zL)
delta_L = np.empty((1, T))
squared_error_delta(delta_L, f, y_target)  # (B.5)
numeric = central_jacobian(loss_of_logits, zL[0])[0]
print("F.5 max |f − z^L|                         =", max_diff(f, zL))
print(
    "L.2 |kernel − ½‖f − y‖²|                  =",
    abs(loss_of_logits(zL[0]) - 0.5 * np.sum((zL - y_target) ** 2)),
)
print("B.5 max |kernel − ∂ℓ/∂z^L (differences)|  =", max_diff(delta_L[0], numeric))
assert max_diff(f, zL) == 0.0
assert abs(loss_of_logits(zL[0]) - 0.5 * np.sum((zL - y_target) ** 2)) < 1e-15
assert max_diff(delta_L[0], numeric) < 1e-8

# %% [markdown]
# Below the head nothing changes: B.2–B.4 take δ^L as they find it. So the whole network's
# gradient of the mean squared error — a 5-8-3 regressor with tanh — agrees with finite
# differences of its loss in every component of θ.

# %%
net = MLP.create(5, [8], T, activations="tanh", head="identity", dtype="float64", rng=rng)
X = rng.normal(size=(7, 5))
Y = rng.normal(size=(7, T))
value, grads = net.loss_and_gradient(X, Y)


def loss_of_theta(theta):
    saved = net.params.theta.copy()
    net.params.theta[:] = theta
    try:
        return net.loss(X, Y)
    finally:
        net.params.theta[:] = saved


numeric = central_jacobian(loss_of_theta, net.params.theta.copy())[0]
print(net)
print("max |∇θ ℓ (F.5, L.2, B.5, B.2–B.4) − differences| =", max_diff(grads.theta, numeric))
assert max_diff(grads.theta, numeric) < 1e-8

# %% [markdown]
# ## Weighted rows
#
# **(S.2)** $\ell = \sum_s w_s \ell_s / \sum_s w_s$. The kernels do not write a second mean:
# they scale each sample's loss and output delta by $\omega_s = B w_s / \sum_{s'} w_{s'}$ and keep
# S.1. A weight is a count: with integer weights the gradient equals that of the minibatch in
# which each row appears $w_s$ times.

# %%
print(describe("S.2"))
show(sample_weight_factors)
show(weight_output_delta)

# %%
classifier = MLP.create(5, [6], 3, activations="sigmoid", dtype="float64", rng=rng)
labels = rng.integers(0, 3, size=7)
counts = np.array([1, 3, 0, 2, 1, 1, 4])
weighted, weighted_grads = classifier.loss_and_gradient(X, labels, sample_weight=counts)
repeated, repeated_grads = classifier.loss_and_gradient(
    np.repeat(X, counts, axis=0), np.repeat(labels, counts)
)
print("S.2 |weighted ℓ − ℓ of the repeated rows|     =", abs(weighted - repeated))
print(
    "S.2 max |weighted ∇θ − ∇θ of repeated rows|   =",
    max_diff(weighted_grads.theta, repeated_grads.theta),
)
omega = np.empty(7)
sample_weight_factors(omega, counts.astype(np.float64), np.arange(7))
print("ω =", omega, " mean", omega.mean())
assert abs(weighted - repeated) < 1e-12
assert max_diff(weighted_grads.theta, repeated_grads.theta) < 1e-12
ones, ones_grads = classifier.loss_and_gradient(X, labels, sample_weight=np.ones(7))
plain, plain_grads = classifier.loss_and_gradient(X, labels)
assert ones == plain and np.array_equal(ones_grads.theta, plain_grads.theta)  # ω = 1 exactly

# %% [markdown]
# **(C.1)** Balanced class weights, $w_s = n / (M\, n_{Y_s})$: every class carries the same total
# weight $n/M$, as if the classes were balanced — scikit-learn's `class_weight="balanced"`.

# %%
from numbamlp.datasets.userfiles import class_weights  # noqa: E402

print(describe("C.1"))
show(class_weights)
unbalanced = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
w = class_weights(unbalanced, ("a", "b", "c"), "balanced")  # (C.1)
totals = np.bincount(unbalanced, weights=w)
print("w per row:", np.round(w, 3), "\ntotal weight per class:", totals)
from sklearn.utils.class_weight import compute_sample_weight  # noqa: E402

assert np.allclose(totals, len(unbalanced) / 3)
assert np.allclose(w, compute_sample_weight("balanced", unbalanced))

# %% [markdown]
# ## Standardising inputs and targets
#
# **(Z.1)** $\tilde x_{s,j} = (x_{s,j} - \mu_j)/\sigma_j$ with the training rows' mean and
# (population) standard deviation, $\sigma_j := 1$ for a constant feature. The model file records
# $\mu$ and $\sigma$; `prepare_input` applies them to every later input. **(Z.2)** does the same
# to a regression's targets and inverts it at prediction, $\hat y = \mu^y + \sigma^y f$.

# %%
from sklearn.datasets import load_wine  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from numbamlp.datasets.inputscale import InputRecord, TargetRecord, standardisation  # noqa: E402

print(describe("Z.1"))
print(describe("Z.2"))
show(standardisation)
wine = load_wine()
features = np.column_stack([wine.data, np.full(len(wine.data), 7.0)])  # + a constant feature
mu, sigma = standardisation(features)  # (Z.1)
record = InputRecord(1.0, "float64", mean=tuple(mu), std=tuple(sigma))
ours = record.standardise(features)
theirs = StandardScaler().fit_transform(features)
print(
    "features from", features.min(axis=0).round(2)[:4], "to", features.max(axis=0).round(0)[:4], "…"
)
print("Z.1 max |numbamlp − StandardScaler| =", max_diff(ours, theirs))
print("    the constant feature: σ =", sigma[-1], ", standardised to", np.unique(ours[:, -1]))
assert max_diff(ours, theirs) < 1e-12 and sigma[-1] == 1.0 and np.all(ours[:, -1] == 0.0)

# %%
Y = rng.normal(loc=150.0, scale=70.0, size=(50, 2))
target = TargetRecord.fit(Y, ("y1", "y2"))
standardised = target.standardise(Y)  # (Z.2) ỹ = (y − μ^y)/σ^y
print("Z.2 ỹ: mean", standardised.mean(axis=0).round(12), "std", standardised.std(axis=0).round(12))
print("    max |restore(standardise(y)) − y| =", max_diff(target.restore(standardised), Y))
assert np.allclose(standardised.mean(axis=0), 0) and np.allclose(standardised.std(axis=0), 1)
assert max_diff(target.restore(standardised), Y) < 1e-12

# %% [markdown]
# ## The metrics
#
# **(E.1)** MSE, **(E.2)** MAE and **(E.3)** R² for a regression, in the targets' own units;
# **(E.4)** per-class precision, recall and F1 from the confusion matrix. Each against
# scikit-learn's function of the same name.

# %%
from sklearn import metrics as sk  # noqa: E402

from numbamlp.kernels.metrics import (  # noqa: E402
    confusion_matrix,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_f1,
    r2_score,
)

for tag in ("E.1", "E.2", "E.3", "E.4"):
    print(describe(tag))
truth = rng.normal(size=(40, 2))
guess = truth + rng.normal(scale=0.5, size=(40, 2))
pairs = {
    "E.1 MSE": (mean_squared_error(truth, guess), sk.mean_squared_error(truth, guess)),
    "E.2 MAE": (mean_absolute_error(truth, guess), sk.mean_absolute_error(truth, guess)),
    "E.3 R²": (r2_score(truth, guess), sk.r2_score(truth, guess)),
}
for name, (a, b) in pairs.items():
    print(f"{name}: numbamlp {a:.12f}  scikit-learn {b:.12f}")
    assert abs(a - b) < 1e-12
classes_true = rng.integers(0, 4, 60)
classes_pred = np.where(rng.random(60) < 0.7, classes_true, rng.integers(0, 4, 60))
C = confusion_matrix(classes_true, classes_pred, 4)
P, R, F1 = precision_recall_f1(C)  # (E.4)
sk_P, sk_R, sk_F1, _ = sk.precision_recall_fscore_support(
    classes_true, classes_pred, zero_division=0
)
print("E.4 max |P, R, F1 − scikit-learn's| =", max_diff(np.r_[P, R, F1], np.r_[sk_P, sk_R, sk_F1]))
assert max_diff(np.r_[P, R, F1], np.r_[sk_P, sk_R, sk_F1]) < 1e-12

# %% [markdown]
# ## What a practitioner sees
#
# scikit-learn's bundled tables, split 70/30 (stratified, seed 0), trained by `numbamlp.fit`
# with no options — it standardises the features (Z.1; the targets too, Z.2), picks a batch size
# for the number of rows, decays the weights by λ = 1/n and trains until the loss stops improving
# — beside scikit-learn's `make_pipeline(StandardScaler(), MLPClassifier(random_state=0))` (for
# diabetes `MLPRegressor`, with its defaults and with `max_iter=1000`). Scores are test accuracy,
# or R² for diabetes. The command line's `numbamlp train --train-file … --test-file …
# --label-column target` makes the same run (tests/training/test_tabular_defaults.py).

# %%
import sklearn.datasets  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier, MLPRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

import numbamlp  # noqa: E402

rows = []
for name in ("iris", "wine", "breast_cancer", "digits", "diabetes"):
    bunch = getattr(sklearn.datasets, f"load_{name}")()
    regression = name == "diabetes"
    y_all = bunch.target if regression else np.asarray(bunch.target_names)[bunch.target]
    X_tr, X_te, y_tr, y_te = train_test_split(
        bunch.data, y_all, test_size=0.3, random_state=0, stratify=None if regression else y_all
    )
    result = numbamlp.fit(X_tr, y_tr, X_test=X_te, y_test=y_te, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's ConvergenceWarning is part of the story
        if regression:
            theirs = make_pipeline(StandardScaler(), MLPRegressor(random_state=0)).fit(X_tr, y_tr)
            longer = make_pipeline(StandardScaler(), MLPRegressor(random_state=0, max_iter=1000))
            extra = longer.fit(X_tr, y_tr).score(X_te, y_te)
        else:
            theirs = make_pipeline(StandardScaler(), MLPClassifier(random_state=0)).fit(X_tr, y_tr)
            extra = float("nan")
    rows.append((name, result.test_accuracy, len(result.history), theirs.score(X_te, y_te), extra))

print(f"{'table':14} {'numbamlp':>9} {'epochs':>7} {'scikit-learn':>13} {'(max_iter=1000)':>16}")
for name, ours_score, epochs, theirs_score, extra in rows:
    print(f"{name:14} {ours_score:9.3f} {epochs:7d} {theirs_score:13.3f} {extra:16.3f}")
for name, ours_score, _, theirs_score, _ in rows:
    bar = 0.33 if name == "diabetes" else theirs_score - 0.02
    assert ours_score >= bar, (name, ours_score, bar)
