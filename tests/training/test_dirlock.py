"""One run per checkpoint directory (issue 17, item 6): the directory is locked (fcntl.flock on
``DIR/checkpoint.lock``) for the run's life. A second run, started together with it or later,
is refused in one line; a lock left by a dead process never blocks; a killed writer's temporary
files are removed by the next run. Real processes throughout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_checkpoint import NUMBAMLP, run, train_args

from numbamlp.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from numbamlp.training.dirlock import LOCK_NAME

fcntl = pytest.importorskip("fcntl")


def _hold_lock(directory: Path):
    """Take the directory's lock from this process, as a run does."""
    directory.mkdir(exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _cli(*args, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    return subprocess.run(
        NUMBAMLP + [str(a) for a in args],
        capture_output=True, text=True, timeout=300, env=env, cwd=cwd,
    )  # fmt: skip


def test_a_second_run_into_a_locked_directory_is_refused(data, tmp_path):
    fd = _hold_lock(tmp_path / "ck")
    try:
        second = _cli(*train_args(data, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck"))
    finally:
        os.close(fd)
    assert second.returncode == 2, second.stderr
    assert second.stderr.splitlines() == [
        f"error: --checkpoint-dir: {tmp_path / 'ck'} is in use by another run (pid "
        f"{os.getpid()}); wait for it to end, or choose another directory"
    ]
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [LOCK_NAME]


def test_a_resume_of_a_locked_checkpoint_is_refused_and_leaves_it(data, tmp_path):
    first = run(*train_args(data, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck"))
    assert first.exit_code == 0, first.output
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [CHECKPOINT_NAME]
    before = (tmp_path / "ck" / CHECKPOINT_NAME).read_bytes()
    fd = _hold_lock(tmp_path / "ck")
    try:
        second = _cli("train", "--resume", tmp_path / "ck", "--epochs", "2")
    finally:
        os.close(fd)
    assert second.returncode == 2, second.stderr
    assert second.stderr.splitlines() == [
        f"error: --resume: {tmp_path / 'ck'} is in use by another run (pid {os.getpid()}); "
        "wait for it to end, or choose another directory"
    ]
    assert (tmp_path / "ck" / CHECKPOINT_NAME).read_bytes() == before


def test_a_stale_lock_and_a_killed_writers_temporary_files_do_not_block(data, tmp_path):
    ck = tmp_path / "ck"
    # a process that took the lock and was killed: its lock file stays, its lock does not
    code = (
        "import fcntl, os, sys\n"
        f"fd = os.open({str(ck / LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, str(os.getpid()).encode())\n"
        "os.kill(os.getpid(), 9)\n"
    )
    ck.mkdir()
    dead = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert dead.returncode == -9 and (ck / LOCK_NAME).exists()
    leftover = ck / f".{CHECKPOINT_NAME}.x1y2z3.tmp"  # atomic_write's name for a temporary
    leftover.write_bytes(b"PK half a checkpoint")
    (ck / "notes.txt").write_text("the user's")
    result = _cli(*train_args(data, "--epochs", "1", "--checkpoint-dir", ck))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in ck.iterdir()) == [CHECKPOINT_NAME, "notes.txt"]
    assert load_checkpoint(ck).where == "the end of epoch 1"


HELD_RUN = """
import sys, time
from pathlib import Path
import numbamlp

class Slow(numbamlp.Callback):  # waits for the test's "go", then trains slowly
    def on_train_begin(self, run):
        deadline = time.monotonic() + 120
        while not Path(sys.argv[4]).exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    def on_epoch_end(self, run, metrics):
        time.sleep(0.05)

result = numbamlp.fit(train_file=sys.argv[1], test_file=sys.argv[2], hidden=[8], batch_size=32,
                      lr=0.05, epochs=2000, checkpoint_dir=sys.argv[3], callbacks=[Slow()],
                      verbose=0)
print(result.stopped)
"""


def test_two_real_runs_into_one_directory_one_is_refused(data, tmp_path):
    """A real run holds the directory (before its first checkpoint, then after): a second
    fresh run and a resume are refused in one line naming its pid; the first trains on, and its
    checkpoint is the one on disk."""
    train, test = data
    ck, go = tmp_path / "ck", tmp_path / "go"
    first = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HELD_RUN), train, test, ck, go],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        import time

        deadline = time.monotonic() + 120
        while not (ck / LOCK_NAME).exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        second = _cli(*train_args(data, "--epochs", "1", "--checkpoint-dir", ck))
        assert second.returncode == 2, second.stderr
        assert second.stderr.splitlines() == [
            f"error: --checkpoint-dir: {ck} is in use by another run (pid {first.pid}); wait "
            "for it to end, or choose another directory"
        ]
        go.touch()
        while not (ck / CHECKPOINT_NAME).exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        resumed = _cli("train", "--resume", ck, "--epochs", "3000")
        assert resumed.returncode == 2, resumed.stderr
        assert resumed.stderr.splitlines() == [
            f"error: --resume: {ck} is in use by another run (pid {first.pid}); wait for it to "
            "end, or choose another directory"
        ]
    finally:
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and out.strip() == "SIGINT", err
    assert sorted(p.name for p in ck.iterdir()) == [CHECKPOINT_NAME]
    assert load_checkpoint(ck).trainer["epoch"] < 2000
