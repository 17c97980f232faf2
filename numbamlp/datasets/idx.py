"""Reader for IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions),
one big-endian uint32 per dimension, then the data, big-endian, in C order. Files are usually
gzipped; we detect gzip by its magic bytes (1f 8b), never by the file name, because mirrors and
users rename files freely.

Every problem with a file raises :class:`~numbamlp.errors.NumbamlpError` naming the file, what is
wrong with it and how to fix it; no OSError, gzip or struct error escapes.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import stat
import zlib
from pathlib import Path

import numpy as np

from numbamlp.errors import NumbamlpError

__all__ = [
    "IDX_DTYPES",
    "decompress_idx_bytes",
    "read_file_bytes",
    "require_regular_file",
    "read_idx",
    "read_idx_bytes",
    "read_idx_images",
    "read_idx_labels",
    "read_idx_with_sha256",
    "sha256_of_idx",
    "validate_images",
    "validate_labels",
    "validate_pair",
]

GZIP_MAGIC = b"\x1f\x8b"

# Type code (third byte of the magic number) -> big-endian element type, as the IDX spec defines.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_CORRUPT_FIX = "re-download or re-copy the file (it is damaged or not an IDX file)"

# numpy 1.x arrays have at most 32 dimensions (numpy 2: 64); IDX data sets use 1 to 4.
MAX_IDX_DIMENSIONS = 32
# Decompressed data past what the header declares is counted (not kept) up to this many bytes.
EXTRA_COUNT_LIMIT = 1 << 26


def _os_error(p: Path, e: OSError, what: str) -> NumbamlpError:
    """Translate an OSError from opening or reading ``p`` into a message with the fix."""
    if isinstance(e, FileNotFoundError):
        return NumbamlpError(f"{what} {p} does not exist; check the path.")
    if isinstance(e, IsADirectoryError):
        return NumbamlpError(f"{what} {p} is a directory, not a file; give the file's path.")
    if isinstance(e, PermissionError):
        return NumbamlpError(f"{what} {p} is not readable (permission denied); fix permissions.")
    return NumbamlpError(f"{what} {p} could not be read ({e.strerror or e}).")


def require_regular_file(p: Path, what: str) -> None:
    """Refuse a path that is not a regular file: a character device (/dev/zero), a FIFO or a
    socket would be read without end, or block. A missing path is left to the reader."""
    try:
        mode = p.stat().st_mode
    except OSError:
        return
    if stat.S_ISDIR(mode):
        raise NumbamlpError(f"{what} {p} is a directory, not a file; give the file's path.")
    if not stat.S_ISREG(mode):
        kind = (
            "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "not a regular file"
        )
        raise NumbamlpError(
            f"{what} {p} is {kind}, not a regular file; save the data to a file and give its path."
        )


def read_file_bytes(path: str | os.PathLike[str], what: str = "file") -> bytes:
    """Read a whole regular file, turning any OS error into a NumbamlpError naming the file."""
    p = Path(path)
    require_regular_file(p, what)
    try:
        return p.read_bytes()
    except OSError as e:
        raise _os_error(p, e, what) from None


def decompress_idx_bytes(data: bytes, name: str) -> bytes:
    """Return ``data`` gunzipped if it starts with the gzip magic bytes, else unchanged.

    The stream is decompressed no further than its IDX header says the data go: a small damaged
    or hostile file cannot expand into gigabytes of memory before its header is checked. Data
    after that end is counted in 1 MiB pieces, never held, and refused. A header that declares
    more bytes than this machine has memory is refused before the data is decompressed."""
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        header = _Gunzip(data)
        raw = header.read(4)
        if not _plausible_magic(raw):
            return raw  # _parse_idx names what is wrong with these bytes
        raw += header.read(4 * raw[3])
        declared = _declared_bytes(raw)
        if declared is None:
            return raw  # a truncated header: _parse_idx says so
        _check_fits_in_memory(declared, raw, name)
        # From the start again, so that a one-member file comes out as one piece: no copy.
        stream = _Gunzip(data)
        raw = stream.read(declared)
        extra = stream.count_rest(EXTRA_COUNT_LIMIT)
    except EOFError:
        raise NumbamlpError(
            f"{name} is a truncated gzip file (the compressed stream ends early); {_CORRUPT_FIX}."
        ) from None
    except zlib.error as e:
        raise NumbamlpError(f"{name} is a corrupt gzip file ({e}); {_CORRUPT_FIX}.") from None
    if extra:
        more = "or more " if extra >= EXTRA_COUNT_LIMIT else ""
        dims, dtype = _header_fields(raw)
        raise _extra_bytes_error(name, f"{extra} {more}", dims, dtype, len(raw) - 4 - 4 * len(dims))
    return raw


class _Gunzip:
    """Decompress a gzip file held in memory, as much as asked for at a time. zlib's output
    grows with the data actually produced (``GzipFile.read(n)`` reserves n bytes first). Files
    of several members are read on (some tools concatenate them), zero padding after the last
    member is ignored, as ``gzip.decompress`` does."""

    def __init__(self, data: bytes) -> None:
        self._member = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
        self._input = data

    def read(self, n: int) -> bytes:
        """Up to n more bytes; fewer only where the stream ends."""
        pieces, got = [], 0
        while got < n and (piece := self._next(n - got)):
            pieces.append(piece)
            got += len(piece)
        return b"".join(pieces)

    def count_rest(self, limit: int) -> int:
        """How many bytes the stream still holds, counted up to ``limit`` (not kept)."""
        count = 0
        while count < limit and (piece := self._next(1 << 20)):
            count += len(piece)
        return count

    def _next(self, most: int) -> bytes:
        """At most ``most`` (> 0) further bytes, b"" at the end of the stream."""
        while True:
            if self._member.eof:
                rest = self._member.unused_data.lstrip(b"\x00")
                if not rest:
                    return b""
                self._member, self._input = zlib.decompressobj(wbits=31), rest
            piece = self._member.decompress(self._input, most)
            self._input = self._member.unconsumed_tail
            if piece:
                return piece
            if not self._input and not self._member.eof:
                raise EOFError  # the compressed data ends inside a member


def _plausible_magic(raw: bytes) -> bool:
    """Four bytes that start a valid IDX header: two zero bytes, a known type, 1–32 dims."""
    return (
        len(raw) == 4
        and raw[0] == 0
        and raw[1] == 0
        and raw[2] in IDX_DTYPES
        and 1 <= raw[3] <= MAX_IDX_DIMENSIONS
    )


def _header_fields(raw: bytes) -> tuple[tuple[int, ...], np.dtype]:
    """The dimensions and element type of a complete, plausible IDX header."""
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=raw[3], offset=4))
    return dims, IDX_DTYPES[raw[2]]


def _shape_text(dims: tuple[int, ...]) -> str:
    """A shape as the messages write it: 60000×28×28."""
    return "×".join(map(str, dims))


def _declared_bytes(raw: bytes) -> int | None:
    """Header plus data bytes that a plausible header declares; None if the header is cut."""
    if len(raw) < 4 + 4 * raw[3]:
        return None
    dims, dtype = _header_fields(raw)
    return 4 + 4 * len(dims) + math.prod(dims) * dtype.itemsize


def _check_fits_in_memory(declared: int, raw: bytes, name: str) -> None:
    """Refuse a header that declares more bytes than the machine's physical memory."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: no limit known
        return
    if declared > memory:
        dims, dtype = _header_fields(raw)
        raise NumbamlpError(
            f"{name} declares shape {_shape_text(dims)} of {dtype.name} in its IDX header, "
            f"{declared} bytes, more than this machine's memory ({memory} bytes); {_CORRUPT_FIX}."
        )


def _extra_bytes_error(
    name: str, extra: str, dims: tuple[int, ...], dtype: np.dtype, got: int
) -> NumbamlpError:
    """The error for data past the end the header declares (``extra``: how many bytes)."""
    expected = math.prod(dims) * dtype.itemsize
    return NumbamlpError(
        f"{name} has {extra}extra bytes after the data (header declares shape "
        f"{_shape_text(dims)} of {dtype.name}, expected {expected} data bytes, got {got}); "
        f"{_CORRUPT_FIX}."
    )


def _parse_idx(raw: bytes, name: str) -> np.ndarray:
    """Parse uncompressed IDX bytes into a native-byte-order, writeable ndarray."""
    n = len(raw)
    if n == 0:
        raise NumbamlpError(f"{name} is empty (0 bytes); {_CORRUPT_FIX}.")
    if n < 4:
        raise NumbamlpError(
            f"{name} is too short to be an IDX file ({n} bytes; the magic number alone is 4); "
            f"{_CORRUPT_FIX}."
        )
    if raw[0] != 0 or raw[1] != 0:
        raise NumbamlpError(
            f"{name} is not an IDX file: its magic number {raw[:4].hex(' ')} should start with "
            f"two zero bytes; {_CORRUPT_FIX}."
        )
    code, ndim = raw[2], raw[3]
    dtype = IDX_DTYPES.get(code)
    if dtype is None:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise NumbamlpError(
            f"{name} has an unknown IDX type code 0x{code:02X} (known: {known}); {_CORRUPT_FIX}."
        )
    if ndim == 0:
        raise NumbamlpError(
            f"{name} declares 0 dimensions in its IDX magic number (need at least 1); "
            f"{_CORRUPT_FIX}."
        )
    if ndim > MAX_IDX_DIMENSIONS:
        raise NumbamlpError(
            f"{name} declares {ndim} dimensions in its IDX magic number (at most "
            f"{MAX_IDX_DIMENSIONS} are supported); {_CORRUPT_FIX}."
        )
    header = 4 + 4 * ndim
    if n < header:
        raise NumbamlpError(
            f"{name} is truncated: its IDX header declares {ndim} dimensions and needs {header} "
            f"bytes, but the file has {n} bytes; {_CORRUPT_FIX}."
        )
    dims, _ = _header_fields(raw)
    count = 1
    nonzero = 1
    for d in dims:  # Python ints: a corrupt header cannot overflow these products
        count *= d
        nonzero *= max(d, 1)
    expected = count * dtype.itemsize
    got = n - header
    shape = _shape_text(dims)
    if nonzero * dtype.itemsize > np.iinfo(np.intp).max:
        # e.g. 0×2³¹×2³¹×2³¹: zero elements, but numpy cannot represent the shape at all.
        raise NumbamlpError(
            f"{name} declares an impossible shape {shape} in its IDX header; {_CORRUPT_FIX}."
        )
    if got < expected:
        raise NumbamlpError(
            f"{name} is truncated: its header declares shape {shape} of {dtype.name} data, "
            f"expected {expected} data bytes, got {got}; {_CORRUPT_FIX}."
        )
    if got > expected:
        raise _extra_bytes_error(name, f"{got - expected} ", dims, dtype, got)
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    # frombuffer over ``bytes`` is read-only and may be big-endian; hand back an ordinary array.
    # The copy is cheap next to reading the file, even for the MNIST training images
    # (docs/performance.md, "Figures moved out of the code").
    return arr.astype(dtype.newbyteorder("="), copy=True)


def read_idx_bytes(data: bytes, name: str) -> np.ndarray:
    """Parse IDX content (gzipped or raw) held in memory; ``name`` is used in error messages."""
    return _parse_idx(decompress_idx_bytes(data, name), name)


def read_idx_with_sha256(path: str | os.PathLike[str]) -> tuple[np.ndarray, str]:
    """Read an IDX file; also return the sha256 of its decompressed bytes (one read, one hash)."""
    name = f"IDX file {path}"
    raw = decompress_idx_bytes(read_file_bytes(path, "IDX file"), name)
    arr = _parse_idx(raw, name)
    return arr, hashlib.sha256(raw).hexdigest()


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a gzipped or raw IDX file into an ndarray (native byte order, writeable)."""
    return read_idx_bytes(read_file_bytes(path, "IDX file"), f"IDX file {path}")


def sha256_of_idx(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of the file's decompressed content (streamed, not held in memory).

    Gzip containers for the same data differ between mirrors (timestamps, compression level), so
    checksums in this package are always of the decompressed bytes.
    """
    p = Path(path)
    name = f"IDX file {p}"
    h = hashlib.sha256()
    try:
        with open(p, "rb") as f:
            gz = f.read(2) == GZIP_MAGIC
            f.seek(0)
            stream = gzip.GzipFile(fileobj=f, mode="rb") if gz else f
            while chunk := stream.read(1 << 20):
                h.update(chunk)
    except EOFError:
        raise NumbamlpError(
            f"{name} is a truncated gzip file (the compressed stream ends early); {_CORRUPT_FIX}."
        ) from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise NumbamlpError(f"{name} is a corrupt gzip file ({e}); {_CORRUPT_FIX}.") from None
    except OSError as e:  # after BadGzipFile, which is an OSError subclass
        raise _os_error(p, e, "IDX file") from None
    return h.hexdigest()


# --- validation of the image/label conventions used by MNIST-style data sets ---


def validate_images(images: np.ndarray, name: str) -> np.ndarray:
    """Check that ``images`` is a (n, rows, cols) uint8 array, as MNIST-style image files are."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise NumbamlpError(
            f"{name} should hold images: a 3-d array of unsigned bytes (n, rows, cols), but it "
            f"holds a {images.ndim}-d {images.dtype} array of shape {images.shape}; check that "
            f"you gave the images file, not the labels file."
        )
    if images.shape[0] == 0:
        raise NumbamlpError(f"{name} holds no images (count 0); give a non-empty file.")
    return images


def validate_labels(labels: np.ndarray, name: str, n_classes: int) -> np.ndarray:
    """Check that ``labels`` is a 1-d uint8 array with every value in 0..n_classes-1."""
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise NumbamlpError(
            f"{name} should hold labels: a 1-d array of unsigned bytes, but it holds a "
            f"{labels.ndim}-d {labels.dtype} array of shape {labels.shape}; check that you gave "
            f"the labels file, not the images file."
        )
    bad = np.flatnonzero(labels >= n_classes)
    if bad.size:
        i = int(bad[0])
        raise NumbamlpError(
            f"{name} has label {int(labels[i])} at index {i} ({bad.size} bad in total), outside "
            f"0..{n_classes - 1}; the file is corrupt or belongs to another data set."
        )
    return labels


def validate_pair(
    images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str
) -> None:
    """Check that an images file and its labels file describe the same number of examples."""
    if images.shape[0] != labels.shape[0]:
        raise NumbamlpError(
            f"{images_name} has {images.shape[0]} images but {labels_name} has "
            f"{labels.shape[0]} labels; the two files must come from the same split."
        )


def read_idx_images(path: str | os.PathLike[str]) -> np.ndarray:
    """Read and validate an IDX images file: (n, rows, cols) uint8."""
    return validate_images(read_idx(path), f"IDX file {path}")


def read_idx_labels(path: str | os.PathLike[str], n_classes: int = 10) -> np.ndarray:
    """Read and validate an IDX labels file: (n,) uint8, values in 0..n_classes-1."""
    return validate_labels(read_idx(path), f"IDX file {path}", n_classes)
