"""MLPClassifier: scikit-learn's estimator checks, label mapping, determinism, validation, and
the same network as the Python API builds. Small data and few epochs throughout."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from numbamlp import MLP, MLPClassifier, TrainConfig, generators, train  # noqa: E402
from numbamlp.estimator import EXPECTED_FAILED_CHECKS_WITH_DEFAULTS  # noqa: E402

# Learns the checks' 300-sample blobs within the default 20 epochs.
FAST = {"lr": 0.01, "hidden": (8,)}


def _expected_failures(estimator: MLPClassifier) -> dict[str, str]:
    return EXPECTED_FAILED_CHECKS_WITH_DEFAULTS if estimator.lr is None else {}


@parametrize_with_checks(
    [
        MLPClassifier(),
        MLPClassifier(**FAST),
        MLPClassifier(lr=0.05, hidden=(), head="modified-softmax"),
    ],
    expected_failed_checks=_expected_failures,
    xfail_strict=True,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _blobs(n: int, seed: int, labels=(0, 1, 2)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    k = rng.integers(0, len(labels), size=n)
    X = rng.normal(size=(n, 4)) + 3.0 * np.eye(4)[k]
    return X, np.asarray(labels)[k]


@pytest.mark.parametrize(
    "labels",
    [("cat", "dog", "emu"), (7, -3, 40), (3.0, 1.0, 2.0), (True, False)],
    ids=["strings", "sparse ints", "floats", "bools"],
)
def test_labels_of_any_type_map_to_sorted_classes_and_back(labels):
    X, y = _blobs(240, 0, labels)
    clf = MLPClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.unique(y))
    predicted = clf.predict(X)
    assert predicted.dtype == clf.classes_.dtype and set(predicted) <= set(labels)
    assert clf.score(X, y) > 0.75  # chance: 1/3 or 1/2
    proba = clf.predict_proba(X)
    assert proba.shape == (240, len(labels))
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], predicted)


def test_it_trains_the_network_the_python_api_trains():
    """fit = MLP.create + train from the seed's generators, on the labels' class indices and
    the features standardised (Z.1) over the training rows."""
    from numbamlp.datasets.inputscale import record_for

    X, y = _blobs(200, 1, ("b", "c", "a"))
    clf = MLPClassifier(hidden=(5,), lr=0.02, epochs=4, batch_size=16, seed=3).fit(X, y)
    init_rng, train_rng = generators(3)
    model = MLP.create(4, [5], 3, rng=init_rng)
    config = TrainConfig(epochs=4, batch_size=16, lr=0.02)
    X32 = X.astype(np.float32)  # the estimator takes X in the model's dtype
    X_tilde = record_for(X32, 1.0, standardize=True).standardise(X32, dtype=np.float32)
    history = train(model, X_tilde, np.unique(y, return_inverse=True)[1], config, train_rng)
    np.testing.assert_array_equal(clf.model_.params.theta, model.params.theta)
    assert clf.loss_curve_ == [m.train_loss for m in history]
    assert clf.n_iter_ == 4 and len(clf.history_) == 4


def test_same_seed_same_predictions_other_seed_other_network():
    X, y = _blobs(150, 2)
    a = MLPClassifier(**FAST, epochs=3, seed=5).fit(X, y).predict_proba(X)
    b = MLPClassifier(**FAST, epochs=3, seed=5).fit(X, y).predict_proba(X)
    c = MLPClassifier(**FAST, epochs=3, seed=6).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_loss_curve_and_float64():
    X, y = _blobs(200, 3)
    clf = MLPClassifier(**FAST, epochs=6, dtype="float64").fit(X, y)
    assert len(clf.loss_curve_) == 6 and clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert all(type(v) is float for v in clf.loss_curve_)
    assert clf.predict_proba(X).dtype == np.float64 and clf.n_features_in_ == 4


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), [0, 1], "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), [0, 1], "infinity"),
        (np.array([0.0, 1.0, 2.0]), [0, 1, 0], "Expected 2D array, got 1D array"),
        (np.ones((3, 2)), [0, 1], "inconsistent numbers of samples"),
        (np.ones((3, 2)), ["a", "a", "a"], "1 class"),
        (np.ones((3, 2)), [0.1, 0.2, 0.3], "Unknown label type"),
    ],
    ids=["nan", "inf", "1-d X", "lengths", "one class", "continuous y"],
)
def test_bad_data_is_a_value_error_naming_it(X, y, message):
    with pytest.raises(ValueError, match=message):
        MLPClassifier(epochs=1).fit(X, y)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"activation": "swish"}, "unknown activation 'swish'"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
        ({"head": "sigmoid"}, "unknown head 'sigmoid'"),
        ({"dtype": "float16"}, "dtype must be one of float32, float64"),
        ({"epochs": 0}, "`epochs`: must be a positive integer"),
        ({"lr": -1.0}, "`lr`: must be a positive number"),
        ({"hidden": (0,)}, "layer width must be positive"),
    ],
)
def test_bad_parameters_are_value_errors_at_fit(params, message):
    clf = MLPClassifier(**params)  # stored as given, as scikit-learn requires
    with pytest.raises(ValueError, match=message):
        clf.fit(*_blobs(20, 4))


def test_predict_checks_the_feature_count():
    clf = MLPClassifier(**FAST, epochs=1).fit(*_blobs(30, 5))
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.predict(np.ones((2, 3)))


def test_hidden_as_an_int_and_numpy_integers_from_a_grid():
    X, y = _blobs(60, 6)
    clf = MLPClassifier(hidden=np.int64(6), epochs=np.int64(2), batch_size=np.int32(16)).fit(X, y)
    assert clf.model_.architecture.sizes == (4, 6, 3)


def test_clone_pickle_pipeline_and_grid_search():
    X, y = _blobs(120, 7)
    clf = MLPClassifier(**FAST, epochs=5).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert clone(clf).get_params() == clf.get_params()
    assert clf.set_params(epochs=2).get_params()["epochs"] == 2
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**FAST, epochs=5, batch_size=16))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden": [(4,), (8,)]}, cv=2).fit(X, y)
    assert grid.best_params_["mlpclassifier__hidden"] in [(4,), (8,)]
    assert grid.score(X, y) > 0.8


def test_without_scikit_learn_it_says_which_extra_to_install():
    code = (
        "import sys\n"
        "sys.modules['sklearn'] = None  # as if not installed\n"
        "import numbamlp\n"
        "cls = numbamlp.MLPClassifier\n"
        "try:\n"
        "    cls()\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert 'pip install "numbamlp[sklearn]"' in out.stdout
