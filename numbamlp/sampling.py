"""Which rows of the training set form the minibatch at step p (I.1, I.2).

All randomness comes from the run's one ``numpy.random.Generator``. Index buffers and their
per-batch views are made once; each epoch refills them in place.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from numbamlp._jit import kernel
from numbamlp.errors import NumbamlpError

SAMPLING_MODES = ("shuffle", "iid")


@kernel
def uniform_indices(indices, u, n):
    """(I.1) I_s = ⌊u_s · n⌋ with u_s ~ U[0, 1) i.i.d.: uniform on {0..n−1}, with replacement."""
    for s in prange(indices.shape[0]):
        indices[s] = min(np.int64(u[s] * n), n - 1)


class Sampler:
    """Yields the index arrays of one epoch's minibatches.

    ``shuffle`` (I.2): a fresh permutation of 0..n−1 each epoch, cut into blocks of B; the last
    block is shorter when B does not divide n. ``iid`` (I.1, the notes' scheme): ⌈n/B⌉ steps
    per epoch, each with B indices drawn uniformly with replacement.
    """

    def __init__(self, mode: str, n: int, batch_size: int, rng: np.random.Generator) -> None:
        if mode not in SAMPLING_MODES:
            raise NumbamlpError(
                f"unknown sampling {mode!r}; choose one of: {', '.join(SAMPLING_MODES)}"
            )
        if batch_size < 1:
            raise NumbamlpError(f"batch size must be at least 1, got {batch_size}")
        if n < 1:
            raise NumbamlpError("the training set is empty")
        self.mode = mode
        self.n = n
        self.batch_size = min(batch_size, n) if mode == "shuffle" else batch_size
        self.rng = rng
        self.steps_per_epoch = -(-n // self.batch_size)
        B = self.batch_size
        if mode == "shuffle":
            self._indices = np.arange(n, dtype=np.int64)
        else:
            self._indices = np.zeros(self.steps_per_epoch * B, dtype=np.int64)
            self._uniforms = np.zeros(self.steps_per_epoch * B, dtype=np.float64)
        self.batches = [
            self._indices[start : start + B] for start in range(0, self._indices.shape[0], B)
        ]

    def epoch(self) -> list[np.ndarray]:
        """Draw the next epoch's minibatches (views into one buffer, valid until the next call)."""
        if self.mode == "shuffle":
            # (I.2) a fresh permutation of 0..n−1. Restoring the identity first makes each epoch's
            # order a function of the generator's state alone, which is what a resume restores.
            self._indices.sort()
            self.rng.shuffle(self._indices)
        else:
            self.rng.random(out=self._uniforms)
            uniform_indices(self._indices, self._uniforms, self.n)
        return self.batches
