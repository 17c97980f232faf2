"""Reading ``.npz`` archives that come from users: numeric arrays only, never a pickle, never
more memory than the archive can hold, and every problem one reason string.

``np.load`` trusts what a file says about itself: a 1 kB archive whose ``.npy`` header declares
shape (10¹², 1000) makes it allocate terabytes (MemoryError), a member without the ``.npy``
magic comes back as raw ``bytes``, and a damaged zip raises any of a dozen exception types and
leaks the open file. :class:`NpzReader` reads each member's ``.npy`` header first and checks the
size it declares against what the archive can hold before it allocates anything. Every problem
becomes ``error(reason)``: the caller turns the reason into its own NumbamlpError naming the
file and the fix (a data file and a model file need different fixes).
"""

from __future__ import annotations

import math
import tokenize
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO

import numpy as np

from numbamlp.errors import NumbamlpError

__all__ = ["NpzReader", "read_npy"]

ZIP_MAGIC = b"PK"
NPY_MAGIC = b"\x93NUMPY"
# The most a member can expand: stored members not at all, deflate at most 1032:1 (its longest
# match, 258 bytes, costs at least 2 bits). Other methods (bzip2, lzma; numpy never writes them)
# are bounded only by the size the zip directory declares.
_MAX_EXPANSION = {zipfile.ZIP_STORED: 1, zipfile.ZIP_DEFLATED: 1032}

# What zipfile, zlib and numpy's .npy parser raise on a damaged archive or member: a corrupt
# directory or CRC (BadZipFile), a corrupt deflate stream (zlib.error), a member that ends early
# (EOFError, or ValueError from numpy), an encrypted member (RuntimeError), an unknown
# compression method (NotImplementedError), a bad bzip2/lzma stream (OSError, LZMAError), a
# .npy header that is not a Python literal (ValueError, or TokenError from numpy's fallback
# parser when a bracket is never closed).
_DAMAGE: tuple[type[BaseException], ...] = (
    tokenize.TokenError,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    RuntimeError,
    NotImplementedError,
    OverflowError,
    KeyError,
)
try:
    import lzma

    _DAMAGE += (lzma.LZMAError,)
except ImportError:  # pragma: no cover - Python built without lzma
    pass


class NpzReader:
    """An open ``.npz`` archive: ``names`` lists its arrays, ``read(name)`` returns one.

    Use as a context manager. ``error(reason)`` builds the exception raised for any problem;
    reasons are phrases such as "array 'X' is an object array (pickled Python objects), which
    numbamlp never loads".
    """

    def __init__(self, path: str | Path, error: Callable[[str], NumbamlpError]) -> None:
        self.path = Path(path)
        self._error = error
        self._file: BinaryIO | None = None
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, zipfile.ZipInfo] = {}
        self._archive_size = 0

    def __enter__(self) -> NpzReader:
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed in __exit__
            head = self._file.read(len(ZIP_MAGIC))
            self._archive_size = self._file.seek(0, 2)
            self._file.seek(0)
        except OSError as exc:
            self.close()
            raise self._error(f"unreadable ({exc.strerror or exc})") from None
        if head != ZIP_MAGIC:  # checked first, so nothing tries to parse it as another format
            self.close()
            raise self._error("not an .npz archive (not a zip file)")
        try:
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
        except _DAMAGE as exc:
            self.close()
            raise self._error(f"damaged .npz archive ({_describe(exc)})") from None
        # numpy names an array after its member, without ".npy"; the first member of a name wins.
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            self._members.setdefault(name, info)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if self._file is not None:
            self._file.close()
            self._file = None

    @property
    def names(self) -> list[str]:
        """The array names, in archive order."""
        return list(self._members)

    def read(self, name: str) -> np.ndarray:
        """The array ``name`` (a KeyError if there is none: check ``names`` first)."""
        assert self._zip is not None, "use NpzReader as a context manager"
        info = self._members[name]
        if info.flag_bits & 0x1:  # zipfile would raise RuntimeError("... password required")
            raise self._error(
                f"array {name!r} is encrypted (password-protected); numpy never "
                "writes encrypted members"
            )
        needed: int | None = None
        try:
            with self._zip.open(info) as member:
                shape, fortran_order, dtype, header_size = _read_header(
                    member, self._error, f"array {name!r}", f"member {name!r}"
                )
            needed = self._check_size(name, info, shape, dtype, header_size)
            with self._zip.open(info) as member:
                array = np.lib.format.read_array(member, allow_pickle=False)
        except NumbamlpError:
            raise
        except MemoryError:
            size = f" ({needed:,} bytes)" if needed is not None else ""
            raise self._error(f"array {name!r} needs more memory than is available{size}") from None
        except _DAMAGE as exc:
            raise self._error(f"damaged .npz archive: array {name!r}: {_describe(exc)}") from None
        if not isinstance(array, np.ndarray):  # pragma: no cover - read_array always gives one
            raise self._error(f"member {name!r} is not a numpy array")
        return array

    def _check_size(
        self,
        name: str,
        info: zipfile.ZipInfo,
        shape: tuple[int, ...],
        dtype: np.dtype,
        header_size: int,
    ) -> int:
        """The array's size in bytes; an error if the header declares more data than the member
        can hold (checked before anything is allocated)."""
        room = info.file_size - header_size
        expansion = _MAX_EXPANSION.get(info.compress_type)
        if expansion is not None:
            room = min(room, expansion * min(info.compress_size, self._archive_size))
        needed = _nbytes(shape, dtype)
        if needed > max(room, 0):
            raise self._error(
                f"array {name!r} is truncated or damaged: its .npy header declares shape "
                f"{shape} of {dtype} ({needed:,} bytes), but its member holds at most "
                f"{max(room, 0):,} bytes"
            )
        return needed


def _read_header(
    member: IO[bytes], error: Callable[[str], NumbamlpError], array: str, container: str
) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Parse the .npy header: (shape, fortran_order, dtype, header size in bytes). ``array`` and
    ``container`` name the array and what holds it in messages ("array 'X'", "member 'X'")."""
    magic = member.read(len(NPY_MAGIC) + 2)
    if magic[: len(NPY_MAGIC)] != NPY_MAGIC:
        raise error(f"{container} is not a numpy array (no .npy header)")
    version = (magic[-2], magic[-1])
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
    else:  # 3.0 only adds UTF-8 field names of structured dtypes: never numeric data
        raise error(
            f"{array} has .npy format version {version[0]}.{version[1]}; numbamlp "
            "reads versions 1.0 and 2.0 (what numpy writes for numeric arrays)"
        )
    if dtype.hasobject:
        raise error(
            f"{array} is an object array (pickled Python objects), which numbamlp never loads"
        )
    if any(d < 0 for d in shape):
        raise error(f"{array} declares a negative dimension in its shape {shape}")
    if math.prod(max(d, 1) for d in shape) * max(dtype.itemsize, 1) > np.iinfo(np.intp).max:
        # e.g. (0, 2**63): no bytes, but numpy cannot even compute the size (it would warn)
        raise error(f"{array} declares an impossible shape {shape}")
    return shape, fortran_order, dtype, member.tell()


def read_npy(path: str | Path, error: Callable[[str], NumbamlpError]) -> np.ndarray:
    """The array of a ``.npy`` file, on NpzReader's terms: numeric only, never a pickle, and
    nothing allocated beyond what the file holds (its header is checked against its size)."""
    try:
        with open(path, "rb") as f:
            shape, _, dtype, header_size = _read_header(f, error, "the array", "the file")
            room = f.seek(0, 2) - header_size
            needed = _nbytes(shape, dtype)
            if needed > room:
                raise error(
                    f"truncated or damaged: its .npy header declares shape {shape} of {dtype} "
                    f"({needed:,} bytes), but the file holds {max(room, 0):,} bytes after it"
                )
            f.seek(0)
            return np.lib.format.read_array(f, allow_pickle=False)
    except NumbamlpError:
        raise
    except MemoryError:
        raise error("needs more memory than is available") from None
    except _DAMAGE as exc:  # OSError among them: unreadable
        raise error(f"damaged .npy file ({_describe(exc)})") from None


def _nbytes(shape: tuple[int, ...], dtype: np.dtype) -> int:
    """Bytes of an array (Python integers: a hostile shape cannot overflow)."""
    return math.prod(shape) * dtype.itemsize


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
