"""An epoch while another process keeps one of the two cores busy (a laptop with a browser, a
shared server). OpenMP threads that spin while they wait at a barrier then take the time their
partner needs; numbamlp shortens libgomp's spinning (numbamlp/__init__.py, GOMP_SPINCOUNT).

Each case is a real `numbamlp train` process started beside a busy-looping one (or alone, for
the quiet group); the spin count is set per process, since libgomp reads it once, when it loads.
Without --threads ("default") the engine chooses, call by call, between all threads and one
(numbamlp/engines/threads.py). Reported: the mean of the epoch times the command writes to its
metrics file (epochs 2 on: the first one is slower on any count), in extra_info; the median of
3 processes, after one untimed process per case. Cases run one after the other, so a drift of
the machine between them shows as a difference; the last test gives the default's cost as the
median ratio of alternating pairs of processes instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from busy_core import one_core_busy
from conftest import quick

NUMBAMLP = str(Path(sys.executable).with_name("numbamlp"))
SPIN_COUNTS = {"numbamlp's (3000)": "3000", "libgomp's default (300000)": "300000"}
SPIN = "numbamlp's (3000)"  # the spin count of the default's comparisons


@pytest.fixture(name="one_core_busy")
def one_core_busy_fixture():
    with one_core_busy():
        yield


@pytest.mark.parametrize("threads", ["default", "1", "2"])
@pytest.mark.parametrize("spin", list(SPIN_COUNTS))
def test_epoch_with_one_core_busy(benchmark, one_core_busy, spin, threads):
    """``default``: no --threads, so the engine picks all threads or one, call by call
    (engines/threads.py); ``1``, ``2``: --threads fixes the count."""
    benchmark.group = "contention: reference epoch with one core busy (whole process)"
    if threads != "2" and spin != "numbamlp's (3000)":
        pytest.skip("the spin count matters where two threads wait at barriers")
    _epochs_of_a_process(benchmark, spin, threads)


@pytest.mark.parametrize("threads", ["default", "1", "2"])
def test_epoch_on_a_quiet_machine(benchmark, threads):
    """The same processes with no other one running: what the default costs where nothing
    contends (it must keep both threads)."""
    benchmark.group = "contention: reference epoch, quiet machine (whole process)"
    _epochs_of_a_process(benchmark, "numbamlp's (3000)", threads)


def _epochs_of_a_process(benchmark, spin: str, threads: str) -> None:
    epochs = 2 if quick(benchmark) else 6
    seconds: list[float] = []

    def run():
        seconds.append(_train_process(epochs, spin, threads)[0])

    # One process first, untimed: the first process of a case starts on a machine that the last
    # case left (a busy loop just killed, caches of another process).
    warmup = 0 if quick(benchmark) else 1
    benchmark.pedantic(run, rounds=1 if quick(benchmark) else 3, iterations=1, warmup_rounds=warmup)
    seconds = seconds[warmup:]
    seconds.sort()
    benchmark.extra_info["seconds_per_epoch"] = seconds[len(seconds) // 2]
    benchmark.extra_info["threads"] = threads
    benchmark.extra_info["GOMP_SPINCOUNT"] = SPIN_COUNTS[spin]


@pytest.mark.parametrize("machine", ["one core busy", "quiet"])
def test_default_against_a_fixed_count_in_alternating_processes(benchmark, machine):
    """The default's cost, as a ratio that this VM's drift does not bias: processes without
    --threads and with it (--threads 1 beside a busy core, --threads 2 on a quiet machine)
    alternate, each pair in the other order than the last, and each pair gives one ratio.
    ``ratio_after_first_epoch`` compares epochs 2 on (the steady state),
    ``ratio_of_whole_runs`` every epoch, the first with the governor's warm-up and first
    comparison. The figures to read are extra_info's medians; the time is that of all the
    processes."""
    benchmark.group = "contention: default ÷ fixed count, alternating processes"
    fixed = "1" if machine == "one core busy" else "2"
    epochs = 2 if quick(benchmark) else 6
    pairs = 1 if quick(benchmark) else 5
    steady: list[float] = []
    whole: list[float] = []

    def run():
        with one_core_busy() if machine == "one core busy" else contextlib.nullcontext():
            _train_process(epochs, SPIN, fixed)  # untimed: warms the machine
            for pair in range(pairs):  # the order alternates too: ABBA, ABBA, …
                order = ["default", fixed] if pair % 2 == 0 else [fixed, "default"]
                ran = {threads: _train_process(epochs, SPIN, threads) for threads in order}
                default, other = ran["default"], ran[fixed]
                steady.append(default[0] / other[0])
                whole.append(default[1] / other[1])

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["against"] = f"--threads {fixed}"
    benchmark.extra_info["ratio_after_first_epoch"] = sorted(steady)[len(steady) // 2]
    benchmark.extra_info["ratio_of_whole_runs"] = sorted(whole)[len(whole) // 2]
    benchmark.extra_info["ratios_after_first_epoch"] = steady
    benchmark.extra_info["ratios_of_whole_runs"] = whole


def _train_process(epochs: int, spin: str, threads: str) -> tuple[float, float]:
    """One `numbamlp train` process: (mean seconds of epochs 2 on, mean of every epoch)."""
    env = dict(os.environ, GOMP_SPINCOUNT=SPIN_COUNTS[spin])
    with tempfile.TemporaryDirectory() as folder:
        metrics = Path(folder) / "metrics.jsonl"
        args = [NUMBAMLP, "train", "--epochs", str(epochs), "--metrics-out", str(metrics)]
        if threads != "default":
            args += ["--threads", threads]
        subprocess.run(args, env=env, capture_output=True, text=True, check=True)
        records = [json.loads(line) for line in metrics.read_text().splitlines()]
    every = [r["seconds"] for r in records]
    after_first = every[1:]  # the first epoch also touches the data and warms the threads
    return sum(after_first) / len(after_first), sum(every) / len(every)
