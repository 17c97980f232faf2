"""Which rows of the training set form the minibatch at step p (I.1, I.2).

All randomness comes from the run's one ``numpy.random.Generator``. Index buffers and their
per-batch views are made once; each epoch refills them in place.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from numbamlp.errors import NumbamlpError
from numbamlp.kernels._jit import kernel

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

    The indices live in one (steps, B) matrix, ``index_matrix``: row q holds minibatch q in its
    first ``batch_sizes[q]`` entries. ``batches`` are views of those rows.
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
        B, steps = self.batch_size, self.steps_per_epoch
        self.index_matrix = np.zeros((steps, B), dtype=np.int64)
        flat = self.index_matrix.reshape(-1)
        self.batch_sizes = np.full(steps, B, dtype=np.int64)
        if mode == "shuffle":
            self._indices = flat[:n]  # the permutation; padding after it stays unused
            self._indices[:] = np.arange(n)
            self.batch_sizes[-1] = n - (steps - 1) * B
        else:
            self._indices = flat
            self._uniforms = np.zeros(steps * B, dtype=np.float64)
        self.batches = [self.index_matrix[q, : self.batch_sizes[q]] for q in range(steps)]

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
