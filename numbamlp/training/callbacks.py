"""Callbacks: what observes a training run without being its loop (Keras's design).

``numbamlp.fit`` runs the loop; everything around it is a callback that the loop calls at four
points, each with the run object (``fit.Run``) it belongs to:

* ``on_train_begin(run)`` before the first minibatch;
* ``on_batch_end(run, batch)`` after minibatch ``batch`` (0-based, within the epoch);
* ``on_epoch_end(run, metrics)`` after each epoch, its test and validation metrics measured;
* ``on_train_end(run)`` when the loop ends, however it ends (also after an error).

``run.request_stop()`` asks for a clean stop, the same as Ctrl-C: the run stops after the
current engine call and a checkpoint is written when a checkpoint directory is set; the run can
be resumed with ``fit(resume=...)``. ``run.stop_training = True`` ends training after the
current epoch as if its planned epochs were done (early stopping does this).

The run's own services are callbacks too, in this module: the epoch log, the progress bar, the
throttled evaluation (MMiDS §7.3's ``throttle(evalcb, 2)``), the metrics file, checkpointing,
early stopping and the convergence stop. Importing this module is cheap (no NumPy, no Numba).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from numbamlp.errors import NumbamlpError

if TYPE_CHECKING:
    from numbamlp.model.mlp import MLP
    from numbamlp.training.trainer import EpochMetrics, Trainer


@dataclass
class Run:
    """The run as callbacks see it."""

    trainer: Trainer
    model: MLP
    epochs: int
    history: list[dict[str, Any]]
    log: Callable[..., None]
    test_accuracy: Callable[[], float | None]
    stop_requested: bool = False
    stop_training: bool = False

    def request_stop(self) -> None:
        """Stop cleanly after the current engine call, as Ctrl-C does (resumable)."""
        self.stop_requested = True


class Callback:
    """Base class: override the methods you need; each default does nothing."""

    def on_train_begin(self, run: Run) -> None:
        """Before the first minibatch of this call to ``fit`` (a resumed run included)."""

    def on_batch_end(self, run: Run, batch: int) -> None:
        """After minibatch ``batch`` (0-based within the epoch) has been trained on."""

    def on_epoch_end(self, run: Run, metrics: EpochMetrics) -> None:
        """After an epoch, with its metrics (``run.history[-1]`` is their record)."""

    def on_train_end(self, run: Run) -> None:
        """When training ends: finished, stopped, or failed."""


class Throttle:
    """Call ``fn`` at most once every ``seconds``; the first call always goes through."""

    def __init__(
        self, fn: Callable[..., Any], seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.fn = fn
        self.seconds = seconds
        self.clock = clock
        self._last: float | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        now = self.clock()
        if self._last is None or now - self._last >= self.seconds:
            self._last = now
            return self.fn(*args, **kwargs)
        return None


def epoch_line(metrics: EpochMetrics) -> str:
    """The line logged after each epoch (the fields of the metrics file, rounded)."""

    def shown(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    line = f"epoch {metrics.epoch:3d}  train_loss {metrics.train_loss:.4f}"
    if metrics.regression:  # (E.1–E.3) in the targets' own units
        if metrics.val_loss is not None:
            line += f"  val_loss {metrics.val_loss:.4f}  val_r2 {shown(metrics.val_accuracy)}"
        line += f"  test_mse {shown(metrics.test_mse)}  test_mae {shown(metrics.test_mae)}"
        return line + f"  test_r2 {shown(metrics.test_accuracy)}  seconds {metrics.seconds:.2f}"
    line += f"  train_accuracy {shown(metrics.train_accuracy)}"
    if metrics.val_loss is not None:
        line += f"  val_loss {metrics.val_loss:.4f}  val_accuracy {shown(metrics.val_accuracy)}"
    return line + f"  test_accuracy {shown(metrics.test_accuracy)}  seconds {metrics.seconds:.2f}"


class EpochLogger(Callback):
    """Logs one line per epoch (``epoch_line``) through the run's log."""

    def on_epoch_end(self, run: Run, metrics: EpochMetrics) -> None:
        run.log(epoch_line(metrics))


class ProgressBar(Callback):
    """A progress bar over each epoch's minibatches (rate, ETA, running loss), erased at the
    epoch's end so that the epoch line takes its place."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._bar: Any = None

    def _open(self, run: Run) -> None:
        from numbamlp.training.progress import EpochBar

        trainer = run.trainer
        epoch = trainer.epoch + (1 if trainer.at_epoch_boundary else 0)
        steps = trainer.sampler.steps_per_epoch
        bar = EpochBar(self.stream or sys.stdout, steps, f"epoch {epoch}/{run.epochs}")
        self._bar = bar.__enter__()
        if trainer.batch:  # a resumed epoch
            bar.skip(trainer.batch, float(trainer.batch_losses[: trainer.batch].sum()))

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None

    def on_train_begin(self, run: Run) -> None:
        self._open(run)

    def on_batch_end(self, run: Run, batch: int) -> None:
        if self._bar is None:
            self._open(run)
        self._bar.update(float(run.trainer.batch_losses[batch]))

    def on_epoch_end(self, run: Run, metrics: EpochMetrics) -> None:
        self._close()

    def on_train_end(self, run: Run) -> None:
        self._close()


class ThrottledEvaluation(Callback):
    """Logs the test accuracy during an epoch, at most every ``seconds`` (MMiDS §7.3's
    ``throttle(evalcb, 2)``)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.clock = seconds, clock
        self._throttle: Throttle | None = None

    def on_train_begin(self, run: Run) -> None:
        self._throttle = Throttle(
            lambda: run.log(f"  accuracy(Xtest, ytest) = {run.test_accuracy():.4f}"),
            self.seconds,
            self.clock,
        )

    def on_batch_end(self, run: Run, batch: int) -> None:
        assert self._throttle is not None
        self._throttle()


class MetricsFile(Callback):
    """Writes one JSON object per epoch (JSON Lines) to ``path``: the whole run's history (a
    resumed run's earlier epochs first), flushed after every epoch.

    An I/O error (a full disk) does not end the run: the file is given up, training goes on,
    and ``error`` holds the NumbamlpError that fit raises once everything else the run writes
    (the model first) is written."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: TextIO | None = None
        self.error: NumbamlpError | None = None

    def _failed(self, run: Run, exc: OSError) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()
        if self.error is None:
            self.error = NumbamlpError(
                f"`metrics_out`: cannot write {self.path}: {exc.strerror or exc}"
            )
            run.log(
                f"note: cannot write the metrics file {self.path} ({exc.strerror or exc}); "
                "training goes on, the error is reported at the end",
                err=True,
            )

    def on_train_begin(self, run: Run) -> None:
        try:
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115  (closed at the end)
            for record in run.history:
                self._file.write(json.dumps(record) + "\n")
        except OSError as exc:
            self._failed(run, exc)

    def on_epoch_end(self, run: Run, metrics: EpochMetrics) -> None:
        if self._file is None:  # given up after an error
            return
        try:
            self._file.write(json.dumps(run.history[-1]) + "\n")
            self._file.flush()
        except OSError as exc:
            self._failed(run, exc)

    def on_train_end(self, run: Run) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._failed(run, exc)
            self._file = None


class EarlyStoppingCallback(Callback):
    """Stops training when the validation loss has not improved for ``patience`` epochs, keeping
    the best epoch's θ (validation.EarlyStopping); fit restores it when training ends."""

    def __init__(self, early: Any) -> None:
        self.early = early  # validation.EarlyStopping, restored from a checkpoint if resumed

    def on_epoch_end(self, run: Run, metrics: EpochMetrics) -> None:
        if metrics.val_loss is None:
            return
        if self.early.update(metrics.epoch, metrics.val_loss, run.model.params.theta):
            run.stop_training = True


class ConvergenceCallback(Callback):
    """Stops a run given no ``epochs`` once its monitored loss has converged: the training loss,
    or with a validation set the validation loss, has not fallen below its best − ``tol`` for
    ``n_iter_no_change`` epochs in a row (scikit-learn's rule; a validation.EarlyStopping with
    ``tol``, restored from a checkpoint if resumed)."""

    def __init__(self, converging: Any, monitor: str) -> None:
        self.converging = converging
        self.monitor = monitor  # "train_loss" or "val_loss"

    def on_epoch_end(self, run: Run, metrics: EpochMetrics) -> None:
        loss = getattr(metrics, self.monitor)
        if loss is None:
            return
        if self.converging.update(metrics.epoch, loss, run.model.params.theta):
            run.stop_training = True


class Checkpointing(Callback):
    """Writes the run's checkpoint (checkpoint.CheckpointWriter) to ``directory`` at the end of
    every epoch and, with ``every``, every that many minibatches; fit asks ``until`` where the
    next periodic one falls, so that it stops its engine calls there."""

    def __init__(self, writer: Any, directory: Path | None, every: int | None = None) -> None:
        self.writer, self.directory, self.every = writer, directory, every

    def until(self, run: Run) -> int | None:
        """The minibatch of the current epoch before which the next periodic checkpoint falls."""
        if self.every is None or self.directory is None:
            return None
        trainer = run.trainer
        return trainer.batch + self.every - trainer.step_count % self.every

    def write(self) -> Path | None:
        if self.directory is None:
            return None
        return self.writer.write(self.directory)

    def on_epoch_end(self, run: Run, metrics: EpochMetrics) -> None:
        self.write()
