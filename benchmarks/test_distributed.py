"""Distributed training (numbamlp/engines/cluster.py): per step, the bytes each rank receives in the
exchange after region 1 and the time spent in it, against the time of the rest of the step.

Each case runs ``mpiexec -n 2`` on this file (``python test_distributed.py RANKS HIDDEN BATCH
STEPS THREADS``): MNIST, Adam, warm-up steps, then ``STEPS`` timed steps; rank 0 prints one
JSON object. One process (no MPI) with 2 threads and with 1 is timed by the same code for
comparison. On this 2-core machine the 2 ranks share the cores with each other (1 thread each),
so this measures the overhead of the exchange, not a speed-up; docs/performance.md turns the
figures into a model of N ranks on k machines. Skipped without the mpi extra.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import quick

HERE = Path(__file__).resolve()
MPIEXEC = shutil.which(
    "mpiexec", path=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
)
CASES = {"784-32-10, batch 128": (32, 128), "784-2048-10, batch 1024": (2048, 1024)}


def probe(ranks: int, hidden: int, batch: int, steps: int, threads: int) -> dict | None:
    """Time ``steps`` steps on MNIST (after as many warm-up steps) in this process, one of
    ``ranks`` MPI ranks (``ranks`` = 0: no MPI). Returns rank 0's figures, None elsewhere."""
    import numba

    from numbamlp.datasets.loaders import load_mnist
    from numbamlp.model.mlp import MLP
    from numbamlp.training.randomness import generators
    from numbamlp.training.trainer import TrainConfig, Trainer

    numba.set_num_threads(threads)
    data = load_mnist()
    init_rng, train_rng = generators(0)
    model = MLP.create(784, [hidden], 10, rng=init_rng)
    config = TrainConfig(batch_size=batch)
    cluster = exchange = None
    if ranks:
        from numbamlp.engines.cluster import connect

        cluster = connect(60)
    trainer = Trainer(
        model, data.X_train_raw, data.y_train, config, train_rng, scale=1 / 255, cluster=cluster
    )
    if cluster is not None:
        exchange = trainer.engine.plan.exchange
    trainer.train_steps(steps)  # compile, warm up
    waiting, received = (cluster.seconds_waiting, exchange.bytes_received) if exchange else (0.0, 0)
    started = time.perf_counter()
    trainer.train_steps(steps)
    seconds = (time.perf_counter() - started) / steps
    if cluster is not None and cluster.rank != 0:
        return None
    result = {"seconds_per_step": seconds, "ranks": ranks or 1, "threads": threads}
    if exchange is not None:
        result["exchange_seconds_per_step"] = (cluster.seconds_waiting - waiting) / steps
        result["bytes_received_per_step"] = (exchange.bytes_received - received) / steps
    return result


def _launch(ranks: int, hidden: int, batch: int, steps: int, threads: int) -> dict:
    command = [sys.executable, str(HERE), str(ranks), str(hidden), str(batch), str(steps)]
    command.append(str(threads))
    if ranks:
        command = [MPIEXEC, "-n", str(ranks), "--bind-to", "none", *command]
    env = os.environ | {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(MPIEXEC is None, reason="the mpi extra is not installed")
@pytest.mark.parametrize("case", list(CASES))
def test_exchange_vs_compute(benchmark, case):
    benchmark.group = "distributed: 2 MPI ranks on 2 cores, per step"
    hidden, batch = CASES[case]
    steps = 2 if quick(benchmark) else (200 if hidden < 100 else 20)
    figures = {}

    def run() -> None:
        figures["mpi"] = _launch(2, hidden, batch, steps, 1)
        figures["one process, 2 threads"] = _launch(0, hidden, batch, steps, 2)
        figures["one process, 1 thread"] = _launch(0, hidden, batch, steps, 1)

    benchmark.pedantic(run, rounds=1)
    mpi = figures["mpi"]
    benchmark.extra_info.update(
        case=case,
        bytes_received_per_step=mpi["bytes_received_per_step"],
        exchange_seconds_per_step=mpi["exchange_seconds_per_step"],
        seconds_per_step_2_ranks=mpi["seconds_per_step"],
        seconds_per_step_1_process_2_threads=figures["one process, 2 threads"]["seconds_per_step"],
        seconds_per_step_1_process_1_thread=figures["one process, 1 thread"]["seconds_per_step"],
    )
    print(case, json.dumps(figures))


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    out = probe(*(int(a) for a in sys.argv[1:6]))
    if out is not None:
        print(json.dumps(out))
