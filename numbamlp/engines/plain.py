"""The ``kernels`` engine: one call per equation kernel from Python (passes.py, optimizers.py).

The plain loops, easiest to read against the notes, and the reference the fused engine is
tested against. Per step: gather the minibatch (I.1/I.2), forward (F.*), loss (L.1 or L.2,
S.1), backward (B.*), update (U.*); with sample weights, their factors ω_s (S.2) first. Every
buffer is allocated when the engine is built; the steps allocate nothing.
"""

from __future__ import annotations

import math

from numbamlp.engines.base import EngineSetup, HostEngine, adopt_state
from numbamlp.kernels.forward import (
    gather_batch,
    gather_labels,
    gather_targets,
    sample_weight_factors,
)
from numbamlp.model import passes
from numbamlp.model.network import Parameters
from numbamlp.model.workspace import Workspace


class KernelsEngine(HostEngine):
    """The plain kernels on the CPU, one step per call of ``run`` by the Trainer."""

    chunk = 1

    def __init__(self, setup: EngineSetup) -> None:
        super().__init__(setup)
        arch, dtype = setup.model.architecture, setup.model.dtype
        self.workspace = Workspace(arch, setup.sampler.batch_size, dtype)
        for batch in setup.sampler.batches:  # a view for every batch size, made now
            self.workspace.rows(batch.shape[0])
        self.grads = Parameters.zeros(arch, dtype)
        self.state = adopt_state(setup.optimizer, arch.n_parameters, dtype)
        self.regression = arch.task == "regression"
        self.weighted = setup.weighted
        self.dropout = setup.dropout if setup.dropout is not None and setup.dropout.active else None

    def run(self, first: int, count: int) -> int:
        for t in range(count):
            if not self.step(first + t):
                return t
        return count

    def step(self, q: int) -> bool:
        """Minibatch q of the epoch; False (no update made) if its loss is not finite."""
        setup = self.setup
        params, grads = setup.model.params, self.grads
        indices = setup.sampler.batches[q]
        ws = self.workspace.rows(indices.shape[0])
        gather_batch(ws.h[0], setup.X, indices, setup.scale)
        if self.regression:
            gather_targets(ws.targets, setup.targets, indices)
            y = ws.targets
        else:
            gather_labels(ws.labels, setup.y, indices)
            y = ws.labels
        omega = None
        if self.weighted:
            sample_weight_factors(ws.omega, setup.weights, indices)  # (S.2) ω_s
            omega = ws.omega
        p = setup.optimizer.step_count + 1  # the step this minibatch makes (D.1's p)
        passes.forward(ws, params, self.dropout, indices, p)
        batch_loss = passes.loss(ws, params, y, omega)
        setup.batch_losses[q] = batch_loss
        setup.batch_correct[q] = passes.correct(ws, params, y)
        if not math.isfinite(batch_loss):
            return False
        passes.backward(ws, params, grads, y, setup.weight_decay, omega, self.dropout, indices, p)
        setup.optimizer.step(params.theta, grads.theta, setup.lrs[q])
        return True
