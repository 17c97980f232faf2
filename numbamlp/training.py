"""Minibatch training: θ_p = θ_{p−1} − γ_p ∇ℓ_B(θ_{p−1}) (FB §1 Q2), step by step.

Orchestration only. Per step: gather the minibatch (I.1/I.2), forward (F.*), loss (L.1, S.1),
backward (B.*), step size (G.*), update (U.*). Every buffer is allocated when the Trainer is
built; the loop itself allocates nothing.

Two engines run the same equations:

* ``fused`` (default): fused.py runs many steps per call, two parallel regions per step, with
  register-blocked loops (the fast path).
* ``kernels``: one call per equation kernel from Python (passes.py, optimizers.py): the plain
  loops, easiest to read against the notes, and the reference the fused engine is tested
  against. Both are deterministic for any thread count; they differ in rounding only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from numbamlp import passes
from numbamlp.errors import NumbamlpError
from numbamlp.forward import gather_batch, gather_labels
from numbamlp.fused import FusedPlan
from numbamlp.model import MLP
from numbamlp.network import Parameters
from numbamlp.optimizers import OPTIMIZERS, Optimizer
from numbamlp.randomness import generators  # noqa: F401  (part of this module's API)
from numbamlp.sampling import Sampler
from numbamlp.schedules import Schedule
from numbamlp.workspace import Workspace


class TrainingDiverged(NumbamlpError):
    """The loss or the parameters became NaN or infinite."""


ENGINES = ("fused", "kernels")
#: Steps per call into the fused engine: Python gets control back (progress bar, throttled
#: evaluation, Ctrl-C) every few milliseconds without costing measurable speed.
FUSED_CHUNK = 32


@dataclass
class TrainConfig:
    """Everything that decides a run besides the data, the model and the seed."""

    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float | None = None  # γ_0; None means the optimizer's default
    optimizer_options: dict[str, float] = field(default_factory=dict)  # mu, rho, beta1, …
    schedule: str = "constant"
    decay_rate: float = 0.5  # step decay factor r (G.2)
    decay_epochs: float = 5.0  # P of step decay (G.2) and τ of inverse time (G.3), in epochs
    min_lr: float = 0.0  # γ_min of cosine (G.4)
    sampling: str = "shuffle"
    engine: str = "fused"  # or "kernels": one Python call per equation kernel

    def validate(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise NumbamlpError(f"epochs must be a positive integer, got {self.epochs}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise NumbamlpError(f"batch size must be a positive integer, got {self.batch_size}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise NumbamlpError(f"learning rate must be a positive number, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise NumbamlpError(
                f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}"
            )
        if self.engine not in ENGINES:
            raise NumbamlpError(
                f"unknown engine {self.engine!r}; choose one of: {', '.join(ENGINES)}"
            )
        if not self.decay_epochs > 0:
            raise NumbamlpError(f"decay epochs must be positive, got {self.decay_epochs}")


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    test_accuracy: float | None
    seconds: float  # wall time of the epoch's training steps (evaluation excluded)
    lr: float  # γ_p at the epoch's last step

    def as_dict(self) -> dict:
        return asdict(self)


class Trainer:
    """Owns the buffers, optimizer, schedule and sampler of one run."""

    def __init__(
        self,
        model: MLP,
        X_train: np.ndarray,
        y_train: np.ndarray,
        config: TrainConfig,
        rng: np.random.Generator,
        optimizer: Optimizer | None = None,
        scale: float = 1.0,
    ) -> None:
        """Training inputs are X_train · scale (scale = 1/255 for raw uint8 pixels)."""
        config.validate()
        self.model = model
        self.config = config
        self.rng = rng
        self.X = model.check_inputs(X_train, "training features", raw=True)
        self.scale = model.dtype.type(scale)
        self.y = model.check_labels(y_train, self.X.shape[0], "training labels")
        self.sampler = Sampler(config.sampling, self.X.shape[0], config.batch_size, rng)
        arch = model.architecture
        self.workspace = Workspace(arch, self.sampler.batch_size, model.dtype)
        for batch in self.sampler.batches:  # make the view for every batch size once
            self.workspace.rows(batch.shape[0])
        self.grads = Parameters.zeros(arch, model.dtype)
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
        self.plan: FusedPlan | None = None
        if config.engine == "fused":
            self.plan = FusedPlan(arch, self.sampler.batch_size, model.dtype, self.optimizer)
            self.state = self.plan.adopt_state(self.optimizer)
            self.lrs = np.zeros(steps, dtype=np.float64)
            self.batch_losses = np.zeros(steps, dtype=np.float64)

    @property
    def step_count(self) -> int:
        """p: the number of updates made so far."""
        return self.optimizer.step_count

    def train_epoch(self, on_batch: Callable[[int], None] | None = None) -> EpochMetrics:
        """One pass of ⌈n/B⌉ steps; the metrics carry the mean minibatch loss over the epoch.

        ``on_batch(b)`` is called after minibatch b (0-based) of the epoch.
        """
        if self.plan is not None:
            return self._train_epoch_fused(on_batch)
        params, grads = self.model.params, self.grads
        self.epoch += 1
        started = time.perf_counter()
        loss_sum = 0.0
        samples = 0
        lr = self.schedule(self.step_count + 1)
        for b, indices in enumerate(self.sampler.epoch()):
            ws = self.workspace.rows(indices.shape[0])
            gather_batch(ws.h[0], self.X, indices, self.scale)
            gather_labels(ws.labels, self.y, indices)
            passes.forward(ws, params)
            batch_loss = passes.loss(ws, params, ws.labels)
            if not math.isfinite(batch_loss):
                raise TrainingDiverged(self._divergence_message("loss", batch_loss, b))
            passes.backward(ws, params, grads, ws.labels)
            lr = self.schedule(self.step_count + 1)
            self.optimizer.step(params.theta, grads.theta, lr)
            loss_sum += batch_loss * ws.batch_size
            samples += ws.batch_size
            if on_batch is not None:
                on_batch(b)
        seconds = time.perf_counter() - started
        if not np.isfinite(params.theta).all():
            raise TrainingDiverged(self._divergence_message("parameters", math.nan, b))
        return EpochMetrics(self.epoch, loss_sum / samples, None, seconds, lr)

    def _train_epoch_fused(self, on_batch: Callable[[int], None] | None) -> EpochMetrics:
        assert self.plan is not None
        sampler, theta = self.sampler, self.model.params.theta
        self.epoch += 1
        started = time.perf_counter()
        sampler.epoch()
        steps = sampler.steps_per_epoch
        p0 = self.step_count
        for q in range(steps):  # (G.*) γ_p for the steps p = p0+1 .. p0+steps of this epoch
            self.lrs[q] = self.schedule(p0 + q + 1)
        q = 0
        while q < steps:
            # The first call of an epoch makes one step, so on_batch(0) comes right after it.
            count = min(FUSED_CHUNK if q else 1, steps - q)
            done = self.plan.run(
                theta, self.state, self.X, self.scale, self.y, sampler.index_matrix,
                sampler.batch_sizes, self.lrs, self.optimizer.step_count, q, count,
                self.batch_losses,
            )  # fmt: skip
            self.optimizer.step_count += done
            if done < count:
                bad = q + done
                raise TrainingDiverged(
                    self._divergence_message("loss", self.batch_losses[bad], bad)
                )
            if on_batch is not None:
                for b in range(q, q + count):
                    on_batch(b)
            q += count
        seconds = time.perf_counter() - started
        if not np.isfinite(theta).all():
            raise TrainingDiverged(self._divergence_message("parameters", math.nan, steps - 1))
        mean_loss = float(self.batch_losses @ sampler.batch_sizes) / sampler.batch_sizes.sum()
        return EpochMetrics(self.epoch, mean_loss, None, seconds, float(self.lrs[steps - 1]))

    def train_steps(self, count: int) -> None:
        """Run ``count`` minibatch steps, starting epochs as needed (benchmarks time this)."""
        while count > 0:
            steps = min(count, self.sampler.steps_per_epoch)
            self._partial_epoch(steps)
            count -= steps

    def _partial_epoch(self, steps: int) -> None:
        if self.plan is None:
            batches = self.sampler.epoch()[:steps]
            params, grads = self.model.params, self.grads
            for indices in batches:
                ws = self.workspace.rows(indices.shape[0])
                gather_batch(ws.h[0], self.X, indices, self.scale)
                gather_labels(ws.labels, self.y, indices)
                passes.forward(ws, params)
                passes.loss(ws, params, ws.labels)
                passes.backward(ws, params, grads, ws.labels)
                self.optimizer.step(params.theta, grads.theta, self.schedule(self.step_count + 1))
            return
        self.sampler.epoch()
        p0 = self.step_count
        for q in range(steps):
            self.lrs[q] = self.schedule(p0 + q + 1)
        done = self.plan.run(
            self.model.params.theta, self.state, self.X, self.scale, self.y,
            self.sampler.index_matrix, self.sampler.batch_sizes, self.lrs,
            self.optimizer.step_count, 0, steps, self.batch_losses,
        )  # fmt: skip
        self.optimizer.step_count += done
        if done < steps:
            raise TrainingDiverged(self._divergence_message("loss", math.nan, done))

    def _divergence_message(self, what: str, value: float, batch: int) -> str:
        lr = self.optimizer.hyper["lr"]
        return (
            f"training diverged: the {what} became {value} at epoch {self.epoch}, batch "
            f"{batch + 1} (step {self.step_count + (1 if what == 'loss' else 0)}). "
            "Try a smaller learning rate, "
            f"e.g. --lr {lr / 10:g} (this run used {lr:g})."
        )


def train(
    model: MLP,
    X_train: np.ndarray,
    y_train: np.ndarray,
    config: TrainConfig,
    rng: np.random.Generator,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    scale: float = 1.0,
) -> list[EpochMetrics]:
    """Train ``model`` in place for ``config.epochs`` epochs; returns the metrics per epoch.

    Inputs are X · scale (scale = 1/255 for raw uint8 pixels, e.g. a Dataset's
    ``X_train_raw`` with its ``feature_scale``). After each epoch the test accuracy is measured
    when a test set is given.
    """
    trainer = Trainer(model, X_train, y_train, config, rng, scale=scale)
    if X_test is not None:
        X_test = model.check_inputs(X_test, "test features", raw=True)
        y_test = model.check_labels(y_test, X_test.shape[0], "test labels")
    history = []
    for _ in range(config.epochs):
        metrics = trainer.train_epoch(on_batch)
        if X_test is not None:
            metrics.test_accuracy = float(np.mean(model.predict(X_test, scale) == y_test))
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    return history
