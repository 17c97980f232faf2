"""Start-up and memory (targets 4 and 6), measured on real `numbamlp` processes.

* `numbamlp --help`: wall time of the whole process.
* warm start: `numbamlp train` prints "ready in X s" (from the start of the command to the
  first batch); with a warm JIT cache that is start-up, MNIST load and check, kernel load.
* cold compile: the same with an empty NUMBA_CACHE_DIR; the command reports the compile time.
* peak memory: the peak RSS of a 1-epoch run against the size of the data set in memory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import quick

NUMBAMLP = str(Path(sys.executable).with_name("numbamlp"))


def _run(args, env=None):
    started = time.perf_counter()
    out = subprocess.run(
        [NUMBAMLP, *args], capture_output=True, text=True, env=env, check=True
    ).stdout
    return time.perf_counter() - started, out


def test_help(benchmark):
    benchmark.group = "start-up: numbamlp --help (whole process)"
    benchmark.pedantic(_run, args=(["--help"],), rounds=1 if quick(benchmark) else 7)


def _ready_seconds(out: str) -> float:
    match = re.search(r"ready in ([0-9.]+) s", out)
    assert match, out
    return float(match.group(1))


def test_warm_start_to_first_batch(benchmark):
    benchmark.group = "start-up: command start to first batch, warm JIT cache"
    args = ["train", "--epochs", "1"]
    _run(args)  # warm the cache
    readies = []

    def once():
        readies.append(_ready_seconds(_run(args)[1]))

    benchmark.pedantic(once, rounds=1 if quick(benchmark) else 5)
    readies.sort()
    benchmark.extra_info["ready_seconds_median"] = readies[len(readies) // 2]


def test_cold_compile(benchmark, tmp_path):
    benchmark.group = "start-up: first run with an empty JIT cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    seconds, out = benchmark.pedantic(_run, args=(["train", "--epochs", "1"], env), rounds=1)
    match = re.search(r"compiled .* in ([0-9.]+) s", out)
    assert match, out
    benchmark.extra_info["compile_seconds"] = float(match.group(1))
    benchmark.extra_info["ready_seconds"] = _ready_seconds(out)
    # Not a speed claim, a check of the report: compiling is most of a cold run's wait for its
    # first batch, so the reported compile time cannot be a small part of it.
    assert float(match.group(1)) >= 0.5 * _ready_seconds(out), out
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_peak_memory(benchmark):
    benchmark.group = "memory: peak RSS of a 1-epoch numbamlp train"
    # VmHWM (the peak resident set of this process image) rather than ru_maxrss, which a
    # child inherits from the forking parent (here: pytest, holding MNIST and the baselines).
    hwm = (
        "print([int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    )
    train = (
        "from numbamlp.cli.commands import main\n"
        "try:\n    main(['train', '--epochs', '1', '--quiet'])\n"
        "except SystemExit:\n    pass\n" + hwm + "\n"
    )
    imports = (
        "import numba, numpy, numbamlp.training.trainer, numbamlp.cli.commands\n"
        "import numbamlp.datasets.loaders\n" + hwm
    )

    def peak(src):
        out = subprocess.run(
            [sys.executable, "-c", src], capture_output=True, text=True, check=True
        )
        return int(out.stdout.strip().splitlines()[-1]) * 1024

    result = {}

    def once():
        result["train"] = peak(train)
        result["imports"] = peak(imports)

    benchmark.pedantic(once, rounds=1)
    from numbamlp.datasets.loaders import load_mnist

    data = load_mnist()
    arrays = (data.X_train_raw, data.y_train, data.X_test_raw, data.y_test)
    dataset_bytes = sum(a.nbytes for a in arrays)
    benchmark.extra_info.update(
        peak_rss_mib=result["train"] / 2**20,
        imports_rss_mib=result["imports"] / 2**20,
        dataset_mib=dataset_bytes / 2**20,
        overhead_mib=(result["train"] - result["imports"] - dataset_bytes) / 2**20,
    )
