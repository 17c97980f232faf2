"""A newcomer's first run: the whole default `numbamlp train` command, as processes, timed.

One group, so its table reads as ratios. Every entry is a whole process (interpreter start,
imports, MNIST read and checked, training, a test-set evaluation per epoch):

* ``numbamlp-installed``: the first run after ``pip install .``, whose build compiled the kernels
  into the JIT cache (setup.py, numbamlp/cli/precompile.py). Here the cache is filled by the same
  ``precompile`` into an empty NUMBA_CACHE_DIR before the timed run, outside the timing.
* ``numbamlp-cold``: an empty JIT cache, so the command compiles every kernel it runs (what a
  wheel built with NUMBAMLP_PRECOMPILE=0, or a run of another dtype, sees).
* ``numbamlp-warm``: any later run.
* ``torch-first-run``: the same job written for PyTorch eager (baselines/torch_first_run.py).

The full run trains the default 20 epochs; the quick run (CI) one epoch and no precompile.
Each process runs once per round: a first run happens once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import have, quick

NUMBAMLP = str(Path(sys.executable).with_name("numbamlp"))
TORCH_SCRIPT = str(Path(__file__).parent / "baselines" / "torch_first_run.py")
GROUP = "first run: whole `numbamlp train` command (default job), as a process"


def _epochs(benchmark) -> str:
    return "1" if quick(benchmark) else "20"


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def _cache_env(directory: Path) -> dict[str, str]:
    return dict(os.environ, NUMBA_CACHE_DIR=str(directory))


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jit-cache")


def test_cold(benchmark, shared_cache, tmp_path):
    benchmark.group = GROUP
    benchmark.name = "numbamlp-cold"
    command = [NUMBAMLP, "train", "--quiet", "--epochs", _epochs(benchmark)]
    rounds = 1 if quick(benchmark) else 2
    # Each round an empty cache; the first one is the module's, which test_warm then reuses.
    directories = iter([shared_cache] + [tmp_path / f"cold-{r}" for r in range(1, rounds)])

    def setup():
        return (command, _cache_env(next(directories))), {}

    benchmark.pedantic(_timed, setup=setup, rounds=rounds)


def test_installed(benchmark, tmp_path):
    if quick(benchmark):
        pytest.skip("the quick run does not precompile (tests/cli/test_precompile.py covers it)")
    benchmark.group = GROUP
    benchmark.name = "numbamlp-installed"
    command = [NUMBAMLP, "train", "--quiet", "--epochs", _epochs(benchmark)]
    rounds = iter(range(3))

    def setup():
        env = _cache_env(tmp_path / f"installed-{next(rounds)}")
        subprocess.run([NUMBAMLP, "precompile"], env=env, check=True, capture_output=True)
        return (command, env), {}

    benchmark.pedantic(_timed, setup=setup, rounds=3)


def test_warm(benchmark, shared_cache):
    benchmark.group = GROUP
    benchmark.name = "numbamlp-warm"
    command = [NUMBAMLP, "train", "--quiet", "--epochs", _epochs(benchmark)]
    env = _cache_env(shared_cache)
    subprocess.run(command, env=env, check=True, capture_output=True)  # fills it if need be
    benchmark.pedantic(_timed, args=(command, env), rounds=1 if quick(benchmark) else 3)


def test_torch_first_run(benchmark):
    if not have("torch"):
        pytest.skip("torch not installed (pip install torch==2.13.0)")
    benchmark.group = GROUP
    benchmark.name = "torch-first-run"
    command = [sys.executable, TORCH_SCRIPT, _epochs(benchmark)]
    benchmark.pedantic(
        _timed, args=(command, dict(os.environ)), rounds=1 if quick(benchmark) else 3
    )
