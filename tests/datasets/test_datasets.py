"""Data set loading: bundled MNIST, Fashion-MNIST from folders, user .npz/.csv files."""

from __future__ import annotations

import gc
import gzip
import io
import shutil
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from numbamlp.datasets import loaders as datasets
from numbamlp.datasets.loaders import (
    MNIST_DIR,
    Dataset,
    find_datasets,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    read_sha256sums,
)
from numbamlp.datasets.userfiles import load_arrays_file, load_features_file, load_user_dataset
from numbamlp.errors import NumbamlpError

# --- bundled MNIST ---


@pytest.fixture(scope="module")
def mnist() -> Dataset:
    return load_mnist()  # verify=True: the checksums are checked on every load


def test_bundled_mnist(mnist):
    assert mnist.name == "MNIST"
    assert mnist.X_train.shape == (60000, 784) and mnist.X_test.shape == (10000, 784)
    for X in (mnist.X_train, mnist.X_test):
        assert X.dtype == np.float32 and X.flags.c_contiguous
        assert X.min() == 0.0 and X.max() == 1.0
    for y, n in ((mnist.y_train, 60000), (mnist.y_test, 10000)):
        assert y.shape == (n,) and y.dtype == np.int64
        assert set(np.unique(y).tolist()) == set(range(10))
    assert mnist.n_classes == 10 and mnist.class_names == tuple("0123456789")
    assert mnist.n_features == 784
    assert mnist.y_train[:5].tolist() == [5, 0, 4, 1, 9]  # the canonical first labels
    assert "bundled" in mnist.source
    # Pixels are k · float32(1/255): raw bytes times the dataset's scale, as the kernels do it.
    assert mnist.X_train_raw.dtype == np.uint8 and mnist.feature_scale == 1 / 255
    levels = np.arange(256, dtype=np.float32) * np.float32(1 / 255)
    assert np.isin(mnist.X_test[:100], levels).all()


def test_bundled_checksums_file():
    sums = read_sha256sums(MNIST_DIR / "SHA256SUMS")
    assert set(sums) == set(datasets.IDX_FILES)
    assert all(len(h) == 64 for h in sums.values())


def test_mnist_corrupted_copy_fails_checksum(tmp_path):
    for stem in datasets.IDX_FILES:
        if stem != "t10k-labels-idx1-ubyte":
            shutil.copy(MNIST_DIR / f"{stem}.gz", tmp_path)
    raw = bytearray(gzip.decompress((MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # still a valid label: only the checksum can catch it
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(bytes(raw))  # uncompressed is fine too
    with pytest.raises(NumbamlpError, match="sha256 checksum") as e:
        load_mnist(tmp_path)
    assert "t10k-labels-idx1-ubyte" in str(e.value)
    # Without verification the same folder loads, and the flipped label is there.
    ds = load_mnist(tmp_path, verify=False)
    assert ds.y_test[100 - 8] == raw[100]  # 8-byte header
    assert "MNIST from" in ds.source


def test_mnist_missing_files(tmp_path):
    with pytest.raises(NumbamlpError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")
    shutil.copy(MNIST_DIR / "t10k-labels-idx1-ubyte.gz", tmp_path)
    with pytest.raises(NumbamlpError) as e:
        load_mnist(tmp_path)
    # Exactly the three absent files are named.
    lacks = "lacks train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte ("
    assert lacks in str(e.value)


# --- Fashion-MNIST (synthetic files; the real ones are tested only where installed) ---


def _write_set(folder: Path, fake, gz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem, raw in fake.raw.items():
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return folder


@pytest.fixture
def fashion_env(monkeypatch, tmp_path, fake_fashion):
    """No system copy, an empty cache in tmp_path, the synthetic files' checksums."""
    monkeypatch.setattr(datasets, "SYSTEM_FASHION_MNIST_DIR", tmp_path / "system")
    monkeypatch.setattr(datasets, "FASHION_MNIST_SHA256", fake_fashion.sha256)
    monkeypatch.setenv("NUMBAMLP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NUMBAMLP_FASHION_MNIST_MIRRORS", "http://127.0.0.1:9/")  # never reached
    return tmp_path


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_fashion_from_data_dir(fashion_env, fake_fashion, gz):
    folder = _write_set(fashion_env / "mine", fake_fashion, gz=gz)
    ds = load_fashion_mnist(folder, download=False)
    assert ds.name == "Fashion-MNIST" and str(folder) in ds.source
    assert ds.X_train.shape == (12, 12) and ds.X_train.dtype == np.float32
    raw = fake_fashion.arrays["train-images-idx3-ubyte"].reshape(12, -1)
    expected = raw.astype(np.float32) * np.float32(1 / 255)
    np.testing.assert_array_equal(ds.X_train, expected)
    np.testing.assert_array_equal(ds.y_test, fake_fashion.arrays["t10k-labels-idx1-ubyte"])
    assert ds.class_names == datasets.FASHION_MNIST_CLASSES and ds.n_classes == 10


def test_fashion_data_dir_is_the_only_place_looked(fashion_env, fake_fashion):
    _write_set(fashion_env / "system", fake_fashion)  # a complete system copy exists...
    empty = fashion_env / "empty"
    empty.mkdir()
    with pytest.raises(NumbamlpError, match="Fashion-MNIST not found.*empty lacks") as e:
        load_fashion_mnist(empty)
    assert "`data_dir`" in str(e.value)  # ...but an explicit data_dir is never second-guessed


def test_fashion_search_order(fashion_env, fake_fashion):
    assert find_datasets()["fashion-mnist"] is None
    cache = _write_set(fashion_env / "cache" / "fashion-mnist", fake_fashion)
    assert find_datasets()["fashion-mnist"] == str(cache)
    assert "cache" in load_fashion_mnist(download=False).source
    system = _write_set(fashion_env / "system", fake_fashion)
    assert find_datasets()["fashion-mnist"] == str(system)
    ds = load_dataset("Fashion_MNIST", download=False)
    assert "dataset-fashion-mnist" in ds.source and str(system) in ds.source


def test_fashion_wrong_checksum_names_file_and_fix(fashion_env, fake_fashion, monkeypatch):
    cache = _write_set(fashion_env / "cache" / "fashion-mnist", fake_fashion)
    table = dict(fake_fashion.sha256, **{"train-labels-idx1-ubyte": "0" * 64})
    monkeypatch.setattr(datasets, "FASHION_MNIST_SHA256", table)
    with pytest.raises(NumbamlpError, match="sha256 checksum") as e:
        load_fashion_mnist(download=False)
    msg = str(e.value)
    assert str(cache / "train-labels-idx1-ubyte.gz") in msg and "delete it" in msg


def test_fashion_count_mismatch(fashion_env, fake_fashion):
    fake_fashion.raw["t10k-labels-idx1-ubyte"] = fake_fashion.raw["t10k-labels-idx1-ubyte"][:-1]
    # Header still says 5 labels: fix it up to 4 so the file itself is well formed.
    raw = bytearray(fake_fashion.raw["t10k-labels-idx1-ubyte"])
    raw[7] = 4
    fake_fashion.raw["t10k-labels-idx1-ubyte"] = bytes(raw)
    folder = _write_set(fashion_env / "mine", fake_fashion)
    with pytest.raises(NumbamlpError, match="5 images but .* has 4 labels"):
        load_fashion_mnist(folder, verify=False)


SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not (SYSTEM_FASHION / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian package dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_from_debian_package():
    ds = load_fashion_mnist(SYSTEM_FASHION, download=False)  # verifies the pinned sha256s
    assert ds.X_train.shape == (60000, 784) and ds.X_test.shape == (10000, 784)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    assert ds.y_train[:3].tolist() == [9, 0, 0]  # ankle boot, T-shirt, T-shirt


def test_load_dataset_unknown_name():
    with pytest.raises(NumbamlpError, match="Unknown data set 'cifar'.*mnist, fashion-mnist"):
        load_dataset("cifar")


def test_find_datasets_reports_bundled_mnist(fashion_env):
    found = find_datasets()
    assert found["mnist"] == str(MNIST_DIR)
    assert set(found) == {"mnist", "fashion-mnist"}


# --- user files ---


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_happy_path(tmp_path):
    p = write_csv(tmp_path / "d.csv", "a,label,b\n1.5,0,2\n-3,2,4e1\n\n0,1,0\n")
    X, y = load_arrays_file(p)
    assert X.dtype == np.float64 and X.flags.c_contiguous
    np.testing.assert_array_equal(X, [[1.5, 2], [-3, 40], [0, 0]])
    assert y.dtype == np.int64 and y.tolist() == [0, 2, 1]


def test_csv_custom_label_column_and_missing_one(tmp_path):
    p = write_csv(tmp_path / "d.csv", "x, target\n1,0\n2,1\n")
    X, y = load_arrays_file(p, label_column="target")  # header names are stripped
    assert X.shape == (2, 1) and y.tolist() == [0, 1]
    with pytest.raises(NumbamlpError, match="no label column 'label'.*columns are: x, target"):
        load_arrays_file(p)


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("a,b,label\n1,2,0\n3,4\n", "line 3 has 2 fields but the header has 3"),
        ("a,b,label\n1,2,0\n3,4,1,5\n", "line 3 has 4 fields but the header has 3"),
        ("a,b,label\n1,2,0\n1,x,1\n", "line 3, column 'b': 'x' is not a number"),
        ("a,b,label\n1,2,0\n1,,1\n", "missing value '' at line 3, column 'b'"),
        ("a,b,label\n1,2,0\n1,NA,1\n", "missing value 'NA' at line 3, column 'b'"),
        ("a,b,label\n1,2,0\n1,2,\n", "missing value '' at line 3, column 'label'"),
        ("a,b,label\n1,2,cat\n1,2,NaN\n", "missing value 'NaN' at line 3, column 'label'"),
        (
            "a,b,label\n1,2,0.5\n1,2,nan\n",
            r"missing value 'nan' at row 1 \(line 3\), column 'label'",
        ),
        ("a,b,label\n1,1_000,1\n", "line 2, column 'b': '1_000' is not a number"),
        ("a,label\n1,cat\nx,dog\n", "line 3, column 'a': 'x' is not a number"),
        ("a,b,label\n1,nan,0\n", r"missing value 'nan' at row 0 \(line 2\), column 'b'"),
        ("a,b,label\n1,2,0\n\n1,2,0\ninf,2,1\n", r"value inf at row 2 \(line 5\), column 'a'"),
        ("a,label\n", "no data rows"),
        ("", "empty"),
        ("label\n1\n", "no feature columns"),
    ],
)
def test_csv_errors(tmp_path, text, pattern):
    p = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(NumbamlpError, match=pattern) as e:
        load_arrays_file(p)
    assert str(p) in str(e.value)


def test_csv_float_labels_that_are_integers(tmp_path):
    """Labels written as floats (3.0) are a regression's targets unless the task says
    classification; then 3.0 is the class "3" (the sorted unique labels, as scikit-learn's)."""
    p = write_csv(tmp_path / "d.csv", "a,label\n1,3.0\n2,0\n3,3\n")
    assert load_arrays_file(p)[1].tolist() == [[3.0], [0.0], [3.0]]
    assert load_arrays_file(p, task="classification")[1].tolist() == [1, 0, 1]
    ds = load_user_dataset(p, p, task="classification")
    assert ds.class_names == ("0", "3") and ds.n_classes == 2
    assert load_user_dataset(p, p).task == "regression"


def test_npz_happy_path_keeps_float32(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.savez(tmp_path / "f32.npz", X=X, y=np.array([0, 1, 1, 0], dtype=np.uint8))
    X2, y2 = load_arrays_file(tmp_path / "f32.npz")
    assert X2.dtype == np.float32 and y2.dtype == np.int64
    np.testing.assert_array_equal(X2, X)
    np.savez(tmp_path / "i.npz", X=X.astype(np.int32), y=np.array([0.0, 1.0, 2.0, 0.0]))
    X3, y3 = load_arrays_file(tmp_path / "i.npz", task="classification")
    assert X3.dtype == np.float64 and y3.tolist() == [0, 1, 2, 0]
    assert load_arrays_file(tmp_path / "i.npz")[1].shape == (4, 1)  # float y: a regression


@pytest.mark.parametrize(
    "arrays, pattern",
    [
        ({"X": np.ones((2, 2))}, "no array named y.*it holds: X"),
        ({"X": np.ones((2, 2)), "y": np.array([0, np.nan])}, "missing value 'nan' at row 1"),
        ({"X": np.array([[1.0, np.nan]]), "y": np.zeros(1)}, "missing value 'nan' at row 0"),
        ({"X": np.ones((2, 2)), "y": np.array([0, 1, 1])}, "X has 2 rows but y has 3 labels"),
        ({"X": np.ones(4), "y": np.array([0, 1, 1, 0])}, "X must be a 2-d numeric array"),
        ({"X": np.ones((2, 2)), "y": np.zeros((2, 1, 1))}, "y must be a 1-d array"),
        ({"X": np.ones((0, 2)), "y": np.zeros(0)}, "no examples"),
        ({"X": np.array([[1.0, np.inf]]), "y": np.zeros(1)}, "value inf at row 0, column 1"),
        ({"X": np.array([["a", "b"]]), "y": np.zeros(1)}, "X must be a 2-d numeric"),
    ],
)
def test_npz_errors(tmp_path, arrays, pattern):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(NumbamlpError, match=pattern):
        load_arrays_file(p)


def test_npz_object_array_is_refused(tmp_path):
    p = tmp_path / "obj.npz"
    np.savez(p, X=np.array([[1, "a"]], dtype=object), y=np.zeros(1))
    with pytest.raises(NumbamlpError, match="'X' is an object array"):
        load_arrays_file(p)


def test_not_an_npz_or_damaged(tmp_path):
    p = tmp_path / "fake.npz"
    p.write_bytes(b"hello, I am text")
    with pytest.raises(NumbamlpError, match="not an .npz archive"):
        load_arrays_file(p)
    np.savez(p, X=np.ones((50, 50)), y=np.zeros(50))
    p.write_bytes(p.read_bytes()[:2000])  # cut mid-archive
    with pytest.raises(NumbamlpError, match="damaged .npz archive"):
        load_arrays_file(p)


def test_unsupported_and_missing_file(tmp_path):
    with pytest.raises(NumbamlpError, match="does not exist"):
        load_arrays_file(tmp_path / "x.npz")
    (tmp_path / "x.txt").write_text("a,label\n1,0\n")
    with pytest.raises(NumbamlpError, match=r"unsupported type \.txt"):
        load_arrays_file(tmp_path / "x.txt")


def _train_test(tmp_path, n_train=20, d_test=3):
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "train.npz", X=rng.random((n_train, 3)), y=np.arange(n_train) % 3)
    np.savez(tmp_path / "test.npz", X=rng.random((4, d_test)), y=np.array([0, 1, 2, 4]))
    return tmp_path / "train.npz", tmp_path / "test.npz"


def test_user_dataset_with_test_file(tmp_path):
    train, test = _train_test(tmp_path)
    # the classes are the training labels; a test label the training data lacks is named
    with pytest.raises(NumbamlpError, match=r"label '4' at row 3 is not one of the 3 classes"):
        load_user_dataset(train, test)
    ds = load_user_dataset(train, train)
    assert ds.n_classes == 3 and ds.class_names == ("0", "1", "2")
    assert ds.X_train.shape == (20, 3) and ds.X_test.shape == (20, 3)
    assert ds.name == "train" and str(train) in ds.source
    # with n_classes the labels are the class indices themselves
    ds = load_user_dataset(train, test, n_classes=7)
    assert ds.n_classes == 7 and ds.y_test.tolist() == [0, 1, 2, 4]
    with pytest.raises(NumbamlpError, match="label 4 at row 3 is outside 0..3"):
        load_user_dataset(train, test, n_classes=4)


def test_user_dataset_feature_count_mismatch(tmp_path):
    train, test = _train_test(tmp_path, d_test=5)
    with pytest.raises(NumbamlpError, match="has 5 features but training file .* has 3"):
        load_user_dataset(train, test)


def test_user_dataset_mixed_dtypes_unify(tmp_path):
    np.savez(tmp_path / "a.npz", X=np.ones((3, 2), np.float32), y=np.array([0, 1, 0]))
    np.savez(tmp_path / "b.npz", X=np.ones((2, 2)), y=np.array([1, 0]))
    ds = load_user_dataset(tmp_path / "a.npz", tmp_path / "b.npz")
    assert ds.X_train.dtype == ds.X_test.dtype == np.float64


def test_holdout_split_is_reproducible(tmp_path):
    train, _ = _train_test(tmp_path, n_train=50)
    a = load_user_dataset(train, rng=np.random.default_rng(7), holdout=0.2)
    b = load_user_dataset(train, rng=np.random.default_rng(7), holdout=0.2)
    c = load_user_dataset(train, rng=np.random.default_rng(8), holdout=0.2)
    assert a.X_train.shape == (40, 3) and a.X_test.shape == (10, 3)
    np.testing.assert_array_equal(a.X_test, b.X_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.X_test, c.X_test)
    # The split is a partition of the original rows.
    X_all = np.load(train)["X"]
    both = np.concatenate([a.X_train, a.X_test])
    assert sorted(map(tuple, both)) == sorted(map(tuple, X_all))
    assert "held out" in a.source and "10 of its 50 rows" in a.source


def test_holdout_needs_rng_and_valid_fraction(tmp_path):
    train, _ = _train_test(tmp_path)
    with pytest.raises(TypeError):
        load_user_dataset(train)
    with pytest.raises(NumbamlpError, match="holdout must be a fraction"):
        load_user_dataset(train, rng=np.random.default_rng(0), holdout=1.5)


def test_user_dataset_single_class(tmp_path):
    np.savez(tmp_path / "one.npz", X=np.ones((3, 2)), y=np.zeros(3, dtype=np.int64))
    with pytest.raises(NumbamlpError, match="only one class"):
        load_user_dataset(tmp_path / "one.npz", rng=np.random.default_rng(0))


def test_features_from_idx_images_with_zero_images(tmp_path):
    # Found by tests/test_properties.py: reshape(0, -1) raised ValueError (`predict --input`).
    p = tmp_path / "none-images-idx3-ubyte"
    p.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 0, 28, 28))
    X = load_features_file(p)
    assert X.shape == (0, 784) and X.dtype == np.uint8  # raw pixels: the model scales them


# --- .npz archives that np.load mishandles (found by tests/test_properties.py) ---


def _zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npy_with_header(fields: str, payload: bytes = b"") -> bytes:
    header = fields.encode("latin1")
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


@pytest.mark.parametrize("load", [load_arrays_file, load_features_file])
def test_npz_member_that_is_not_npy(tmp_path, load):
    # np.load hands such a member back as bytes: AttributeError: 'bytes' object has no 'ndim'.
    p = _zip(tmp_path / "raw.npz", {"X.npy": b"hello world", "y.npy": _npy(np.arange(2))})
    with pytest.raises(NumbamlpError, match="member 'X' is not a numpy array"):
        load(p)


def test_npz_header_declaring_terabytes_is_refused_before_allocating(tmp_path):
    # np.load believed the header: MemoryError (728 TiB). Now nothing near that is allocated.
    x = _npy_with_header(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000, 1000), }", bytes(64)
    )
    p = _zip(tmp_path / "huge.npz", {"X.npy": x, "y.npy": _npy(np.arange(2))})
    tracemalloc.start()
    try:
        with pytest.raises(NumbamlpError, match="declares shape .* holds at most 64 bytes"):
            load_arrays_file(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20


def test_npz_zip_directory_lying_about_the_member_size(tmp_path):
    # The header declares 800 MB and the zip directory claims 4 GB for a 144-byte stored member:
    # np.load allocated the 800 MB before failing; the stored size bounds it now.
    x = _npy_with_header(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000,), }", bytes(16)
    )
    data = bytearray(_zip(tmp_path / "lie.npz", {"X.npy": x}).read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 24 : central + 28] = b"\xf0\xff\xff\xff"  # uncompressed size
    p = tmp_path / "lie.npz"
    p.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        with pytest.raises(NumbamlpError, match="holds at most 144 bytes"):
            load_features_file(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20


@pytest.mark.parametrize(
    "offsets, value, pattern",
    [
        ((6, 8), b"\x01", "is encrypted"),  # RuntimeError: password required
        ((8, 10), b"\x63", "compression method is not supported"),  # NotImplementedError
    ],
    ids=["encrypted", "unknown-compression"],
)
def test_npz_members_zipfile_cannot_open(tmp_path, offsets, value, pattern):
    p = tmp_path / "odd.npz"
    np.savez(p, X=np.ones((2, 2)), y=np.arange(2))
    data = bytearray(p.read_bytes())
    for signature, offset in zip((b"PK\x03\x04", b"PK\x01\x02"), offsets, strict=True):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + offset : start + offset + 1] = value
            start += 4
    p.write_bytes(bytes(data))
    with pytest.raises(NumbamlpError, match=pattern):
        load_arrays_file(p)


def test_npz_npy_header_never_closed(tmp_path):
    # numpy's fallback header parser raised tokenize.TokenError.
    x = _npy_with_header("{'descr': '<f8'")
    p = _zip(tmp_path / "open.npz", {"X.npy": x, "y.npy": _npy(np.arange(2))})
    with pytest.raises(NumbamlpError, match="damaged .npz archive: array 'X'"):
        load_arrays_file(p)


@pytest.mark.filterwarnings("error")
def test_damaged_npz_leaves_no_open_file(tmp_path):
    # np.load leaked the open file when the zip directory was damaged (ResourceWarning).
    p = tmp_path / "cut.npz"
    np.savez(p, X=np.ones((50, 50)), y=np.zeros(50))
    p.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(NumbamlpError, match="damaged .npz archive"):
        load_arrays_file(p)
    gc.collect()  # a leaked file would warn here, and the warning fail the test


@pytest.mark.filterwarnings("error")
def test_npz_float16_labels_without_a_numpy_warning(tmp_path):
    # Found by tests/test_properties.py: comparing float16 labels with 65536 printed numpy's
    # "RuntimeWarning: overflow encountered in cast" next to the CLI's output.
    p = tmp_path / "f16.npz"
    np.savez(p, X=np.ones((3, 2)), y=np.array([0, 1, 2], dtype=np.float16))
    assert load_arrays_file(p, task="classification")[1].tolist() == [0, 1, 2]


def test_csv_message_stays_one_line(tmp_path):
    # Found by tests/test_properties.py: a quote opened before the header and never closed makes
    # the whole file one column name, which the message quoted newlines and all.
    p = write_csv(tmp_path / "q.csv", '"a,label\n1,0\n2,1\n' + "3,1\n" * 100)
    with pytest.raises(NumbamlpError, match="no label column 'label'") as e:
        load_arrays_file(p)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


@pytest.mark.filterwarnings("error")
def test_npz_header_declaring_a_shape_numpy_cannot_represent(tmp_path):
    # Found by tests/test_properties.py (deep run): shape (0, 2**63) holds no bytes, but numpy's
    # reader computes its size in int64 and printed "RuntimeWarning: invalid value encountered".
    x = _npy_with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 2**63), }")
    x = x.replace(b"2**63", str(2**63).encode())
    p = _zip(tmp_path / "impossible.npz", {"X.npy": x, "y.npy": _npy(np.arange(2))})
    with pytest.raises(
        NumbamlpError, match=r"declares an impossible shape \(0, 9223372036854775808\)"
    ):
        load_features_file(p)
