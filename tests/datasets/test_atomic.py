"""atomic_write: the target is either the old file or the complete new one, never a mix, and no
temporary file is left behind, whatever goes wrong during the write."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from numbamlp.datasets import atomic
from numbamlp.datasets.atomic import atomic_write
from numbamlp.errors import NumbamlpError

OLD = b"the previous, good content\n" * 100


def _listing(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_writes_new_file(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write(target, lambda f: f.write(b"hello"))
    assert target.read_bytes() == b"hello"
    assert _listing(tmp_path) == ["out.bin"]


def test_replaces_existing_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(OLD)
    atomic_write(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"
    assert _listing(tmp_path) == ["out.bin"]


def test_relative_path_in_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    atomic_write("plain.txt", lambda f: f.write(b"x"))
    assert (tmp_path / "plain.txt").read_bytes() == b"x"
    assert _listing(tmp_path) == ["plain.txt"]


@pytest.mark.parametrize(
    "error",
    [OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), OSError(errno.EIO, "I/O error")],
    ids=["ENOSPC", "EIO"],
)
def test_os_error_midway_keeps_old_file_and_removes_temp(tmp_path, error):
    target = tmp_path / "model.npz"
    target.write_bytes(OLD)

    def write(f):
        f.write(b"partial data that must never reach the target")
        f.flush()
        raise error

    with pytest.raises(NumbamlpError) as info:
        atomic_write(target, write)
    message = str(info.value)
    assert str(target) in message
    assert error.strerror in message
    assert "unchanged" in message
    assert target.read_bytes() == OLD
    assert _listing(tmp_path) == ["model.npz"]


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_other_exceptions_propagate_and_clean_up(tmp_path, exc_type):
    target = tmp_path / "model.npz"
    target.write_bytes(OLD)

    def write(f):
        f.write(b"half")
        raise exc_type("stop")

    with pytest.raises(exc_type):
        atomic_write(target, write)
    assert target.read_bytes() == OLD
    assert _listing(tmp_path) == ["model.npz"]


def test_failure_without_previous_file_leaves_nothing(tmp_path):
    def write(f):
        f.write(b"some")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(NumbamlpError):
        atomic_write(tmp_path / "new.npz", write)
    assert _listing(tmp_path) == []


def test_missing_directory_is_a_clear_error(tmp_path):
    target = tmp_path / "no" / "such" / "dir" / "m.npz"
    with pytest.raises(NumbamlpError, match="does not exist"):
        atomic_write(target, lambda f: f.write(b"x"))
    assert not (tmp_path / "no").exists()


def test_target_is_a_directory(tmp_path):
    (tmp_path / "adir").mkdir()
    (tmp_path / "adir" / "keep").write_bytes(b"k")
    with pytest.raises(NumbamlpError, match="cannot write"):
        atomic_write(tmp_path / "adir", lambda f: f.write(b"x"))
    assert (tmp_path / "adir" / "keep").read_bytes() == b"k"
    assert _listing(tmp_path) == ["adir"]


def test_data_is_fsynced_before_the_rename(tmp_path, monkeypatch):
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        calls.append("fsync")
        return real_fsync(fd)

    def replace(src, dst):
        calls.append("replace")
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    atomic_write(tmp_path / "f", lambda f: f.write(b"data"))
    assert "replace" in calls
    assert calls.index("fsync") < calls.index("replace")


def test_new_file_gets_the_usual_permissions(tmp_path):
    # mkstemp creates 0600 files; the result must look like an ordinary open(path, "w").
    target = tmp_path / "new.npz"
    atomic_write(target, lambda f: f.write(b"x"))
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_current_umask()


def test_replacing_keeps_the_old_files_permissions(tmp_path):
    target = tmp_path / "shared.npz"
    target.write_bytes(OLD)
    target.chmod(0o640)
    atomic_write(target, lambda f: f.write(b"x"))
    assert target.read_bytes() == b"x"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
