"""Atomic file replacement: write a temporary file in the target's directory, flush and fsync it,
then rename it over the target. A crash or a full disk mid-write leaves the previous file intact
and no partial file under the target's name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from numbamlp.errors import NumbamlpError


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(fileobj)`` on a temporary file, then atomically move it to ``path``.
    ``write``'s return value (e.g. ``f.write``'s byte count) is ignored."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise NumbamlpError(f"cannot write {path}: directory {directory} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=_prefix(path), suffix=_SUFFIX, dir=directory)
    except OSError as exc:
        raise NumbamlpError(f"cannot write {path}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.chmod(tmp_name, _mode_for(path))  # mkstemp makes 0600; give the usual mode
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise NumbamlpError(
                f"cannot write {path}: {exc.strerror or exc}; the previous file (if any) is "
                "unchanged"
            ) from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


_SUFFIX = ".tmp"


def _prefix(path: Path) -> str:
    return f".{path.name}."


def leftover_temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporary files that writers of ``path`` killed mid-write left beside it (a writer
    that ends however else removes its own). Only whoever alone writes ``path`` may remove them:
    another writer's may be in use."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    prefix = _prefix(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(
        directory / name
        for name in names
        if name.startswith(prefix) and name.endswith(_SUFFIX) and len(name) > len(prefix) + 4
    )


def _mode_for(path: Path) -> int:
    """The permissions the file would have if written in place: the old file's, if any, else
    0666 less the umask (as ``open(path, "w")`` gives)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
