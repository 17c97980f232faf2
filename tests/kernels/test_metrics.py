"""onehot / onecold, accuracy, the confusion matrix (Flux's names, MMiDS §7.3) and throttle."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numbamlp.kernels.metrics import (
    accuracy,
    confusion_matrix,
    format_confusion_matrix,
    mean_absolute_error,
    mean_squared_error,
    onecold,
    onehot,
    precision_recall_f1,
    r2_score,
)
from numbamlp.training.callbacks import Throttle


def test_onehot_rows_are_indicator_vectors():
    """1_Y (FB §2 Q2): all entries 0 except a 1 at the label."""
    Y = onehot(np.array([2, 0, 1, 2]), 3)
    np.testing.assert_array_equal(Y, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert Y.dtype == np.float32
    assert onehot([1], 2, dtype=np.float64).dtype == np.float64
    assert onehot(np.array([], dtype=np.int64), 4).shape == (0, 4)


def test_onehot_onecold_round_trip():
    """onecold(onehot(y)) = y; and onecold(f) is the argmax of each row (first on ties)."""
    y = np.random.default_rng(0).integers(0, 10, size=500)
    assert np.array_equal(onecold(onehot(y, 10)), y)
    f = np.array([[0.1, 0.7, 0.2], [0.4, 0.4, 0.2], [0.0, 0.0, 1.0]])
    assert onecold(f).tolist() == [1, 0, 2]


def test_accuracy():
    """Fraction of rows where onecold(f) = y (MMiDS §7.3 ``accuracy``)."""
    assert accuracy(np.array([1, 2, 3, 4]), np.array([1, 2, 0, 4])) == 0.75
    assert accuracy([0], [0]) == 1.0
    assert accuracy([0, 0], [1, 1]) == 0.0
    assert math.isnan(accuracy(np.array([]), np.array([])))
    with pytest.raises(ValueError, match="shapes differ"):
        accuracy(np.array([1, 2]), np.array([1, 2, 3]))


def test_confusion_matrix_entries_and_sums():
    """C[a, b] counts rows of true class a predicted as b: rows sum to the class counts, columns
    to the prediction counts, the diagonal to the number correct."""
    y_true = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 1, 1, 1, 2, 2, 2, 0, 2])
    C = confusion_matrix(y_true, y_pred, 3)
    np.testing.assert_array_equal(C, [[1, 1, 0], [0, 2, 1], [1, 0, 3]])
    assert C.dtype == np.int64
    assert C.sum() == y_true.size
    np.testing.assert_array_equal(C.sum(axis=1), np.bincount(y_true, minlength=3))
    np.testing.assert_array_equal(C.sum(axis=0), np.bincount(y_pred, minlength=3))
    assert np.trace(C) / C.sum() == accuracy(y_pred, y_true)


def test_confusion_matrix_random_agrees_with_counting():
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    C = confusion_matrix(y_true, y_pred, 5)
    for a in range(5):
        for b in range(5):
            assert C[a, b] == np.sum((y_true == a) & (y_pred == b))


def test_format_confusion_matrix():
    C = np.array([[12, 0], [3, 5]])
    lines = format_confusion_matrix(C, ("cat", "dog")).splitlines()
    assert lines[0] == "rows: true class, columns: predicted class"
    assert lines[1] == "    | cat dog"  # the predicted classes are named too
    assert lines[3] == "cat |  12   0"
    assert lines[4] == "dog |   3   5"
    assert format_confusion_matrix(C).splitlines()[3].startswith("0 |")
    # digits as names (MNIST) give the table they gave before names headed the columns
    assert format_confusion_matrix(C, ("0", "1")).splitlines()[1:] == [
        "  |  0  1",
        "---------",
        "0 | 12  0",
        "1 |  3  5",
    ]


def test_precision_recall_f1_match_scikit_learn():
    """E.4 per class, 0 where a denominator is 0 (class 3 is never predicted, class 4 never
    occurs), as scikit-learn's with zero_division=0."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.integers(0, 4, 200), rng.integers(0, 5, 200)
    y_pred[y_pred == 3] = 2
    C = confusion_matrix(y_true, y_pred, 5)
    P, R, F1 = precision_recall_f1(C)
    labels = list(range(5))
    for ours, theirs in (
        (P, metrics.precision_score),
        (R, metrics.recall_score),
        (F1, metrics.f1_score),
    ):
        expected = theirs(y_true, y_pred, labels=labels, average=None, zero_division=0)
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-15)
    assert P[3] == 0 and R[4] == 0 and F1[4] == 0


def test_precision_recall_f1_by_hand():
    """2 classes: C = [[12, 0], [3, 5]]: P = (12/15, 5/5), R = (12/12, 5/8)."""
    P, R, F1 = precision_recall_f1(np.array([[12, 0], [3, 5]]))
    assert P.tolist() == [0.8, 1.0] and R.tolist() == [1.0, 0.625]
    assert F1[0] == pytest.approx(2 * 0.8 / 1.8) and F1[1] == pytest.approx(1.25 / 1.625)


def test_regression_metrics_match_scikit_learn():
    """E.1–E.3 averaged over the targets, as scikit-learn's uniform average (its argument
    order: y_true, y_pred)."""
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    y = rng.normal(size=(40, 3)) * [1.0, 10.0, 100.0]
    f = y + rng.normal(size=(40, 3))
    assert mean_squared_error(y, f) == pytest.approx(metrics.mean_squared_error(y, f), 1e-12)
    assert mean_absolute_error(y, f) == pytest.approx(metrics.mean_absolute_error(y, f), 1e-12)
    assert r2_score(y, f) == pytest.approx(metrics.r2_score(y, f), 1e-12)
    # one target: (n,) and (n, 1) alike; a perfect fit scores R² = 1
    assert r2_score(y[:, :1], y[:, 0]) == 1.0 and mean_squared_error(y[:, 0], y[:, 0]) == 0.0
    assert r2_score(y[:, 1], f[:, 1]) == pytest.approx(metrics.r2_score(y[:, 1], f[:, 1]))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_throttle_calls_at_most_once_per_interval():
    """MMiDS §7.3 ``throttle(evalcb, 2)``: the first call goes through, later ones only once
    2 seconds have passed since the last call that went through."""
    clock, calls = FakeClock(), []
    throttled = Throttle(lambda x: calls.append(x) or x, 2.0, clock=clock)
    assert throttled("a") == "a"  # t = 100: first call
    clock.now = 101.9
    assert throttled("b") is None  # 1.9 s later: suppressed
    clock.now = 102.0
    assert throttled("c") == "c"  # exactly 2 s after the last accepted call
    clock.now = 103.5
    throttled("d")  # 1.5 s after "c": suppressed, and does not restart the interval
    clock.now = 104.0
    throttled("e")
    clock.now = 110.0
    throttled("f")
    assert calls == ["a", "c", "e", "f"]


def test_throttle_passes_arguments():
    clock, seen = FakeClock(), []
    throttled = Throttle(lambda *a, **k: seen.append((a, k)), 1.0, clock=clock)
    throttled(1, 2, key="v")
    assert seen == [((1, 2), {"key": "v"})]
