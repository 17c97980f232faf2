"""Deprecated: ``Trainer(..., device="cuda")`` builds the CUDA engine (numbamlp/engines/cuda.py).

``DeviceTrainer`` stays until the CLI passes ``device=`` itself.
"""

from __future__ import annotations

import warnings

import numpy as np

from numbamlp.cuda.launch import THREADS_1D, THREADS_2D
from numbamlp.model import MLP
from numbamlp.optimizers import Optimizer
from numbamlp.training import TrainConfig, Trainer


class DeviceTrainer(Trainer):
    """Deprecated: ``Trainer(..., device="cuda")`` (with ``engine_options={"threads_1d": …,
    "threads_2d": …}`` for the block shape)."""

    def __init__(
        self,
        model: MLP,
        X_train: np.ndarray,
        y_train: np.ndarray,
        config: TrainConfig,
        rng: np.random.Generator,
        optimizer: Optimizer | None = None,
        scale: float = 1.0,
        threads_1d: int = THREADS_1D,
        threads_2d: int = THREADS_2D,
    ) -> None:
        warnings.warn(
            'DeviceTrainer is deprecated: build Trainer(..., device="cuda")',
            DeprecationWarning,
            stacklevel=2,
        )
        options = {"threads_1d": threads_1d, "threads_2d": threads_2d}
        super().__init__(
            model, X_train, y_train, config, rng, optimizer, scale,
            device="cuda", engine_options=options,
        )  # fmt: skip

    def to_host(self) -> None:
        """Copy θ and the optimizer state to the host (``Trainer.host_state``)."""
        self.engine.to_host()

    def from_host(self) -> None:
        """Copy the host's θ and optimizer state onto the device."""
        self.engine.from_host()
