"""numbamlp shortens OpenMP's spin-waiting (numbamlp/__init__.py) unless the user chose a value:
with libgomp's default, an epoch on 2 cores gets 10–50× slower whenever another process holds
one core (benchmarks/test_contention.py measures it)."""

from __future__ import annotations

import os
import subprocess
import sys


def _spin_count_after_import(env: dict[str, str]) -> str:
    code = "import os, numbamlp.cli.commands; print(os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_the_package_sets_a_short_spin_count_before_numba_loads_openmp():
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    from numbamlp import OMP_SPIN_COUNT

    assert _spin_count_after_import(env) == OMP_SPIN_COUNT == "3000"


def test_a_spin_count_the_user_set_is_kept():
    assert _spin_count_after_import(dict(os.environ, GOMP_SPINCOUNT="123")) == "123"
