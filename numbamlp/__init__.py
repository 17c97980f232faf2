"""numbamlp: feed-forward networks trained with the index-level backpropagation formulas,
written as explicit loops and compiled with Numba.

Importing the package is cheap; the Numba kernels load when a submodule needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"
