"""An epoch while another process keeps one of the two cores busy (a laptop with a browser, a
shared server). OpenMP threads that spin while they wait at a barrier then take the time their
partner needs; numbamlp shortens libgomp's spinning (numbamlp/__init__.py, GOMP_SPINCOUNT).

Each case is a real `numbamlp train` process started beside a busy-looping one; the spin count
is set per process, since libgomp reads it once, when it loads. Reported: the mean of the
epoch times the command prints (epochs 2 on: the first one loads the kernels), in extra_info.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import quick

NUMBAMLP = str(Path(sys.executable).with_name("numbamlp"))
SPIN_COUNTS = {"numbamlp's (3000)": "3000", "libgomp's default (300000)": "300000"}


@pytest.fixture
def one_core_busy():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        busy.kill()
        busy.wait()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("spin", list(SPIN_COUNTS))
def test_epoch_with_one_core_busy(benchmark, one_core_busy, spin, threads):
    benchmark.group = "contention: reference epoch with one core busy (whole process)"
    if threads == 1 and spin != "numbamlp's (3000)":
        pytest.skip("one thread never waits at a barrier")
    epochs = 2 if quick(benchmark) else 4
    env = dict(os.environ, GOMP_SPINCOUNT=SPIN_COUNTS[spin])
    args = [NUMBAMLP, "train", "--epochs", str(epochs), "--threads", str(threads)]
    seconds: list[float] = []

    def run():
        out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
        epoch_seconds = [float(s) for s in re.findall(r"seconds (\d+\.\d+)", out)]
        seconds.append(sum(epoch_seconds[1:]) / len(epoch_seconds[1:]))

    benchmark.pedantic(run, rounds=1 if quick(benchmark) else 3, iterations=1)
    seconds.sort()
    benchmark.extra_info["seconds_per_epoch"] = seconds[len(seconds) // 2]
    benchmark.extra_info["threads"] = threads
    benchmark.extra_info["GOMP_SPINCOUNT"] = SPIN_COUNTS[spin]
