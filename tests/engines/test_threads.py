"""The fused engine's thread count follows the machine (engines/threads.py): the policy on a
scripted clock, the same θ whatever count each call runs on, and the run that uses it."""

from __future__ import annotations

import os

import numba
import numpy as np
import pytest

from numbamlp.engines.threads import AdaptiveThreads, cpu_idle_seconds
from numbamlp.model.mlp import MLP
from numbamlp.training.trainer import TrainConfig, Trainer, generators

needs_two_threads = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads"
)


class Machine:
    """A scripted machine: each call's seconds per step depend on the thread count it runs on
    and on whether another process holds a core; it records the counts the governor set."""

    def __init__(self, quiet: dict[int, float], busy: dict[int, float]) -> None:
        self.quiet, self.busy, self.contended = quiet, busy, False
        self.now, self.threads, self.set_calls = 0.0, 2, []
        self.hiccups: list[float] = []  # factors on the time of the next calls, one per call
        self.wake_cost = 0.0  # seconds of a call on 2 threads after one on 1: the threads slept
        self.last_ran = 2
        self.idle = (
            0.0  # seconds the other core sat idle: while the run is on 1 thread, unless busy
        )

    def set_threads(self, n: int) -> None:
        self.threads = n
        self.set_calls.append(n)

    def engine_call(self, governor: AdaptiveThreads, steps: int = 32) -> list[tuple[int, int]]:
        """One engine call as FusedEngine.run makes it: segments of ``governor.steps``; returns
        (count, steps) of each segment."""
        segments, done = [], 0
        while done < steps:
            n = governor.steps(steps - done)
            segments.append((self.call(governor, n), n))
            done += n
        return segments

    def call(self, governor: AdaptiveThreads, steps: int = 32) -> int:
        """One engine call through the governor; returns the count it ran on."""
        governor.before(steps)
        ran = self.threads
        factor = self.hiccups.pop(0) if self.hiccups else 1.0
        seconds = factor * steps * (self.busy if self.contended else self.quiet)[ran]
        if ran > self.last_ran:
            seconds += self.wake_cost
        self.now += seconds
        if ran == 1 and not self.contended:
            self.idle += seconds
        self.last_ran = ran
        governor.after(steps)
        return ran


def governor_on(machine: Machine, **options) -> AdaptiveThreads:
    options.setdefault("idle_seconds", lambda: machine.idle)
    return AdaptiveThreads(
        2,
        set_threads=machine.set_threads,
        get_threads=lambda: machine.threads,
        clock=lambda: machine.now,
        **options,
    )


# Per-step seconds measured on the 2-core VM (docs/performance.md): quiet, two threads are
# 1.7× faster; with one core busy, two threads are 1.7× slower than one.
QUIET = {2: 100e-6, 1: 170e-6}
BUSY = {2: 350e-6, 1: 190e-6}


def test_a_quiet_machine_keeps_every_thread_after_one_comparison():
    machine = Machine(QUIET, BUSY)
    governor = governor_on(machine)
    # the first call warms up, the second is compared with one call on one thread
    assert [machine.call(governor) for _ in range(200)] == [2, 2, 1] + [2] * 197


def test_a_cold_first_call_and_a_single_hiccup_keep_every_thread():
    machine = Machine(QUIET, BUSY)
    governor = governor_on(machine)
    machine.hiccups = [3.0]  # the run's first call: data and threads cold
    ran = [machine.call(governor) for _ in range(50)]
    machine.hiccups = [2.5]  # one slow call on a quiet machine (another process, briefly)
    ran += [machine.call(governor) for _ in range(50)]
    assert ran == [2, 2, 1] + [2] * 97


def test_a_run_that_starts_beside_a_busy_process_moves_to_one_thread_at_once():
    machine = Machine(QUIET, BUSY)
    machine.contended = True  # no quiet speed to compare with: the first comparison decides
    governor = governor_on(machine)
    calls = [machine.engine_call(governor) for _ in range(20)]
    # a short warm-up and the rest of the first call on 2 threads, then one thread from the
    # second call on; the probes of 2 threads in those 20 calls (after 2, 4 and 8 calls on one
    # thread) are a wake-up step and 4 steps each
    assert calls[:3] == [[(2, 4), (2, 28)], [(1, 4), (1, 28)], [(1, 32)]]
    probes = [k for k, segments in enumerate(calls) if k > 0 and segments[0][0] == 2]
    assert probes == [3, 7, 15] and all(calls[k] == [(2, 1), (2, 4), (1, 27)] for k in probes)
    steps_on_two = sum(n for segments in calls[1:] for threads, n in segments if threads == 2)
    assert steps_on_two == 5 * len(probes)


def test_a_busy_core_moves_the_steps_to_one_thread_and_back_when_it_frees():
    """Where the cores' idle time is not known (not Linux), probes of both threads find out."""
    machine = Machine(QUIET, BUSY)
    governor = governor_on(machine, probe_every=8, idle_seconds=lambda: None)
    for _ in range(5):
        machine.engine_call(governor)
    machine.contended = True
    calls = [machine.engine_call(governor) for _ in range(500)]
    # two slow calls in a row, then 4 steps on one thread, which win and stay; after 8, 16, 32,
    # 64, 128, 128 … calls one call tries both threads again (one untimed step that wakes
    # them, 4 timed steps), loses, and the rest of the call goes back to one thread
    assert calls[:3] == [[(2, 32)], [(2, 32)], [(1, 4), (1, 28)]]
    probes = [k for k, segments in enumerate(calls) if k > 2 and segments[0][0] == 2]
    assert np.diff(probes).tolist()[:5] == [16, 32, 64, 128, 128]  # the wait doubles, to 128
    assert all(calls[k] == [(2, 1), (2, 4), (1, 27)] for k in probes)
    machine.contended = False
    calls = [machine.engine_call(governor) for _ in range(150)]
    assert calls[-10:] == [[(2, 32)]] * 10  # the probe of both threads wins once the core is free


def test_no_probe_while_the_other_core_is_seen_busy_and_one_soon_after_it_frees():
    """Where the cores' idle time is known, a lasting contention costs no probe once the wait
    spans ``idle_window``, and its end is seen at the next check."""
    machine = Machine(QUIET, BUSY)
    governor = governor_on(machine)  # the default waits and window
    for _ in range(5):
        machine.engine_call(governor)
    machine.contended = True
    calls = [machine.engine_call(governor) for _ in range(500)]
    probes = [k for k, segments in enumerate(calls) if k > 2 and segments[0][0] == 2]
    # probes after 2, 4 and 8 calls (under the 50 ms window at 6 ms a call), none after
    assert len(probes) == 3 and probes[-1] < 20
    assert governor.skipped_probes >= (500 - 20) // 16
    machine.contended = False
    calls = [machine.engine_call(governor) for _ in range(20)]
    assert calls[-1] == [(2, 32)]


def test_the_idle_time_of_the_cpus_this_process_may_use(tmp_path):
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    cpus = max(allowed, default=0) + 2  # one CPU this process may not use
    lines = ["cpu  900 0 90 9000 900 0 0 0 0 0"]
    # user nice system idle iowait …: idle 100·(c+1) and iowait c ticks on CPU c
    lines += [f"cpu{c} 10 0 1 {100 * (c + 1)} {c} 0 0 0 0 0" for c in range(cpus)]
    stat = tmp_path / "stat"
    stat.write_text("\n".join(lines + ["intr 12345", "ctxt 678"]) + "\n")
    measured = cpu_idle_seconds(stat)
    if not allowed:
        assert measured is None
        return
    ticks = sum(100 * (c + 1) + c for c in allowed)
    assert measured == pytest.approx(ticks / os.sysconf("SC_CLK_TCK"))
    assert cpu_idle_seconds(tmp_path / "missing") is None


def test_a_probe_on_a_quiet_machine_wins_though_its_first_step_is_cold():
    """After a stretch on one thread the other threads sleep, and the first step of a probe
    wakes them and moves the weights back into their caches. Timed with the probe's other
    steps, that cost made the probe about as slow as one thread; untimed, the probe wins."""
    machine = Machine(QUIET, BUSY)
    governor = governor_on(machine, probe_every=8)
    machine.hiccups = [1.0, 4.0]  # the first timed call on 2 threads hits a hiccup: one thread
    machine.wake_cost = 0.5e-3  # timed with 4 steps: 225 µs per step, one thread 170
    calls = [machine.engine_call(governor) for _ in range(12)]
    assert calls[1] == [(1, 4), (1, 28)]  # the hiccup sent the run to one thread
    assert calls[-1] == [(2, 32)]  # the probe after 8 calls won: back on both threads


def test_a_false_alarm_on_a_quiet_machine_costs_a_few_calls_on_one_thread():
    """A quiet VM has stretches of slow calls (another guest, a daemon): two or three in a row
    send the run to one thread, and the first probe of both threads comes back soon."""
    machine = Machine(QUIET, BUSY)
    governor = governor_on(machine)  # the default waits
    for _ in range(20):
        machine.engine_call(governor)
    machine.contended = True  # for three calls: long enough to lose a comparison
    calls = [machine.engine_call(governor) for _ in range(3)]
    assert calls[-1] == [(1, 4), (1, 28)]
    machine.contended = False
    calls = [machine.engine_call(governor) for _ in range(30)]
    steps_on_one = sum(n for segments in calls for threads, n in segments if threads == 1)
    assert steps_on_one <= 2 * 32  # two calls, then a probe of both threads that wins
    assert calls[-1] == [(2, 32)]


def test_a_probe_runs_a_few_steps_and_the_call_goes_on_at_the_count_it_chose():
    machine = Machine(QUIET, BUSY)
    governor = governor_on(machine, probe_every=8, probe_steps=8)
    machine.contended = True
    calls = [machine.engine_call(governor) for _ in range(100)]
    # the warm-up takes 8 steps, the rest of the call on 2 threads is timed, and the comparison
    # on 1 thread takes 8 steps and wins: 32 steps in all on 2 threads before the run settles
    assert calls[:2] == [[(2, 8), (2, 24)], [(1, 8), (1, 24)]]
    probes = [segments for segments in calls[2:] if segments[0][0] == 2]
    assert probes and all(segments == [(2, 1), (2, 8), (1, 23)] for segments in probes)
    steps_on_two = sum(n for segments in calls[2:] for threads, n in segments if threads == 2)
    assert steps_on_two == 9 * len(probes)  # a wake-up step and the probe's 8
    machine.contended = False
    calls = [machine.engine_call(governor) for _ in range(150)]
    assert calls[-1] == [(2, 32)]  # a probe of both threads won: whole calls on 2 again


def test_one_thread_in_all_neither_warms_up_nor_probes():
    machine = Machine(QUIET, BUSY)
    machine.threads = 1
    governor = AdaptiveThreads(
        1, set_threads=machine.set_threads, get_threads=lambda: 1, clock=lambda: machine.now
    )
    assert [machine.engine_call(governor) for _ in range(5)] == [[(1, 32)]] * 5


def test_short_calls_decide_nothing_and_every_call_restores_the_count():
    machine = Machine(QUIET, BUSY)
    governor = governor_on(machine, min_steps=8)
    machine.contended = True
    assert [machine.call(governor, steps=1) for _ in range(10)] == [2] * 10  # too short to time
    machine.threads = 2
    machine.call(governor)  # a timed call sets the first fastest: nothing to compare yet
    machine.call(governor)
    assert machine.threads == 2  # after each call, the count set before it
    assert governor.threads in (1, 2)


def test_the_settled_count_runs_the_training_s_own_parallel_work():
    """Between calls (the test set's accuracy logged during an epoch) the work runs on the
    count the last comparison chose, the one compared against while a probe is pending, and
    the count set before comes back after."""
    machine = Machine(QUIET, BUSY)
    governor = governor_on(machine, probe_every=8)
    machine.contended = True
    for _ in range(6):
        machine.call(governor)
    assert governor.threads == 1 and governor.settled == 1
    with governor.settled_threads():
        assert machine.threads == 1
    assert machine.threads == 2
    while governor.threads == 1:  # on to the next probe of both threads
        machine.call(governor)
    assert governor.threads == 2 and governor.settled == 1  # a probe is pending: not trusted
    machine.contended = False
    machine.call(governor)  # the threads wake for the probe: not timed, nothing decided
    assert governor.settled == 1
    machine.call(governor)  # the probe wins on the freed core
    assert governor.settled == 2


def synthetic_problem(n: int = 1500, d: int = 12, classes: int = 3):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, d))
    y = np.argmax(X @ rng.normal(size=(d, classes)), axis=1)
    return X, y


class Alternating:
    """A governor that runs segment k on 1 thread when k is odd, on 2 when it is even."""

    def __init__(self) -> None:
        self.k = 0
        self.counts: list[int] = []

    def steps(self, remaining: int) -> int:
        return min(remaining, 5)  # every call split, as a probe splits one

    def before(self, count: int) -> None:
        numba.set_num_threads(1 + self.k % 2)
        self.counts.append(numba.get_num_threads())

    def after(self, steps: int) -> None:
        self.k += 1
        numba.set_num_threads(2)


def trained_theta(governor_factory=None) -> bytes:
    X, y = synthetic_problem()
    init_rng, sampling_rng = generators(seed=3)
    model = MLP.create(X.shape[1], [16, 8], 3, activations=["tanh", "relu"], rng=init_rng)
    config = TrainConfig(epochs=2, batch_size=16, optimizer="adam", lr=1e-2)
    options = {"adaptive_threads": True} if governor_factory else None
    trainer = Trainer(model, X, y, config, sampling_rng, engine_options=options)
    if governor_factory:
        trainer.engine.governor = governor_factory()  # type: ignore[attr-defined]
    for _ in range(config.epochs):
        trainer.train_epoch()
    return model.params.theta.tobytes()


@needs_two_threads
def test_changing_the_thread_count_between_calls_changes_no_bit(restore_threads):
    """Each epoch is 94 steps in calls of 1, 32, 32, 29, each split into runs of at most 5 steps
    (as a probe splits a call): with the count switched between 1 and 2 at every run, θ is the
    bits of the run on 2 threads throughout."""
    numba.set_num_threads(2)
    fixed = trained_theta()
    governor = Alternating()
    switched = trained_theta(lambda: governor)
    assert set(governor.counts) == {1, 2}
    assert switched == fixed


@needs_two_threads
def test_fit_without_threads_adapts_and_with_threads_does_not(restore_threads, monkeypatch):
    import numbamlp
    from numbamlp.engines.fused.engine import FusedEngine

    built: list[FusedEngine] = []
    original = FusedEngine.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(FusedEngine, "__init__", spy)
    X, y = synthetic_problem(300)
    numba.set_num_threads(2)
    numbamlp.fit(X, y, epochs=1, verbose=0)
    numbamlp.fit(X, y, epochs=1, threads=2, verbose=0)
    assert built[0].governor is not None and built[1].governor is None


def test_the_fused_engine_s_accuracy_runs_on_the_settled_count(restore_threads):
    """The trainer's accuracy (what an epoch's log of the test set calls) enters the governor's
    settled count; without a governor it runs on the count that is set."""
    X, y = synthetic_problem(200)
    init_rng, sampling_rng = generators(seed=3)
    model = MLP.create(X.shape[1], [16], 3, rng=init_rng)
    config = TrainConfig(epochs=1, batch_size=16, optimizer="adam", lr=1e-2)
    options = {"adaptive_threads": True}
    trainer = Trainer(model, X, y, config, sampling_rng, engine_options=options)
    counts: list[int] = []
    governor = AdaptiveThreads(
        2, set_threads=counts.append, get_threads=lambda: 2, clock=lambda: 0.0
    )
    governor.threads = 1  # as after a busy core moved the steps to one thread
    trainer.engine.governor = governor  # type: ignore[attr-defined]
    accuracy = trainer.accuracy(X, y)
    assert counts == [1, 2]  # the settled count, then the one set before
    trainer.engine.governor = None  # type: ignore[attr-defined]
    assert trainer.accuracy(X, y) == accuracy and counts == [1, 2]
