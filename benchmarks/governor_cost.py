"""What the default thread count costs in one run: `numbamlp train` in this process, every call
into the fused engine logged with the thread count it ran on.

    python benchmarks/governor_cost.py            # on a quiet machine
    python benchmarks/governor_cost.py --busy     # beside a busy loop on one core

Prints the calls on each count, and the seconds that the calls on the count the run should not
use (one thread on a quiet machine, all threads beside a busy core) took beyond the run's own
median seconds per step on the other count, for the first epoch and for the rest. A run that
stays on the wrong count shows as most of its calls there. docs/performance.md (session 11)
has the figures; the ratios of whole processes are test_contention.py's.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numba
from busy_core import one_core_busy  # beside this script, on its sys.path

from numbamlp.engines.fused import engine as fused_engine

EPOCHS = 6


def logged_run(args: list[str]) -> tuple[list[tuple[int, int, float]], list[float], int]:
    """(threads, steps, seconds) of every engine call, the seconds of each epoch, and the steps
    of an epoch, for `numbamlp train --epochs EPOCHS` + args."""
    from numbamlp.cli.commands import main

    calls: list[tuple[int, int, float]] = []
    run_steps = fused_engine.FusedEngine._run_steps

    def timed(self, first: int, count: int) -> int:
        started = time.perf_counter()
        done = run_steps(self, first, count)
        calls.append((numba.get_num_threads(), done, time.perf_counter() - started))
        return done

    fused_engine.FusedEngine._run_steps = timed  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory() as folder:
            metrics = Path(folder) / "metrics.jsonl"
            command = ["train", "--epochs", str(EPOCHS), "--metrics-out", str(metrics), *args]
            main(command, standalone_mode=False)
            records = [json.loads(line) for line in metrics.read_text().splitlines()]
    finally:
        fused_engine.FusedEngine._run_steps = run_steps  # type: ignore[method-assign]
    steps_per_epoch = sum(n for _, n, _ in calls) // EPOCHS
    return calls, [r["seconds"] for r in records], steps_per_epoch


def main() -> None:
    busy_core = "--busy" in sys.argv
    with one_core_busy() if busy_core else contextlib.nullcontext():
        calls, epochs, steps_per_epoch = logged_run([])
    most = max(t for t, _, _ in calls)
    right, wrong = (1, most) if busy_core else (most, 1)
    on_right = [s / n for t, n, s in calls if t == right and n >= 16]
    print(f"calls on {right} thread(s): {sum(t == right for t, _, _ in calls)}, "
          f"on {wrong}: {sum(t == wrong for t, _, _ in calls)} of {len(calls)}")  # fmt: skip
    print(f"epochs (ms): {[round(e * 1e3, 1) for e in epochs]}")
    if not on_right:
        print(f"no call of 16 steps or more on {right} thread(s): the run stayed on {wrong}")
        return
    per_step = statistics.median(on_right)
    done, first, rest = 0, 0.0, 0.0
    for threads, n, seconds in calls[1:]:  # the run's first call (one step) is cold on any count
        extra = seconds - n * per_step if threads == wrong else 0.0
        if done < steps_per_epoch:
            first += extra
        else:
            rest += extra
        done += n
    later = sum(epochs[1:])
    print(f"beyond {per_step * 1e6:.1f} µs per step on {right}: epoch 1 {first * 1e3:.2f} ms, "
          f"epochs 2-{EPOCHS} {rest * 1e3:.2f} ms of {later * 1e3:.0f} ms "
          f"({100 * rest / later:.2f} %)")  # fmt: skip


if __name__ == "__main__":
    main()
