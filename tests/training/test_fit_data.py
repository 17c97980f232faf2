"""``numbamlp.fit``'s data keywords (issue 18): task, standardize, sample_weight,
class_weight, and what the saved model records of them."""

from __future__ import annotations

import numpy as np
import pytest

import numbamlp
from numbamlp.datasets.inputscale import prepare_input
from numbamlp.errors import NumbamlpError
from numbamlp.model.modelio import load_model

FAST = dict(hidden=[6], epochs=3, batch_size=16, lr=0.05, verbose=0)


def _blobs(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = (rng.normal(size=(n, 4)) + 2 * np.eye(3, 4)[y]) * [1, 50, 0.1, 1] + [0, 200, 1, 0]
    return X, y


def test_arrays_are_standardised_by_default_and_recorded(tmp_path):
    X, y = _blobs()
    on = numbamlp.fit(X, y, save=tmp_path / "on.npz", **FAST)
    off = numbamlp.fit(X, y, standardize=False, save=tmp_path / "off.npz", **FAST)
    assert on.input.standardized and not off.input.standardized
    assert not np.array_equal(on.model.params.theta, off.model.params.theta)
    loaded = load_model(tmp_path / "on.npz")
    assert loaded.input == on.input
    np.testing.assert_allclose(loaded.input.mean, X.mean(axis=0), rtol=1e-12)
    # standardize=False is the run on the raw features that fit made before Z.1 existed
    raw = numbamlp.fit(X.astype(np.float32), y, standardize=False, **FAST)
    np.testing.assert_array_equal(raw.model.params.theta, off.model.params.theta)


def test_standardisation_equals_fitting_standardised_features():
    """fit(X) with Z.1 = fit(x̃) without it, bit for bit: one definition of x̃."""
    X, y = _blobs()
    on = numbamlp.fit(X, y, **FAST)
    X_tilde, _ = prepare_input(X, on.input, "X", dtype=np.float32)
    plain = numbamlp.fit(X_tilde, y, standardize=False, **FAST)
    np.testing.assert_array_equal(on.model.params.theta, plain.model.params.theta)


def test_any_labels_given_to_fit():
    X, y = _blobs()
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    result = numbamlp.fit(X, names, X_test=X, y_test=names, **FAST)
    assert result.class_names == ("setosa", "versicolor", "virginica")
    indices = numbamlp.fit(X, y, **FAST)
    np.testing.assert_array_equal(result.model.params.theta, indices.model.params.theta)
    with pytest.raises(NumbamlpError, match="label 'daisy' at row 0 is not one of the 3"):
        numbamlp.fit(X, names, X_test=X[:1], y_test=np.array(["daisy"]), **FAST)


def test_class_weight_and_sample_weight_errors():
    X, y = _blobs()
    with pytest.raises(NumbamlpError, match="`sample_weight`: sample weight -1.0 at row 0"):
        numbamlp.fit(X, y, sample_weight=-np.ones(len(y)), **FAST)
    with pytest.raises(NumbamlpError, match="`class_weight`: '7' is not a class"):
        numbamlp.fit(X, y, class_weight={7: 2.0}, **FAST)
    with pytest.raises(NumbamlpError, match="needs `train_file`|names a column of `train_file`"):
        numbamlp.fit(X, y, sample_weight_column="w", **FAST)


def test_constant_weights_are_the_unweighted_run_bitwise():
    """S.2: all w_s = c ⇒ ω_s = B·c/(B·c) = 1 exactly ⇒ the unweighted run, bit for bit; the
    weights of class_weight "balanced" on balanced classes are 1 too."""
    X, y = _blobs(96)
    y = np.arange(96) % 3  # 32 rows per class: C.1 gives every row n/(M·n_k) = 1
    plain = numbamlp.fit(X, y, **FAST)
    for weights in (dict(sample_weight=np.ones(96)), dict(sample_weight=np.full(96, 4.0)),
                    dict(class_weight="balanced")):  # fmt: skip
        weighted = numbamlp.fit(X, y, **weights, **FAST)
        np.testing.assert_array_equal(weighted.model.params.theta, plain.model.params.theta)
    other = numbamlp.fit(X, y, sample_weight=1.0 + (np.arange(96) % 2), **FAST)
    assert not np.array_equal(other.model.params.theta, plain.model.params.theta)


def test_regression_from_arrays_predicts_in_the_targets_units(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 3)) * [1, 10, 100]
    Y = np.stack([X @ [1.0, 0.1, 0.01], X[:, 0] ** 2], axis=1) * 50 + 1000
    result = numbamlp.fit(X, Y, save=tmp_path / "r.npz", **{**FAST, "epochs": 30})
    assert result.target.names == ("y0", "y1") and result.model.architecture.task == "regression"
    loaded = load_model(tmp_path / "r.npz")
    assert loaded.target == result.target
    X_tilde, scale = prepare_input(X, loaded.input, "X", loaded.model.dtype)
    predicted = loaded.target.restore(loaded.model.predict(X_tilde, scale))
    assert abs(predicted.mean() - Y.mean()) < Y.std()  # original units, not standardised
    from numbamlp.model.export import safetensors_tensors

    tensors = safetensors_tensors(loaded.model, loaded.metadata)
    h = 1 / (1 + np.exp(-(X @ tensors["0.weight"].astype(np.float64).T + tensors["0.bias"])))
    exported = h @ tensors["2.weight"].astype(np.float64).T + tensors["2.bias"]
    np.testing.assert_allclose(exported, predicted, rtol=1e-4, atol=1e-3 * Y.std())
