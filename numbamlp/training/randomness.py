"""The run's random streams. All randomness comes from one ``numpy.random.default_rng(seed)``;
nothing draws random numbers inside a kernel. (Only NumPy here: importing this is cheap.)"""

from __future__ import annotations

import numpy as np


def generators(seed: int | None) -> tuple[np.random.Generator, np.random.Generator]:
    """The run's two random streams, both spawned from ``numpy.random.default_rng(seed)``:
    one draws the initial weights (N.1), the other the minibatches (I.1/I.2) and any held-out
    split. Independent streams keep the minibatch order of a seed the same whatever the
    architecture, and the initial weights the same whatever the sampling options.
    """
    init_rng, sampling_rng = np.random.default_rng(seed).spawn(2)
    return init_rng, sampling_rng


def validation_generator(seed: int | None) -> np.random.Generator:
    """The run's third stream, for the held-out validation rows (validation.split_validation):
    the third child of the same ``default_rng(seed)``. Spawning is by position, so the first two
    are those of ``generators(seed)``: a validation split leaves the initial weights and the
    minibatch stream of the seed as they were, and a run without one never draws from it."""
    return np.random.default_rng(seed).spawn(3)[2]


def dropout_seed(seed: int | None) -> int:
    """The integer whose two 32-bit halves key dropout's masks (D.1): the run's seed itself, so
    that the masks are a function of (seed, step, sample, layer, unit) alone; for a run without
    a seed, one drawn from fresh entropy (such a run is not reproducible in any case)."""
    if seed is not None:
        return int(seed)
    return int(np.random.default_rng().integers(0, 2**63 - 1))
