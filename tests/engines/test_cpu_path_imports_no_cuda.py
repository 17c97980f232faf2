"""The CPU path never imports a CUDA package: ``import numbamlp``, building a model and running
the CPU trainer (both engines) leave numba.cuda, numba_cuda_mlir and numbamlp.engines.cuda unloaded.

Runs in a fresh interpreter, since this test process may have loaded them for other tests.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import numbamlp
    from numbamlp.model.mlp import MLP
    from numbamlp.training.trainer import TrainConfig, Trainer, generators
    # the CLI module too: --device cuda must load CUDA lazily
    from numbamlp.cli import commands as cli

    init_rng, rng = generators(0)
    X = np.random.default_rng(0).random((12, 5))
    y = np.arange(12) % 3
    for engine in ("fused", "kernels"):
        model = MLP.create(5, [4], 3, rng=init_rng)
        Trainer(model, X, y, TrainConfig(epochs=1, batch_size=4, engine=engine), rng).train_epoch()
    loaded = sorted(
        name for name in sys.modules
        if name.startswith(("numba.cuda", "numba_cuda", "numbamlp.engines.cuda"))
        or name in ("cuda", "cuda.bindings", "cuda.core")
    )
    print("LOADED:", loaded)
    """
)


def test_cpu_training_imports_no_cuda_module():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED: []" in result.stdout, result.stdout
