"""Data sets: bundled MNIST, Fashion-MNIST (system package, cache or download); user files are
read by userfiles.py.

Every loader returns a :class:`Dataset` whose features are an (n, d) C-contiguous float array and
whose labels are an (n,) int64 array of class indices 0..n_classes-1. Image sets are flattened and
scaled to [0, 1] (pixel / 255) in float32. Every user-fixable problem raises
:class:`~numbamlp.errors.NumbamlpError` naming the file, what is wrong and the fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from numbamlp.datasets.download import download_verified, fashion_mnist_mirrors
from numbamlp.datasets.idx import (
    _os_error,
    read_idx_with_sha256,
    validate_images,
    validate_labels,
    validate_pair,
)
from numbamlp.datasets.inputscale import InputRecord, TargetRecord, record_for
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
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "read_sha256sums",
]


@dataclass(frozen=True)
class Dataset:
    """A train/test split ready for training.

    The features are ``X_*_raw · feature_scale``. Image sets keep their pixels as bytes
    (``X_*_raw`` uint8, ``feature_scale`` = 1/255): a quarter of the memory of float32, and no
    conversion pass at start-up; the kernels scale each minibatch as they gather it. User files
    keep float64 unless they were float32, with ``feature_scale`` = 1. ``X_train``/``X_test``
    give the scaled float features (float32 for image sets), made on first use.

    ``task`` "classification": ``y_*`` are (n,) int64 in 0..n_classes-1, class k being
    ``class_names[k]`` (a user file's labels, sorted as scikit-learn sorts them).
    ``task`` "regression": ``y_*`` are (n, T) float64 targets named ``target_names``, and
    ``n_classes`` is T (the network's outputs; ``n_outputs``). ``sample_weight`` holds the
    training rows' weights (None: unweighted). ``source`` says where the data came from.

    ``standardized()`` gives the Dataset the network trains on: X_*_raw replaced by Z.1's x̃
    (``input`` records μ and σ) and, for a regression, y_* by Z.2's ỹ (``target``).
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
    task: str = "classification"
    target_names: tuple[str, ...] = ()
    sample_weight: np.ndarray | None = None
    #: Z.1 applied to the features (standardized()); None: X_*_raw are the values as read.
    input: InputRecord | None = None
    #: Z.2 applied to a regression's targets; None: y_* are the targets as read.
    target: TargetRecord | None = None

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

    @property
    def n_outputs(self) -> int:
        """The network's outputs: M classes, or T targets."""
        return int(self.n_classes)

    def input_record(self) -> InputRecord:
        """What a model trained on this data records of its inputs (model file "input")."""
        if self.input is not None:
            return self.input
        return record_for(self.X_train_raw, self.feature_scale)

    def target_record(self) -> TargetRecord | None:
        """A regression's Z.2 record (model file "target"); None for a classification."""
        if self.task != "regression":
            return None
        return self.target if self.target is not None else TargetRecord(self.target_names)

    def standardized(
        self,
        standardize: bool | None,
        dtype: str | np.dtype,
        record: InputRecord | None = None,
        target: TargetRecord | None = None,
    ) -> Dataset:
        """The data the network trains on. ``standardize`` True: Z.1 over the training rows'
        features (computed in float64, cast to ``dtype``, the model's), and Z.2 of a
        regression's targets; None: so for feature data, not for images of bytes (uint8: the
        built-in sets keep their pixels × 1/255, bit for bit as before); False: as it is.
        ``record`` and ``target``: the statistics of a model being trained further (a run
        continued on new rows keeps the standardisation it started with), used instead of
        this data's own when they standardise."""
        if self.input is not None:
            return self
        if standardize is None:
            standardize = self.X_train_raw.dtype != np.uint8
        if not standardize:
            return self
        if record is None or not record.standardized:
            record = record_for(self.X_train_raw, self.feature_scale, standardize=True)
        fields: dict[str, object] = {
            "X_train_raw": record.standardise(self.X_train_raw, self.feature_scale, dtype),
            "X_test_raw": record.standardise(self.X_test_raw, self.feature_scale, dtype),
            "feature_scale": 1.0,
            "input": record,
        }
        if self.task == "regression":
            if target is None or target.mean is None:
                target = TargetRecord.fit(self.y_train, self.target_names)
            fields |= {
                "y_train": target.standardise(self.y_train),
                "y_test": target.standardise(self.y_test),
                "target": target,
            }
        return replace(self, **fields)  # type: ignore[arg-type]


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


def dataset_files(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """The IDX files that ``load_dataset(name, data_dir)`` may read (those that exist, in every
    folder it may look in); never downloads. An output must not be one of them."""
    key = name.strip().lower().replace("_", "-")
    if data_dir is not None:
        folders = [Path(data_dir)]
    elif key == "mnist":
        folders = [MNIST_DIR]
    else:
        folders = [SYSTEM_FASHION_MNIST_DIR, fashion_mnist_cache_dir(cache_dir)]
    return [
        path
        for folder in folders
        for stem in IDX_FILES
        for path in _idx_candidates(folder, stem)
        if path.is_file()
    ]


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
