"""Minibatch training on a CUDA device, with the interface of numbamlp.training.Trainer.

θ, the gradient, the optimizer state, the workspace and the training set are copied to the
device once, when the trainer is built, and stay there for the whole run. Per step the host
only launches kernels (cuda/passes.py and cuda/optimizers.py, in the order of the CPU's
``kernels`` engine) and passes scalars (γ_p, Adam's bias corrections). Per epoch it uploads the
epoch's minibatch indices (drawn on the host by the same Sampler and generator as on the CPU,
so both devices see the same batches); after each call of up to FUSED_CHUNK minibatches it
reads back their losses and accuracy counts (the metrics, and the divergence check).

``to_host()`` copies θ and the optimizer state back into ``model`` and ``optimizer`` (for a
checkpoint or a model file); ``from_host()`` copies them onto the device (after a checkpoint
was loaded into them). The step counter p and the sampler's generator live on the host.
"""

from __future__ import annotations

import math

import numpy as np

from numbamlp.cuda import passes
from numbamlp.cuda.backend import cuda, require_device
from numbamlp.cuda.checks import count_nonfinite
from numbamlp.cuda.forward import gather_batch, gather_labels, predict_classes
from numbamlp.cuda.launch import THREADS_1D, THREADS_2D, grid_1d
from numbamlp.cuda.optimizers import DeviceOptimizer
from numbamlp.cuda.passes import DeviceParameters, Threads, device_workspace
from numbamlp.model import MLP
from numbamlp.optimizers import Optimizer
from numbamlp.training import FUSED_CHUNK, TrainConfig, Trainer, TrainingDiverged

#: Threads that share the finiteness count of θ (each sums a strided slice).
CHECK_THREADS = 256


class DeviceTrainer(Trainer):
    """numbamlp.training.Trainer with its steps on a CUDA device.

    Everything but the engine is the CPU trainer's own: the sampler and its generator, the
    step sizes, the epoch and minibatch position, ``run_batches``/``run_state``/``restore``
    (so checkpoints, resume and interruption work as on the CPU). ``config.engine`` is ignored:
    the device makes one launch per equation kernel, like the CPU's ``kernels`` engine, up to
    FUSED_CHUNK minibatches per call, then reads back their losses. ``threads_1d`` and
    ``threads_2d`` set the block shape (the tests make them tiny to get several blocks).
    """

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
        """Training inputs are X_train · scale (scale = 1/255 for raw uint8 pixels)."""
        require_device()
        self.threads = Threads(threads_1d, threads_2d)
        super().__init__(model, X_train, y_train, config, rng, optimizer, scale)

    def _build_engine(self) -> None:
        """Everything the steps touch, on the device for the whole run."""
        arch, model = self.model.architecture, self.model
        self.plan = None
        self.X_device = cuda.to_device(np.ascontiguousarray(self.X))
        self.y_device = cuda.to_device(np.ascontiguousarray(self.y, dtype=np.int64))
        self.params = DeviceParameters.from_host(arch, model.params.theta)
        self.grads = DeviceParameters.from_host(arch, np.zeros_like(model.params.theta))
        self.device_optimizer = DeviceOptimizer(self.optimizer, self.threads.one_d)
        self.workspace = device_workspace(arch, self.sampler.batch_size, model.dtype)
        self.index_matrix = cuda.to_device(self.sampler.index_matrix)
        self.losses_device = cuda.to_device(np.zeros(self.sampler.steps_per_epoch, np.float64))
        self.correct_device = cuda.to_device(np.zeros(self.sampler.steps_per_epoch, np.int64))
        self.nonfinite = cuda.to_device(np.zeros(CHECK_THREADS, dtype=np.int64))
        # Views made once: each step's rows of the workspace, indices, loss and count slots.
        sizes = [int(n) for n in self.sampler.batch_sizes]
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
        self.params.theta.copy_to_host(self.model.params.theta)
        self.device_optimizer.to_host()

    def from_host(self) -> None:
        """Copy ``model.params.theta`` and ``optimizer.state`` onto the device."""
        self.params.theta.copy_to_device(np.ascontiguousarray(self.model.params.theta))
        self.device_optimizer.from_host()

    def host_state(self) -> None:
        self.to_host()

    def load_parameters(self, theta: np.ndarray) -> None:
        super().load_parameters(theta)
        self.params.theta.copy_to_device(np.ascontiguousarray(self.model.params.theta))

    def _epoch_drawn(self) -> None:
        # (I.1/I.2) drawn on the host from the run's one generator, used on the device
        self.index_matrix.copy_to_device(self.sampler.index_matrix)

    def _losses_restored(self) -> None:
        self.losses_device.copy_to_device(self.batch_losses)

    # -- training -------------------------------------------------------------------------------

    def _call_size(self, first: int, end: int) -> int:
        return min(FUSED_CHUNK if first else 1, end - first)

    def _advance(self, count: int) -> None:
        """Launch minibatches q0 .. q0+count−1, then read their losses back (which waits for
        the device) and stop at the first that is not finite."""
        q0 = self.batch
        for q in range(q0, q0 + count):
            self._step(q)
        self.losses_device[q0 : q0 + count].copy_to_host(self.batch_losses[q0 : q0 + count])
        self.correct_device[q0 : q0 + count].copy_to_host(self.batch_correct[q0 : q0 + count])
        self.batch = q0 + count
        for q in range(q0, q0 + count):
            if not math.isfinite(self.batch_losses[q]):
                raise TrainingDiverged(
                    self._divergence_message("loss", float(self.batch_losses[q]), q)
                )

    def _step(self, q: int) -> None:
        """Minibatch q of the current epoch: gather, forward, loss, backward, update."""
        ws, indices, loss_slot, correct_slot = self._steps[q]
        threads = self.threads
        B = ws.batch_size
        gather_batch[threads.elementwise(B, ws.h[0].shape[1])](
            ws.h[0], self.X_device, indices, self.scale
        )
        gather_labels[threads.per_sample(B)](ws.labels, self.y_device, indices)
        passes.forward(ws, self.params, threads)
        passes.loss(ws, self.params, ws.labels, loss_slot, threads)
        passes.correct(ws, self.params, ws.labels, correct_slot)
        passes.backward(ws, self.params, self.grads, ws.labels, threads, self.config.weight_decay)
        self.device_optimizer.step(self.params.theta, self.grads.theta, self.lrs[q])

    def check_parameters(self) -> None:
        count_nonfinite[grid_1d(CHECK_THREADS, self.threads.one_d)](
            self.nonfinite, self.params.theta
        )
        if int(self.nonfinite.copy_to_host().sum()):
            self._parameters_diverged()

    def accuracy(self, X: np.ndarray, y: np.ndarray, scale: float = 1.0) -> float:
        """Fraction of (X · scale, y) classified right by the current θ, computed on the device.

        Runs the forward pass in batches of the workspace's size; only the predicted classes
        of each batch come back to the host.
        """
        given = X
        X = self.model.check_inputs(X, "test features", raw=True)
        y = self.model.check_labels(y, X.shape[0], "test labels")
        if self._test_set is None or self._test_set[0] is not given:
            # Uploaded once and kept: the CLI measures the same test set after every epoch.
            order = cuda.to_device(np.arange(X.shape[0], dtype=np.int64))
            self._test_set = (given, cuda.to_device(np.ascontiguousarray(X)), order)
        _, X_dev, order = self._test_set
        B_max = self.workspace.batch_size
        classes = np.zeros(X.shape[0], dtype=np.int64)
        scale_t = self.model.dtype.type(scale)
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
