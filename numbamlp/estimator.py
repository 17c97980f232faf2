"""MLPClassifier and MLPRegressor: numbamlp as scikit-learn estimators (``fit``, ``partial_fit``,
``predict``, …).

Orchestration only, no math: ``fit`` validates the data with scikit-learn's own
``validate_data``, maps the labels to classes 0..M−1 (``classes_``, sorted as scikit-learn
does), and trains with ``numbamlp.fit`` (the function behind ``numbamlp train``), so that the
same options give the same network bit for bit; ``predict`` maps the classes back. Everything
the estimator does, ``numbamlp.fit`` does: the estimator translates scikit-learn's parameter
names into fit's keywords (``PARAMETER_NAMES``) and nothing more.

It needs scikit-learn (``pip install "numbamlp[sklearn]"``): the estimator protocol it follows
(``get_params``/``set_params``, ``clone``, pipelines, grid search, input validation) is
scikit-learn's, and without it there is nothing to plug the estimator into. This module imports
without scikit-learn (so ``numbamlp.MLPClassifier`` resolves), and building the estimator then
raises an ImportError naming the extra.

Both pass scikit-learn's ``check_estimator`` with their defaults, with no expected failure.
MLPRegressor trains the identity head on the squared error (``numbamlp.fit(task="regression")``)
and scores with R².
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from numbamlp.errors import NumbamlpError

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, MultiOutputMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError:  # the estimator says what is missing when it is built
    HAVE_SKLEARN = False
    _BASES: tuple[type, ...] = (object,)
    _CLASSIFIER: tuple[type, ...] = ()
    _REGRESSOR: tuple[type, ...] = ()
else:
    HAVE_SKLEARN = True
    _BASES = (BaseEstimator,)
    _CLASSIFIER = (ClassifierMixin,)
    _REGRESSOR = (MultiOutputMixin, RegressorMixin)

#: The dtypes the estimators take features in: float32 stays float32, anything else becomes
#: float64. fit standardises them (Z.1) in float64 and only then rounds them to θ's dtype, and
#: predict does the same, so both see the same numbers.
FLOATS = (np.float64, np.float32)

NEEDS_SKLEARN = (
    'numbamlp.{} needs scikit-learn: pip install "numbamlp[sklearn]" '
    "(or train with numbamlp.fit directly)"
)

#: The estimators' parameters that are ``numbamlp.fit`` keywords under another name, by their
#: scikit-learn name (the rest keep fit's names: optimizer, schedule, head, dtype, threads,
#: engine, tol, n_iter_no_change, validation_fraction, verbose).
PARAMETER_NAMES = {
    "hidden_layer_sizes": "hidden",
    "alpha": "weight_decay",
    "learning_rate_init": "lr",
    "max_iter": "max_epochs",
    "random_state": "seed",
    "shuffle": "sampling",
    "early_stopping": "validation_fraction",
}
#: How the estimators' messages name fit's keywords (a library message names `max_epochs`,
#: the estimator's user gave `max_iter`).
OWN_NAMES = {
    ours: theirs
    for theirs, ours in PARAMETER_NAMES.items()
    if theirs not in ("shuffle", "early_stopping")
}
#: scikit-learn's activation names that numbamlp spells otherwise.
ACTIVATION_NAMES = {"logistic": "sigmoid"}


class _MLP(*_BASES):  # type: ignore[misc]
    """What MLPClassifier and MLPRegressor share: the parameters, fit, partial_fit."""

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str | Sequence[str] = "relu",
        *,
        alpha: float | None = None,
        dropout: float | Sequence[float] = 0.0,
        batch_size: int | str = "auto",
        learning_rate_init: float | None = None,
        max_iter: int = 200,
        tol: float = 1e-4,
        n_iter_no_change: int = 10,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        random_state: Any = 0,
        verbose: int = 0,
        warm_start: bool = False,
        shuffle: bool = True,
        optimizer: str = "adam",
        optimizer_options: dict[str, float] | None = None,
        schedule: str = "constant",
        dtype: str = "float32",
        threads: int | None = None,
        engine: str = "fused",
    ) -> None:
        if not HAVE_SKLEARN:
            raise ImportError(NEEDS_SKLEARN.format(type(self).__name__))
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.dropout = dropout
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.shuffle = shuffle
        self.optimizer = optimizer
        self.optimizer_options = optimizer_options
        self.schedule = schedule
        self.dtype = dtype
        self.threads = threads
        self.engine = engine

    # --- training ------------------------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> Any:
        """Train on (X, y) until the loss converges (at most ``max_iter`` epochs). With
        ``warm_start`` a fitted estimator continues its previous fit exactly."""
        continuing = self.warm_start and hasattr(self, "_result")
        X, y = self._data(X, y, reset=not continuing)
        self._train(X, y, epochs=None, previous=self._result if continuing else None)
        return self

    def _partial_fit(self, X: Any, y: Any) -> Any:
        first = not hasattr(self, "_result")
        X, y = self._data(X, y, reset=first)
        self._train(X, y, epochs=1, previous=None if first else self._result)
        return self

    def _data(self, X: Any, y: Any, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _check_dtype(self) -> np.dtype:
        from numbamlp.model.network import DTYPES

        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        return np.dtype(self.dtype)

    def _fit_options(self) -> dict[str, Any]:
        """What this kind of estimator adds to fit_keywords (the classes, the task)."""
        return {}

    def fit_keywords(self) -> dict[str, Any]:
        """The ``numbamlp.fit`` keywords this estimator's parameters stand for (checked)."""
        options = dict(self.optimizer_options or {})
        if "mu" in options:  # the optimizers' name for the momentum
            options["momentum"] = options.pop("mu")
        unknown = sorted(set(options) - {"momentum", "beta1", "beta2", "rho", "eps"})
        if unknown:
            raise ValueError(
                f"{type(self).__name__}: unknown optimizer option(s) {', '.join(unknown)}; "
                "use mu, beta1, beta2, rho, eps"
            )
        if self.shuffle is not True:
            raise ValueError(
                f"{type(self).__name__}: shuffle={self.shuffle!r} is not supported; numbamlp "
                "draws every epoch's minibatches as a permutation of the rows (shuffle=True)"
            )
        if self.early_stopping not in (True, False):
            raise ValueError(f"early_stopping must be True or False, got {self.early_stopping!r}")
        hidden = self.hidden_layer_sizes
        hidden = [hidden] if isinstance(hidden, (int, numbers.Integral)) else hidden
        activation = self.activation
        if isinstance(activation, str):
            activation = ACTIVATION_NAMES.get(activation, activation)
        else:
            activation = [ACTIVATION_NAMES.get(a, a) for a in activation]
        return {
            "hidden": [_plain(d) for d in hidden],
            "activation": activation,
            "weight_decay": _plain(self.alpha),
            "dropout": self.dropout
            if isinstance(self.dropout, str)
            else [_plain(p) for p in np.atleast_1d(self.dropout)],
            "batch_size": None if self.batch_size == "auto" else _plain(self.batch_size),
            "lr": self.learning_rate_init,
            "max_epochs": _plain(self.max_iter),
            "tol": _plain(self.tol),
            "n_iter_no_change": _plain(self.n_iter_no_change),
            "validation_fraction": self.validation_fraction if self.early_stopping else 0.0,
            "seed": _seed(self.random_state),
            "verbose": 1 if self.verbose else 0,
            "sampling": "shuffle",
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "dtype": self.dtype,
            "threads": _plain(self.threads),
            "engine": self.engine,
            **{key: options.get(key) for key in ("momentum", "beta1", "beta2", "rho", "eps")},
            **self._fit_options(),
        }

    def _train(self, X: np.ndarray, y: np.ndarray, epochs: int | None, previous: Any) -> None:
        from numbamlp.training.fit import fit
        from numbamlp.training.trainer import TrainingDiverged

        keywords = self.fit_keywords()
        try:
            result = fit(X, y, model=previous, epochs=epochs, **keywords)
        except TrainingDiverged:
            raise
        except NumbamlpError as exc:
            raise ValueError(f"{type(self).__name__}: {_in_our_names(str(exc))}") from None
        history = result.history
        self._result = result
        self.model_ = result.model
        self.history_ = history
        self.loss_curve_ = [float(record["train_loss"]) for record in history]
        self.best_loss_ = min(self.loss_curve_) if self.loss_curve_ else None
        if keywords["validation_fraction"]:
            self.validation_loss_curve_ = [float(record["val_loss"]) for record in history]
        self.n_iter_ = len(history)
        self.converged_ = result.converged
        if result.converged is False:
            warnings.warn(
                f"{type(self).__name__}: {_in_our_names(result.stop_reason)}".replace("`", ""),
                ConvergenceWarning,
                stacklevel=3,
            )

    # --- prediction ----------------------------------------------------------------------------

    def _inputs(self, X: Any) -> np.ndarray:
        from numbamlp.datasets.inputscale import prepare_input

        check_is_fitted(self)
        record = getattr(self._result, "input", None)  # fit standardised the features (Z.1)
        if record is None or not record.standardized:
            return validate_data(self, X, reset=False, dtype=self.model_.dtype, order="C")
        # Z.1 on the features as given, as fit did (FLOATS): not first rounded to θ's dtype
        X = validate_data(self, X, reset=False, dtype=FLOATS, order="C")
        return prepare_input(X, record, "X", dtype=self.model_.dtype)[0]

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")


class MLPClassifier(*_CLASSIFIER, _MLP):  # type: ignore[misc]
    """A feed-forward network classifier trained with numbamlp's Numba kernels.

    scikit-learn's ``MLPClassifier`` parameters where the concept is the same, with its
    defaults, then numbamlp's own. All are stored as given and checked in ``fit``, as
    scikit-learn requires.

    hidden_layer_sizes : int or tuple of int, default (100,)
        Hidden widths d_1..d_{L−1}; ``()`` for none (multinomial logistic regression).
    activation : str or tuple of str, default "relu"
        φ of every hidden layer, or one per layer: scikit-learn's identity, logistic (= sigmoid),
        tanh, relu, and numbamlp's sigmoid, leaky_relu, softplus.
    alpha : float or None, default None
        λ of the L2 weight decay (R.1): each step follows ∇(ℓ + (λ/2) Σ W²), ℓ the minibatch's
        mean loss, biases not decayed (``numbamlp.fit``'s ``weight_decay``). None: 1/n for n
        training rows (the MAP estimate under a standard normal prior on the weights;
        training.config.default_weight_decay), as ``fit`` does for data of its own.
        scikit-learn's alpha is the same penalty divided by the minibatch's size B (its loss adds
        (α/2B) Σ W² to the mean loss), so its ``alpha=a`` is ``alpha=a / B`` here.
    dropout : float or tuple of float, default 0.0
        Dropout rate p of the hidden layers (D.1–D.3), one for all or one per hidden layer, each
        in [0, 1) (``numbamlp.fit``'s ``dropout``): inverted dropout whose masks are a function
        of the seed, the step, the sample, the layer and the unit. 0: none. Prediction uses
        every unit.
    batch_size : int or "auto", default "auto"
        "auto": about a tenth of the training rows, 16 to 200 (scikit-learn: min(200, n)).
    learning_rate_init : float or None, default None
        γ_0; None is the optimizer's default (1e-3 for Adam, scikit-learn's too).
    max_iter : int, default 200
        The most epochs a fit makes; it stops earlier once the loss has converged.
    tol : float, default 1e-4
    n_iter_no_change : int, default 10
        A fit stops once for ``n_iter_no_change`` epochs in a row the monitored loss has not
        fallen below its best − ``tol`` (the training loss; with ``early_stopping`` the
        validation loss, where scikit-learn watches the validation accuracy). scikit-learn
        stops one epoch later, after n_iter_no_change + 1 such epochs.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training rows, stop when their loss converges
        and keep the weights of the epoch where it was lowest.
    validation_fraction : float, default 0.1
    random_state : int, RandomState or None, default 0
        Seeds the initial weights and the minibatches: the same seed and data give the same
        network, bit for bit. 0 by default (scikit-learn: None), so that a pipeline is
        reproducible as ``numbamlp train`` is; None draws a fresh seed each fit.
    verbose : int, default 0
        ≥ 1: print what ``numbamlp train`` prints (one line per epoch).
    warm_start : bool, default False
        ``fit`` continues the previous fit exactly — θ, the optimizer's state (Adam's moments
        and step count) and the minibatch stream — where scikit-learn restarts its optimizer.
    shuffle : bool, default True
        A permutation of the rows each epoch (``sampling="shuffle"``); ``False`` is refused
        (numbamlp always draws its minibatches; ``optimizer_options`` and ``sampling="iid"`` are
        ``numbamlp.fit``'s).
    optimizer : str, default "adam"
        sgd, momentum, adagrad, adadelta, rmsprop or adam.
    optimizer_options : dict or None, default None
        Other hyperparameters by their numbamlp names (mu, beta1, beta2, rho, eps).
    schedule : str, default "constant"
        Step sizes: constant, step, inverse-time or cosine.
    head : {"softmax", "modified-softmax"}, default "softmax"  (MLPClassifier only)
        FB §2's softmax (M outputs) or MMiDS's γ̃ (M−1 outputs, last class logit 0).
    dtype : {"float32", "float64"}, default "float32"
    threads : int or None, default None
        Worker threads (None: Numba's setting); results do not depend on it.
    engine : {"fused", "kernels"}, default "fused"

    Attributes after ``fit``: ``classes_`` (the sorted distinct labels; class index k of the
    network is ``classes_[k]``), ``n_features_in_`` (and ``feature_names_in_`` for a
    DataFrame with string column names), ``model_`` (the trained ``numbamlp.MLP``),
    ``loss_curve_`` (mean training loss per epoch, this fit's), ``best_loss_`` (its lowest),
    ``validation_loss_curve_`` (with early_stopping), ``history_`` (each epoch's metrics record,
    as ``numbamlp.fit`` returns them), ``n_iter_`` (epochs this fit ran) and ``converged_``.
    A fit that reaches ``max_iter`` before converging warns (scikit-learn's ConvergenceWarning).

    Invalid parameters raise ValueError when ``fit`` is called; a run whose loss becomes NaN
    raises ``numbamlp.TrainingDiverged``.
    """

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str | Sequence[str] = "relu",
        *,
        alpha: float | None = None,
        dropout: float | Sequence[float] = 0.0,
        batch_size: int | str = "auto",
        learning_rate_init: float | None = None,
        max_iter: int = 200,
        tol: float = 1e-4,
        n_iter_no_change: int = 10,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        random_state: Any = 0,
        verbose: int = 0,
        warm_start: bool = False,
        shuffle: bool = True,
        optimizer: str = "adam",
        optimizer_options: dict[str, float] | None = None,
        schedule: str = "constant",
        head: str = "softmax",
        dtype: str = "float32",
        threads: int | None = None,
        engine: str = "fused",
    ) -> None:
        super().__init__(
            hidden_layer_sizes,
            activation,
            alpha=alpha,
            dropout=dropout,
            batch_size=batch_size,
            learning_rate_init=learning_rate_init,
            max_iter=max_iter,
            tol=tol,
            n_iter_no_change=n_iter_no_change,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            random_state=random_state,
            verbose=verbose,
            warm_start=warm_start,
            shuffle=shuffle,
            optimizer=optimizer,
            optimizer_options=optimizer_options,
            schedule=schedule,
            dtype=dtype,
            threads=threads,
            engine=engine,
        )
        self.head = head

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train on (X, y) until the loss converges (at most ``max_iter`` epochs); labels may be
        of any type (strings, any integers). With ``warm_start`` a fitted estimator continues
        its previous fit exactly."""
        return super().fit(X, y)

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y), continuing the previous ``fit``/``partial_fit`` exactly: θ, the
        optimizer's state and step count, the minibatch stream. Two ``partial_fit`` calls on the
        same data give bitwise the network of ``fit`` with ``max_iter=2`` (constant step size).
        The first call needs ``classes``, every label that will ever be seen."""
        if not hasattr(self, "_result"):
            if classes is None:
                raise ValueError(
                    f"{type(self).__name__}.partial_fit: the first call needs `classes` (every "
                    "label that will be seen)"
                )
            self.classes_ = np.unique(np.asarray(classes))
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"`classes` {np.unique(classes)!r} differs from the first call's {self.classes_!r}"
            )
        return self._partial_fit(X, y)

    def _data(self, X: Any, y: Any, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        """(X, class indices) checked by scikit-learn's validation; a fit that keeps its
        classes (partial_fit, warm_start) takes only labels among them."""
        self._check_dtype()
        X, y = validate_data(self, X, y, dtype=FLOATS, order="C", reset=reset)
        check_classification_targets(y)
        if reset and not (hasattr(self, "classes_") and not hasattr(self, "_result")):
            classes = np.unique(y)
            if classes.shape[0] < 2:
                raise ValueError(
                    f"y has 1 class ({classes[0]!r}); a classifier needs at least 2 classes"
                )
            self.classes_ = classes
        classes = self.classes_
        index = np.searchsorted(classes, y)
        unseen = (index >= classes.shape[0]) | (classes[np.minimum(index, len(classes) - 1)] != y)
        if unseen.any():
            raise ValueError(
                f"y holds labels that are not in classes_ {classes!r}: {np.unique(y[unseen])!r}"
            )
        return X, index.astype(np.int64)

    def _fit_options(self) -> dict[str, Any]:
        return {"n_classes": int(self.classes_.shape[0]), "head": self.head}

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n, M); column k is class ``classes_[k]``."""
        X = self._inputs(X)
        return self.model_.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row, as one of ``classes_``."""
        X = self._inputs(X)
        return self.classes_[self.model_.predict(X)]


class MLPRegressor(*_REGRESSOR, _MLP):  # type: ignore[misc]
    """A feed-forward network regressor trained with numbamlp's Numba kernels: the identity
    head (F.5) on the squared error (L.2), one output per target, the targets standardised
    (Z.2) and restored at ``predict``. ``score`` is R² (E.3), scikit-learn's.

    Its parameters are MLPClassifier's (scikit-learn's names and defaults, then numbamlp's),
    without ``head``; ``partial_fit(X, y)`` continues the previous fit exactly, one epoch.
    ``predict`` returns (n,) for a ``y`` of one dimension, else (n, T).
    """

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over (X, y), continuing the previous ``fit``/``partial_fit`` exactly."""
        return self._partial_fit(X, y)

    def _data(self, X: Any, y: Any, reset: bool) -> tuple[np.ndarray, np.ndarray]:
        self._check_dtype()
        X, y = validate_data(
            self,
            X,
            y,
            dtype=FLOATS,
            order="C",
            reset=reset,
            multi_output=True,
            y_numeric=True,
        )
        y = np.asarray(y, dtype=np.float64)
        if reset:
            self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
            self._one_target = y.ndim == 1
        elif (1 if y.ndim == 1 else y.shape[1]) != self.n_outputs_:
            raise ValueError(f"y has another number of targets than the {self.n_outputs_} fitted")
        return X, y.reshape(y.shape[0], -1)

    def _fit_options(self) -> dict[str, Any]:
        return {"task": "regression"}

    def predict(self, X: Any) -> np.ndarray:
        """The predicted targets, in the units of ``y``: (n,) when ``y`` was one column."""
        X = self._inputs(X)
        values = np.asarray(self.model_.predict(X), dtype=np.float64)
        target = getattr(self._result, "target", None)  # Z.2's μ^y, σ^y: ŷ = μ^y + σ^y f
        if target is not None:
            values = np.asarray(target.restore(values), dtype=np.float64)
        return values.ravel() if self._one_target else values.reshape(values.shape[0], -1)


def _in_our_names(message: str) -> str:
    """A library message with fit's keywords named as the estimator's parameters."""
    import re

    return re.sub(r"`(\w+)", lambda m: "`" + OWN_NAMES.get(m.group(1), m.group(1)), message)


def _plain(value: Any) -> Any:
    """A NumPy integer (e.g. from a parameter grid) as a Python int; anything else as it is."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def _seed(random_state: Any) -> int | None:
    """fit's seed from scikit-learn's random_state: an int as it is, None as None (a fresh seed
    each fit), a RandomState (or Generator) drawn from, as scikit-learn draws from one."""
    if random_state is None or isinstance(random_state, (int, numbers.Integral)):
        return _plain(random_state)
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**31 - 1))
    return int(check_random_state(random_state).randint(2**31 - 1))
