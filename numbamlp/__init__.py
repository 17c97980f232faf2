"""numbamlp: feed-forward networks trained with the index-level backpropagation formulas,
written as explicit loops and compiled with Numba.

Importing the package is cheap; the Numba kernels load when a submodule needs them. The names
below are re-exported lazily (module ``__getattr__``): ``from numbamlp import MLP`` imports
numbamlp.model.mlp (and Numba) at that moment, ``import numbamlp`` alone imports neither, so
``numbamlp --help`` stays fast.

>>> import numbamlp  # doctest: +SKIP
>>> result = numbamlp.fit(numbamlp.load_mnist(), epochs=5)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

__version__ = "0.3.0"

#: How long a waiting OpenMP thread spins before it sleeps (GNU libgomp, which Numba's ``omp``
#: threading layer uses). The fused engine waits at two barriers per step, so when another
#: process holds one of the cores, a thread spinning as long as libgomp's default (300 000
#: spins) burns the time its partner needs. 3 000 spins cost nothing on an idle machine and
#: avoid most of that loss on a busy one (benchmarks/test_contention.py; the timings are in
#: docs/performance.md, "Figures moved out of the code"). It must be in the environment before
#: Numba loads libgomp (its first parallel call, or numba.get_num_threads), hence here, in the
#: package's first import; a value the user set is kept.
OMP_SPIN_COUNT = "3000"
os.environ.setdefault("GOMP_SPINCOUNT", OMP_SPIN_COUNT)

#: The public names and the module each comes from, imported on first use.
_EXPORTS = {
    "MLP": "numbamlp.model.mlp",
    "TrainConfig": "numbamlp.training.trainer",
    "Trainer": "numbamlp.training.trainer",
    "train": "numbamlp.training.fit",
    "fit": "numbamlp.training.fit",
    "FitResult": "numbamlp.training.runner",
    "Run": "numbamlp.training.callbacks",
    "Callback": "numbamlp.training.callbacks",
    "EpochMetrics": "numbamlp.training.trainer",
    "TrainingDiverged": "numbamlp.training.trainer",
    "generators": "numbamlp.training.randomness",
    "Dataset": "numbamlp.datasets.loaders",
    "load_mnist": "numbamlp.datasets.loaders",
    "load_fashion_mnist": "numbamlp.datasets.loaders",
    "load_dataset": "numbamlp.datasets.loaders",
    "save_model": "numbamlp.model.modelio",
    "load_model": "numbamlp.model.modelio",
    "MLPClassifier": "numbamlp.estimator",
    "MLPRegressor": "numbamlp.estimator",
    "export_safetensors": "numbamlp.model.export",
    "export_onnx": "numbamlp.model.onnx_export",
    "NumbamlpError": "numbamlp.errors",
}
__all__ = [  # the same names, spelt out for linters (tests/test_api.py checks they agree)
    "__version__",
    "MLP",
    "TrainConfig",
    "Trainer",
    "train",
    "fit",
    "FitResult",
    "Run",
    "Callback",
    "EpochMetrics",
    "TrainingDiverged",
    "generators",
    "Dataset",
    "load_mnist",
    "load_fashion_mnist",
    "load_dataset",
    "save_model",
    "load_model",
    "MLPClassifier",
    "MLPRegressor",
    "export_safetensors",
    "export_onnx",
    "NumbamlpError",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports these
    from numbamlp.datasets.loaders import Dataset, load_dataset, load_fashion_mnist, load_mnist
    from numbamlp.errors import NumbamlpError
    from numbamlp.estimator import MLPClassifier, MLPRegressor
    from numbamlp.model.export import export_safetensors
    from numbamlp.model.mlp import MLP
    from numbamlp.model.modelio import load_model, save_model
    from numbamlp.model.onnx_export import export_onnx
    from numbamlp.training.callbacks import Callback, Run
    from numbamlp.training.fit import fit, train
    from numbamlp.training.randomness import generators
    from numbamlp.training.runner import FitResult
    from numbamlp.training.trainer import EpochMetrics, TrainConfig, Trainer, TrainingDiverged


def __getattr__(name: str) -> Any:
    """Import a re-exported name's module the first time the name is used (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'numbamlp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
