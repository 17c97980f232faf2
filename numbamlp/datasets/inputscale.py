"""The input scaling a model was trained with, and the one rule that applies it to new input.

The kernels see x = X_raw · scale (datasets.Dataset): the bundled image sets keep their pixels as
uint8 with scale 1/255, so the model learnt on features in [0, 1]; user files are floats with
scale 1. A model file records both (``metadata["input"] = {"scale": …, "dtype": …}``), and
``predict`` and ``evaluate`` pass every input, whatever its file format, through
:func:`prepare_input`:

* **trained on floats** (the record's dtype is a float type, scale 1): the input is used as it
  is, whatever its dtype or range (standardised data, say, legitimately exceeds the training
  range);
* **trained on integers** (pixels 0..R of dtype uint8, R = 255, scale s = 1/255, features in
  [0, s·R] = [0, 1]):

  - integer input is raw pixel values: it must lie in 0..R, and is scaled by s;
  - float input within [0, s·R] is already scaled: used as it is;
  - float input of whole numbers within 0..R that exceeds s·R is raw pixel values stored as
    floats (a CSV file, which has no dtype, or ``X.astype(float)``): scaled by s;
  - anything else (127.5, negative values, 300) contradicts the training range and is refused,
    naming both accepted forms.

A record may also hold the mean μ_j and standard deviation σ_j of each training feature (Z.1,
``standardize``): :func:`prepare_input` then returns x̃ = (X · scale − μ)/σ, the features the
network was trained on. :class:`TargetRecord` is a regression's Z.2: its targets' mean and
standard deviation, applied for training and inverted at prediction.

Model files written before the record existed assume what they were trained on: uint8 pixels ×
1/255 when their metadata names a built-in data set, else floats with scale 1.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from numbamlp.errors import NumbamlpError

#: dtypes a record may name: what a Dataset's X_*_raw can be.
RECORD_DTYPES = ("uint8", "float32", "float64")
#: Data set names `numbamlp train` writes into a model's metadata (Dataset.name of the IDX sets).
BUILTIN_DATASETS = ("MNIST", "Fashion-MNIST")


class InputRangeWarning(UserWarning):
    """Input far outside the range the model was trained on, or a model that does not record
    what it was trained on: the predictions may be meaningless."""


@dataclass(frozen=True)
class InputRecord:
    """The features the model saw at training: X_raw of ``dtype``, times ``scale``, with raw
    values from ``low`` to ``high`` (None: not recorded). ``known`` is False for a model saved
    without its training data (``save_model`` without ``data``): scale 1 and float are then
    assumptions, not a record."""

    scale: float
    dtype: str
    low: float | None = None
    high: float | None = None
    known: bool = True
    #: Z.1's μ_j and σ_j of the features X_raw · scale over the training rows (None: the
    #: features are used unstandardised).
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @property
    def standardized(self) -> bool:
        return self.mean is not None and self.std is not None

    def standardise(self, X: np.ndarray, scale: float = 1.0, dtype: Any = None) -> np.ndarray:
        """Z.1 of the features X · scale, computed in float64 and cast to ``dtype`` (float64
        when None). Without a mean and std: X · scale as floats."""
        x = (
            np.asarray(X, dtype=np.float64) * scale
            if scale != 1.0
            else np.array(X, dtype=np.float64)
        )
        if self.standardized:
            mu, sigma = np.asarray(self.mean), np.asarray(self.std)
            x -= mu  # (Z.1) x̃_{s,j} = (x_{s,j} − μ_j)/σ_j
            x /= sigma
        return np.ascontiguousarray(x, dtype=np.float64 if dtype is None else dtype)

    @property
    def integer(self) -> bool:
        return np.dtype(self.dtype).kind in "iu"

    def as_metadata(self) -> dict[str, Any]:
        if not self.known:
            return {"recorded": False}
        record: dict[str, Any] = {"scale": self.scale, "dtype": self.dtype}
        if self.low is not None and self.high is not None:
            record["range"] = [self.low, self.high]
        if self.standardized:
            record["mean"], record["std"] = list(self.mean or ()), list(self.std or ())
        return record

    def describe(self) -> str:
        """E.g. 'uint8 pixels 0..255 scaled to [0, 1]' (for messages)."""
        if not self.integer:
            return f"{self.dtype} features (scale {self.scale:g})"
        top = np.iinfo(self.dtype).max
        return f"{self.dtype} pixels 0..{top} scaled to [0, {self.scale * top:g}]"


FLOAT_INPUT = InputRecord(1.0, "float64")
PIXEL_INPUT = InputRecord(1.0 / 255.0, "uint8")


#: What a model saved without its training data assumes (and says it assumes).
UNKNOWN_INPUT = InputRecord(1.0, "float64", known=False)


def record_for(X_raw: np.ndarray, scale: float, standardize: bool = False) -> InputRecord:
    """The record of training data X_raw · scale, with the range of its raw values and, with
    ``standardize``, Z.1's mean and standard deviation of each feature."""
    if X_raw.size == 0:
        return InputRecord(float(scale), str(X_raw.dtype))
    mean = std = None
    if standardize:
        mu, sigma = standardisation(np.asarray(X_raw, dtype=np.float64) * scale)
        mean, std = tuple(float(v) for v in mu), tuple(float(v) for v in sigma)
    return InputRecord(
        float(scale), str(X_raw.dtype), float(X_raw.min()), float(X_raw.max()), mean=mean, std=std
    )


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """μ_j and σ_j of Z.1 (Z.2 for targets) over the rows of x, in float64, as scikit-learn's
    StandardScaler: μ_j = (1/n) Σ_r x_{r,j}, σ_j = √((1/n) Σ_r (x_{r,j} − μ_j)²), and σ_j := 1
    for a constant column (σ_j = 0, or only rounding error above it)."""
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(axis=0)  # (Z.1) μ_j = (1/n) Σ_r x_{r,j}
    sigma = np.sqrt(((x - mu) ** 2).mean(axis=0))  # (Z.1) σ_j = √((1/n) Σ_r (x_{r,j} − μ_j)²)
    constant = sigma <= 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mu), 1.0)
    sigma[constant] = 1.0  # (Z.1) σ_j := 1 where σ_j = 0
    return mu, sigma


@dataclass(frozen=True)
class TargetRecord:
    """Z.2 of a regression's targets: ỹ_{s,i} = (y_{s,i} − μ^y_i)/σ^y_i for training, and the
    inverse ŷ_{s,i} = μ^y_i + σ^y_i f_{s,i} for predictions; ``names`` are the target columns.
    Without mean and std (targets not standardised) both are the identity."""

    names: tuple[str, ...]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @classmethod
    def fit(cls, Y: np.ndarray, names: tuple[str, ...], standardize: bool = True) -> TargetRecord:
        if not standardize or Y.shape[0] == 0:
            return cls(tuple(names))
        mu, sigma = standardisation(Y[:, None] if Y.ndim == 1 else Y)
        return cls(tuple(names), tuple(float(v) for v in mu), tuple(float(v) for v in sigma))

    def standardise(self, Y: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
        """ỹ = (y − μ^y)/σ^y (Z.2), computed in float64, cast to ``dtype``; Y (n, T)."""
        y = np.array(Y, dtype=np.float64)
        y = y[:, None] if y.ndim == 1 else y
        if self.mean is not None and self.std is not None:
            y -= np.asarray(self.mean)  # (Z.2) ỹ_{s,i} = (y_{s,i} − μ^y_i)/σ^y_i
            y /= np.asarray(self.std)
        return np.ascontiguousarray(y, dtype=dtype)

    def restore(self, F: np.ndarray) -> np.ndarray:
        """ŷ = μ^y + σ^y f (Z.2's inverse) in float64, F (n, T)."""
        f = np.array(F, dtype=np.float64)
        f = f[:, None] if f.ndim == 1 else f
        if self.mean is not None and self.std is not None:
            f *= np.asarray(self.std)  # (Z.2) ŷ_{s,i} = μ^y_i + σ^y_i f_{s,i}
            f += np.asarray(self.mean)
        return f

    def as_metadata(self) -> dict[str, Any]:
        record: dict[str, Any] = {"names": list(self.names)}
        if self.mean is not None and self.std is not None:
            record["mean"], record["std"] = list(self.mean), list(self.std)
        return record


def target_from_metadata(metadata: Mapping[str, Any]) -> TargetRecord | None:
    """A model's Z.2 record (metadata "target"), None for a classifier; a malformed one raises
    ValueError."""
    record = metadata.get("target")
    if record is None:
        return None
    if not isinstance(record, dict):
        raise ValueError("metadata target is not a mapping")
    names = record.get("names")
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise ValueError("metadata target names is not a list of names")
    mean, std = _statistics(record, "target", len(names))
    return TargetRecord(tuple(names), mean, std)


def _statistics(
    record: Mapping[str, Any], what: str, n: int | None
) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """A record's mean and std lists (both or neither; finite numbers, std > 0, n of each)."""
    mean, std = record.get("mean"), record.get("std")
    if mean is None and std is None:
        return None, None

    def numbers(values: Any, name: str) -> tuple[float, ...]:
        if not (
            isinstance(values, list)
            and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                for v in values
            )
            and (n is None or len(values) == n)
        ):
            raise ValueError(f"metadata {what} {name} is not a list of finite numbers")
        return tuple(float(v) for v in values)

    mu, sigma = numbers(mean, "mean"), numbers(std, "std")
    if len(mu) != len(sigma) or not all(s > 0 for s in sigma):
        raise ValueError(f"metadata {what} std is not positive, one per mean")
    return mu, sigma


def record_from_metadata(metadata: Mapping[str, Any]) -> InputRecord:
    """The record in a model's metadata, or for an older file the one it was trained with.
    A malformed record raises ValueError (the model reader reports it)."""
    record = metadata.get("input")
    if record is None:
        return PIXEL_INPUT if metadata.get("dataset") in BUILTIN_DATASETS else FLOAT_INPUT
    if not isinstance(record, dict):
        raise ValueError("metadata input is not a mapping")
    if record.get("recorded") is False:
        return UNKNOWN_INPUT
    scale, dtype = record.get("scale"), record.get("dtype")
    if (
        not isinstance(scale, (int, float))
        or isinstance(scale, bool)
        or not (math.isfinite(scale) and scale > 0)
    ):
        raise ValueError(f"metadata input scale {scale!r:.40} is not a positive number")
    if not isinstance(dtype, str) or dtype not in RECORD_DTYPES:
        raise ValueError(
            f"metadata input dtype {dtype!r:.40} is not one of {', '.join(RECORD_DTYPES)}"
        )
    mean, std = _statistics(record, "input", None)
    bounds = record.get("range")
    if bounds is None:
        return InputRecord(float(scale), dtype, mean=mean, std=std)
    if not (
        isinstance(bounds, list)
        and len(bounds) == 2
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in bounds
        )
        and bounds[0] <= bounds[1]
    ):
        raise ValueError(f"metadata input range {bounds!r:.40} is not [low, high]")
    return InputRecord(float(scale), dtype, float(bounds[0]), float(bounds[1]), mean=mean, std=std)


def check_range(X: np.ndarray, scale: float, record: InputRecord, what: str) -> str | None:
    """A warning when the features X · scale lie far outside the training range: beyond it by
    more than the range's own width (0..255 pixels for a model trained on [0, 1]), or for a
    model that records no training data. None when nothing is to be said."""
    if not record.known:
        return (
            f"the model records no training data (saved without `data`), so {what} is used as "
            "it is; if the model was trained on scaled features, scale them the same way"
        )
    if record.low is None or record.high is None or X.size == 0:
        return None
    low, high = record.low * record.scale, record.high * record.scale
    margin = max(high - low, abs(high), abs(low), 1e-12)
    lo, hi = float(X.min()) * scale, float(X.max()) * scale
    if lo < low - margin or hi > high + margin:
        return (
            f"{what} holds features from {lo:g} to {hi:g}, far outside the training range "
            f"[{low:g}, {high:g}]; the predictions may be meaningless (scale the input as the "
            "training data was)"
        )
    return None


def prepare_input(
    X: np.ndarray, record: InputRecord, what: str, dtype: Any = None
) -> tuple[np.ndarray, float]:
    """(X', s') with X' · s' the features the model expects for input X (see the module's
    rule); raises NumbamlpError for input whose range contradicts the training range, and warns
    (InputRangeWarning) of input far outside it or a model that records no training data. A
    record with a mean and std standardises (Z.1, in float64, then cast to ``dtype``: the
    model's; float64 when None): X' = x̃, s' = 1."""
    X, scale = _prepare(X, record, what)
    message = check_range(X, scale, record, what)
    if message is not None:
        warnings.warn(message, InputRangeWarning, stacklevel=2)
    if record.standardized:
        if record.mean is not None and len(record.mean) != X.shape[-1]:
            raise NumbamlpError(
                f"{what} has {X.shape[-1]} features but the model's input record standardises "
                f"{len(record.mean)}"
            )
        return record.standardise(X, scale, dtype), 1.0
    return X, scale


def _prepare(X: np.ndarray, record: InputRecord, what: str) -> tuple[np.ndarray, float]:
    if not record.integer:
        return (X if X.dtype.kind == "f" else X.astype(np.float64)), record.scale
    if X.size == 0:
        return X, record.scale
    top = np.iinfo(record.dtype).max
    lo, hi = X.min(), X.max()
    if X.dtype.kind in "iu":
        if 0 <= lo and hi <= top:
            return X.astype(record.dtype), record.scale
    elif 0 <= lo and hi <= record.scale * top:
        return X, 1.0
    elif 0 <= lo and hi <= top and bool(np.all(np.floor(X) == X)):
        return X.astype(record.dtype), record.scale
    raise NumbamlpError(
        f"{what} holds values from {lo:g} to {hi:g}, but the model was trained on "
        f"{record.describe()}: give pixels 0..{top} (integers, e.g. X.astype(numpy.uint8)) or "
        f"features already in [0, {record.scale * top:g}] (pixels / {1 / record.scale:g})"
    )
