"""MLPClassifier: scikit-learn's estimator checks (no expected failure), label mapping,
determinism, validation, the same network as numbamlp.fit builds, partial_fit and warm_start
continuing the optimizer exactly, and the small data sets' accuracy in a pipeline."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from numbamlp import MLPClassifier  # noqa: E402
from numbamlp.training.fit import fit  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# A small network that learns the blobs below in a few epochs.
FAST = {"learning_rate_init": 0.01, "hidden_layer_sizes": (8,)}


@parametrize_with_checks(
    [
        MLPClassifier(),
        MLPClassifier(learning_rate_init=0.05, hidden_layer_sizes=(), head="modified-softmax"),
        MLPClassifier(early_stopping=True, activation="logistic", hidden_layer_sizes=(8,)),
    ]
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_no_check_is_expected_to_fail():
    import numbamlp.estimator as module

    assert not getattr(module, "EXPECTED_FAILED_CHECKS_WITH_DEFAULTS", {})


def test_the_parameters_are_scikit_learn_s_with_its_defaults_where_the_concept_is_the_same():
    from sklearn.neural_network import MLPClassifier as Theirs

    ours = MLPClassifier().get_params()
    theirs = Theirs().get_params()
    same = {
        "hidden_layer_sizes", "activation", "batch_size", "max_iter", "tol", "n_iter_no_change",
        "early_stopping", "validation_fraction", "warm_start", "shuffle",
    }  # fmt: skip
    assert {name: ours[name] for name in same} == {name: theirs[name] for name in same}
    # the same names, other defaults, each on purpose (docs/python.md): alpha is λ, not λ·B;
    # learning_rate_init None is the optimizer's default (Adam: 1e-3, theirs); random_state 0
    # is reproducible; verbose is an int
    assert (ours["alpha"], ours["learning_rate_init"], ours["random_state"]) == (None, None, 0)
    assert {"optimizer", "schedule", "head", "dtype", "threads", "engine"} <= set(ours)
    assert ours["dropout"] == 0.0  # numbamlp's (D.1–D.3); scikit-learn's MLP has none


def test_dropout_is_numbamlp_fit_s_dropout():
    """``dropout=`` reaches numbamlp.fit: the same network as fit(dropout=…), another than
    without it; prediction uses every unit (two predictions of one model agree)."""
    X, y = _blobs(200, 1)
    clf = MLPClassifier(hidden_layer_sizes=(6, 5), dropout=(0.2, 0.5), max_iter=3,
                        batch_size=16, random_state=3).fit(X, y)  # fmt: skip
    result = fit(
        X, y, hidden=[6, 5], dropout=[0.2, 0.5], max_epochs=3, batch_size=16,
        seed=3, activation="relu", weight_decay=1 / 200, verbose=0,
    )  # fmt: skip
    np.testing.assert_array_equal(clf.model_.params.theta, result.model.params.theta)
    plain = MLPClassifier(hidden_layer_sizes=(6, 5), max_iter=3, batch_size=16,
                          random_state=3).fit(X, y)  # fmt: skip
    assert not np.array_equal(clf.model_.params.theta, plain.model_.params.theta)
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))


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


def test_it_trains_the_network_numbamlp_fit_trains():
    """fit = numbamlp.fit with the translated keywords, on the labels' class indices."""
    X, y = _blobs(200, 1, ("b", "c", "a"))
    clf = MLPClassifier(
        hidden_layer_sizes=(5,), learning_rate_init=0.02, max_iter=4, batch_size=16,
        random_state=3, alpha=1e-3, activation="logistic",
    ).fit(X, y)  # fmt: skip
    result = fit(
        X, np.unique(y, return_inverse=True)[1], hidden=[5], lr=0.02,
        max_epochs=4, batch_size=16, seed=3, weight_decay=1e-3, activation="sigmoid", verbose=0,
    )  # fmt: skip
    np.testing.assert_array_equal(clf.model_.params.theta, result.model.params.theta)
    assert clf.loss_curve_ == [h["train_loss"] for h in result.history]
    assert clf.n_iter_ == 4 and len(clf.history_) == 4 and clf.converged_ is False


def test_max_iter_reached_warns_as_scikit_learn_does():
    X, y = _blobs(100, 1)
    with pytest.warns(ConvergenceWarning, match="reached max_iter=3; give a larger max_iter"):
        MLPClassifier(**FAST, max_iter=3).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = MLPClassifier(**FAST, tol=1e-2).fit(X, y)  # converges
    assert clf.converged_ and clf.n_iter_ < 200


def test_two_partial_fits_are_fit_with_max_iter_2_bit_for_bit():
    X, y = _blobs(150, 2, ("x", "y", "z"))
    whole = MLPClassifier(**FAST, max_iter=2).fit(X, y)
    parts = MLPClassifier(**FAST)
    parts.partial_fit(X, y, classes=["x", "y", "z"]).partial_fit(X, y)
    np.testing.assert_array_equal(parts.model_.params.theta, whole.model_.params.theta)
    # the optimizer went on: its step count and moments are those of the straight run
    a, b = parts._result.optimizer, whole._result.optimizer
    assert a.step_count == b.step_count == 2 * 10  # 150 rows: batch 16, 10 steps an epoch
    for name in a.state:
        np.testing.assert_array_equal(a.state[name], b.state[name])
    # a fresh optimizer (what scikit-learn's warm_start does) gives another network
    restarted = fit(
        X.astype(np.float32), np.unique(y, return_inverse=True)[1], hidden=[8], lr=0.01,
        epochs=1, verbose=0, activation="relu",
        model=MLPClassifier(**FAST).partial_fit(X, y, classes=["x", "y", "z"]).model_,
    )  # fmt: skip
    assert not np.array_equal(restarted.model.params.theta, whole.model_.params.theta)


def test_partial_fit_needs_the_classes_first_and_refuses_new_labels():
    X, y = _blobs(60, 3)
    with pytest.raises(ValueError, match="the first call needs `classes`"):
        MLPClassifier().partial_fit(X, y)
    clf = MLPClassifier(**FAST).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X, np.full(60, 7))


def test_warm_start_continues_the_previous_fit_exactly():
    X, y = _blobs(120, 4)
    once = MLPClassifier(**FAST, max_iter=6, n_iter_no_change=50).fit(X, y)
    twice = MLPClassifier(**FAST, max_iter=3, n_iter_no_change=50, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        twice.fit(X, y).fit(X, y)
    np.testing.assert_array_equal(twice.model_.params.theta, once.model_.params.theta)
    cold = MLPClassifier(**FAST, max_iter=3, n_iter_no_change=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold.fit(X, y).fit(X, y)
    assert not np.array_equal(cold.model_.params.theta, once.model_.params.theta)


def test_early_stopping_watches_the_validation_loss_and_keeps_the_best_epoch():
    X, y = _blobs(200, 5)
    clf = MLPClassifier(**FAST, early_stopping=True, validation_fraction=0.2).fit(X, y)
    assert len(clf.validation_loss_curve_) == clf.n_iter_
    assert clf._result.best_epoch == 1 + int(np.argmin(clf.validation_loss_curve_))


def test_random_state_none_and_a_random_state_object():
    X, y = _blobs(60, 6)
    a = MLPClassifier(**FAST, max_iter=2, random_state=None).fit(X, y)
    b = MLPClassifier(**FAST, max_iter=2, random_state=None).fit(X, y)
    assert not np.array_equal(a.model_.params.theta, b.model_.params.theta)
    c = MLPClassifier(**FAST, max_iter=2, random_state=np.random.RandomState(1)).fit(X, y)
    d = MLPClassifier(**FAST, max_iter=2, random_state=np.random.RandomState(1)).fit(X, y)
    np.testing.assert_array_equal(c.model_.params.theta, d.model_.params.theta)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "target"),
    [("iris", 0.958), ("wine", 0.980), ("breast_cancer", 0.933), ("digits", 0.956)],
)
def test_in_a_pipeline_it_reaches_scikit_learn_s_accuracy_on_the_small_sets(name, target):
    """scikit-learn's make_pipeline(StandardScaler(), MLPClassifier(random_state=0)) − 0.02 on
    its own data sets, 70/30 stratified splits (the issue's acceptance)."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = make_pipeline(StandardScaler(), MLPClassifier()).fit(X_train, y_train)
    assert pipe.score(X_test, y_test) >= target


def test_same_seed_same_predictions_other_seed_other_network():
    X, y = _blobs(150, 2)
    a = MLPClassifier(**FAST, max_iter=3, random_state=5).fit(X, y).predict_proba(X)
    b = MLPClassifier(**FAST, max_iter=3, random_state=5).fit(X, y).predict_proba(X)
    c = MLPClassifier(**FAST, max_iter=3, random_state=6).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_loss_curve_and_float64():
    X, y = _blobs(200, 3)
    clf = MLPClassifier(**FAST, max_iter=6, dtype="float64").fit(X, y)
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
        MLPClassifier(max_iter=1).fit(X, y)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"activation": "swish"}, "unknown activation 'swish'"),
        ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
        ({"head": "sigmoid"}, "unknown head 'sigmoid'"),
        ({"dtype": "float16"}, "dtype must be one of float32, float64"),
        ({"max_iter": 0}, "`max_iter`: must be a positive integer"),
        ({"learning_rate_init": -1.0}, "`learning_rate_init`: must be a positive number"),
        ({"hidden_layer_sizes": (0,)}, "layer width must be positive"),
        ({"shuffle": False}, "shuffle=False is not supported"),
        ({"alpha": -1.0}, "`alpha`: must be a finite number"),
        ({"dropout": 1.0}, "`dropout`: each rate must be in"),
    ],
)
def test_bad_parameters_are_value_errors_at_fit(params, message):
    clf = MLPClassifier(**params)  # stored as given, as scikit-learn requires
    with pytest.raises(ValueError, match=message):
        clf.fit(*_blobs(20, 4))


def test_predict_checks_the_feature_count():
    clf = MLPClassifier(**FAST, max_iter=1).fit(*_blobs(30, 5))
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.predict(np.ones((2, 3)))


def test_hidden_as_an_int_and_numpy_integers_from_a_grid():
    X, y = _blobs(60, 6)
    clf = MLPClassifier(
        hidden_layer_sizes=np.int64(6), max_iter=np.int64(2), batch_size=np.int32(16)
    ).fit(X, y)
    assert clf.model_.architecture.sizes == (4, 6, 3)


def test_clone_pickle_pipeline_and_grid_search():
    X, y = _blobs(120, 7)
    clf = MLPClassifier(**FAST, max_iter=5).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    assert clone(clf).get_params() == clf.get_params()
    assert clf.set_params(max_iter=2).get_params()["max_iter"] == 2
    pipe = make_pipeline(StandardScaler(), MLPClassifier(**FAST, max_iter=5, batch_size=16))
    grid = GridSearchCV(pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (8,)]}, cv=2)
    grid.fit(X, y)
    assert grid.best_params_["mlpclassifier__hidden_layer_sizes"] in [(4,), (8,)]
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


# --- MLPRegressor: the identity head on the squared error, R² ----------------------------------

from numbamlp import MLPRegressor  # noqa: E402


@parametrize_with_checks([MLPRegressor(), MLPRegressor(hidden_layer_sizes=(8,), alpha=1e-3)])
def test_scikit_learn_estimator_checks_of_the_regressor(estimator, check):
    check(estimator)


def _surface(n: int, seed: int, targets: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 3))
    Y = np.stack([np.sin(X[:, 0]) + X[:, 1] * X[:, 2], X[:, 0] - 2 * X[:, 1]], axis=1)
    Y = 1000.0 * Y + 500.0  # far from standardised: the targets' Z.2 is undone at predict
    return X, Y[:, 0] if targets == 1 else Y[:, :targets]


def test_the_regressor_fits_a_surface_in_its_own_units():
    X, y = _surface(400, 0)
    reg = MLPRegressor(hidden_layer_sizes=(32,), activation="tanh").fit(X, y)
    predicted = reg.predict(X)
    assert predicted.shape == (400,) and predicted.dtype == np.float64
    assert reg.score(X, y) > 0.9 and reg.n_outputs_ == 1
    assert abs(predicted.mean() - y.mean()) < 100  # in y's units (y ~ 500 ± 1500)


def test_several_targets_give_several_columns():
    X, Y = _surface(300, 1, targets=2)
    reg = MLPRegressor(hidden_layer_sizes=(16,)).fit(X, Y)
    assert reg.predict(X).shape == (300, 2) and reg.n_outputs_ == 2
    assert reg.score(X, Y) > 0.5


def test_two_partial_fits_of_the_regressor_are_fit_with_max_iter_2():
    X, y = _surface(150, 2)
    whole = MLPRegressor(hidden_layer_sizes=(8,), max_iter=2).fit(X, y)
    parts = MLPRegressor(hidden_layer_sizes=(8,)).partial_fit(X, y).partial_fit(X, y)
    np.testing.assert_array_equal(parts.model_.params.theta, whole.model_.params.theta)
    np.testing.assert_array_equal(parts.predict(X), whole.predict(X))


def test_the_regressor_has_the_classifier_s_parameters_but_the_head():
    ours = set(MLPRegressor().get_params())
    assert ours == set(MLPClassifier().get_params()) - {"head"}
    from sklearn.neural_network import MLPRegressor as Theirs

    theirs = Theirs().get_params()
    for name in ("hidden_layer_sizes", "activation", "max_iter", "tol", "n_iter_no_change"):
        assert MLPRegressor().get_params()[name] == theirs[name]
