"""onehot / onecold, accuracy and the confusion matrix (Flux's names, MMiDS §7.3); MSE, MAE and
R² of regression (E.1–E.3)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def onehot(y: np.ndarray, n_classes: int, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """Rows 1_{Y_s}: shape (n, M), a single 1 in column Y_s."""
    y = np.asarray(y, dtype=np.int64)
    out = np.zeros((y.shape[0], n_classes), dtype=dtype)
    out[np.arange(y.shape[0]), y] = 1
    return out


def onecold(f: np.ndarray) -> np.ndarray:
    """The column of the largest entry of each row (the first on ties): the inverse of onehot."""
    return np.argmax(np.asarray(f), axis=1)


def accuracy(y_pred: np.ndarray, y_true: np.ndarray) -> float:
    """Fraction of rows where the predicted class equals the true one."""
    y_pred, y_true = np.asarray(y_pred), np.asarray(y_true)
    if y_pred.shape != y_true.shape:
        raise ValueError(f"shapes differ: {y_pred.shape} vs {y_true.shape}")
    return float(np.mean(y_pred == y_true)) if y_true.size else float("nan")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """C[a, b] = number of rows of true class a predicted as class b."""
    C = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(C, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return C


def precision_recall_f1(C: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 of a confusion matrix C (rows true, columns
    predicted), each (M,) float64, 0 where a denominator is 0 (scikit-learn's zero_division=0)."""
    C = np.asarray(C, dtype=np.float64)
    tp = np.diag(C)
    predicted, actual = C.sum(axis=0), C.sum(axis=1)  # TP_k + FP_k, TP_k + FN_k
    # (E.4) P_k = TP_k/(TP_k+FP_k), R_k = TP_k/(TP_k+FN_k), F1_k = 2P_kR_k/(P_k+R_k)
    P = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    R = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    F1 = np.divide(2 * P * R, P + R, out=np.zeros_like(tp), where=(P + R) > 0)
    return P, R, F1


def format_class_report(C: np.ndarray, class_names: tuple[str, ...] | None = None) -> str:
    """Per-class precision, recall, F1 (E.4) and support, one row per class."""
    P, R, F1 = precision_recall_f1(C)
    M = C.shape[0]
    names = list(class_names) if class_names else [str(k) for k in range(M)]
    width = max(len("class"), *(len(n) for n in names))
    lines = [f"{'class':>{width}}  precision  recall      f1  support"]
    for k in range(M):
        support = int(np.asarray(C)[k].sum())
        lines.append(f"{names[k]:>{width}}  {P[k]:9.4f}  {R[k]:6.4f}  {F1[k]:6.4f}  {support:7d}")
    return "\n".join(lines)


def format_confusion_matrix(C: np.ndarray, class_names: tuple[str, ...] | None = None) -> str:
    """A text table: rows are true classes, columns predicted ones, both named."""
    M = C.shape[0]
    names = list(class_names) if class_names else [str(k) for k in range(M)]
    label_width = max(len(n) for n in names)
    width = max(len(str(C.max())), *(len(n) for n in names))
    head = " " * label_width + " | " + " ".join(f"{n:>{width}}" for n in names)
    lines = ["rows: true class, columns: predicted class", head, "-" * len(head)]
    for a in range(M):
        cells = " ".join(f"{C[a, b]:>{width}}" for b in range(M))
        lines.append(f"{names[a]:>{label_width}} | {cells}")
    return "\n".join(lines)


# --- Regression (original units: the caller inverts Z.2 first), in float64 ----------------------


def _regression_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 (n, T); a 1-d array is one target."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    y_true = y_true.reshape(y_true.shape[0], -1)
    y_pred = y_pred.reshape(y_pred.shape[0], -1)
    if y_pred.shape != y_true.shape:
        raise ValueError(f"shapes differ: {y_pred.shape} vs {y_true.shape}")
    return y_true, y_pred


def mean_squared_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """(E.1) MSE_i = (1/n) Σ_s (ŷ_{s,i} − y_{s,i})², averaged over the targets i."""
    y_true, y_pred = _regression_pair(y_true, y_pred)
    # (E.1) MSE_i = (1/n) Σ_s (ŷ_{s,i} − y_{s,i})²
    return float(np.mean(np.mean((y_pred - y_true) ** 2, axis=0)))


def mean_absolute_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """(E.2) MAE_i = (1/n) Σ_s |ŷ_{s,i} − y_{s,i}|, averaged over the targets i."""
    y_true, y_pred = _regression_pair(y_true, y_pred)
    # (E.2) MAE_i = (1/n) Σ_s |ŷ_{s,i} − y_{s,i}|
    return float(np.mean(np.mean(np.abs(y_pred - y_true), axis=0)))


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """(E.3) R²_i = 1 − Σ_s (y_{s,i} − ŷ_{s,i})² / Σ_s (y_{s,i} − ȳ_i)², averaged over the targets
    i (scikit-learn's r2_score, uniform average; a constant target scores 1 if predicted
    exactly, else 0, as scikit-learn's force_finite)."""
    y_true, y_pred = _regression_pair(y_true, y_pred)
    # (E.3) R²_i = 1 − Σ_s (y_{s,i} − ŷ_{s,i})² / Σ_s (y_{s,i} − ȳ_i)²
    residual = np.sum((y_true - y_pred) ** 2, axis=0)
    spread = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    safe = np.where(spread > 0, spread, 1.0)
    r2 = np.where(spread > 0, 1.0 - residual / safe, np.where(residual == 0, 1.0, 0.0))
    return float(np.mean(r2))
