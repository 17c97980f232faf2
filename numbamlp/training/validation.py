"""A validation set held out of the training rows, and early stopping on its loss.

``split_validation`` holds out a fraction of the training set, drawn from the run's own
validation stream (randomness.validation_generator), so it is a function of the seed and the
fraction alone and never moves the initial weights or the minibatch order of a seed. A
fraction of 0 holds out nothing and draws nothing: the run is the one without the option.

``EarlyStopping`` is sklearn's MLPClassifier(early_stopping=True) and Keras's
EarlyStopping(patience=N, restore_best_weights=True): after each epoch the validation loss is
measured; the run stops when it has not improved (fallen strictly below the best so far by more
than ``tol``, 0 for ``patience``) for ``patience`` epochs in a row, and the network keeps the
weights of its best epoch, also when the run ends without stopping. Its state is plain JSON plus
the best θ, so a checkpoint carries it and a resumed run stops at the same epoch with the same
weights.

The convergence stop of a run without ``epochs`` (fit's ``tol`` and ``n_iter_no_change``, as
scikit-learn's) is the same rule on the training loss (``keep_best=False``: the last θ is the
model, as in scikit-learn) or, with a validation set, on the validation loss.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from numbamlp.errors import NumbamlpError


def validation_size(n: int, fraction: float) -> int:
    """Rows held out of n for a fraction in (0, 1): round(fraction · n), at least 1 and leaving
    at least 1 to train on."""
    return min(max(round(fraction * n), 1), n - 1)


def split_validation(
    X: np.ndarray, y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X_train, y_train, X_val, y_val): ``validation_size(n, fraction)`` rows drawn uniformly
    without replacement (one permutation from ``rng``) become the validation set; the rest, in
    their original order, the training set. Both keep X's dtype (uint8 pixels stay bytes)."""
    n = X.shape[0]
    if not 0.0 < fraction < 1.0:
        raise NumbamlpError(f"the validation fraction must be in (0, 1), got {fraction}")
    if n < 2:
        raise NumbamlpError(
            f"the training set has {n} row; holding out a validation set needs at least 2"
        )
    held = np.zeros(n, dtype=bool)
    held[rng.permutation(n)[: validation_size(n, fraction)]] = True
    return (
        np.ascontiguousarray(X[~held]),
        np.ascontiguousarray(y[~held]),
        np.ascontiguousarray(X[held]),
        np.ascontiguousarray(y[held]),
    )


class EarlyStopping:
    """Tracks the best validation loss of a run and the θ it was reached with.

    ``update(epoch, loss, theta)`` after every epoch returns True when the run should stop: when
    for ``patience`` epochs in a row the loss did not fall below best − ``tol`` (scikit-learn's
    ``n_iter_no_change`` and ``tol``; the best loss itself follows every strict improvement).
    ``best_theta`` is a buffer made once (θ is copied into it, no allocation per epoch); with
    ``keep_best=False`` there is none and the run keeps its last θ.
    """

    def __init__(
        self, patience: int, theta: np.ndarray, tol: float = 0.0, keep_best: bool = True
    ) -> None:
        if not isinstance(patience, int) or patience < 1:
            raise NumbamlpError(f"patience must be a positive integer, got {patience}")
        self.patience = patience
        self.tol = float(tol)
        self.keep_best = keep_best
        self.best_loss = math.inf
        self.best_epoch = 0  # 0: no epoch measured yet
        self.wait = 0  # epochs since the loss last fell below best − tol
        self.stopped = False
        self.best_theta = np.empty_like(theta) if keep_best else None

    def update(self, epoch: int, loss: float, theta: np.ndarray) -> bool:
        if loss < self.best_loss - self.tol:
            self.wait = 0
        else:
            self.wait += 1
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = float(loss), epoch
            if self.best_theta is not None:
                np.copyto(self.best_theta, theta)
        self.stopped = self.wait >= self.patience
        return self.stopped

    def state(self) -> dict[str, Any]:
        """The JSON part of the state (best_theta is stored as an array beside it)."""
        state = {
            "patience": self.patience,
            "best_loss": self.best_loss if self.best_epoch else None,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stopped": self.stopped,
        }
        if self.tol or not self.keep_best:  # a patience run's state is as before
            state |= {"tol": self.tol, "keep_best": self.keep_best}
        return state

    def restore(self, state: Any, best_theta: np.ndarray | None) -> None:
        """Put back a ``state()`` and its best θ (from a checkpoint); anything that does not fit
        raises NumbamlpError."""
        try:
            patience, best_epoch = state["patience"], state["best_epoch"]
            wait, stopped, best_loss = state["wait"], state["stopped"], state["best_loss"]
        except (KeyError, TypeError) as exc:
            raise NumbamlpError(f"the early-stopping state is incomplete ({exc})") from None
        ints = (patience, best_epoch, wait)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
            raise NumbamlpError("the early-stopping state's counts are not counts")
        if (
            patience != self.patience
            or not isinstance(stopped, bool)
            or state.get("tol", 0.0) != self.tol
            or state.get("keep_best", True) != self.keep_best
        ):
            raise NumbamlpError("the early-stopping state does not fit this run")
        if best_epoch:
            if not isinstance(best_loss, (int, float)) or not math.isfinite(best_loss):
                raise NumbamlpError("the early-stopping state's best loss is not a number")
            self.best_loss = float(best_loss)
        if best_epoch and self.best_theta is not None:
            if best_theta is None or best_theta.shape != self.best_theta.shape:
                raise NumbamlpError("the early-stopping state's best weights are missing")
            if best_theta.dtype != self.best_theta.dtype or not np.isfinite(best_theta).all():
                raise NumbamlpError("the early-stopping state's best weights are malformed")
            np.copyto(self.best_theta, best_theta)
        self.best_epoch, self.wait, self.stopped = best_epoch, wait, stopped
