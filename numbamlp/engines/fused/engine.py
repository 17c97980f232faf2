"""The ``fused`` engine: the run's arrays bound to a FusedPlan (plan.py), many steps per call.

With a cluster it is distributed training: the same plan with an ``MPIExchange`` between its
two regions (engines/distributed.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from numbamlp.engines.base import FUSED_CHUNK, EngineSetup, HostEngine
from numbamlp.engines.fused.plan import FusedPlan, RegionExchange
from numbamlp.engines.threads import AdaptiveThreads


class FusedEngine(HostEngine):
    """Two parallel regions per step, up to FUSED_CHUNK steps per call of ``run``.

    ``exchange``: the hook between the regions when region 1 is shared among processes
    (``RegionExchange``); ``options``: FusedPlan's tuning options (n_items, sample_block,
    flush_subnormals, shard_bytes), none of which changes a result beyond what its
    documentation says."""

    chunk = FUSED_CHUNK

    def __init__(
        self,
        setup: EngineSetup,
        exchange: RegionExchange | None = None,
        adaptive_threads: bool = False,
        **options: Any,
    ) -> None:
        """``adaptive_threads``: each call runs on all of Numba's threads or on one, whichever
        its recent calls ran faster on (engines/threads.py; the same bits either way)."""
        super().__init__(setup)
        self.governor: AdaptiveThreads | None = None
        if adaptive_threads:
            import numba

            self.governor = AdaptiveThreads(numba.get_num_threads())
        model = setup.model
        self.plan = FusedPlan(
            model.architecture,
            setup.sampler.batch_size,
            model.dtype,
            setup.optimizer,
            weight_decay=setup.weight_decay,
            exchange=exchange,
            dropout=setup.dropout,
            **options,
        )
        self.state = self.plan.adopt_state(setup.optimizer)

    def run(self, first: int, count: int) -> int:
        governor = self.governor
        if governor is None:
            return self._run_steps(first, count)
        done = 0
        while done < count:  # a probe of the governor's runs a few steps, then the rest
            n = governor.steps(count - done)
            governor.before(n)
            made = self._run_steps(first + done, n)
            governor.after(made)
            done += made
            if made < n:  # a loss that is not finite: the trainer takes over
                break
        return done

    def accuracy(self, X: np.ndarray, y: np.ndarray, scale: float = 1.0) -> float:
        """As the host engine's, on the governor's settled thread count when it has one: the
        test set's accuracy logged during training then waits no more on a busy core than the
        steps do."""
        if self.governor is None:
            return super().accuracy(X, y, scale)
        with self.governor.settled_threads():
            return super().accuracy(X, y, scale)

    def _run_steps(self, first: int, count: int) -> int:
        s = self.setup
        done = self.plan.run(
            s.model.params.theta, self.state, s.X, s.scale, s.y, s.sampler.index_matrix,
            s.sampler.batch_sizes, s.lrs, s.optimizer.step_count, first, count, s.batch_losses,
            s.batch_correct, s.targets, s.weights,
        )  # fmt: skip
        s.optimizer.step_count += done
        return done
