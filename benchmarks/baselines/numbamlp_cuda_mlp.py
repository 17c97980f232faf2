"""numbamlp's CUDA engine (numbamlp.engines.cuda) behind the benchmarks' common trainer
interface."""

from __future__ import annotations

import numpy as np

from numbamlp.model.mlp import MLP
from numbamlp.training.trainer import TrainConfig
from numbamlp.training.trainer import Trainer as _Trainer


class Trainer:
    def __init__(self, X, y, hidden, batch_size, lr=1e-3, seed=0):
        self.name = "numbamlp-cuda"
        rng = np.random.default_rng(seed)
        self.model = MLP.create(X.shape[1], [hidden], int(np.max(y)) + 1, rng=rng)
        config = TrainConfig(epochs=1, batch_size=batch_size, lr=lr)
        self.trainer = _Trainer(self.model, X, y, config, rng, device="cuda")

    def epoch(self):
        self.trainer.train_epoch()  # ends by reading the losses back: the device is done

    def steps(self, count):
        self.trainer.train_steps(count)  # ends by reading the losses back

    def accuracy(self, X, y):
        return self.trainer.accuracy(X, y)
