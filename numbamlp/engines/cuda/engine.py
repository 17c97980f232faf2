"""The CUDA engine: the training steps on a CUDA device (``Trainer(..., device="cuda")``).

θ, the gradient, the optimizer state, the workspace and the training set are copied to the
device once, when the engine is built, and stay there for the whole run. Per step the host
only launches kernels (cuda/passes.py and cuda/optimizers.py, in the order of the CPU's
``kernels`` engine) and passes scalars (γ_p, Adam's bias corrections). Per epoch it uploads the
epoch's minibatch indices (drawn on the host by the same Sampler and generator as on the CPU,
so both devices see the same batches); after each call of up to FUSED_CHUNK minibatches it
reads back their losses and accuracy counts (the metrics, and the divergence check).

``to_host()`` copies θ and the optimizer state back into the model and the optimizer (for a
checkpoint or a model file); ``from_host()`` copies them onto the device (after a checkpoint
was loaded into them). The step counter p and the sampler's generator live on the host.

Importing this module imports the CUDA package (numbamlp.engines.cuda.backend); the CPU path never
does (``engines.make_engine`` imports it for device="cuda" only).
"""

from __future__ import annotations

import math

import numpy as np

from numbamlp.engines.base import FUSED_CHUNK, EngineSetup, adopt_state
from numbamlp.engines.cuda import passes
from numbamlp.engines.cuda.backend import cuda, require_device
from numbamlp.engines.cuda.checks import count_nonfinite
from numbamlp.engines.cuda.forward import (
    gather_batch,
    gather_labels,
    gather_targets,
    predict_classes,
    sample_weight_factors,
)
from numbamlp.engines.cuda.launch import THREADS_1D, THREADS_2D, grid_1d
from numbamlp.engines.cuda.optimizers import DeviceOptimizer
from numbamlp.engines.cuda.passes import (
    DeviceDropout,
    DeviceParameters,
    Threads,
    device_workspace,
)

#: Threads that share the finiteness count of θ (each sums a strided slice).
CHECK_THREADS = 256


class CudaEngine:
    """One launch per equation kernel, like the CPU's ``kernels`` engine, up to FUSED_CHUNK
    minibatches per call of ``run``, then one read-back of their losses. ``threads_1d`` and
    ``threads_2d`` set the block shape (the tests make them tiny to get several blocks)."""

    chunk = FUSED_CHUNK

    def __init__(
        self, setup: EngineSetup, threads_1d: int = THREADS_1D, threads_2d: int = THREADS_2D
    ) -> None:
        require_device()
        self.setup = setup
        self.threads = Threads(threads_1d, threads_2d)
        model, sampler = setup.model, setup.sampler
        arch = model.architecture
        # The host's copy of the optimizer state, one array (to_host fills it in place).
        self.state = adopt_state(setup.optimizer, arch.n_parameters, model.dtype)
        self.X_device = cuda.to_device(np.ascontiguousarray(setup.X))
        self.regression = arch.task == "regression"
        # Only what the run uses goes to the device: the labels, or the regression targets;
        # the sample weights (S.2) when there are some.
        if self.regression:
            self.targets_device = cuda.to_device(np.ascontiguousarray(setup.targets))
        else:
            self.y_device = cuda.to_device(np.ascontiguousarray(setup.y, dtype=np.int64))
        self.weights_device = cuda.to_device(setup.weights) if setup.weighted else None
        # Dropout (D.1–D.3): the key on the device; None without it (or with rate 0).
        dropout = setup.dropout
        self.dropout = DeviceDropout(dropout) if dropout is not None and dropout.active else None
        self.params = DeviceParameters.from_host(arch, model.params.theta)
        self.grads = DeviceParameters.from_host(arch, np.zeros_like(model.params.theta))
        self.device_optimizer = DeviceOptimizer(setup.optimizer, self.threads.one_d)
        self.workspace = device_workspace(arch, sampler.batch_size, model.dtype)
        self.index_matrix = cuda.to_device(sampler.index_matrix)
        self.losses_device = cuda.to_device(np.zeros(sampler.steps_per_epoch, np.float64))
        self.correct_device = cuda.to_device(np.zeros(sampler.steps_per_epoch, np.int64))
        self.nonfinite = cuda.to_device(np.zeros(CHECK_THREADS, dtype=np.int64))
        # Views made once: each step's rows of the workspace, indices, loss and count slots.
        sizes = [int(n) for n in sampler.batch_sizes]
        self._steps = [
            (
                self.workspace.rows(n),
                self.index_matrix[q, :n],
                self.losses_device[q : q + 1],
                self.correct_device[q : q + 1],
            )
            for q, n in enumerate(sizes)
        ]
        self._test_set: tuple | None = None  # (host X, device X, device 0..n−1) of accuracy()

    # -- state exchange with the host (checkpoints, model files) ------------------------------

    def to_host(self) -> None:
        """Copy θ into ``model.params.theta`` and the optimizer state into ``optimizer.state``."""
        self.params.theta.copy_to_host(self.setup.model.params.theta)
        self.device_optimizer.to_host()

    def from_host(self) -> None:
        """Copy ``model.params.theta`` and ``optimizer.state`` onto the device."""
        self.params.theta.copy_to_device(np.ascontiguousarray(self.setup.model.params.theta))
        self.device_optimizer.from_host()

    def start_epoch(self) -> None:
        # (I.1/I.2) drawn on the host from the run's one generator, used on the device
        self.index_matrix.copy_to_device(self.setup.sampler.index_matrix)

    # -- training -------------------------------------------------------------------------------

    def run(self, first: int, count: int) -> int:
        """Launch minibatches first .. first+count−1, then read their losses back (which waits
        for the device). At a loss that is not finite the steps after it were launched too, but
        the run ends there: p counts the steps up to it."""
        setup = self.setup
        p0 = setup.optimizer.step_count
        for q in range(first, first + count):
            self._step(q)
        end = first + count
        self.losses_device[first:end].copy_to_host(setup.batch_losses[first:end])
        self.correct_device[first:end].copy_to_host(setup.batch_correct[first:end])
        for q in range(first, end):
            if not math.isfinite(setup.batch_losses[q]):
                setup.optimizer.step_count = p0 + q - first
                return q - first
        return count

    def _step(self, q: int) -> None:
        """Minibatch q of the current epoch: gather, forward, loss, backward, update."""
        setup = self.setup
        ws, indices, loss_slot, correct_slot = self._steps[q]
        threads = self.threads
        B = ws.batch_size
        gather_batch[threads.elementwise(B, ws.h[0].shape[1])](
            ws.h[0], self.X_device, indices, setup.scale
        )
        if self.regression:
            gather_targets[threads.elementwise(B, ws.targets.shape[1])](
                ws.targets, self.targets_device, indices
            )
            y = ws.targets
        else:
            gather_labels[threads.per_sample(B)](ws.labels, self.y_device, indices)
            y = ws.labels
        omega = None
        if self.weights_device is not None:
            sample_weight_factors[grid_1d(1, 1)](ws.omega, self.weights_device, indices)  # (S.2)
            omega = ws.omega
        p = setup.optimizer.step_count + 1  # the step this minibatch makes (D.1's p)
        passes.forward(ws, self.params, threads, self.dropout, indices, p)
        passes.loss(ws, self.params, y, loss_slot, threads, omega)
        passes.correct(ws, self.params, y, correct_slot)
        passes.backward(
            ws, self.params, self.grads, y, threads, setup.weight_decay, omega, self.dropout,
            indices, p,
        )  # fmt: skip
        self.device_optimizer.step(self.params.theta, self.grads.theta, setup.lrs[q])

    def all_finite(self) -> bool:
        count_nonfinite[grid_1d(CHECK_THREADS, self.threads.one_d)](
            self.nonfinite, self.params.theta
        )
        return not int(self.nonfinite.copy_to_host().sum())

    def accuracy(self, X: np.ndarray, y: np.ndarray, scale: float = 1.0) -> float:
        """Fraction of (X · scale, y) classified right by the current θ, computed on the device
        (for a regressor R², E.3, of the outputs, on the host).

        Runs the forward pass in batches of the workspace's size; only the predicted classes
        of each batch come back to the host.
        """
        model = self.setup.model
        if self.regression:  # R² (E.3) of the outputs, on the host
            self.to_host()
            return model.accuracy(X, y, scale)
        given = X
        X = model.check_inputs(X, "test features", raw=True)
        y = model.check_labels(y, X.shape[0], "test labels")
        if self._test_set is None or self._test_set[0] is not given:
            # Uploaded once and kept: the CLI measures the same test set after every epoch.
            order = cuda.to_device(np.arange(X.shape[0], dtype=np.int64))
            self._test_set = (given, cuda.to_device(np.ascontiguousarray(X)), order)
        _, X_dev, order = self._test_set
        B_max = self.workspace.batch_size
        classes = np.zeros(X.shape[0], dtype=np.int64)
        scale_t = model.dtype.type(scale)
        threads = self.threads
        for start in range(0, X.shape[0], B_max):
            n = min(B_max, X.shape[0] - start)
            ws = self.workspace.rows(n)
            gather_batch[threads.elementwise(n, X.shape[1])](
                ws.h[0], X_dev, order[start : start + n], scale_t
            )
            passes.forward(ws, self.params, threads)
            predict_classes[threads.per_sample(n)](ws.classes, ws.f)  # (P.1)
            ws.classes.copy_to_host(classes[start : start + n])
        return float(np.mean(classes == y))
