"""Data sets: bundled MNIST, Fashion-MNIST (system package, cache or download), user files.

Every loader returns a :class:`Dataset` whose features are an (n, d) C-contiguous float array and
whose labels are an (n,) int64 array of class indices 0..n_classes-1. Image sets are flattened and
scaled to [0, 1] (pixel / 255) in float32. Every user-fixable problem raises
:class:`~numbamlp.errors.NumbamlpError` naming the file, what is wrong and the fix.
"""

from __future__ import annotations

import csv
import os
import reprlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from numbamlp.datasets.download import download_verified, fashion_mnist_mirrors
from numbamlp.datasets.idx import (
    _os_error,
    read_idx,
    read_idx_with_sha256,
    validate_images,
    validate_labels,
    validate_pair,
)
from numbamlp.datasets.npzfile import NpzReader, read_npy
from numbamlp.errors import NumbamlpError

__all__ = [
    "DATASET_NAMES",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_SHA256",
    "IDX_FILES",
    "MNIST_CLASSES",
    "MNIST_DIR",
    "SYSTEM_FASHION_MNIST_DIR",
    "Dataset",
    "cache_root",
    "fashion_mnist_cache_dir",
    "find_datasets",
    "load_arrays_file",
    "load_dataset",
    "load_fashion_mnist",
    "load_features_file",
    "load_mnist",
    "load_user_dataset",
    "read_sha256sums",
]


@dataclass(frozen=True)
class Dataset:
    """A train/test split ready for training.

    The features are ``X_*_raw · feature_scale``. Image sets keep their pixels as bytes
    (``X_*_raw`` uint8, ``feature_scale`` = 1/255): a quarter of the memory of float32, and no
    conversion pass at start-up; the kernels scale each minibatch as they gather it. User files
    keep float64 unless they were float32, with ``feature_scale`` = 1. ``X_train``/``X_test``
    give the scaled float features (float32 for image sets), made on first use. ``y_*`` are
    (n,) int64 in 0..n_classes-1. ``source`` says where the data came from.
    """

    name: str
    X_train_raw: np.ndarray
    y_train: np.ndarray
    X_test_raw: np.ndarray
    y_test: np.ndarray
    n_classes: int
    class_names: tuple[str, ...]
    source: str
    feature_scale: float = 1.0

    @cached_property
    def X_train(self) -> np.ndarray:
        """Training features (n, d) as floats: X_train_raw · feature_scale."""
        return scaled_features(self.X_train_raw, self.feature_scale)

    @cached_property
    def X_test(self) -> np.ndarray:
        """Test features (n, d) as floats: X_test_raw · feature_scale."""
        return scaled_features(self.X_test_raw, self.feature_scale)

    @property
    def n_features(self) -> int:
        """Number of input features d."""
        return int(self.X_train_raw.shape[1])


def scaled_features(raw: np.ndarray, scale: float) -> np.ndarray:
    """raw · scale as a float array (float32 for integer raw data), computed the way the
    kernels compute it (one multiplication in the target precision), so both agree bitwise."""
    if raw.dtype.kind == "f" and scale == 1.0:
        return raw
    dtype = raw.dtype if raw.dtype.kind == "f" else np.dtype(np.float32)
    out = raw.astype(dtype)
    out *= dtype.type(scale)
    return out


# The four standard IDX file names (MNIST and Fashion-MNIST share them), without ".gz".
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
IDX_FILES: tuple[str, ...] = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

MNIST_DIR = Path(__file__).parent.parent / "data" / "mnist"
MNIST_CLASSES: tuple[str, ...] = tuple(str(i) for i in range(10))

# Where Debian's `dataset-fashion-mnist` package installs the four *-ubyte.gz files.
SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# sha256 of each *decompressed* Fashion-MNIST file. Computed from the files of Debian's
# dataset-fashion-mnist 0.0~git20200523.55506a9-1 (upstream commit 55506a9). Cross-check: the md5s
# of the same decompressed files (train-images f4a8712d7a061bf5bd6d2ca38dc4d50a, train-labels
# 9018921c3c673c538a1fc5bad174d6f9, t10k-images 8181f5470baa50b63fa0f6fddb340f0a, t10k-labels
# 15d484375f8d13e6eb1aabb0c3f46965) equal the "raw data" md5s that torchvision-style loaders
# publish for Fashion-MNIST. The .gz md5s in upstream's README differ from Debian's .gz files
# because Debian recompressed them; that is why we hash the decompressed content.
FASHION_MNIST_SHA256: dict[str, str] = {
    TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

DATASET_NAMES: tuple[str, ...] = ("mnist", "fashion-mnist")

CACHE_ENV = "NUMBAMLP_CACHE"

# Labels above this are almost surely not class indices (and would make an absurd output layer).
MAX_CLASSES = 65536


# --- IDX data sets (MNIST, Fashion-MNIST) ---


def cache_root() -> Path:
    """User cache folder: $NUMBAMLP_CACHE, else $XDG_CACHE_HOME/numbamlp, else ~/.cache/numbamlp."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "numbamlp"
    return Path.home() / ".cache" / "numbamlp"


def fashion_mnist_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Fashion-MNIST's cache folder: ``cache_dir`` if given, else cache_root()/fashion-mnist."""
    return Path(cache_dir) if cache_dir is not None else cache_root() / "fashion-mnist"


def read_sha256sums(path: str | os.PathLike[str]) -> dict[str, str]:
    """Parse a ``<hex>  <name>  (optional comment)`` checksum file into {name: hex}."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise _os_error(p, e, "checksum file") from None
    sums: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2 or line.lstrip().startswith("#"):
            continue
        sums[parts[1].lstrip("*")] = parts[0].lower()  # "*" marks binary mode in sha256sum output
    return sums


def _idx_candidates(folder: Path, stem: str) -> list[Path]:
    """File names under which ``stem`` may be stored: gzipped or not, '-idx' or '.idx' spelling."""
    dotted = stem.replace("-idx", ".idx")  # e.g. train-images.idx3-ubyte, as some archives name it
    return [folder / n for n in (f"{stem}.gz", stem, f"{dotted}.gz", dotted)]


def _scan_idx_folder(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """Find the four IDX files in ``folder``: ({stem: path} found, [stems missing])."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for stem in IDX_FILES:
        path = next((c for c in _idx_candidates(folder, stem) if c.is_file()), None)
        if path is None:
            missing.append(stem)
        else:
            found[stem] = path
    return found, missing


def _missing_message(what: str, folder: Path, missing: list[str], fix: str) -> str:
    if not folder.is_dir():
        return (
            f"{what} not found: {folder} does not exist (it should hold the four files "
            f"{', '.join(IDX_FILES)}, each gzipped or not). {fix}"
        )
    return f"{what} not found: {folder} lacks {', '.join(missing)} (gzipped or not). {fix}"


PIXEL_SCALE = 1.0 / 255.0  # uint8 pixel → [0, 1]


def _images_to_raw(images: np.ndarray) -> np.ndarray:
    """(n, rows, cols) uint8 -> (n, rows*cols) uint8, C-contiguous (a view, no copy)."""
    n, rows, cols = images.shape  # rows*cols, not -1: numpy cannot infer -1 for 0 images
    return np.ascontiguousarray(images.reshape(n, rows * cols))


def _load_idx_dataset(
    name: str,
    files: Mapping[str, Path],
    expected: Mapping[str, str] | None,
    class_names: tuple[str, ...],
    source: str,
    checksum_fix: str,
) -> Dataset:
    """Read, verify and validate the four IDX files of an image classification set."""
    arrays: dict[str, np.ndarray] = {}
    for stem in IDX_FILES:
        path = files[stem]
        arr, digest = read_idx_with_sha256(path)  # structural errors (truncation...) come first
        if expected is not None:
            want = expected.get(stem)
            if want is None:
                raise NumbamlpError(
                    f"No sha256 checksum is recorded for {name} file {stem}; cannot verify {path}."
                )
            if digest != want:
                raise NumbamlpError(
                    f"{name} file {path} failed its sha256 checksum: its decompressed content "
                    f"hashes to {digest}, expected {want}. The file is corrupt or not the "
                    f"canonical {name} file; {checksum_fix}"
                )
        arrays[stem] = arr

    n_classes = len(class_names)
    label = {s: f"{name} file {files[s]}" for s in IDX_FILES}
    for images, labels in ((TRAIN_IMAGES, TRAIN_LABELS), (TEST_IMAGES, TEST_LABELS)):
        validate_images(arrays[images], label[images])
        validate_labels(arrays[labels], label[labels], n_classes)
        validate_pair(arrays[images], arrays[labels], label[images], label[labels])
    if arrays[TRAIN_IMAGES].shape[1:] != arrays[TEST_IMAGES].shape[1:]:
        raise NumbamlpError(
            f"{label[TRAIN_IMAGES]} has images of {arrays[TRAIN_IMAGES].shape[1:]} pixels but "
            f"{label[TEST_IMAGES]} has {arrays[TEST_IMAGES].shape[1:]}; both must come from the "
            f"same data set."
        )
    return Dataset(
        name=name,
        X_train_raw=_images_to_raw(arrays[TRAIN_IMAGES]),
        y_train=arrays[TRAIN_LABELS].astype(np.int64),
        X_test_raw=_images_to_raw(arrays[TEST_IMAGES]),
        y_test=arrays[TEST_LABELS].astype(np.int64),
        n_classes=n_classes,
        class_names=class_names,
        source=source,
        feature_scale=PIXEL_SCALE,
    )


def load_mnist(data_dir: str | os.PathLike[str] | None = None, verify: bool = True) -> Dataset:
    """Load MNIST from ``data_dir`` or the copy bundled with numbamlp.

    With ``verify``, each file's decompressed sha256 is checked against the bundled SHA256SUMS
    (hashing the bytes already read, so it costs one pass over memory, not a second read).
    """
    bundled = data_dir is None
    folder = MNIST_DIR if data_dir is None else Path(data_dir)
    files, missing = _scan_idx_folder(folder)
    if missing:
        fix = (
            "The bundled copy is incomplete: reinstall numbamlp."
            if bundled
            else "Point `data_dir` at the folder that holds the MNIST files."
        )
        raise NumbamlpError(_missing_message("MNIST", folder, missing, fix))
    expected = read_sha256sums(MNIST_DIR / "SHA256SUMS") if verify else None
    fix = (
        "reinstall numbamlp to restore the bundled copy."
        if bundled
        else "replace it with an intact copy of the canonical MNIST file."
    )
    source = f"bundled MNIST ({folder})" if bundled else f"MNIST from {folder}"
    return _load_idx_dataset("MNIST", files, expected, MNIST_CLASSES, source, fix)


def load_fashion_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    *,
    verify: bool = True,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """Load Fashion-MNIST, looking in this order and using the first complete set of files:

    1. ``data_dir``, if given (and only there: an error if the files are missing);
    2. /usr/share/datasets/fashion-mnist (Debian's ``dataset-fashion-mnist`` package);
    3. the user cache (``cache_dir`` or $NUMBAMLP_CACHE, $XDG_CACHE_HOME/numbamlp or
       ~/.cache/numbamlp, subfolder fashion-mnist);
    4. a download into that cache, if ``download`` is true (mirrors from download.py).

    ``log`` receives progress lines (e.g. which URL is being downloaded).
    """
    expected = FASHION_MNIST_SHA256 if verify else None
    name = "Fashion-MNIST"
    if data_dir is not None:
        folder = Path(data_dir)
        files, missing = _scan_idx_folder(folder)
        if missing:
            raise NumbamlpError(
                _missing_message(
                    name, folder, missing, "Point `data_dir` at the folder that holds them."
                )
            )
        fix = "replace it with an intact copy of the canonical Fashion-MNIST file."
        return _load_idx_dataset(
            name, files, expected, FASHION_MNIST_CLASSES, f"{name} from {folder}", fix
        )

    system = SYSTEM_FASHION_MNIST_DIR
    files, missing = _scan_idx_folder(system)
    if not missing:
        fix = "reinstall it: `apt-get install --reinstall dataset-fashion-mnist`."
        source = f"{name} from {system} (Debian package dataset-fashion-mnist)"
        return _load_idx_dataset(name, files, expected, FASHION_MNIST_CLASSES, source, fix)

    cache = fashion_mnist_cache_dir(cache_dir)
    files, missing = _scan_idx_folder(cache)
    cache_fix = f"delete it (or the folder {cache}) and it will be downloaded again."
    if not missing:
        source = f"{name} from the cache {cache}"
        return _load_idx_dataset(name, files, expected, FASHION_MNIST_CLASSES, source, cache_fix)

    if not download:
        raise NumbamlpError(
            f"{name} not found in {system} or in the cache {cache}, and downloading is off. "
            f"Install Debian's package (apt-get install dataset-fashion-mnist), pass a folder "
            f"holding the four *-ubyte(.gz) files as `data_dir`, or allow the download."
        )
    mirrors = fashion_mnist_mirrors()
    for stem in missing:
        download_verified(
            [m + stem + ".gz" for m in mirrors],
            cache / f"{stem}.gz",
            FASHION_MNIST_SHA256[stem],
            what=name,
            log=log,
        )
    files, missing = _scan_idx_folder(cache)
    if missing:  # pragma: no cover - download_verified either placed the file or raised
        raise NumbamlpError(_missing_message(name, cache, missing, "Try again."))
    source = f"{name} downloaded to the cache {cache}"
    return _load_idx_dataset(name, files, expected, FASHION_MNIST_CLASSES, source, cache_fix)


def find_datasets(cache_dir: str | os.PathLike[str] | None = None) -> dict[str, str | None]:
    """Which built-in data sets are present and where ({name: folder or None}); never downloads.

    Only checks that the four files exist; checksums are verified when a set is loaded.
    """
    found: dict[str, str | None] = {}
    found["mnist"] = None if _scan_idx_folder(MNIST_DIR)[1] else str(MNIST_DIR)
    found["fashion-mnist"] = None
    for folder in (SYSTEM_FASHION_MNIST_DIR, fashion_mnist_cache_dir(cache_dir)):
        if not _scan_idx_folder(folder)[1]:
            found["fashion-mnist"] = str(folder)
            break
    return found


def load_dataset(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    verify: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """Load a built-in data set by name ("mnist" or "fashion-mnist"; case and _/- are ignored)."""
    key = name.strip().lower().replace("_", "-")
    if key == "mnist":
        return load_mnist(data_dir, verify=verify)
    if key in ("fashion-mnist", "fashionmnist"):
        return load_fashion_mnist(
            data_dir, cache_dir=cache_dir, download=download, verify=verify, log=log
        )
    raise NumbamlpError(
        f"Unknown data set {name!r}; choose one of: {', '.join(DATASET_NAMES)} "
        f"(or train on your own .npz/.csv file)."
    )


# --- user files (.npz, .csv) ---

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
