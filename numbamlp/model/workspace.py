"""Buffers for one minibatch, allocated once per run and reused by every step.

``h[k]`` (k = 0..L−1), ``z[k]`` and ``delta[k]`` (k = 1..L) have shape (B, d_k); ``f`` holds the
output probabilities (B, M) (the outputs (B, T) of the identity head); ``losses`` ℓ_s and
``classes`` are (B,); ``targets`` (B, d_L) the minibatch's regression targets y_{s,:} and ``omega``
(B, float64) its sample weights' factors ω_s (S.2). A last, shorter batch
uses views of the first rows (``rows(n)``), also made once, so the training loop allocates
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from numbamlp.model.network import Architecture


class Workspace:
    def __init__(
        self,
        architecture: Architecture,
        batch_size: int,
        dtype: np.dtype | str,
        zeros: Callable[[Any, Any], Any] = np.zeros,
    ) -> None:
        """``zeros(shape, dtype)`` makes each buffer: NumPy's, or the CUDA path's device arrays."""
        sizes, L, B = architecture.sizes, architecture.L, batch_size
        self.architecture = architecture
        self.batch_size = B
        self.h: list = [zeros((B, sizes[k]), dtype) for k in range(L)] + [None]
        self.z: list = [None] + [zeros((B, sizes[k]), dtype) for k in range(1, L + 1)]
        self.delta: list = [None] + [zeros((B, sizes[k]), dtype) for k in range(1, L + 1)]
        self.f = zeros((B, architecture.n_classes), dtype)
        self.losses = zeros(B, dtype)
        self.classes = zeros(B, np.int64)
        self.indices = zeros(B, np.int64)
        self.labels = zeros(B, np.int64)
        self.targets = zeros((B, sizes[L]), dtype)
        self.omega = zeros(B, np.float64)
        self._views: dict[int, Workspace] = {B: self}

    def rows(self, n: int) -> Workspace:
        """The same buffers restricted to the first n samples (made once per n, then cached)."""
        view = self._views.get(n)
        if view is None:
            if not 1 <= n <= self.batch_size:
                raise ValueError(f"batch of {n} does not fit a workspace of {self.batch_size}")
            view = object.__new__(Workspace)
            view.architecture = self.architecture
            view.batch_size = n
            view.h = [None if a is None else a[:n] for a in self.h]
            view.z = [None if a is None else a[:n] for a in self.z]
            view.delta = [None if a is None else a[:n] for a in self.delta]
            view.f = self.f[:n]
            view.losses = self.losses[:n]
            view.classes = self.classes[:n]
            view.indices = self.indices[:n]
            view.labels = self.labels[:n]
            view.targets = self.targets[:n]
            view.omega = self.omega[:n]
            view._views = self._views
            self._views[n] = view
        return view
