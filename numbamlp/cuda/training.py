"""Minibatch training on a CUDA device, with the interface of numbamlp.training.Trainer.

θ, the gradient, the optimizer state, the workspace and the training set are copied to the
device once, when the trainer is built, and stay there for the whole run. Per step the host
only launches kernels (cuda/passes.py and cuda/optimizers.py, in the order of the CPU's
``kernels`` engine) and passes scalars (γ_p, Adam's bias corrections). Per epoch it uploads the
epoch's minibatch indices (drawn on the host by the same Sampler and generator as on the CPU,
so both devices see the same batches) and reads back the B-step losses: the metrics.

``to_host()`` copies θ and the optimizer state back into ``model`` and ``optimizer`` (for a
checkpoint or a model file); ``from_host()`` copies them onto the device (after a checkpoint
was loaded into them). The step counter p and the sampler's generator live on the host.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

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
from numbamlp.sampling import Sampler
from numbamlp.schedules import Schedule
from numbamlp.training import EpochMetrics, TrainConfig, TrainingDiverged

#: Threads that share the finiteness count of θ (each sums a strided slice).
CHECK_THREADS = 256


class DeviceTrainer:
    """Owns the device buffers, optimizer, schedule and sampler of one run on a CUDA device.

    Same constructor and methods as numbamlp.training.Trainer (``train_epoch``,
    ``train_steps``, ``step_count``, ``epoch``); ``config.engine`` is ignored: the device runs
    one launch per equation kernel, like the CPU's ``kernels`` engine. ``threads_1d`` and
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
        config.validate()
        self.model = model
        self.config = config
        self.rng = rng
        X = model.check_inputs(X_train, "training features", raw=True)
        self.scale = model.dtype.type(scale)
        y = model.check_labels(y_train, X.shape[0], "training labels")
        self.sampler = Sampler(config.sampling, X.shape[0], config.batch_size, rng)
        arch = model.architecture
        self.optimizer = optimizer or Optimizer.create(
            config.optimizer,
            arch.n_parameters,
            model.dtype,
            **({"lr": config.lr} | config.optimizer_options),
        )
        steps = self.sampler.steps_per_epoch
        self.schedule = Schedule(
            config.schedule,
            self.optimizer.hyper["lr"],
            decay_rate=config.decay_rate,
            decay_steps=max(1, round(config.decay_epochs * steps)),
            total_steps=config.epochs * steps,
            min_lr=config.min_lr,
        )
        self.epoch = 0
        self.threads = Threads(threads_1d, threads_2d)

        # Everything the steps touch, on the device for the whole run.
        self.X = cuda.to_device(np.ascontiguousarray(X))
        self.y = cuda.to_device(np.ascontiguousarray(y, dtype=np.int64))
        self.params = DeviceParameters.from_host(arch, model.params.theta)
        self.grads = DeviceParameters.from_host(arch, np.zeros_like(model.params.theta))
        self.device_optimizer = DeviceOptimizer(self.optimizer, threads_1d)
        self.workspace = device_workspace(arch, self.sampler.batch_size, model.dtype)
        self.index_matrix = cuda.to_device(self.sampler.index_matrix)
        self.batch_losses = cuda.to_device(np.zeros(steps, dtype=np.float64))
        self.nonfinite = cuda.to_device(np.zeros(CHECK_THREADS, dtype=np.int64))
        # Views made once: each step's rows of the workspace, indices and loss slot.
        sizes = [int(n) for n in self.sampler.batch_sizes]
        self._steps = [
            (self.workspace.rows(n), self.index_matrix[q, :n], self.batch_losses[q : q + 1])
            for q, n in enumerate(sizes)
        ]
        self._losses_host = np.zeros(steps, dtype=np.float64)
        self._test_set: tuple | None = None  # (host X, device X, device 0..n−1) of accuracy()

    @property
    def step_count(self) -> int:
        """p: the number of updates made so far."""
        return self.optimizer.step_count

    # -- state exchange with the host (checkpoints, model files) ------------------------------

    def to_host(self) -> None:
        """Copy θ into ``model.params.theta`` and the optimizer state into ``optimizer.state``."""
        self.params.theta.copy_to_host(self.model.params.theta)
        self.device_optimizer.to_host()

    def from_host(self) -> None:
        """Copy ``model.params.theta`` and ``optimizer.state`` onto the device."""
        self.params.theta.copy_to_device(np.ascontiguousarray(self.model.params.theta))
        self.device_optimizer.from_host()

    # -- training -------------------------------------------------------------------------------

    def _step(self, q: int) -> None:
        """Minibatch q of the current epoch: gather, forward, loss, backward, update."""
        ws, indices, loss_slot = self._steps[q]
        threads = self.threads
        B = ws.batch_size
        gather_batch[threads.elementwise(B, ws.h[0].shape[1])](ws.h[0], self.X, indices, self.scale)
        gather_labels[threads.per_sample(B)](ws.labels, self.y, indices)
        passes.forward(ws, self.params, threads)
        passes.loss(ws, self.params, ws.labels, loss_slot, threads)
        passes.backward(ws, self.params, self.grads, ws.labels, threads)
        self.device_optimizer.step(
            self.params.theta, self.grads.theta, self.schedule(self.step_count + 1)
        )

    def _start_epoch(self) -> None:
        self.sampler.epoch()  # (I.1/I.2) drawn on the host, from the run's one generator
        self.index_matrix.copy_to_device(self.sampler.index_matrix)

    def train_epoch(self, on_batch: Callable[[int], None] | None = None) -> EpochMetrics:
        """One pass of ⌈n/B⌉ steps; the metrics carry the mean minibatch loss over the epoch.

        ``on_batch(b)`` is called after minibatch b (0-based) is launched. Losses are read back
        once, at the end of the epoch: a NaN is reported for the first batch that had one.
        """
        self.epoch += 1
        started = time.perf_counter()
        self._start_epoch()
        steps = self.sampler.steps_per_epoch
        lr = self.schedule(self.step_count + 1)
        for q in range(steps):
            lr = self.schedule(self.step_count + 1)
            self._step(q)
            if on_batch is not None:
                on_batch(q)
        losses = self.batch_losses.copy_to_host(self._losses_host)  # waits for the device
        seconds = time.perf_counter() - started
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            raise TrainingDiverged(self._divergence_message("loss", float(losses[bad[0]]), bad[0]))
        if self._count_nonfinite():
            raise TrainingDiverged(self._divergence_message("parameters", math.nan, steps - 1))
        sizes = self.sampler.batch_sizes
        mean_loss = float(losses @ sizes) / sizes.sum()
        return EpochMetrics(self.epoch, mean_loss, None, seconds, lr)

    def train_steps(self, count: int) -> None:
        """Run ``count`` minibatch steps, starting epochs as needed (benchmarks time this)."""
        while count > 0:
            steps = min(count, self.sampler.steps_per_epoch)
            self._start_epoch()
            for q in range(steps):
                self._step(q)
            count -= steps
        cuda.synchronize()

    def _count_nonfinite(self) -> int:
        count_nonfinite[grid_1d(CHECK_THREADS, self.threads.one_d)](
            self.nonfinite, self.params.theta
        )
        return int(self.nonfinite.copy_to_host().sum())

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

    def _divergence_message(self, what: str, value: float, batch: int) -> str:
        lr = self.optimizer.hyper["lr"]
        return (
            f"training diverged on the GPU: the {what} became {value} at epoch {self.epoch}, "
            f"batch {batch + 1}. Try a smaller learning rate, "
            f"e.g. --lr {lr / 10:g} (this run used {lr:g})."
        )
