"""A regressor (F.5, L.2, B.5), optionally with sample weights (S.2), trained by the fused
engine: by one process when started alone, with region 1 shared among the ranks when started
by mpiexec. Rank 0 writes θ and the epochs' losses to the file named by the first argument.
Used by test_distributed.py (``python mpi_regression.py OUT HIDDEN WEIGHTED``)."""

from __future__ import annotations

import sys

import numpy as np

from numbamlp.engines.cluster import connect, launched_size
from numbamlp.model.mlp import MLP
from numbamlp.training.trainer import TrainConfig, Trainer, generators


def main(out: str, hidden: int, weighted: bool) -> None:
    cluster = connect() if launched_size() > 1 else None
    rng = np.random.default_rng(3)
    X = rng.random((500, 30)).astype(np.float32)
    X[:, :4] = 0
    Y = np.stack([X[:, 5] - X[:, 9], X[:, 7] * X[:, 11], np.sin(3 * X[:, 12])], axis=1)
    weights = rng.uniform(0.0, 3.0, size=500) if weighted else None
    init_rng, sampling_rng = generators(11)
    model = MLP.create(
        30, [hidden], 3, activations="tanh", head="identity", dtype="float32", rng=init_rng
    )
    config = TrainConfig(epochs=3, batch_size=32, optimizer="adam", lr=0.01)
    trainer = Trainer(model, X, Y, config, sampling_rng, cluster=cluster, sample_weight=weights)
    if cluster is not None:
        cluster.start()
    losses = [trainer.train_epoch().train_loss for _ in range(config.epochs)]
    if cluster is None or cluster.rank == 0:
        np.savez(out, theta=model.params.theta, losses=np.array(losses))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1")
