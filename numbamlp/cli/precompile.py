"""Compile the kernels of a training run ahead of it, into Numba's on-disk cache.

A cold ``numbamlp train`` spends most of the command compiling (the figures, and the split by
function, are in docs/performance.md: "Where a cold run's time goes" in its Session 4, and
"Figures moved out of the code"). The compiled code is cached on disk, keyed by the source
files' content (Numba ≥ 0.60 hashes them), the function's bytecode, the argument types, the
Numba version and the CPU; so code compiled on this machine for these sources is valid
wherever the same sources are installed on it. Two ways to pay that cost before the first run:

* ``pip install .`` runs :func:`precompile` while it builds the wheel (``setup.py``): the cache
  files land in the wheel next to the modules (``numbamlp/__pycache__``), and the first
  ``numbamlp train`` only loads them. ``NUMBAMLP_PRECOMPILE=0`` skips it (e.g. for a wheel meant
  for other machines: the cache files then never match and are ignored).
* ``numbamlp precompile`` does the same for an installed or editable copy, for any dtype.

What is compiled is what the runs call, with the types they pass, because it is made by
running them: a few minibatches of the fused engine on the bundled MNIST's bytes (built-in data
sets) and on float features of θ's dtype (your own files), and the evaluation and prediction
path on both. One ``run_steps`` per (θ dtype, input dtype) serves every architecture,
activation, output head, optimizer, schedule and batch size, since those are run-time values
in its loops, not types; float64 and the ``kernels`` engine compile on first use unless asked
for here.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import numpy as np

#: The runs ``pip install .`` compiles for: ``numbamlp train``'s default dtype on the built-in
#: data sets (bytes) and on float features.
DEFAULT_DTYPES: tuple[str, ...] = ("float32",)


def precompile(
    dtypes: Sequence[str] = DEFAULT_DTYPES, report: Callable[[str], None] | None = None
) -> float:
    """Compile (or load) every kernel that training, evaluation and prediction run for θ of
    each dtype in ``dtypes``, on uint8 pixels and on float features. Returns the seconds taken."""
    from numbamlp.datasets.loaders import load_mnist
    from numbamlp.model.mlp import MLP
    from numbamlp.training.randomness import generators
    from numbamlp.training.trainer import TrainConfig, Trainer

    started = time.perf_counter()
    data = load_mnist()  # real arrays: the types (layout, writability) that a run passes
    pixels, y = data.X_train_raw[:256].copy(), data.y_train[:256].copy()
    for dtype in dtypes:
        dtype_started = time.perf_counter()
        features = pixels.astype(dtype) * np.asarray(data.feature_scale, dtype)
        for X, scale in ((pixels, data.feature_scale), (features, 1.0)):
            # Both samplings (I.1 draws indices with a kernel of its own) and both heads (the
            # evaluation path has one kernel per head; training has one for all).
            for sampling, head in (("shuffle", "softmax"), ("iid", "modified-softmax")):
                init_rng, train_rng = generators(0)
                model = MLP.create(X.shape[1], [4], 10, head=head, dtype=dtype, rng=init_rng)
                config = TrainConfig(epochs=1, batch_size=64, sampling=sampling)
                trainer = Trainer(model, X, y, config, train_rng, scale=scale)
                trainer.run_batches(until=2)  # the fused engine's first call and a longer one
                trainer.accuracy(X, y, scale)  # the test accuracy of every epoch; `evaluate`
                model.loss_and_accuracy(X, y, scale)  # --validation-fraction's val_loss, …
                model.predict_proba(X[:3], scale)  # `predict --proba`
            if report is not None:
                report(f"  θ {dtype}, inputs {X.dtype}")
        if report is not None:
            report(f"{dtype}: {time.perf_counter() - dtype_started:.1f} s")
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m numbamlp.cli.precompile [DTYPE ...]`` (what setup.py runs)."""
    dtypes = tuple(argv if argv is not None else sys.argv[1:]) or DEFAULT_DTYPES
    seconds = precompile(dtypes, report=print)
    print(f"numbamlp: kernels for {', '.join(dtypes)} compiled into the cache in {seconds:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
