"""numbamlp behind the benchmarks' common trainer interface."""

from __future__ import annotations

import numpy as np

from numbamlp.model.mlp import MLP
from numbamlp.training.trainer import TrainConfig
from numbamlp.training.trainer import Trainer as _Trainer


class Trainer:
    """``pixels``: train on X as bytes, round(255·X) with scale 1/255, as `numbamlp train` does
    with MNIST (a quarter of the memory traffic of float32 X); otherwise on the float32 X every
    baseline gets. ``dropout``: the rate p of D.1–D.3 on the hidden layer (0: none)."""

    def __init__(
        self, X, y, hidden, batch_size, lr=1e-3, seed=0, engine="fused", pixels=False, dropout=0.0
    ):
        self.name = "numbamlp" if engine == "fused" else f"numbamlp-{engine}"
        rng = np.random.default_rng(seed)
        self.model = MLP.create(X.shape[1], [hidden], int(np.max(y)) + 1, rng=rng)
        config = TrainConfig(
            epochs=1, batch_size=batch_size, lr=lr, engine=engine,
            dropout=(dropout,) if dropout else (), dropout_seed=seed,
        )  # fmt: skip
        scale = 1.0
        if pixels:
            self.name += "-pixels"
            X, scale = np.rint(np.asarray(X) * 255).astype(np.uint8), 1 / 255
        self.trainer = _Trainer(self.model, X, y, config, rng, scale=scale)

    def epoch(self):
        self.trainer.train_epoch()

    def steps(self, count):
        self.trainer.train_steps(count)

    def accuracy(self, X, y):
        return float(np.mean(self.model.predict(X) == y))
