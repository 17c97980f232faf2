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

    @property
    def integer(self) -> bool:
        return np.dtype(self.dtype).kind in "iu"

    def as_metadata(self) -> dict[str, Any]:
        if not self.known:
            return {"recorded": False}
        record: dict[str, Any] = {"scale": self.scale, "dtype": self.dtype}
        if self.low is not None and self.high is not None:
            record["range"] = [self.low, self.high]
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


def record_for(X_raw: np.ndarray, scale: float) -> InputRecord:
    """The record of training data X_raw · scale, with the range of its raw values."""
    if X_raw.size == 0:
        return InputRecord(float(scale), str(X_raw.dtype))
    return InputRecord(float(scale), str(X_raw.dtype), float(X_raw.min()), float(X_raw.max()))


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
    bounds = record.get("range")
    if bounds is None:
        return InputRecord(float(scale), dtype)
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
    return InputRecord(float(scale), dtype, float(bounds[0]), float(bounds[1]))


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


def prepare_input(X: np.ndarray, record: InputRecord, what: str) -> tuple[np.ndarray, float]:
    """(X', s') with X' · s' the features the model expects for input X (see the module's
    rule); raises NumbamlpError for input whose range contradicts the training range, and warns
    (InputRangeWarning) of input far outside it or a model that records no training data."""
    X, scale = _prepare(X, record, what)
    message = check_range(X, scale, record, what)
    if message is not None:
        warnings.warn(message, InputRangeWarning, stacklevel=2)
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
