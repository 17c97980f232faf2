"""How many threads the fused engine's next call uses, chosen from how fast the last ones ran.

Orchestration only, no equation. The fused engine's steps are bitwise the same for any thread
count: the blocks of region 1 are fixed by the batch size and region 2's items by
NUMBA_NUM_THREADS, never by the threads that run them (engines/fused/__init__.py). So the number
of threads may change between two calls without changing a bit of θ, and it is free to follow
the machine. When another process takes one of two cores, every step's two barriers wait for the
thread that lost its core, and two threads run about 1.7× slower than one
(docs/performance.md, "With another process busy on one core"). ``AdaptiveThreads`` watches the
seconds per step of each call and:

* the first ``warmup_calls`` timed calls are not compared (the first steps of a run are slow
  on any machine: pages of the workspace touched for the first time, threads woken); each is
  ``probe_steps`` long, since it runs on all threads before anything is known, and beside a
  busy process each of those steps costs about two on one thread;
* the next timed call at all threads is followed by one call on one thread, to know both
  speeds (a run that starts beside a busy process has no quiet speed to compare with);
* at all threads, ``patience`` calls in a row slower per step than the last call on one
  thread, or than ``slowdown`` × the fastest seen so far, are a sign of contention: the next
  call runs on one thread, to compare (one slow call is not: a quiet machine has hiccups);
* one thread kept if it was faster than the last slow call, else back to all;
* on one thread, after ``probe_every`` calls one call tries all threads again, and stays there
  if it is no slower per step than the last call on one thread (the contention has ended); a
  probe that loses doubles the wait before the next, up to ``longest_wait`` calls. The first
  wait is short: on a quiet VM a few slow calls in a row (another guest, a daemon) send some
  runs to one thread, and every call there costs the difference;
* the first ``wake_steps`` of a probe of all threads are not timed: the other threads slept
  while one ran, and the first step wakes them and brings back into their caches the weights
  the one thread updated. Timed with the rest, that step could make a probe on a quiet machine
  about as slow as one thread, and the run stayed on one thread (docs/performance.md,
  session 11).

A probe is short: ``steps(remaining)`` gives it ``probe_steps`` steps of the call, and the engine
runs the rest of the call on the count the probe chose (engines/fused/engine.py): a losing
probe costs a few steps, not the whole call; a busy core makes two threads about twice as slow
as one, far beyond the noise of timing a few steps.

Beside a busy process a probe costs more than its steps: the thread that wakes on the busy core
may wait for it a whole time slice of the scheduler. So where the operating system says how long
the cores sat idle (Linux's /proc/stat, ``cpu_idle_seconds``), a probe is made only if, while the
run was on one thread, the cores sat idle at least ``free_core`` of a core on average, measured
over at least ``idle_window`` seconds (the counts move in 10 ms ticks: over a shorter wait the
probe is made). No free core, no probe: a lasting contention costs the first few probes and
none after. A skipped probe costs nothing, so the wait before the next look does not grow, and
the end of the contention is seen within one wait. Elsewhere every probe is made.

On a quiet machine no call is that much slower, so nothing is probed and nothing is lost. Calls
of fewer than ``min_steps`` steps (the first of an epoch, the end of one) are too short to time
and change nothing.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def cpu_idle_seconds(stat_path: str | os.PathLike[str] = "/proc/stat") -> float | None:
    """Seconds the CPUs that this process may run on have sat idle since boot (idle and
    iowait in Linux's /proc/stat), or None where that is not known."""
    try:
        allowed = os.sched_getaffinity(0)
        ticks = 0
        with open(stat_path, "rb") as stat:
            for line in stat:
                if not line.startswith(b"cpu"):
                    break  # the cpu lines come first
                name, *fields = line.split()
                if name != b"cpu" and int(name[3:]) in allowed:
                    ticks += int(fields[3]) + int(fields[4])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):  # not Linux, or no /proc
        return None


class AdaptiveThreads:
    """Chooses the thread count of each call: ``before(count)`` sets it and starts the clock,
    ``after(steps)`` times the call that made ``steps`` steps and puts back the count that was
    set before (the caller's own parallel code keeps its count; the accuracy that training
    logs between calls runs on the governor's: ``settled_threads``)."""

    def __init__(
        self,
        most: int,
        *,
        slowdown: float = 1.6,
        probe_every: int = 2,
        longest_wait: int = 128,
        min_steps: int = 4,
        probe_steps: int = 4,
        wake_steps: int = 1,
        warmup_calls: int = 1,
        patience: int = 2,
        set_threads: Callable[[int], None] | None = None,
        get_threads: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.perf_counter,
        idle_seconds: Callable[[], float | None] = cpu_idle_seconds,
        free_core: float = 0.5,
        idle_window: float = 0.05,
    ) -> None:
        if set_threads is None or get_threads is None:
            import numba

            set_threads, get_threads = numba.set_num_threads, numba.get_num_threads
        self.most = most
        self.threads = most  # the count of the next call
        self.slowdown = slowdown
        self.probe_every = probe_every
        self.longest_wait = longest_wait
        self._wait = probe_every  # calls on one thread before the next probe of all threads
        self.min_steps = min_steps
        self.probe_steps = max(probe_steps, min_steps)  # a probe must be long enough to time
        self._warmup_left = warmup_calls
        self.wake_steps = wake_steps
        self._waking = False  # the next call wakes the threads for a probe: not timed
        self._idle_seconds = idle_seconds
        self.free_core = free_core
        self.idle_window = idle_window
        self._idle_mark: tuple[float, float] | None = None  # (clock, idle) as the wait began
        self.skipped_probes = 0
        self.patience = patience
        self._slow_calls = 0  # calls in a row at all threads that were slow
        self._set_threads = set_threads
        self._get_threads = get_threads
        self._before = most
        self._clock = clock
        self._started = 0.0
        self._fastest_most = math.inf  # the quietest seconds per step seen at all threads
        self._last = {most: math.inf, 1: math.inf}  # seconds per step of the last timed call
        self._probing = False  # the next (or current) call compares the other count
        self._calls_at_one = 0
        #: (threads, seconds per step) of the last 1000 timed calls, for the tests and benchmarks.
        self.history: deque[tuple[int, float]] = deque(maxlen=1000)

    @property
    def settled(self) -> int:
        """The count the last comparison chose: ``threads``, or while a probe is pending the
        count it is compared against."""
        if self._probing:
            return 1 if self.threads == self.most else self.most
        return self.threads

    @contextmanager
    def settled_threads(self) -> Iterator[None]:
        """Run the training's own parallel work between calls (the test set's accuracy an
        epoch logs) on the ``settled`` count: a busy core slows it as it slows the steps. The
        count set before comes back after."""
        before = self._get_threads()
        self._set_threads(self.settled)
        try:
            yield
        finally:
            self._set_threads(before)

    def steps(self, remaining: int) -> int:
        """How many of the ``remaining`` steps of a call to run at the next count: all of them,
        or ``probe_steps`` when the next count is a probe or a warm-up, or ``wake_steps`` before
        a probe of all threads (the caller then asks again)."""
        if self._waking:
            return min(remaining, self.wake_steps)
        short = self.most > 1 and (self._probing or self._warmup_left > 0)
        return min(remaining, self.probe_steps) if short else remaining

    def before(self, count: int) -> None:
        """Set the thread count of the call about to make ``count`` steps; start its clock."""
        self._before = self._get_threads()
        self._set_threads(self.threads)
        self._started = self._clock()

    def after(self, steps: int) -> None:
        """The call made ``steps`` steps: choose the next call's thread count."""
        seconds = self._clock() - self._started
        self._set_threads(self._before)
        if self._waking:  # the threads woke for the probe that comes next: not timed
            self._waking = False
            return
        if steps < self.min_steps or self.most == 1:
            return
        per_step = seconds / steps
        ran = self.threads
        self.history.append((ran, per_step))
        if self._warmup_left > 0:  # a cold call: compared with nothing, compares nothing
            self._warmup_left -= 1
            return
        self._last[ran] = per_step
        if ran == self.most:
            self._fastest_most = min(self._fastest_most, per_step)
        if self._probing:  # this call compared the other count with the last one
            self._probing = False
            other = 1 if ran == self.most else self.most
            self.threads = ran if per_step <= self._last[other] else other
            self._calls_at_one = self._slow_calls = 0
            if ran == self.most:  # a probe of all threads: won (start afresh) or lost (wait longer)
                won = self.threads == self.most
                self._wait = self.probe_every if won else min(2 * self._wait, self.longest_wait)
            if self.threads == 1:
                self._mark_idle()
            return
        untried = self._last[1] == math.inf
        limit = min(self.slowdown * self._fastest_most, self._last[1])
        if ran == self.most:
            self._slow_calls = self._slow_calls + 1 if per_step > limit else 0
            if untried or self._slow_calls >= self.patience:  # contention?
                self.threads, self._probing, self._slow_calls = 1, True, 0  # try one thread
        elif ran == 1:
            self._calls_at_one += 1
            if self._calls_at_one >= self._wait:
                now, idle = self._clock(), self._idle_seconds()
                if idle is not None and self._no_core_was_free(now, idle):
                    self.skipped_probes += 1  # the contention goes on: nothing to try
                    self._calls_at_one = 0
                    self._idle_mark = (now, idle)
                    return
                self.threads, self._probing = self.most, True  # has it ended? try all again
                self._waking = self.wake_steps > 0

    def _mark_idle(self) -> None:
        """Start counting the cores' idle time: the run goes on one thread from here."""
        idle = self._idle_seconds()
        self._idle_mark = None if idle is None else (self._clock(), idle)

    def _no_core_was_free(self, now: float, idle: float) -> bool:
        """True if, from ``_mark_idle`` to ``now`` (when the cores' idle seconds were ``idle``),
        at least ``idle_window`` seconds went by and the cores sat idle less than ``free_core``
        of a core on average: another process took the cores that the other threads would run
        on."""
        if self._idle_mark is None:
            return False
        began, idle_then = self._idle_mark
        span = now - began
        return span >= self.idle_window and idle - idle_then < self.free_core * span
