"""The bits of a run do not depend on which compiled functions came from Numba's disk cache.

A kernel compiled in a process where its helpers were compiled too could inline them; where the
helpers were loaded from the cache, they might stay calls, and under fast-math
(kernels/_jit.py) the compiler could then rewrite the kernel's arithmetic differently: a run
would give other bits after another program (the tests, `numbamlp precompile`, an earlier run)
had filled the cache in another order. Session 10 suspected this of a 1-ulp difference in B.4;
these tests found no such dependence, on that session's code before its fix and with the fused
regions compiled under fast-math too (docs/performance.md, session 11), and keep it so: every
engine, activation, dtype and update rule trains in a process with an empty cache, then again
after the cache files of the callers are deleted, so that they are compiled against cached
callees; the final parameters must be bitwise the same.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TRAIN_EVERY_CONFIGURATION = """
import hashlib, itertools, sys
import numpy as np
import numbamlp

rng = np.random.default_rng(0)
X = rng.random((400, 40)).astype(np.float32)
X[X < 0.5] = 0  # blank inputs, as in images: the kernels' skips of zero spans run
y = rng.integers(0, 5, 400)
lines = []
runs = [
    dict(engine=engine, activation=activation, dtype=dtype, dropout=dropout)
    for engine, activation, dtype, dropout in itertools.product(
        ("fused", "kernels"), ("sigmoid", "tanh", "relu", "softplus"),
        ("float32", "float64"), (None, 0.2))
] + [dict(optimizer=optimizer) for optimizer in ("sgd", "momentum", "rmsprop", "adagrad")]
for options in runs:
    result = numbamlp.fit(X, y, X_test=X[:40], y_test=y[:40], hidden=(24, 16), epochs=2,
                          batch_size=32, verbose=0, progress=False, **options)
    theta = np.ascontiguousarray(result.model.params.theta)
    lines.append(f"{sorted(options.items())} {hashlib.sha256(theta.tobytes()).hexdigest()}")
print("\\n".join(lines))
"""

#: The modules whose functions call other compiled functions: the entry kernels, and the tiles
#: and row functions they call (which call the activations, expf and the update rules).
ENTRY_MODULES = ("regions", "forward", "backward", "optimizers", "dropout")
MIDDLE_MODULES = ("tiles", "rows")


def _train(cache: Path) -> list[str]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    done = subprocess.run(
        [sys.executable, "-c", TRAIN_EVERY_CONFIGURATION],
        env=env, capture_output=True, text=True, check=True, timeout=900,
    )  # fmt: skip
    return done.stdout.splitlines()


def _delete_cached(cache: Path, modules: tuple[str, ...]) -> None:
    for module in modules:
        files = [p for p in cache.rglob(f"{module}.*") if p.suffix in (".nbi", ".nbc")]
        assert files, f"no cached function of module {module!r}: was it renamed?"
        for path in files:
            path.unlink()


@pytest.fixture(scope="module")
def filled_cache(tmp_path_factory):
    """A cache filled by one process that compiled everything itself, and that run's digests."""
    cache = tmp_path_factory.mktemp("numba-cache")
    return cache, _train(cache)


@pytest.mark.parametrize(
    "deleted",
    [ENTRY_MODULES, ENTRY_MODULES + MIDDLE_MODULES],
    ids=["entry kernels against cached tiles and rows", "tiles and rows against cached leaves"],
)
def test_a_run_gives_the_same_bits_whatever_the_cache_held(filled_cache, tmp_path, deleted):
    cache, digests = filled_cache
    assert len(digests) == 36
    partial = tmp_path / "cache"
    shutil.copytree(cache, partial)
    _delete_cached(partial, deleted)
    kept = {path: path.stat().st_mtime_ns for path in partial.rglob("*.nbc")}
    assert _train(partial) == digests
    # the callees came from the cache (their files untouched), the callers were compiled again
    assert all(path.stat().st_mtime_ns == written for path, written in kept.items())
    assert len(list(partial.rglob("*.nbc"))) == len(list(cache.rglob("*.nbc")))
