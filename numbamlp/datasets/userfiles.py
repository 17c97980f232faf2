"""Your own data files: .npz archives and CSV tables, for training (``load_user_dataset``),
testing (``load_arrays_file``) and prediction (``load_features_file``).

Every user-fixable problem raises :class:`~numbamlp.errors.NumbamlpError` naming the file, the
row or column, what is wrong and the fix. Arrays are read with a size-checking reader (npzfile),
never unpickled.
"""

from __future__ import annotations

import csv
import os
import reprlib
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from numbamlp.datasets.idx import (
    _os_error,
    read_idx,
    require_regular_file,
)
from numbamlp.datasets.loaders import MAX_CLASSES, Dataset, _images_to_raw
from numbamlp.datasets.npzfile import NpzReader, read_npy
from numbamlp.errors import NumbamlpError

__all__ = ["load_arrays_file", "load_features_file", "load_user_dataset"]

#: Names a data row in a message, from its 0-based index (CSV files count their header too).
RowDescriber = Callable[[int], str]


def _npz_arrays(p: Path, names: tuple[str, ...], what: str, fix: str) -> list[np.ndarray]:
    """The arrays ``names`` of an .npz archive (NpzReader: nothing unpickled, no allocation
    beyond what the file holds); any problem is an error naming the file, the array and ``fix``."""

    def error(reason: str) -> NumbamlpError:
        return NumbamlpError(f"{what} {p}: {reason}; {fix}.")

    with NpzReader(p, error) as npz:
        absent = [k for k in names if k not in npz.names]
        if absent:
            raise NumbamlpError(
                f"{what} {p} has no array named {' or '.join(absent)} (it holds: "
                f"{', '.join(npz.names) or 'nothing'}); {fix}."
            )
        return [npz.read(k) for k in names]


def _short(text: str) -> str:
    """repr of a name or cell from a file, shortened: a message stays one short line even when
    an unclosed quote makes the whole file one field."""
    return reprlib.repr(text)


def _column_list(header: list[str]) -> str:
    """The column names for a message: plain if short and printable, else as _short()."""
    shown = [h if h.isprintable() and len(h) <= 30 else _short(h) for h in header[:20]]
    more = f", … ({len(header)} columns)" if len(header) > 20 else ""
    return ", ".join(shown) + more


def _csv_line_describer(p: Path, has_header: bool = True) -> RowDescriber:
    """Map a 0-based data row index to 'row i (line L)', rescanning the file only when asked."""

    def describe(row: int) -> str:
        try:
            with open(p, newline="", encoding="utf-8-sig") as f:
                reader = csv.reader(f)
                if has_header:
                    next(reader, None)
                i = -1
                for rec in reader:
                    if rec:  # blank lines are skipped by the parser too
                        i += 1
                        if i == row:
                            return f"row {row} (line {reader.line_num})"
        except (OSError, csv.Error, UnicodeDecodeError):
            pass
        return f"row {row}"

    return describe


def _csv_diagnose(p: Path, header: list[str], has_header: bool = True) -> str | None:
    """Find the first ragged or unparsable line of a CSV file (slow path, only after a failure)."""
    ncol = len(header)
    with open(p, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        if has_header:
            next(reader, None)
        for rec in reader:
            if not rec:
                continue
            if len(rec) != ncol:
                return (
                    f"line {reader.line_num} has {len(rec)} fields but the header has {ncol}; "
                    f"every row needs one value per column"
                )
            for j, cell in enumerate(rec):
                try:
                    float(cell)
                    ok = "_" not in cell  # Python accepts 1_000; numpy's parser does not
                except ValueError:
                    ok = False
                if not ok:
                    return (
                        f"line {reader.line_num}, column {_short(header[j])}: {_short(cell)} is "
                        f"not a number; "
                        f"every value must be numeric"
                    )
    return None


def _is_data_row(header: list[str]) -> bool:
    """Whether a CSV file's first line is data rather than column names: every cell a number,
    and not pandas' default names 0, 1, 2, … (``DataFrame(X).to_csv(index=False)``)."""
    try:
        values = [float(cell) for cell in header]
    except ValueError:
        return False
    return values != list(range(len(header)))


def _csv_arrays(
    p: Path, label_column: str, require_label: bool = True
) -> tuple[np.ndarray, np.ndarray | None, list[str], bool]:
    """X, y, the feature column names and whether the file has a header row.

    With ``require_label=False`` a file without the label column gives y = None, and a file
    whose first line is all numbers (see _is_data_row) is read as having no header: its
    columns are named 0, 1, 2, … With ``require_label`` such a file is refused, since without
    a header there is no telling which column holds the labels.
    """
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), None)
    except OSError as e:
        raise _os_error(p, e, "data file") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise NumbamlpError(
            f"data file {p} is not a readable UTF-8 CSV file ({e}); save it as CSV."
        ) from None
    if not header:
        raise NumbamlpError(
            f"data file {p} is empty; a CSV file needs a header row naming the columns, one of "
            f"them {label_column!r} for the labels."
        )
    header = [h.strip() for h in header]
    has_header = label_column in header or not _is_data_row(header)
    if not has_header and require_label:
        raise NumbamlpError(
            f"data file {p} has no header row: its first line {_short(','.join(header))} is "
            f"all numbers. Add a header row naming the columns, one of them {label_column!r} "
            f"for the labels (e.g. x1,x2,...,{label_column}), or name the label column with "
            "`label_column`."
        )
    if not has_header:
        header = [str(j) for j in range(len(header))]
    if label_column not in header and not require_label:
        label_column = ""
    elif label_column not in header:
        raise NumbamlpError(
            f"data file {p} has no label column {label_column!r}; its columns are: "
            f"{_column_list(header)}. Name the label column with `label_column`."
        )
    if len(header) < 2 and label_column:
        raise NumbamlpError(
            f"data file {p} has only the label column {label_column!r} and no feature columns."
        )
    try:
        # C parser, fast for large files; on failure we rescan to name the offending line.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" is reported below
            data = np.loadtxt(
                p,
                delimiter=",",
                skiprows=1 if has_header else 0,
                dtype=np.float64,
                ndmin=2,
                encoding="utf-8-sig",
                comments=None,
                quotechar='"',
            )
    except (ValueError, UnicodeDecodeError, OSError) as e:
        try:
            problem = _csv_diagnose(p, header, has_header)
        except (OSError, csv.Error, UnicodeDecodeError):
            problem = None
        raise NumbamlpError(
            f"data file {p} could not be parsed: {problem or str(e).rstrip('.')}. Fix the file "
            f"and try again."
        ) from None
    if data.shape[0] == 0:
        raise NumbamlpError(f"data file {p} has a header but no data rows; add some rows.")
    if data.shape[1] != len(header):
        # every row is consistent but differs from the header
        problem = _csv_diagnose(p, header, has_header) or f"rows have {data.shape[1]} fields"
        raise NumbamlpError(f"data file {p} could not be parsed: {problem}.")
    if not label_column:
        return np.ascontiguousarray(data), None, header, has_header
    li = header.index(label_column)
    y = data[:, li].copy()
    X = np.ascontiguousarray(np.delete(data, li, axis=1))
    return X, y, [h for i, h in enumerate(header) if i != li], has_header


def _finite_float_features(
    X: np.ndarray, what: str, columns: list[str] | None, describe_row: RowDescriber
) -> np.ndarray:
    """X as a C-contiguous float array (float32 stays float32, half the memory; anything else
    becomes float64), or an error naming the first NaN/Inf."""
    X = np.ascontiguousarray(X, dtype=np.float32 if X.dtype == np.float32 else np.float64)
    finite = np.isfinite(X)
    if not finite.all():
        r, c = (int(v) for v in np.argwhere(~finite)[0])
        col = _short(columns[c]) if columns else str(c)
        raise NumbamlpError(
            f"{what}: feature value {X[r, c]} at {describe_row(r)}, column {col} is not a finite "
            f"number; remove or impute NaN/Inf values."
        )
    return X


def _validate_xy(
    X: np.ndarray,
    y: np.ndarray,
    what: str,
    columns: list[str] | None,
    describe_row: RowDescriber,
) -> tuple[np.ndarray, np.ndarray]:
    """Check shapes, dtypes and values of user features/labels; return (X float, y int64)."""
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise NumbamlpError(
            f"{what}: X must be a 2-d numeric array (n examples, d features), got a {X.ndim}-d "
            f"{X.dtype} array of shape {X.shape}."
        )
    if y.ndim != 1 or y.dtype.kind not in "biuf":
        raise NumbamlpError(
            f"{what}: y must be a 1-d array of integer class labels, got a {y.ndim}-d {y.dtype} "
            f"array of shape {y.shape}."
        )
    n, d = X.shape
    if n == 0:
        raise NumbamlpError(f"{what} has no examples (0 rows); give at least one.")
    if d == 0:
        raise NumbamlpError(f"{what} has no features (X has 0 columns).")
    if y.shape[0] != n:
        raise NumbamlpError(
            f"{what}: X has {n} rows but y has {y.shape[0]} labels; they must match one to one."
        )

    X = _finite_float_features(X, what, columns, describe_row)

    if y.dtype.kind == "f":
        # float64: in float16 the bound MAX_CLASSES itself overflows (numpy would warn).
        y = y.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(y) | (np.floor(y) != y))
        if bad.size:
            i = int(bad[0])
            raise NumbamlpError(
                f"{what}: label {y[i]} at {describe_row(i)} is not an integer; labels must be "
                f"class indices 0, 1, 2, ..."
            )
    bad = np.flatnonzero(y < 0)
    if bad.size:
        i = int(bad[0])
        raise NumbamlpError(
            f"{what}: label {y[i]} at {describe_row(i)} is negative; labels must be class "
            f"indices 0, 1, 2, ..."
        )
    bad = np.flatnonzero(y >= MAX_CLASSES)
    if bad.size:
        i = int(bad[0])
        raise NumbamlpError(
            f"{what}: label {y[i]} at {describe_row(i)} is too large (at most {MAX_CLASSES - 1} "
            f"is supported); labels must be class indices 0..n_classes-1, so renumber them."
        )
    return X, y.astype(np.int64)


def load_arrays_file(
    path: str | os.PathLike[str], label_column: str = "label"
) -> tuple[np.ndarray, np.ndarray]:
    """Load features and labels from a user .npz or .csv file; return (X (n, d), y (n,) int64).

    .npz: arrays ``X`` (n, d) and ``y`` (n,), loaded with allow_pickle=False.
    .csv: a header row; the column named ``label_column`` holds labels, all others are features.
    X stays float32 if it was float32, else becomes float64.
    """
    p = Path(path)
    if not p.exists():
        raise NumbamlpError(f"data file {p} does not exist; check the path.")
    require_regular_file(p, "data file")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        X, y = _npz_arrays(
            p, ("X", "y"), "data file", "save it with numpy.savez(path, X=features, y=labels)"
        )
        return _validate_xy(X, y, f"data file {p}", None, lambda i: f"row {i}")
    if suffix == ".csv":
        X, labels, columns, _ = _csv_arrays(p, label_column)
        assert labels is not None, "require_label: _csv_arrays found the label column"
        return _validate_xy(X, labels, f"data file {p}", columns, _csv_line_describer(p))
    raise NumbamlpError(
        f"data file {p} has an unsupported type {p.suffix or '(no extension)'}; use a .npz file "
        f"(arrays X and y) or a .csv file with a header row and a {label_column!r} column."
    )


def load_user_dataset(
    train_file: str | os.PathLike[str],
    test_file: str | os.PathLike[str] | None = None,
    label_column: str = "label",
    n_classes: int | None = None,
    rng: np.random.Generator | None = None,
    holdout: float = 0.1,
) -> Dataset:
    """Build a Dataset from user files.

    Without ``test_file``, a ``holdout`` fraction of the training rows, drawn with ``rng``
    (required then), becomes the test set. ``n_classes`` defaults to max label + 1 over both sets.
    """
    X_tr, y_tr = load_arrays_file(train_file, label_column)
    if test_file is not None:
        X_te, y_te = load_arrays_file(test_file, label_column)
        if X_te.shape[1] != X_tr.shape[1]:
            raise NumbamlpError(
                f"test file {test_file} has {X_te.shape[1]} features but training file "
                f"{train_file} has {X_tr.shape[1]}; both need the same feature columns."
            )
    else:
        if rng is None:
            raise TypeError("load_user_dataset needs rng (a numpy Generator) without test_file")
        if not 0.0 < holdout < 1.0:
            raise NumbamlpError(f"holdout must be a fraction between 0 and 1, got {holdout}.")
        X_te, y_te = X_tr[:0], y_tr[:0]

    # Labels are checked against n_classes before any split, so row numbers refer to the files.
    if n_classes is None:
        n_classes = int(max(y_tr.max(), y_te.max(initial=0))) + 1
        if n_classes < 2:
            raise NumbamlpError(
                f"only one class (label 0) found in {train_file}; a classifier needs at least 2 "
                f"classes. Check the label column."
            )
    else:
        n_classes = int(n_classes)
        if n_classes < 2:
            raise NumbamlpError(f"n_classes must be at least 2, got {n_classes}.")
        for y, f in ((y_tr, train_file), (y_te, test_file)):
            bad = np.flatnonzero(y >= n_classes)
            if bad.size:
                i = int(bad[0])
                raise NumbamlpError(
                    f"data file {f}: label {int(y[i])} at row {i} is outside 0..{n_classes - 1} "
                    f"(n_classes={n_classes}); raise `n_classes` or fix the labels."
                )

    if test_file is not None:
        source = f"train: {train_file}; test: {test_file}"
    else:
        n = X_tr.shape[0]
        if n < 2:
            raise NumbamlpError(
                f"training file {train_file} has {n} row; holding out a test set needs at least "
                f"2. Add rows or give a test file."
            )
        n_test = min(max(round(holdout * n), 1), n - 1)
        assert rng is not None
        perm = rng.permutation(n)
        test_idx, train_idx = perm[:n_test], perm[n_test:]
        X_te, y_te = X_tr[test_idx], y_tr[test_idx]
        X_tr, y_tr = X_tr[train_idx], y_tr[train_idx]
        source = (
            f"{train_file} (no test file given: {n_test} of its {n} rows, a {holdout:g} fraction "
            f"drawn at random with the given generator, held out as the test set)"
        )

    if X_tr.dtype != X_te.dtype:  # one dtype for both sets, so the trainer compiles once
        X_tr, X_te = X_tr.astype(np.float64), X_te.astype(np.float64)
    X_tr, X_te = np.ascontiguousarray(X_tr), np.ascontiguousarray(X_te)
    return Dataset(
        name=Path(train_file).stem,
        X_train_raw=X_tr,
        y_train=y_tr,
        X_test_raw=X_te,
        y_test=y_te,
        n_classes=n_classes,
        class_names=tuple(str(i) for i in range(n_classes)),
        source=source,
    )


def load_features_file(path: str | os.PathLike[str], label_column: str = "label") -> np.ndarray:
    """Features only, for prediction: (n, d), integer arrays kept as they are (raw pixels,
    which the model's input record scales: inputscale.py), anything else as floats.

    .npz: array ``X`` (``y`` is ignored if present). .npy: the (n, d) array itself
    (``numpy.save``). .csv: a header row, whose label column is dropped if present; a first
    line of numbers only is data (the file has no header). Anything else is read as IDX: 3-d
    uint8 images are flattened (still uint8); a 2-d IDX array is taken as (n, d) features.
    """
    p = Path(path)
    if not p.exists():
        raise NumbamlpError(f"input file {p} does not exist; check the path.")
    require_regular_file(p, "input file")
    suffix = p.suffix.lower()
    describe_row: RowDescriber = lambda i: f"row {i}"  # noqa: E731
    columns = None
    if suffix == ".npz":
        (X,) = _npz_arrays(p, ("X",), "input file", "save it with numpy.savez(path, X=features)")
    elif suffix == ".npy":
        fix = "save it with numpy.save(path, features)"
        X = read_npy(p, lambda reason: NumbamlpError(f"input file {p}: {reason}; {fix}."))
    elif suffix == ".csv":
        X, _, columns, has_header = _csv_arrays(p, label_column, require_label=False)
        describe_row = _csv_line_describer(p, has_header)
    else:
        images = read_idx(p)
        if images.ndim == 3 and images.dtype == np.uint8:
            return _images_to_raw(images)
        if images.ndim != 2:
            raise NumbamlpError(
                f"input file {p} holds a {images.ndim}-d IDX array; expected (n, rows, cols) "
                "uint8 images or (n, d) features."
            )
        X = images
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise NumbamlpError(
            f"input file {p}: X must be a 2-d numeric array (n examples, d features), got a "
            f"{X.ndim}-d {X.dtype} array of shape {X.shape}."
        )
    if X.dtype.kind in "iu":  # raw values (pixels): the model's input record scales them
        return np.ascontiguousarray(X)
    return _finite_float_features(X, f"input file {p}", columns, describe_row)
