"""Where a reference step's time goes (issue 20): each phase of the fused engine alone, on one
thread, and each region and the whole step on one and two threads (also for the widest point of
the sweep, 784-2048-10 at batch 1024). ``scaling_model.py`` turns a run of this file into the
modelled times on more threads.

The reference workload (MNIST 60k as float32, 784-32-10 σ/softmax, Adam, batch 128). Each
benchmark times ``STEPS`` steps of one phase on the plan's own buffers (benchmarks/phases.py);
extra_info["microseconds_per_step"] is the median round divided by the steps. Read together:

* the phases on one thread add up to about region 1 plus region 2 on one thread; the rest is
  what the phases do to each other's caches;
* region r on 2 threads against half of it on 1 thread is what two threads lose there: the
  opening and closing of the parallel region, the wait for the slower thread, and the cache
  lines one core reads from the other (W^1, written by region 2 of the other core);
* the whole step against the two regions is everything between them (the minibatch loss, the
  step's coefficients) and what each region leaves in the cache for the other;
* ``gather h^0`` walks through the epoch's minibatches, so it pays for the rows of X that are
  not in the cache; every other phase repeats one step's work on what the step left in cache.

docs/performance.md ("session 7") has the figures and what they say about the FLOP limit.
"""

from __future__ import annotations

import numba
import pytest
from conftest import make_trainer, quick, rng_subset
from phases import PhaseBench, on_threads

STEPS = 469  # one epoch of the reference workload
# The phases of the reference network (784-32-10), in the order region 1 and 2 run them.
PHASES = [
    "gather h^0",
    "F.1 layer 1",
    "F.2 layer 1",
    "F.1 layer 2",
    "F.3, L.1, P.1, B.1 (head)",
    "B.4 layer 1",
    "B.3 + B.2 layer 1 (shards)",
    "B.3 + B.2 layer 2 (shards)",
    "shard sums (region 2)",
    "U.6 Adam (region 2)",
]


#: name → (hidden units, batch size, steps per timed round): the reference workload, and the
#: widest point of the sweep, where region 1 has 16 blocks and W^1 has no shards.
WORKLOADS = {"784-32-10, batch 128": (32, 128, STEPS), "784-2048-10, batch 1024": (2048, 1024, 10)}


def _phase_bench(mnist, request, hidden: int, batch: int) -> PhaseBench:
    X, y = mnist.X_train, mnist.y_train
    if request.config.getoption("benchmark_disable"):
        X, y = rng_subset(X, y, 2 * batch)
    trainer = make_trainer("numbamlp", X, y, hidden=hidden, batch=batch, threads=2)
    return PhaseBench(trainer.trainer)


@pytest.fixture(scope="module")
def reference_step(mnist, request):
    """A PhaseBench of the reference workload (tiny data under --benchmark-disable)."""
    return _phase_bench(mnist, request, 32, 128)


@pytest.fixture(scope="module")
def wide_step(mnist, request):
    """A PhaseBench of 784-2048-10 at batch 1024."""
    return _phase_bench(mnist, request, 2048, 1024)


def _time(benchmark, run, steps: int) -> None:
    benchmark.pedantic(run, rounds=1 if quick(benchmark) else 7, warmup_rounds=1)
    if benchmark.stats:
        benchmark.extra_info["microseconds_per_step"] = benchmark.stats.stats.median / steps * 1e6


def test_the_phases_are_those_of_the_reference_network(reference_step):
    assert list(reference_step.phases(1)) == PHASES


@pytest.mark.parametrize("phase", PHASES)
def test_phase_alone(benchmark, reference_step, phase):
    benchmark.group = "phases: a reference step, each phase alone on 1 thread"
    steps = 2 if quick(benchmark) else STEPS
    _time(benchmark, on_threads(1, reference_step.phases(steps)[phase]), steps)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("part", ["region 1", "region 2", "whole step"])
@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_region(benchmark, request, workload, part, threads):
    benchmark.group = f"phases: {part}, {workload}, 1 and 2 threads"
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("needs 2 Numba threads")
    bench = request.getfixturevalue(
        "reference_step" if WORKLOADS[workload][0] == 32 else "wide_step"
    )
    steps = 2 if quick(benchmark) else WORKLOADS[workload][2]
    run = {"region 1": bench.region1, "region 2": bench.region2, "whole step": bench.whole_steps}[
        part
    ]
    _time(benchmark, on_threads(threads, lambda: run(steps)), steps)
    benchmark.extra_info["threads"] = threads
