"""Minibatch training: θ_p = θ_{p−1} − γ_p ∇ℓ_B(θ_{p−1}) (FB §1 Q2), step by step.

Orchestration only: the Trainer draws each epoch's minibatches (I.1/I.2) and step sizes
(G.*), keeps the position (epoch, minibatch, p), checks for divergence and restores a run;
an engine (numbamlp/engines/) makes the steps — gather, forward (F.*), loss (L.1 or L.2, S.1,
with sample weights S.2), backward (B.*), update (U.*). Every buffer is allocated when the
Trainer is built; the loop itself allocates nothing.

The engines run the same equations, chosen by ``config.engine``, ``device`` and ``cluster``:

* ``fused`` (default): many steps per call, two parallel regions per step, with
  register-blocked loops (the fast path); with a ``cluster``, its region 1 shared among the
  ranks of an MPI job (bitwise the model of one process).
* ``kernels``: one call per equation kernel from Python (passes.py, optimizers.py): the plain
  loops, easiest to read against the notes, and the reference the fused engine is tested
  against. Both are deterministic for any thread count; they differ in rounding only.
* ``device="cuda"``: the kernels engine's launches on a CUDA device.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from numbamlp.engines import ENGINES, FUSED_CHUNK, Engine, EngineSetup, make_engine
from numbamlp.errors import NumbamlpError
from numbamlp.kernels.dropout import Dropout
from numbamlp.kernels.optimizers import OPTIMIZERS, Optimizer
from numbamlp.kernels.sampling import Sampler
from numbamlp.model.mlp import MLP
from numbamlp.training.randomness import generators  # noqa: F401  (part of this module's API)
from numbamlp.training.schedules import Schedule

if TYPE_CHECKING:
    from numbamlp.engines.cluster import Cluster

__all__ = [
    "ENGINES",
    "FUSED_CHUNK",
    "GROWTH_LIMIT",
    "EpochMetrics",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "generators",
    "train",
]


class TrainingDiverged(NumbamlpError):
    """The loss or the parameters became NaN or infinite, or the loss exploded (GROWTH_LIMIT)."""


#: A finite loss that explodes is divergence too: the run stops at the first minibatch whose
#: loss exceeds GROWTH_LIMIT × max(ℓ_ref, log M), where ℓ_ref is the loss of the run's first
#: minibatch and log M that of a uniform guess over the M classes (what a fresh network starts
#: near; the max keeps unscaled data, whose first loss is far above log M, from counting as
#: growth). For regression (L.2) the guess is f = 0 on standardised targets (Z.2), whose loss
#: is ½ Σ_i E[y_i²] = T/2 for T targets: max(ℓ_ref, T/2). Checked per minibatch, so where it
#: fires depends neither on how the minibatches were grouped into calls nor on a stop and
#: resume. A run that learns never comes near: every
#: optimizer at 10 × its default γ, constant/step/cosine, on MNIST stays ≤ 1.07 × ℓ_ref (SGD at
#: γ = 10: 2 ×; tests/training/test_exploding_loss.py). 10⁴ × is 23 000 nats on MNIST, logits
#: thousands apart; `--optimizer sgd --lr 1e6` passes it at its second minibatch (ℓ = 4 · 10⁵).
GROWTH_LIMIT = 1e4


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
    # λ of the L2 weight decay (R.1): the steps follow ∇ℓ_λ = ∇ℓ + λW (weights only, not the
    # biases), whatever the optimizer — coupled, as PyTorch's Adam(weight_decay=λ), not AdamW.
    weight_decay: float = 0.0
    # Dropout (D.1–D.3): the hidden layers' rates (() none) and the seed its key comes from.
    dropout: tuple[float, ...] = ()
    dropout_seed: int = 0

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
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise NumbamlpError(
                f"weight decay must be a finite number ≥ 0, got {self.weight_decay}"
            )


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    test_accuracy: float | None
    seconds: float  # wall time of the epoch's training steps (evaluation excluded)
    lr: float  # γ_p at the epoch's last step
    # The running accuracy over the epoch's minibatches, each counted as it was trained (before
    # its step), as Keras reports it: no extra pass over the training set. None for an epoch
    # resumed from a checkpoint written before numbamlp counted it, and for regression.
    train_accuracy: float | None = None
    val_loss: float | None = None  # on the held-out validation rows, after the epoch
    val_accuracy: float | None = None  # R² (E.3) for a regression
    # A regression's test metrics in the targets' own units (E.1, E.2); its R² (E.3) is held
    # in test_accuracy's place and recorded as test_r2.
    test_mse: float | None = None
    test_mae: float | None = None
    regression: bool = False

    def as_dict(self) -> dict:
        """The fields as a dict; val_loss and val_accuracy only when there is a validation set.
        A regression's record names its scores for what they are: test_mse, test_mae, test_r2
        (and val_r2), with no accuracy fields."""
        record = asdict(self)
        del record["regression"]
        if self.val_loss is None:
            del record["val_loss"], record["val_accuracy"]
        if not self.regression:
            del record["test_mse"], record["test_mae"]
            return record
        del record["train_accuracy"]
        record["test_r2"] = record.pop("test_accuracy")
        if "val_accuracy" in record:
            record["val_r2"] = record.pop("val_accuracy")
        return record


class Trainer:
    """Owns the optimizer, schedule, sampler and engine of one run."""

    def __init__(
        self,
        model: MLP,
        X_train: np.ndarray,
        y_train: np.ndarray,
        config: TrainConfig,
        rng: np.random.Generator,
        optimizer: Optimizer | None = None,
        scale: float = 1.0,
        *,
        device: str = "cpu",
        cluster: Cluster | None = None,
        engine_options: Mapping[str, Any] | None = None,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        """Training inputs are X_train · scale (scale = 1/255 for raw uint8 pixels); y_train the
        int labels, or for a regressor (identity head) the float targets (n, T) ((n,) for T = 1),
        already standardised (Z.2 is the caller's).

        device: "cpu", or "cuda" (the steps on a CUDA device; ``config.engine`` is then
            ignored: the device makes one launch per equation kernel).
        cluster: an engines.cluster.Cluster: the fused engine shares its steps among the ranks of
            that MPI job (same results as one process, bit for bit).
        engine_options: the engine's tuning options (``engines.make_engine``).
        sample_weight: w_s ≥ 0 per training row, finite, with a positive sum: each step takes
            the weighted minibatch mean Σ_s w_s ℓ_s / Σ_s w_s (S.2). None: the plain mean (S.1).
        """
        config.validate()
        self.model = model
        self.config = config
        self.rng = rng
        self.X = model.check_inputs(X_train, "training features", raw=True)
        self.scale = model.dtype.type(scale)
        n = self.X.shape[0]
        self.regression = model.architecture.task == "regression"
        what = "training targets" if self.regression else "training labels"
        self.y = model.check_targets(y_train, n, what)  # labels (n,) or targets (n, T)
        self.sample_weight = (
            None if sample_weight is None else model.check_sample_weight(sample_weight, n)
        )
        self.sampler = Sampler(config.sampling, self.X.shape[0], config.batch_size, rng)
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
        self.epoch = 0  # epochs started; the current one is complete when batch == 0
        self.batch = 0  # minibatches done in the current epoch (q)
        self.epoch_seconds = 0.0
        # the generator's state when the epoch began
        self._epoch_rng_state: Mapping[str, Any] | None = None
        # γ_p and ℓ of each minibatch of the current epoch, filled as it goes.
        self.lrs = np.zeros(steps, dtype=np.float64)
        self.batch_losses = np.zeros(steps, dtype=np.float64)
        self.batch_correct = np.zeros(steps, dtype=np.int64)  # samples classified right (P.1)
        self._correct_known = True  # False: the epoch was resumed without its counts
        self.reference_loss: float | None = None  # ℓ_ref of GROWTH_LIMIT, once known
        self._loss_limit = math.inf
        self.device = device
        self._engine_options = dict(engine_options or {})
        self._build_engine(device, cluster)

    # --- the engine: it makes the steps (numbamlp/engines/) ----------------------------------

    def _build_engine(self, device: str, cluster: Cluster | None) -> None:
        setup = EngineSetup(
            self.model,
            self.X,
            self.scale,
            np.zeros(0, np.int64) if self.regression else self.y,
            self.optimizer,
            self.sampler,
            self.lrs,
            self.batch_losses,
            self.batch_correct,
            self.config.weight_decay,
            targets=self.y if self.regression else None,
            weights=self.sample_weight,
            dropout=self._dropout(),
        )
        self.engine: Engine = make_engine(
            self.config.engine, device, cluster, setup, **self._engine_options
        )

    def _dropout(self) -> Dropout | None:
        """The run's dropout (D.1–D.3) for the engine, None without it."""
        if not self.config.dropout:
            return None
        arch = self.model.architecture
        config = self.config
        return Dropout.create(config.dropout, config.dropout_seed, arch.L, self.model.dtype)

    @property
    def state(self) -> np.ndarray:
        """The optimizer's state as one (n_state, P) array (its arrays are views of the rows);
        on a device current after ``host_state()``."""
        return self.engine.state

    def _call_size(self, first: int, end: int) -> int:
        """How many minibatches the next call into the engine makes (first .. end−1 remain).
        The first call of an epoch makes one, so on_batch(0) comes at once."""
        return min(self.engine.chunk if first else 1, end - first)

    def _advance(self, count: int) -> None:
        """Make minibatches batch .. batch+count−1 of the epoch; raise TrainingDiverged at a
        non-finite loss."""
        q = self.batch
        done = self.engine.run(q, count)
        self.batch += done
        if done < count:
            bad = q + done
            raise TrainingDiverged(self._divergence_message("loss", self.batch_losses[bad], bad))

    def host_state(self) -> None:
        """Make θ (``model``) and the optimizer's state current on the host: the CPU's already
        are; a device copies them back (before a checkpoint or a model file is written)."""
        self.engine.to_host()

    def accuracy(self, X: np.ndarray, y: np.ndarray, scale: float = 1.0) -> float:
        """Fraction of (X · scale, y) that the current θ classifies right (P.1), computed where
        θ is (on a device: there); for regression R² (E.3) of the targets y."""
        return self.engine.accuracy(X, y, scale)

    def validation_metrics(
        self, X: np.ndarray, y: np.ndarray, scale: float = 1.0
    ) -> tuple[float, float]:
        """Mean cross-entropy (L.1, S.1) and accuracy (P.1) of the current θ on (X · scale, y),
        or for regression the mean squared error ℓ (L.2, S.1) and R² (E.3, in the standardised
        units of y), computed on the host (a device copies θ back first)."""
        self.host_state()
        return self.model.loss_and_accuracy(X, y, scale)

    def load_parameters(self, theta: np.ndarray) -> None:
        """Make ``theta`` the network's θ (early stopping's best weights); a device uploads it
        (with the optimizer's state, first brought to the host unchanged)."""
        self.engine.to_host()
        np.copyto(self.model.params.theta, theta)
        self.engine.from_host()

    def check_parameters(self) -> None:
        """Raise TrainingDiverged if θ holds a NaN or an infinity."""
        if not self.engine.all_finite():
            self._parameters_diverged()

    def _parameters_diverged(self) -> None:
        last = (self.batch or self.sampler.steps_per_epoch) - 1
        raise TrainingDiverged(self._divergence_message("parameters", math.nan, last))

    @property
    def step_count(self) -> int:
        """p: the number of updates made so far."""
        return self.optimizer.step_count

    @property
    def at_epoch_boundary(self) -> bool:
        return self.batch == 0

    def train_epoch(self, on_batch: Callable[[int], None] | None = None) -> EpochMetrics:
        """The rest of the current epoch, or a whole new one at an epoch boundary.

        ``on_batch(b)`` is called after minibatch b (0-based) of the epoch.
        """
        metrics = self.run_batches(on_batch)
        assert metrics is not None
        return metrics

    def run_batches(
        self,
        on_batch: Callable[[int], None] | None = None,
        until: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> EpochMetrics | None:
        """Continue the current epoch (or start the next one) up to minibatch ``until``
        (exclusive; default: the end of the epoch), or until ``should_stop()`` is true after a
        call into the engine (every FUSED_CHUNK minibatches at most).

        Returns the epoch's metrics if it is complete, else None. Either way the trainer then
        sits at a minibatch boundary that ``run_state`` describes exactly.
        """
        if self.batch == 0:
            self._start_epoch(self.step_count)
        steps = self.sampler.steps_per_epoch
        end = steps if until is None else max(self.batch, min(until, steps))
        started = time.perf_counter()
        try:
            while self.batch < end:
                first = self.batch
                self._advance(self._call_size(first, end))
                self._check_growth(first)
                if on_batch is not None:
                    for b in range(first, self.batch):
                        on_batch(b)
                if should_stop is not None and should_stop():
                    break
        finally:
            self.epoch_seconds += time.perf_counter() - started
        if self.batch < steps:
            return None
        return self._finish_epoch()

    def _start_epoch(self, p0: int) -> None:
        """Draw the epoch's minibatches and its step sizes; p0 is p before its first step."""
        self.epoch += 1
        self.epoch_seconds = 0.0
        # Each epoch's minibatches are a function of the generator's state alone (sampling.py),
        # so this state plus the batch count is enough to resume in the middle of the epoch.
        self._epoch_rng_state = self.rng.bit_generator.state
        self.sampler.epoch()
        for q in range(self.sampler.steps_per_epoch):
            # (G.*) γ_p for the steps p = p0+1 .. p0+steps of this epoch
            self.lrs[q] = self.schedule(p0 + q + 1)
        self.engine.start_epoch()

    def _guess_loss(self) -> float:
        """GROWTH_LIMIT's loss of a guess: log M (uniform over M classes), or T/2 (f = 0 on
        standardised targets)."""
        arch = self.model.architecture
        return arch.n_outputs / 2 if self.regression else math.log(arch.n_classes)

    def _set_reference_loss(self, loss: float) -> None:
        self.reference_loss = loss
        self._loss_limit = GROWTH_LIMIT * max(loss, self._guess_loss())

    def _check_growth(self, first: int) -> None:
        """Raise TrainingDiverged if a loss of minibatches first .. batch−1 (just made, all
        finite) exceeds the GROWTH_LIMIT bound. A few comparisons per call; no allocation."""
        losses = self.batch_losses
        if self.reference_loss is None:
            self._set_reference_loss(float(losses[first]))
        for q in range(first, self.batch):
            if losses[q] > self._loss_limit:
                value = float(losses[q])
                step = self.step_count - (self.batch - 1 - q)
                raise TrainingDiverged(
                    f"training diverged: the loss grew to {value:.4g} at epoch {self.epoch}, "
                    f"batch {q + 1} (step {step}), more than {GROWTH_LIMIT:g} times "
                    f"max(the first minibatch's loss {self.reference_loss:.4g}, "
                    f"{'a zero prediction' if self.regression else 'a uniform guess'}'s "
                    f"{self._guess_loss():.4g}). " + self._smaller_lr_hint()
                )

    def _finish_epoch(self) -> EpochMetrics:
        steps = self.sampler.steps_per_epoch
        self.check_parameters()
        self.batch = 0
        sizes = self.sampler.batch_sizes
        mean_loss = float(self.batch_losses @ sizes) / sizes.sum()  # (S.1) over the epoch
        train_accuracy = int(self.batch_correct.sum()) / int(sizes.sum())
        known, self._correct_known = self._correct_known and not self.regression, True
        return EpochMetrics(
            self.epoch,
            mean_loss,
            None,
            self.epoch_seconds,
            float(self.lrs[steps - 1]),
            train_accuracy if known else None,
        )

    def train_steps(self, count: int) -> None:
        """Run ``count`` minibatch steps, continuing and starting epochs as needed (benchmarks
        time this)."""
        while count > 0:
            first = self.batch
            self.run_batches(until=first + count)
            count -= (self.batch or self.sampler.steps_per_epoch) - first

    # --- where the run is, exactly: what a checkpoint stores ---------------------------------

    def run_state(self) -> dict:
        """The trainer's position as plain JSON data. Together with θ, the optimizer's state
        and the run's configuration it determines the rest of the run bit for bit."""
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "step_count": self.step_count,
            "steps_per_epoch": self.sampler.steps_per_epoch,
            "rng_state": self.rng.bit_generator.state,
            "epoch_rng_state": self._epoch_rng_state if self.batch else None,
            "epoch_losses": [float(v) for v in self.batch_losses[: self.batch]],
            "epoch_correct": [int(v) for v in self.batch_correct[: self.batch]],
            "epoch_seconds": self.epoch_seconds if self.batch else 0.0,
            "reference_loss": self.reference_loss,
            # the seed of dropout's key (D.1): the run's seed, or one drawn for a run without
            "dropout_seed": self.config.dropout_seed if self.config.dropout else None,
        }

    def restore(self, run_state: dict) -> None:
        """Put the trainer where ``run_state`` (from ``run_state()``) says; θ and the optimizer
        state come with the model and optimizer the trainer was built with. A state that does
        not fit this run raises NumbamlpError."""
        steps = self.sampler.steps_per_epoch
        try:
            epoch, batch = int(run_state["epoch"]), int(run_state["batch"])
            step_count = int(run_state["step_count"])
            saved_steps = int(run_state["steps_per_epoch"])
            rng_state = dict(run_state["rng_state"])
            losses = [float(v) for v in run_state["epoch_losses"]]
            seconds = float(run_state["epoch_seconds"])
            epoch_rng_state = run_state["epoch_rng_state"]
            # Absent from checkpoints of older versions: then the next minibatch sets it.
            reference = run_state.get("reference_loss")
            reference = None if reference is None else float(reference)
            correct = run_state.get("epoch_correct")
            correct = None if correct is None else [int(v) for v in correct]
        except (KeyError, TypeError, ValueError) as exc:
            raise NumbamlpError(f"the run state is incomplete or malformed ({exc})") from None
        if saved_steps != steps:
            raise NumbamlpError(
                f"the run made {saved_steps} steps per epoch, this one would make {steps}: the "
                "training set or the batch size differs"
            )
        if not (
            0 <= batch < steps and epoch >= (1 if batch else 0) and step_count == self.step_count
        ):
            raise NumbamlpError(
                f"the run state is inconsistent (epoch {epoch}, batch {batch}, step "
                f"{step_count}, optimizer step {self.step_count}, {steps} steps per epoch)"
            )
        if len(losses) != batch:
            raise NumbamlpError("the run state's minibatch losses do not match its batch count")
        if correct is not None and (len(correct) != batch or any(c < 0 for c in correct)):
            raise NumbamlpError("the run state's minibatch accuracy counts are malformed")
        if reference is not None:
            if not (math.isfinite(reference) and reference >= 0):
                raise NumbamlpError(f"the run state's reference loss {reference} is not valid")
            self._set_reference_loss(reference)
        try:
            if batch:
                # Replay the epoch's draw: the same minibatches, and the generator ends up where
                # it was when the state was saved.
                self.epoch = epoch - 1
                self.rng.bit_generator.state = dict(epoch_rng_state)
                self._start_epoch(step_count - batch)
                self.batch = batch
                self.batch_losses[:batch] = losses
                self.batch_correct[:batch] = correct or 0
                self._correct_known = correct is not None
                self.epoch_seconds = seconds
            else:
                self.epoch = epoch
            if self.rng.bit_generator.state != rng_state:
                self.rng.bit_generator.state = rng_state
                if batch:
                    raise NumbamlpError(
                        "the run state is inconsistent (its generator states do not match)"
                    )
        except (TypeError, ValueError, KeyError) as exc:
            raise NumbamlpError(f"the run state's random generator is malformed ({exc})") from None

    def _divergence_message(self, what: str, value: float, batch: int) -> str:
        return (
            f"training diverged: the {what} became {value} at epoch {self.epoch}, batch "
            f"{batch + 1} (step {self.step_count + (1 if what == 'loss' else 0)}). "
            + self._smaller_lr_hint()
        )

    def _smaller_lr_hint(self) -> str:
        lr = self.optimizer.hyper["lr"]
        return f"Try a smaller learning rate, e.g. `lr={lr / 10:g}` (this run used {lr:g})."


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
        if y_test is None:
            raise NumbamlpError("test features without test labels")
        X_test = model.check_inputs(X_test, "test features", raw=True)
        y_test = model.check_targets(y_test, X_test.shape[0], "test labels")
    history = []
    for _ in range(config.epochs):
        metrics = trainer.train_epoch(on_batch)
        if X_test is not None and y_test is not None:
            metrics.test_accuracy = model.accuracy(X_test, y_test, scale)  # (P.1), or R² (E.3)
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(metrics)
    return history
