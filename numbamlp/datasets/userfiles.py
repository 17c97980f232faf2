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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numbamlp.datasets.idx import (
    _os_error,
    read_idx,
    require_regular_file,
)
from numbamlp.datasets.loaders import MAX_CLASSES, Dataset, _images_to_raw
from numbamlp.datasets.npzfile import NpzReader, read_npy
from numbamlp.errors import NumbamlpError

__all__ = [
    "LabelledFile",
    "class_indices",
    "infer_task",
    "load_arrays_file",
    "load_features_file",
    "load_user_dataset",
    "read_labelled_file",
    "targets",
]

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


def _npz_has(p: Path, name: str) -> bool:
    """Whether an .npz archive holds an array ``name`` (a damaged one is reported later)."""

    def error(reason: str) -> NumbamlpError:
        return NumbamlpError(f"data file {p}: {reason}")

    with NpzReader(p, error) as npz:
        return name in npz.names


def _csv_header(p: Path) -> list[str]:
    """A CSV file's first line, stripped (empty when unreadable: the reader says why later)."""
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            return [h.strip() for h in next(csv.reader(f), [])]
    except (OSError, csv.Error, UnicodeDecodeError):
        return []


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


#: Cells that mean "no value" (compared in lower case, after stripping blanks): pandas'
#: ``to_csv`` writes NaN as an empty cell, R writes NA.
MISSING_CELLS = frozenset({"", "na", "n/a", "nan", "null"})


def _missing(what: str, where: str, column: str, cell: str) -> NumbamlpError:
    """``column``: as the message shows it (a CSV column's name quoted, an array's index)."""
    return NumbamlpError(
        f"{what}: missing value {_short(cell)} at {where}, column {column}; numbamlp "
        "does not impute, so fill in or remove the rows with missing values"
    )


def _csv_diagnose(
    p: Path, header: list[str], has_header: bool = True, text_columns: frozenset[int] = frozenset()
) -> str | None:
    """Find the first ragged or unparsable line of a CSV file (slow path, only after a failure).
    Cells of ``text_columns`` (the label columns) may be any text but not missing. None: the
    only text is in ``text_columns``."""
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
                if cell.strip().lower() in MISSING_CELLS:
                    raise _missing(
                        f"data file {p}", f"line {reader.line_num}", _short(header[j]), cell
                    )
                if j in text_columns:
                    continue
                try:
                    float(cell)
                    # Python accepts 1_000 and non-ASCII digits ('١'); numpy's parser does not
                    ok = "_" not in cell and cell.isascii()
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


def label_columns_of(label_column: str) -> list[str]:
    """The label column names: one name, or several separated by commas (``"y1,y2"``: the
    targets of a regression)."""
    names = [name.strip() for name in label_column.split(",")]
    if not all(names):
        raise NumbamlpError(f"`label_column`: empty column name in {label_column!r}")
    return names


def _loadtxt(p: Path, has_header: bool, dtype: Any, usecols: list[int] | None) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data" is reported below
        return np.loadtxt(
            p,
            delimiter=",",
            skiprows=1 if has_header else 0,
            dtype=dtype,
            ndmin=2,
            encoding="utf-8-sig",
            comments=None,
            quotechar='"',
            usecols=usecols,
        )


def _csv_arrays(
    p: Path, label_column: str, require_label: bool = True, weight_column: str | None = None
) -> tuple[np.ndarray, np.ndarray | None, list[str], bool, np.ndarray | None]:
    """X, the label columns (n, T) (floats, or text when a label cell is not a number; None
    without a label column), the feature column names, whether the file has a header row, and
    the ``weight_column`` (n,) (None when not asked for).

    With ``require_label=False`` a file without the label column gives labels = None, and a
    file whose first line is all numbers (see _is_data_row) is read as having no header: its
    columns are named 0, 1, 2, … With ``require_label`` such a file is refused, since without
    a header there is no telling which column holds the labels. ``label_column`` may name
    several columns, separated by commas.
    """
    wanted = label_columns_of(label_column)
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
    has_header = any(name in header for name in wanted) or not _is_data_row(header)
    if not has_header and require_label:
        raise NumbamlpError(
            f"data file {p} has no header row: its first line {_short(','.join(header))} is "
            f"all numbers. Add a header row naming the columns, one of them {label_column!r} "
            f"for the labels (e.g. x1,x2,...,{label_column}), or name the label column with "
            "`label_column`."
        )
    if not has_header:
        header = [str(j) for j in range(len(header))]
    absent = [name for name in wanted if name not in header]
    if absent and not require_label and len(absent) == len(wanted):
        wanted = []
    elif absent:
        raise NumbamlpError(
            f"data file {p} has no label column {absent[0]!r}; its columns are: "
            f"{_column_list(header)}. Name the label column with `label_column`."
        )
    if weight_column is not None and weight_column not in header:
        raise NumbamlpError(
            f"data file {p} has no sample weight column {weight_column!r}; its columns are: "
            f"{_column_list(header)}. Name it with `sample_weight_column`."
        )
    label_idx = [header.index(name) for name in wanted]
    weight_idx = [header.index(weight_column)] if weight_column is not None else []
    if weight_idx and weight_idx[0] in label_idx:
        raise NumbamlpError(
            f"`sample_weight_column`: {weight_column!r} is the label column of {p}; name "
            "another column"
        )
    if len(header) - len(label_idx) - len(weight_idx) < 1 and wanted:
        raise NumbamlpError(
            f"data file {p} has only the label column {label_column!r} and no feature columns."
        )
    text: np.ndarray | None = None
    try:
        # C parser, fast for large files; on failure we rescan to name the offending line.
        data = _loadtxt(p, has_header, np.float64, None)
    except (ValueError, UnicodeDecodeError, OSError) as e:
        try:
            problem = _csv_diagnose(p, header, has_header, frozenset(label_idx))
        except (OSError, csv.Error, UnicodeDecodeError):
            problem = str(e).rstrip(".")
        if problem is not None:
            raise NumbamlpError(
                f"data file {p} could not be parsed: {problem}. Fix the file and try again."
            ) from None
        # Only label cells are text (class names): the numbers and the labels read apart.
        numeric = [j for j in range(len(header)) if j not in label_idx]
        try:
            values = _loadtxt(p, has_header, np.float64, numeric)
            text = np.char.strip(_loadtxt(p, has_header, str, label_idx))
        except (ValueError, UnicodeDecodeError, OSError) as e2:
            raise NumbamlpError(
                f"data file {p} could not be parsed: {str(e2).rstrip('.')}. Fix the file and "
                "try again."
            ) from None
        data = np.zeros((values.shape[0], len(header)))
        data[:, numeric] = values
    if data.shape[0] == 0:
        raise NumbamlpError(f"data file {p} has a header but no data rows; add some rows.")
    if data.shape[1] != len(header):
        # every row is consistent but differs from the header
        problem = _csv_diagnose(p, header, has_header, frozenset(label_idx))
        problem = problem or f"rows have {data.shape[1]} fields"
        raise NumbamlpError(f"data file {p} could not be parsed: {problem}.")
    labels = None
    if wanted:
        # as written: "3" is an integer class, "151.0" a number (infer_task)
        if text is None:
            try:
                text = np.char.strip(_loadtxt(p, has_header, str, label_idx))
            except (ValueError, UnicodeDecodeError, OSError) as e:
                raise NumbamlpError(f"data file {p} could not be parsed: {e}.") from None
        labels = text
    weights = data[:, weight_idx[0]].copy() if weight_idx else None
    drop = label_idx + weight_idx
    X = np.ascontiguousarray(np.delete(data, drop, axis=1)) if drop else data
    columns = [h for i, h in enumerate(header) if i not in drop]
    return np.ascontiguousarray(X), labels, columns, has_header, weights


def _finite_float_features(
    X: np.ndarray, what: str, columns: list[str] | None, describe_row: RowDescriber
) -> np.ndarray:
    """X as a C-contiguous float array (float32 stays float32, half the memory; anything else
    becomes float64), or an error naming the first missing value (NaN) or infinity."""
    X = np.ascontiguousarray(X, dtype=np.float32 if X.dtype == np.float32 else np.float64)
    finite = np.isfinite(X)
    if not finite.all():
        r, c = (int(v) for v in np.argwhere(~finite)[0])
        col = _short(columns[c]) if columns else str(c)
        if np.isnan(X[r, c]):
            raise _missing(what, describe_row(r), col, "nan")
        raise NumbamlpError(
            f"{what}: feature value {X[r, c]} at {describe_row(r)}, column {col} is not a finite "
            f"number; remove or impute NaN/Inf values."
        )
    return X


# --- labels: classes as scikit-learn numbers them, or regression targets ---


TASKS = ("classification", "regression")


@dataclass
class LabelledFile:
    """A labelled file as read: features, the label column(s) as stored (numbers, booleans
    or text; (n,) for one column, (n, T) for several), the label column names, the sample
    weights (when a column or array was named), and how its rows are named in messages."""

    X: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    weights: np.ndarray | None
    what: str
    describe_row: RowDescriber


def _number_name(value: float) -> str:
    """A numeric class's name: integers without a decimal point (3.0 → "3")."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _label_column(values: np.ndarray, data: LabelledFile, column: int = 0) -> np.ndarray:
    """One label column as numbers (float64 or int64), booleans or text (stripped), with any
    missing value (an empty or NA cell, NaN) refused."""
    name = data.label_names[column] if data.label_names else "y"
    if values.dtype.kind in "US":
        values = np.char.strip(values.astype(str))
        missing = np.flatnonzero(np.isin(np.char.lower(values), list(MISSING_CELLS)))
        if missing.size:
            i = int(missing[0])
            raise _missing(data.what, data.describe_row(i), _short(name), str(values[i]))
        try:
            return values.astype(np.int64)  # integers as written ("3")
        except (ValueError, OverflowError):
            pass
        try:
            values = values.astype(np.float64)  # numbers: checked finite below
        except (ValueError, OverflowError):
            return values
    if values.dtype.kind == "f":
        values = values.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            i = int(bad[0])
            if np.isnan(values[i]):
                raise _missing(data.what, data.describe_row(i), _short(name), "nan")
            raise NumbamlpError(
                f"{data.what}: label {values[i]} at {data.describe_row(i)} is not a finite "
                "number; fix or remove that row"
            )
        return values
    if values.dtype.kind in "biu":
        return values.astype(np.bool_ if values.dtype.kind == "b" else np.int64)
    raise NumbamlpError(
        f"{data.what}: the labels must be numbers, booleans or text, got dtype {values.dtype}"
    )


def _columns(data: LabelledFile) -> list[np.ndarray]:
    labels = data.labels
    if labels.ndim == 1:
        return [_label_column(labels, data)]
    return [_label_column(labels[:, t], data, t) for t in range(labels.shape[1])]


def _is_continuous(values: np.ndarray) -> bool:
    """Numbers that are not all integers (scikit-learn's 'continuous' target type)."""
    return values.dtype.kind == "f" and not bool(np.all(np.floor(values) == values))


def infer_task(data: LabelledFile) -> str:
    """Regression when the labels are several columns or floating-point numbers (a CSV
    column with a decimal point or an exponent in some cell, such as 151.0 or 2.5, or a float
    array in an .npz), else classification (integers as written, booleans, text)."""
    columns = _columns(data)
    numbers = columns[0].dtype.kind == "f"
    return "regression" if len(columns) > 1 or numbers else "classification"


def class_names_of(values: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """The classes of a label column as scikit-learn numbers them: sorted unique values
    (numbers numerically, text lexically, False before True), as names, and each row's class
    index 0..M−1."""
    unique, index = np.unique(values, return_inverse=True)
    if values.dtype.kind == "f":
        names = tuple(_number_name(v) for v in unique)
    else:
        names = tuple(str(v) for v in unique)
    return names, index.astype(np.int64)


def class_indices(
    data: LabelledFile, class_names: Sequence[str] | None = None
) -> tuple[tuple[str, ...], np.ndarray]:
    """(class names, y int64 (n,)): the label column's classes (``class_names`` None: its own,
    sorted unique values) or its rows' indices into ``class_names`` (a label not among them
    is an error naming it)."""
    columns = _columns(data)
    name = data.label_names[0] if data.label_names else "y"
    if len(columns) > 1:
        raise NumbamlpError(
            f"{data.what}: {len(columns)} label columns ({', '.join(data.label_names)}) make a "
            'regression; a classifier takes one label column (give `task="regression"`)'
        )
    values = columns[0]
    if _is_continuous(values):
        i = int(np.flatnonzero(np.floor(values) != values)[0])
        raise NumbamlpError(
            f"{data.what}: label {values[i]:g} at {data.describe_row(i)} (column {_short(name)}) "
            "is not an integer, so it names no class; for numeric targets give "
            '`task="regression"`'
        )
    names, index = class_names_of(values)
    if class_names is None:
        if len(names) > MAX_CLASSES:
            raise NumbamlpError(
                f"{data.what}: the label column {_short(name)} holds {len(names)} distinct "
                f"values, more than the {MAX_CLASSES} classes supported; for numeric targets "
                'give `task="regression"`'
            )
        return names, index
    position = {c: k for k, c in enumerate(class_names)}
    unknown = [n for n in names if n not in position]
    if unknown:
        i = int(np.flatnonzero(index == names.index(unknown[0]))[0])
        shown = ", ".join(class_names[:10]) + (", …" if len(class_names) > 10 else "")
        raise NumbamlpError(
            f"{data.what}: label {unknown[0]!r} at {data.describe_row(i)} is not one of the "
            f"{len(class_names)} classes of the training data ({shown}); remove those rows "
            "or train on data that has that class"
        )
    mapping = np.array([position[n] for n in names], dtype=np.int64)
    return tuple(class_names), mapping[index]


def class_indices_in_range(data: LabelledFile, n_classes: int) -> np.ndarray:
    """The labels as class indices 0..n_classes−1 themselves (``n_classes`` given)."""
    (values,) = _columns(data)
    if values.dtype.kind not in "fiu" or _is_continuous(values):
        raise NumbamlpError(
            f"{data.what}: with `n_classes` the labels must be class indices 0..{n_classes - 1}"
            "; leave `n_classes` out to take any labels"
        )
    y = values.astype(np.float64)
    bad = np.flatnonzero((y < 0) | (y >= n_classes))
    if bad.size:
        i = int(bad[0])
        raise NumbamlpError(
            f"{data.what}: label {int(y[i])} at {data.describe_row(i)} is outside "
            f"0..{n_classes - 1} (n_classes={n_classes}); raise `n_classes` or fix the labels."
        )
    return y.astype(np.int64)


def targets(data: LabelledFile) -> np.ndarray:
    """Regression targets: the label column(s) as float64 (n, T)."""
    columns = _columns(data)
    for t, values in enumerate(columns):
        if values.dtype.kind in "US":
            cells = np.char.strip(values.astype(str))
            for i, cell in enumerate(cells):
                try:
                    float(cell)
                except ValueError:
                    raise NumbamlpError(
                        f"{data.what}: target {_short(str(cell))} at {data.describe_row(i)} "
                        f"(column {_short(data.label_names[t] if data.label_names else 'y')}) "
                        "is not a number; a regression needs numeric targets"
                    ) from None
    return np.ascontiguousarray(np.stack([c.astype(np.float64) for c in columns], axis=1))


def check_sample_weights(
    w: np.ndarray, n: int, what: str, describe_row: RowDescriber | None = None
) -> np.ndarray:
    """Sample weights as float64 (n,): finite, non-negative, not all zero; else one clear
    error naming the first bad one (where ``describe_row`` says, e.g. a CSV's line)."""
    w = np.asarray(w)
    if w.ndim != 1 or w.shape[0] != n or w.dtype.kind not in "biuf":
        raise NumbamlpError(
            f"{what}: sample weights must be {n} numbers (one per training row), got a "
            f"{w.dtype} array of shape {w.shape}"
        )
    w = w.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        i = int(bad[0])
        where = f"row {i}" if describe_row is None else describe_row(i)
        raise NumbamlpError(
            f"{what}: sample weight {w[i]} at {where} is not a finite number ≥ 0; weights "
            "must be finite and non-negative"
        )
    if n and not w.sum() > 0:
        raise NumbamlpError(f"{what}: every sample weight is 0; at least one must be positive")
    return w


def read_labelled_file(
    path: str | os.PathLike[str],
    label_column: str = "label",
    weight_column: str | None = None,
    weight_required: bool = True,
) -> LabelledFile:
    """Features, labels (as stored) and sample weights of a user .npz or .csv file.

    .npz: arrays ``X`` (n, d) and ``y`` (n,) or (n, T) (and the array named ``weight_column``
    if given), loaded with allow_pickle=False. .csv: a header row; the column(s) named
    ``label_column`` hold the labels (several separated by commas: regression targets), the one
    named ``weight_column`` the sample weights, all others are features. X stays float32 if it
    was float32, else becomes float64. Without ``weight_required`` a file lacking the weight
    column is read without weights (a test file).
    """
    p = Path(path)
    if not p.exists():
        raise NumbamlpError(f"data file {p} does not exist; check the path.")
    require_regular_file(p, "data file")
    suffix = p.suffix.lower()
    what = f"data file {p}"
    if suffix == ".npz":
        names: tuple[str, ...] = ("X", "y")
        if weight_column is not None and (weight_required or _npz_has(p, weight_column)):
            names += (weight_column,)
        arrays = _npz_arrays(
            p, names, "data file", "save it with numpy.savez(path, X=features, y=labels)"
        )
        X, y = arrays[0], arrays[1]
        describe: RowDescriber = lambda i: f"row {i}"  # noqa: E731
        X = _validate_x(X, y, what, None, describe)
        weights = arrays[2] if len(arrays) > 2 else None
        data = LabelledFile(X, y, [], weights, what, describe)
    elif suffix == ".csv":
        if weight_column is not None and not weight_required:
            weight_column = weight_column if weight_column in _csv_header(p) else None
        X, labels, columns, _, weights = _csv_arrays(p, label_column, True, weight_column)
        assert labels is not None, "require_label: _csv_arrays found the label column"
        describe = _csv_line_describer(p)
        if labels.shape[1] == 1:
            labels = labels[:, 0]
        X = _validate_x(X, labels, what, columns, describe)
        data = LabelledFile(X, labels, label_columns_of(label_column), weights, what, describe)
    else:
        raise NumbamlpError(
            f"data file {p} has an unsupported type {p.suffix or '(no extension)'}; use a .npz "
            f"file (arrays X and y) or a .csv file with a header row and a {label_column!r} "
            "column."
        )
    if data.weights is not None:
        where = f"{what}, column {_short(str(weight_column))}"
        data.weights = check_sample_weights(data.weights, X.shape[0], where, data.describe_row)
    return data


def _validate_x(
    X: np.ndarray,
    y: np.ndarray,
    what: str,
    columns: list[str] | None,
    describe_row: RowDescriber,
) -> np.ndarray:
    """Check the shapes and values of user features and the shape of their labels; return X
    as floats."""
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise NumbamlpError(
            f"{what}: X must be a 2-d numeric array (n examples, d features), got a {X.ndim}-d "
            f"{X.dtype} array of shape {X.shape}."
        )
    if y.ndim not in (1, 2) or y.dtype.kind not in "biufUS":
        raise NumbamlpError(
            f"{what}: y must be a 1-d array of labels (or (n, T) regression targets), got a "
            f"{y.ndim}-d {y.dtype} array of shape {y.shape}."
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
    return _finite_float_features(X, what, columns, describe_row)


def load_arrays_file(
    path: str | os.PathLike[str],
    label_column: str = "label",
    *,
    class_names: tuple[str, ...] | list[str] | None = None,
    task: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load features and labels from a user .npz or .csv file (read_labelled_file); return
    (X (n, d), y).

    Classification (``task`` "classification", or None and labels that are not continuous
    numbers): y (n,) int64 class indices, into ``class_names`` when given (a model's classes:
    a label not among them is an error), else into the file's own sorted unique labels.
    Regression (``task`` "regression", or None and several label columns or floating-point
    numbers: infer_task): y (n, T) float64 targets.
    """
    data = read_labelled_file(path, label_column)
    if task is None:
        task = "classification" if class_names is not None else infer_task(data)
    if task == "regression":
        return data.X, targets(data)
    return data.X, class_indices(data, class_names=class_names)[1]


def load_user_dataset(
    train_file: str | os.PathLike[str],
    test_file: str | os.PathLike[str] | None = None,
    label_column: str = "label",
    n_classes: int | None = None,
    rng: np.random.Generator | None = None,
    holdout: float = 0.1,
    *,
    task: str | None = None,
    sample_weight_column: str | None = None,
) -> Dataset:
    """Build a Dataset from user files.

    Without ``test_file``, a ``holdout`` fraction of the training rows, drawn with ``rng``
    (required then), becomes the test set. ``task`` None infers it (infer_task: regression for
    floating-point numbers or several label columns). Classification: the classes are the
    training file's sorted unique labels (scikit-learn's order; a test label not among them is
    an error), or, with ``n_classes``, the labels are the class indices 0..n_classes−1
    themselves. Regression: y (n, T) float64, ``target_names`` the label columns.
    ``sample_weight_column`` names the CSV column (or .npz array) of the training rows'
    weights.
    """
    if task is not None and task not in TASKS:
        raise NumbamlpError(f"`task`: unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    train = read_labelled_file(train_file, label_column, sample_weight_column)
    test = None
    if test_file is not None:  # a weight column there is not a feature either
        test = read_labelled_file(test_file, label_column, sample_weight_column, False)
    if test is not None and test.X.shape[1] != train.X.shape[1]:
        raise NumbamlpError(
            f"test file {test_file} has {test.X.shape[1]} features but training file "
            f"{train_file} has {train.X.shape[1]}; both need the same feature columns."
        )
    if test is None:
        if rng is None:
            raise TypeError("load_user_dataset needs rng (a numpy Generator) without test_file")
        if not 0.0 < holdout < 1.0:
            raise NumbamlpError(f"holdout must be a fraction between 0 and 1, got {holdout}.")
    task = infer_task(train) if task is None else task
    target_names: tuple[str, ...] = ()
    # Labels are checked before any split, so row numbers refer to the files.
    if task == "regression":
        if n_classes is not None:
            raise NumbamlpError("`n_classes`: a regression has no classes; leave it out")
        y_tr = targets(train)
        y_te = targets(test) if test is not None else y_tr[:0]
        if y_te.shape[1] != y_tr.shape[1]:
            raise NumbamlpError(
                f"test file {test_file} has {y_te.shape[1]} targets but training file "
                f"{train_file} has {y_tr.shape[1]}"
            )
        target_names = tuple(train.label_names) or tuple(f"y{t}" for t in range(y_tr.shape[1]))
        class_names: tuple[str, ...] = ()
        n_outputs = y_tr.shape[1]
    elif n_classes is not None:
        n_classes = int(n_classes)
        if n_classes < 2:
            raise NumbamlpError(f"n_classes must be at least 2, got {n_classes}.")
        y_tr = class_indices_in_range(train, n_classes)
        y_te = class_indices_in_range(test, n_classes) if test is not None else y_tr[:0]
        class_names = tuple(str(i) for i in range(n_classes))
        n_outputs = n_classes
    else:
        class_names, y_tr = class_indices(train)
        if len(class_names) < 2:
            raise NumbamlpError(
                f"only one class ({class_names[0]!r}) found in {train_file}; a classifier needs "
                "at least 2 classes. Check the label column."
            )
        y_te = class_indices(test, class_names=class_names)[1] if test is not None else y_tr[:0]
        n_outputs = len(class_names)
    X_tr, w_tr = train.X, train.weights
    X_te = test.X if test is not None else X_tr[:0]

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
        if w_tr is not None:
            w_tr = w_tr[train_idx]
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
        y_train=np.ascontiguousarray(y_tr),
        X_test_raw=X_te,
        y_test=np.ascontiguousarray(y_te),
        n_classes=n_outputs,
        class_names=class_names,
        source=source,
        task=task,
        target_names=target_names,
        sample_weight=w_tr,
    )


def load_features_file(
    path: str | os.PathLike[str], label_column: str = "label", weight_column: str | None = None
) -> np.ndarray:
    """Features only, for prediction: (n, d), integer arrays kept as they are (raw pixels,
    which the model's input record scales: inputscale.py), anything else as floats.

    .npz: array ``X`` (``y`` is ignored if present). .npy: the (n, d) array itself
    (``numpy.save``). .csv: a header row, whose label column(s) and ``weight_column`` are
    dropped if present; a first
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
        if weight_column is not None and weight_column not in _csv_header(p):
            weight_column = None  # the training file's weights: dropped where present
        X, _, columns, has_header, _ = _csv_arrays(
            p, label_column, require_label=False, weight_column=weight_column
        )
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


def label_name(label: Any) -> str:
    """The class name a label value has (as class_names_of names it): text as it is, booleans
    "False"/"True", integral numbers without a decimal point."""
    if isinstance(label, (bool, np.bool_)):
        return str(bool(label))
    if isinstance(label, (int, float, np.integer, np.floating)):
        return _number_name(float(label))
    return str(label).strip()


def class_weights(
    y: np.ndarray, class_names: Sequence[str], class_weight: Any
) -> np.ndarray | None:
    """Each training row's class weight (n,) float64: ``"balanced"`` is C.1, w_s = n/(M·n_{Y_s})
    (scikit-learn's); a mapping {label: weight} weighs the classes it names (others 1); None:
    None."""
    if class_weight is None:
        return None
    M, n = len(class_names), y.shape[0]
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise NumbamlpError(
                f"`class_weight`: {class_weight!r} is not a class weighting; give 'balanced' or "
                "a mapping {label: weight}"
            )
        counts = np.bincount(y, minlength=M).astype(np.float64)
        per_class = np.zeros(M)
        present = counts > 0
        per_class[present] = n / (M * counts[present])  # (C.1) w_s = n / (M · n_{Y_s})
        return per_class[y]
    if not hasattr(class_weight, "items"):
        raise NumbamlpError(
            f"`class_weight`: give 'balanced' or a mapping {{label: weight}}, got "
            f"{type(class_weight).__name__}"
        )
    per_class = np.ones(M)
    position = {name: k for k, name in enumerate(class_names)}
    for label, weight in class_weight.items():
        name = label_name(label)
        if name not in position:
            raise NumbamlpError(
                f"`class_weight`: {name!r} is not a class of the training data (its classes: "
                f"{', '.join(list(class_names)[:10])}{', …' if M > 10 else ''})"
            )
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float, np.number))
            or not (np.isfinite(weight) and weight >= 0)
        ):
            raise NumbamlpError(
                f"`class_weight`: the weight of class {label!r} must be a finite number ≥ 0, "
                f"got {weight!r}"
            )
        per_class[position[name]] = float(weight)
    return per_class[y]


def arrays_dataset(
    X: Any,
    y: Any,
    X_test: Any = None,
    y_test: Any = None,
    n_classes: int | None = None,
    task: str | None = None,
    sample_weight: Any = None,
) -> Dataset:
    """A Dataset of arrays (``fit(X, y, X_test=…, y_test=…)``): labels of any type as in files
    (classes sorted as scikit-learn sorts them; with ``n_classes`` the class indices
    themselves), or regression targets (``task``, or inferred: a float array, or y of
    shape (n, T))."""
    if task is not None and task not in TASKS:
        raise NumbamlpError(f"`task`: unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    X, y = np.asarray(X), np.asarray(y)
    if (X_test is None) != (y_test is None):
        raise NumbamlpError("`X_test` and `y_test`: give both or neither")
    if X.ndim != 2:
        raise NumbamlpError(f"the training features must be a 2-d array (n, d), got {X.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise NumbamlpError(
            f"`y`: give one label per training row ({X.shape[0]}), got shape {y.shape}"
        )
    describe: RowDescriber = lambda i: f"row {i}"  # noqa: E731
    train = LabelledFile(X, y, [], None, "`y`", describe)
    test = None
    if X_test is not None:
        test = LabelledFile(np.asarray(X_test), np.asarray(y_test), [], None, "`y_test`", describe)
    task = infer_task(train) if task is None else task
    class_names: tuple[str, ...] = ()
    target_names: tuple[str, ...] = ()
    if task == "regression":
        y_tr = targets(train)
        y_te = targets(test) if test is not None else np.empty((0, y_tr.shape[1]))
        target_names = tuple(f"y{t}" for t in range(y_tr.shape[1]))
        n_outputs = y_tr.shape[1]
    elif n_classes is not None:
        y_tr = class_indices_in_range(train, n_classes)
        y_te = class_indices_in_range(test, n_classes) if test is not None else y_tr[:0]
        class_names, n_outputs = tuple(str(k) for k in range(n_classes)), n_classes
    else:
        class_names, y_tr = class_indices(train)
        if len(class_names) < 2:
            raise NumbamlpError(
                f"`y`: only one class ({class_names[0]!r}); a classifier needs at least 2 classes"
            )
        y_te = class_indices(test, class_names)[1] if test is not None else y_tr[:0]
        n_outputs = len(class_names)
    X_te = np.asarray(X_test) if X_test is not None else np.empty((0, X.shape[1]), X.dtype)
    weights = None
    if sample_weight is not None:
        weights = check_sample_weights(sample_weight, X.shape[0], "`sample_weight`")
    return Dataset(
        name="arrays",
        X_train_raw=X,
        y_train=y_tr,
        X_test_raw=X_te,
        y_test=y_te,
        n_classes=n_outputs,
        class_names=class_names,
        source="arrays given to fit",
        task=task,
        target_names=target_names,
        sample_weight=weights,
    )
