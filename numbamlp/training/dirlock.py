"""One run per checkpoint directory: an advisory OS lock on ``DIR/checkpoint.lock``.

The lock is ``flock(LOCK_EX | LOCK_NB)`` on an open file, held for the run's life. The kernel
drops it when the process ends however it ends (SIGKILL included), so a lock file left behind by
a dead run never blocks the next one; the file holds the holder's pid, for the message that
refuses a second run. The holder removes the file when it lets go; a run that opened the file
just before that removal notices (the name no longer leads to the file it locked) and tries
again, so two runs never both hold "the" lock.

On Windows (no fcntl) the lock is ``msvcrt.locking`` on one byte far past the pid, and the file
stays. Where the file system cannot lock at all (some network mounts), the run goes on unlocked,
as it did before locks existed. Importing this module is cheap (no NumPy).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path
from types import TracebackType

LOCK_NAME = "checkpoint.lock"
_BUSY = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES}
_WINDOWS_BYTE = 1 << 20  # the byte msvcrt locks: past the pid, which others may then read


class DirectoryInUse(Exception):
    """Another live process holds the lock; ``pid`` is its id when the lock file says it."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(pid)
        self.pid = pid


class DirectoryLock:
    """``with DirectoryLock(directory):`` — raises DirectoryInUse if another process holds it."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        for _ in range(100):  # a retry only when the holder removed the file meanwhile
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = _lock(fd)
            except BaseException:  # DirectoryInUse included
                os.close(fd)
                raise
            if not locked:  # this file system cannot lock: go on without
                os.close(fd)
                return
            if _still_named(fd, self.path):
                break
            os.close(fd)
        else:  # pragma: no cover - the file was replaced 100 times in a row
            raise DirectoryInUse(None)
        with contextlib.suppress(OSError):  # the pid is for messages only
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if sys.platform != "win32":  # remove the file while still holding the lock
            with contextlib.suppress(OSError):
                if _still_named(fd, self.path):
                    os.unlink(self.path)
        os.close(fd)  # and with it the lock

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _still_named(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the open file ``fd`` (and not a newer file, or none)."""
    try:
        mine, named = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino)


def _holder(fd: int) -> int | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(os.read(fd, 32).decode("ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None


if sys.platform == "win32":  # pragma: no cover - POSIX CI

    def _lock(fd: int) -> bool:
        import msvcrt

        os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            if exc.errno in _BUSY or exc.errno == errno.EDEADLK:
                raise DirectoryInUse(_holder(fd)) from None
            return False
        return True

else:
    import fcntl

    def _lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in _BUSY:
                raise DirectoryInUse(_holder(fd)) from None
            return False  # ENOLCK, EINVAL, ENOSYS: no locks on this file system
        return True
