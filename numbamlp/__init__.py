"""numbamlp: feed-forward networks trained with the index-level backpropagation formulas,
written as explicit loops and compiled with Numba.

Importing the package is cheap; the Numba kernels load when a submodule needs them.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

#: How long a waiting OpenMP thread spins before it sleeps (GNU libgomp, which Numba's ``omp``
#: threading layer uses). libgomp's default, 300 000 spins, is about 0.1 ms per wait; the fused
#: engine waits at two barriers per step, so when another process holds one of the cores the
#: spinning thread burns the time its partner needs: measured on 2 cores with one busy, 3–3.9 s
#: per reference epoch instead of 0.08 s. 3 000 spins cost nothing on an idle machine (0.080 s)
#: and keep the busy case at 0.19–0.21 s (benchmarks/test_contention.py). It must be in the
#: environment before Numba loads libgomp (its first parallel call, or numba.get_num_threads),
#: hence here, in the package's first import; a value the user set is kept.
OMP_SPIN_COUNT = "3000"
os.environ.setdefault("GOMP_SPINCOUNT", OMP_SPIN_COUNT)
