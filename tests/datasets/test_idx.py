"""IDX reader: round trips, every malformed-file error, and a fuzz property."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numbamlp.datasets.idx import (
    IDX_DTYPES,
    read_idx,
    read_idx_bytes,
    read_idx_images,
    read_idx_labels,
    read_idx_with_sha256,
    sha256_of_idx,
    validate_pair,
)
from numbamlp.errors import NumbamlpError

CODES = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode ``arr`` as an uncompressed IDX file (big-endian, as the format requires)."""
    native = arr.dtype.newbyteorder("=")
    code = CODES[native]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(native.newbyteorder(">")).tobytes()


def write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    data = idx_bytes(arr)
    # A misleading suffix on purpose: gzip is detected by content, not by name.
    path = write(tmp_path / "x.idx", gzip.compress(data) if gz else data)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype)
    assert out.dtype.isnative
    assert out.shape == (3, 4, 5)
    np.testing.assert_array_equal(out, arr)
    assert out.flags.writeable and out.flags.c_contiguous
    assert sha256_of_idx(path) == hashlib.sha256(data).hexdigest()
    arr2, digest = read_idx_with_sha256(path)
    np.testing.assert_array_equal(arr2, arr)
    assert digest == hashlib.sha256(data).hexdigest()


def test_one_dimensional_and_empty_dimension(tmp_path):
    labels = np.arange(7, dtype=np.uint8)
    np.testing.assert_array_equal(read_idx(write(tmp_path / "l", idx_bytes(labels))), labels)
    empty = np.zeros((0, 2), dtype=np.uint8)
    assert read_idx(write(tmp_path / "e", idx_bytes(empty))).shape == (0, 2)


def test_truncated_data(tmp_path):
    data = idx_bytes(np.zeros((4, 5), dtype=np.uint8))
    path = write(tmp_path / "t", data[:-3])
    with pytest.raises(NumbamlpError, match=r"truncated.*expected 20 data bytes, got 17") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_truncated_header(tmp_path):
    data = bytes([0, 0, 8, 3]) + struct.pack(">I", 10)  # 3 dims declared, 1 given
    with pytest.raises(NumbamlpError, match="truncated.*3 dimensions"):
        read_idx(write(tmp_path / "t", data))


def test_trailing_bytes(tmp_path):
    data = idx_bytes(np.zeros((2, 2), dtype=np.int16)) + b"\x00\x01"
    with pytest.raises(NumbamlpError, match=r"2 extra bytes.*expected 8 data bytes, got 10"):
        read_idx(write(tmp_path / "t", data))


@pytest.mark.parametrize(
    "magic, pattern",
    [
        (b"\x01\x00\x08\x01", "two zero bytes"),
        (b"\x00\x00\x07\x01", "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
    ],
)
def test_bad_magic(tmp_path, magic, pattern):
    with pytest.raises(NumbamlpError, match=pattern):
        read_idx(write(tmp_path / "m", magic + b"\x00\x00\x00\x01\x05"))


def test_short_file(tmp_path):
    with pytest.raises(NumbamlpError, match="too short"):
        read_idx(write(tmp_path / "s", b"\x00\x00"))


def test_empty_file(tmp_path):
    with pytest.raises(NumbamlpError, match="empty"):
        read_idx(write(tmp_path / "empty", b""))
    with pytest.raises(NumbamlpError, match="empty"):
        read_idx(write(tmp_path / "empty.gz", gzip.compress(b"")))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(NumbamlpError, match="does not exist") as e:
        read_idx(tmp_path / "nope.gz")
    assert "nope.gz" in str(e.value)
    with pytest.raises(NumbamlpError, match="does not exist"):
        sha256_of_idx(tmp_path / "nope.gz")
    with pytest.raises(NumbamlpError, match="is a directory"):
        read_idx(tmp_path)


def test_unreadable_file(tmp_path, monkeypatch):
    # Simulated: the test may run as root, who can read a chmod-0 file.
    path = write(tmp_path / "locked", idx_bytes(np.zeros(3, np.uint8)))

    def deny(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(NumbamlpError, match="locked is not readable .permission denied"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))
    # Damage the deflate stream / CRC (the middle and the trailer), and cut it short.
    mid = bytearray(good)
    mid[len(mid) // 2] ^= 0xFF
    crc = bytearray(good)
    crc[-6] ^= 0xFF
    cases = {"mid.gz": bytes(mid), "crc.gz": bytes(crc), "cut.gz": good[: len(good) // 2]}
    for name, data in cases.items():
        path = write(tmp_path / name, data)
        with pytest.raises(NumbamlpError, match="gzip") as e:
            read_idx(path)
        assert name in str(e.value)
        with pytest.raises(NumbamlpError, match="gzip"):
            sha256_of_idx(path)


def test_images_and_labels_validation(tmp_path):
    images = np.zeros((3, 2, 2), dtype=np.uint8)
    labels = np.array([1, 9, 4], dtype=np.uint8)
    ip = write(tmp_path / "images", idx_bytes(images))
    lp = write(tmp_path / "labels", idx_bytes(labels))
    assert read_idx_images(ip).shape == (3, 2, 2)
    np.testing.assert_array_equal(read_idx_labels(lp, n_classes=10), labels)
    # Swapped files: the message says which kind of file was expected.
    with pytest.raises(NumbamlpError, match="should hold images"):
        read_idx_images(lp)
    with pytest.raises(NumbamlpError, match="should hold labels"):
        read_idx_labels(ip)
    with pytest.raises(NumbamlpError, match="should hold images"):
        read_idx_images(write(tmp_path / "i16", idx_bytes(images.astype(np.int16))))


def test_labels_out_of_range(tmp_path):
    lp = write(tmp_path / "labels", idx_bytes(np.array([0, 3, 12, 11], dtype=np.uint8)))
    with pytest.raises(NumbamlpError, match=r"label 12 at index 2 \(2 bad in total\).*0\.\.9"):
        read_idx_labels(lp, n_classes=10)
    assert read_idx_labels(lp, n_classes=13).tolist() == [0, 3, 12, 11]


def test_count_mismatch():
    images = np.zeros((5, 2, 2), dtype=np.uint8)
    labels = np.zeros(4, dtype=np.uint8)
    with pytest.raises(NumbamlpError, match="5 images but lbl has 4 labels"):
        validate_pair(images, labels, "img", "lbl")
    validate_pair(images, np.zeros(5, dtype=np.uint8), "img", "lbl")  # no error


@st.composite
def idx_like_bytes(draw):
    """Bytes that are often almost-valid IDX (so the fuzzing reaches the deeper checks)."""
    code = draw(st.sampled_from([*IDX_DTYPES, draw(st.integers(0, 255))]))
    ndim = draw(st.integers(0, 4))
    dims = draw(
        st.lists(
            st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)),
            min_size=ndim,
            max_size=ndim,
        )
    )
    data = bytes([0, 0, code, ndim]) + struct.pack(f">{ndim}I", *dims)
    data += draw(st.binary(max_size=300))
    if draw(st.booleans()):
        data = gzip.compress(data)
        data = data[: draw(st.integers(0, len(data)))]
    return data


@settings(max_examples=200, deadline=None, derandomize=True, database=None)  # as test_properties.py
@given(st.one_of(st.binary(max_size=200), idx_like_bytes()))
def test_fuzz_bytes_give_array_or_numbamlp_error(data):
    try:
        out = read_idx_bytes(data, "fuzz")
    except NumbamlpError as e:
        assert "fuzz" in str(e)  # every message names the file
    else:
        assert isinstance(out, np.ndarray)
        assert out.ndim >= 1


def test_impossible_shape():
    # Found by the fuzz test: zero elements, but the other dimensions overflow numpy's shape.
    data = bytes([0, 0, 8, 4]) + struct.pack(">4I", 0, 2**31, 2**31, 2**31)
    with pytest.raises(NumbamlpError, match="impossible shape"):
        read_idx_bytes(data, "weird")


def test_more_dimensions_than_numpy_arrays_have():
    # Found by tests/test_properties.py: 100 consistent dimensions made numpy raise ValueError.
    data = bytes([0, 0, 8, 100]) + struct.pack(">100I", *([1] * 100)) + b"\x07"
    with pytest.raises(NumbamlpError, match="declares 100 dimensions .*at most 32"):
        read_idx_bytes(data, "deep")


def _gzip_stream(header: bytes, zero_bytes: int) -> bytes:
    """A gzip file of ``header`` followed by ``zero_bytes`` zeros, written 1 MiB at a time."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb") as gz:
        gz.write(header)
        for start in range(0, zero_bytes, 1 << 20):
            gz.write(bytes(min(1 << 20, zero_bytes - start)))
    return buf.getvalue()


def test_a_gzip_bomb_is_refused_without_holding_its_data(tmp_path):
    """A 2×2 image file followed by 100 MiB of zeros (~100 KB gzipped): refused as extra data,
    counted in pieces — memory stays far below what the stream expands to."""
    header = bytes([0, 0, 8, 2]) + struct.pack(">II", 2, 2) + bytes(4)
    path = write(tmp_path / "bomb.gz", _gzip_stream(header, 100 << 20))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(NumbamlpError, match=r"has 67108864 or more extra bytes after the data"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_a_header_declaring_more_than_the_memory_is_refused_before_decompressing(tmp_path):
    header = bytes([0, 0, 0x0E, 3]) + struct.pack(">III", 1 << 20, 1 << 20, 1 << 10)  # 8 PiB
    path = write(tmp_path / "huge.gz", _gzip_stream(header, 1 << 20))
    with pytest.raises(NumbamlpError, match=r"more than this machine's memory"):
        read_idx(path)


def test_gzipped_and_raw_files_give_the_same_array_and_checksum(tmp_path):
    images = np.arange(3 * 5 * 7, dtype=np.uint8).reshape(3, 5, 7)
    raw = idx_bytes(images)
    plain = write(tmp_path / "plain", raw)
    packed = write(tmp_path / "packed.gz", gzip.compress(raw))
    for path in (plain, packed):
        arr, digest = read_idx_with_sha256(path)
        np.testing.assert_array_equal(arr, images)
        assert digest == hashlib.sha256(raw).hexdigest() == sha256_of_idx(path)


def test_gzip_files_of_several_members_and_zero_padding_are_read(tmp_path):
    """As gzip.decompress reads them: members one after the other, then zeros ignored."""
    images = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6)
    raw = idx_bytes(images)
    packed = gzip.compress(raw[:7]) + gzip.compress(raw[7:20]) + gzip.compress(raw[20:]) + bytes(9)
    assert gzip.decompress(packed) == raw
    np.testing.assert_array_equal(read_idx(write(tmp_path / "members.gz", packed)), images)
    with pytest.raises(NumbamlpError, match="truncated gzip"):
        read_idx(write(tmp_path / "cut.gz", packed[: len(gzip.compress(raw[:7])) + 12]))
