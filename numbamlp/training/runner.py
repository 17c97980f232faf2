"""The run behind ``numbamlp.fit``: ``prepare`` builds a Session (data, model, engine, the
services that observe it), ``Session.train`` runs the loop and reports.

Orchestration only: the equations are in the kernels, the steps in the engine behind
training.Trainer, and what observes the run in callbacks.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from numbamlp.errors import NumbamlpError
from numbamlp.training.callbacks import (
    Callback,
    Checkpointing,
    ConvergenceCallback,
    EarlyStoppingCallback,
    EpochLogger,
    MetricsFile,
    ProgressBar,
    Run,
    ThrottledEvaluation,
)
from numbamlp.training.config import DATASETS, FEW_STEPS
from numbamlp.training.plan import (
    RunPlan,
    arrays_dataset,
    check_outputs,
    check_writable,
    checkpoint_directory,
    connect,
    interrupt_directory,
    load_data,
    set_threads,
)

if TYPE_CHECKING:
    from numbamlp.model.mlp import MLP

#: How the run's log lines name parameters: as the library spells them (`` `save=PATH` ``)
#: unless a front end sets its own words (the command line: ``--save PATH``).
LOG_WORDS: ContextVar[Callable[[str], str] | None] = ContextVar("LOG_WORDS", default=None)


@dataclass
class FitResult:
    """What ``fit`` returns. ``history`` holds one record per epoch (the metrics file's
    objects); ``stopped`` is None for a run that ended normally, else ``"SIGINT"``,
    ``"SIGTERM"`` or ``"callback"`` (``checkpoint`` is then where it can be resumed from)."""

    model: MLP
    history: list[dict[str, Any]]
    test_accuracy: float | None  # for a regression its R² (E.3)
    epochs: int  # epochs completed
    seconds: float
    stopped: str | None = None
    position: str = ""  # where a stopped run stands, e.g. "epoch 3, batch 120"
    step: int = 0
    checkpoint: Path | None = None
    best_epoch: int | None = None  # the epoch whose weights early stopping kept
    saved: Path | None = None
    summary: str = ""  # the line that ends the log: "test accuracy … after … epochs (…)"
    #: The files the run writes when it ends, absolute (``save``, ``metrics_out``; those given
    #: or remembered by the checkpoint): a resumed run writes them too.
    outputs: dict[str, str] = field(default_factory=dict)
    #: What the model takes (datasets.inputscale.InputRecord: the scale and Z.1's μ, σ, which
    #: ``prepare_input`` applies to new features) and, for a regression, its targets' Z.2
    #: record (TargetRecord; None for a classifier) and the class names of a classifier.
    input: Any = None
    target: Any = None
    class_names: tuple[str, ...] = ()
    #: A run given no ``epochs``: True when it stopped because its monitored loss converged,
    #: False when it reached ``max_epochs`` first; None for a run of a fixed length (or one
    #: that `patience` or a callback ended first).
    converged: bool | None = None
    #: Why the run ended, in words ("the training loss improved by less than tol=0.0001 for
    #: 10 epochs"); empty for a run that made its fixed number of epochs.
    stop_reason: str = ""
    #: The optimizer (its state and step count p) and the minibatch generator's state where
    #: the run ended: ``fit(..., model=result)`` continues from them exactly.
    optimizer: Any = None
    generator: dict[str, Any] | None = None


@dataclass
class Outputs:
    """Where the run writes, and what it logs."""

    save: str | os.PathLike[str] | None
    metrics_out: str | os.PathLike[str] | None
    checkpoint_dir: Path | None
    eval_every: float | None
    verbose: int
    progress: bool | None = None  # the progress bar: None auto (draws_progress), True, False


def draws_progress(progress: bool | None, verbose: int, lead: bool) -> bool:
    """Whether the run draws its progress bar: ``progress=True`` on the lead process (the
    only one, or MPI rank 0), ``False`` never; ``None`` (auto) only when, besides, the log is
    on (``verbose``) and standard output is a terminal that is the final output: not under an
    MPI launcher (mpiexec, srun), which announces a rank in the environment. Open MPI gives
    every rank a terminal of its own whatever mpiexec's output is, and the bar's frames filled
    the logs that mpiexec redirects (those of every rank, on a run not distributed)."""
    if progress is not None:
        return bool(progress) and lead
    from numbamlp.engines.cluster import RANK_VARIABLES

    launched = any(name in os.environ for name in RANK_VARIABLES)
    return bool(verbose) and lead and not launched and sys.stdout.isatty()


@dataclass
class Inputs:
    """What a run starts from besides its plan: its data (a Dataset, arrays, or None to load the
    plan's), an existing model to continue, whether a data set may be downloaded, its threads."""

    data: Any = None
    y: Any = None
    X_test: Any = None
    y_test: Any = None
    model: Any = None
    download: bool = True
    threads: int | None = None
    sample_weight: Any = None  # fit's sample_weight: the training rows' weights (n,)


def execute(
    plan: RunPlan,
    inputs: Inputs,
    *,
    save: str | os.PathLike[str] | None,
    metrics_out: str | os.PathLike[str] | None,
    eval_every: float | None,
    checkpoint_dir: str | os.PathLike[str] | None,
    distributed: bool | None,
    mpi_timeout: float,
    verbose: int,
    callbacks: Sequence[Callback],
    progress: bool | None = None,
) -> FitResult:
    """Run ``plan`` (see ``fit``). A NumbamlpError raised once MPI is connected carries the
    cluster (``exc.cluster``), so that the command line can end every rank."""
    called = time.perf_counter()
    if eval_every is not None and not (isinstance(eval_every, (int, float)) and eval_every > 0):
        raise NumbamlpError(f"`eval_every`: must be a positive number, got {eval_every}")
    save = plan.outputs.get("save", save)  # a resumed run's: as given, else as it was given
    metrics_out = plan.outputs.get("metrics_out", metrics_out)
    for name, path in (("save", save), ("metrics_out", metrics_out)):
        try:
            check_writable(path, name)
        except NumbamlpError as exc:
            if name not in plan.recorded:
                raise
            raise NumbamlpError(
                f"{exc} (the resumed run writes it where its checkpoint says; give `{name}=PATH` "
                "for another place)"
            ) from None
    check_outputs(plan, save, metrics_out, checkpoint_dir, reads_files=inputs.data is None)
    cluster = connect(distributed, plan.config, mpi_timeout)
    try:
        with contextlib.ExitStack() as hold:  # the checkpoint directory's lock, for the run
            lead = cluster is None or cluster.rank == 0
            directory = checkpoint_directory(
                checkpoint_dir, plan.checkpoint_every, plan.resume, hold if lead else None
            )
            outputs = Outputs(save, metrics_out, directory, eval_every, verbose, progress)
            session = prepare(plan, cluster, outputs, inputs, callbacks)
            session.called = called
            return session.train()
    except NumbamlpError as exc:
        exc.cluster = cluster  # type: ignore[attr-defined]
        raise


@dataclass
class Session:
    """One prepared run: everything its loop touches, made before the first step."""

    plan: RunPlan
    outputs: Outputs
    cluster: Any
    data: Any  # datasets.Dataset
    model: Any  # model.MLP
    trainer: Any  # training.Trainer
    X_val: Any
    y_val: Any
    X_test: Any
    y_test: Any
    early: Any  # validation.EarlyStopping or None
    converging: Any  # validation.EarlyStopping of the convergence stop, or None
    writer: Any  # checkpoint.CheckpointWriter
    checkpointing: Checkpointing
    observers: list[Callback]
    run: Run
    preload_seconds: float = 0.0
    called: float = 0.0
    first_batch_done: float | None = None
    started: float = 0.0

    @property
    def regression(self) -> bool:
        return bool(self.model.architecture.task == "regression")

    @property
    def lead(self) -> bool:
        """Whether this process logs and writes: the only one, or MPI rank 0."""
        return self.cluster is None or self.cluster.rank == 0

    def log(self, message: str, err: bool = False, always: bool = False) -> None:
        if self.lead and (self.outputs.verbose or always):
            words = LOG_WORDS.get()
            shown = message if words is None else words(message)
            print(shown, file=sys.stderr if err else sys.stdout, flush=True)

    def written(self) -> dict[str, str]:
        """The run's outputs (``FitResult.outputs``)."""
        given = {"save": self.outputs.save, "metrics_out": self.outputs.metrics_out}
        return {name: os.path.abspath(path) for name, path in given.items() if path}

    def data_records(self) -> dict[str, Any]:
        """FitResult's input, target and class_names."""
        data = self.data
        return {
            "input": data.input_record(),
            "target": data.target_record(),
            "class_names": tuple(data.class_names),
        }

    def test_accuracy(self) -> float | None:
        """P.1 on the test set with the current θ, or a regression's R² (E.3); None without a
        test set."""
        if self.X_test.shape[0] == 0:
            return None
        return self.trainer.accuracy(self.X_test, self.y_test, self.data.feature_scale)

    def test_errors(self) -> tuple[float | None, float | None, float | None]:
        """A regression's MSE, MAE and R² on the test set (E.1–E.3), in the targets' own units
        (Z.2 inverted on both sides); None without a test set."""
        if self.X_test.shape[0] == 0:
            return None, None, None
        from numbamlp.kernels.metrics import mean_absolute_error, mean_squared_error, r2_score

        self.trainer.host_state()  # θ on the host (a device copies it back)
        target = self.data.target_record()
        truth = target.restore(self.y_test)
        guess = target.restore(self.model.predict(self.X_test, self.data.feature_scale))
        return (
            mean_squared_error(truth, guess),
            mean_absolute_error(truth, guess),
            r2_score(truth, guess),
        )

    def metadata(self) -> dict[str, Any]:
        """The model file's metadata at this point of the run."""
        data, trainer, history = self.data, self.trainer, self.run.history
        builtin = self.plan.data.train_file is None and data.name != "arrays"
        target = data.target_record()
        extra: dict[str, Any] = {} if target is None else {"target": target.as_metadata()}
        if self.plan.data.train_file is not None:  # what predict and evaluate leave out
            extra["label_column"] = self.plan.data.label_column
            if self.plan.data.sample_weight_column is not None:
                extra["sample_weight_column"] = self.plan.data.sample_weight_column
        return extra | {
            "dataset": data.name if builtin else None,
            "class_names": list(data.class_names),
            "epochs": trainer.epoch if trainer.at_epoch_boundary else trainer.epoch - 1,
            "seed": self.plan.config.seed,
            "test_accuracy": test_score(history[-1]) if history else None,
            "weight_decay": self.plan.config.weight_decay,  # λ of R.1: the steps followed ℓ_λ
            "dropout": list(self.plan.config.dropout),  # p_m of D.1–D.3 in training ([]: none)
            "input": data.input_record().as_metadata(),
        }

    # --- the loop ------------------------------------------------------------------------------

    def _on_batch(self, batch: int) -> None:
        if self.first_batch_done is None:
            self.first_batch_done = time.perf_counter()
        for callback in self.observers:
            callback.on_batch_end(self.run, batch)

    def _measure(self, metrics: Any) -> None:
        """An epoch's test metrics and, with a validation set, its validation metrics."""
        if self.cluster is not None:  # the ranks' θ must still be one θ
            self.cluster.check_parameters(self.model.params.theta, self.trainer.state)
        if self.regression:
            metrics.regression = True
            metrics.test_mse, metrics.test_mae, metrics.test_accuracy = self.test_errors()
        else:
            metrics.test_accuracy = self.test_accuracy()
        if self.X_val is not None:
            metrics.val_loss, metrics.val_accuracy = self.trainer.validation_metrics(
                self.X_val, self.y_val, self.data.feature_scale
            )

    def train(self) -> FitResult:
        """Run the epochs: engine calls until each epoch ends (stopping where a periodic
        checkpoint falls), then measure and let the callbacks observe."""
        from numbamlp.training.interrupt import StopRequest
        from numbamlp.training.trainer import TrainingDiverged

        trainer, run, cluster = self.trainer, self.run, self.cluster
        self.started = time.perf_counter()
        try:
            with StopRequest() as signals:
                stop_now = False

                def should_stop() -> bool:
                    nonlocal stop_now
                    wanted = bool(signals) or run.stop_requested
                    stop_now = wanted if cluster is None else cluster.any(wanted)  # all ranks
                    return stop_now

                if cluster is not None:
                    cluster.interrupted = signals.requested
                for callback in self.observers:
                    callback.on_train_begin(run)
                while not self.plan.finished and (
                    trainer.epoch < run.epochs or not trainer.at_epoch_boundary
                ):
                    metrics = None
                    while metrics is None and not stop_now:
                        until = self.checkpointing.until(run)
                        metrics = trainer.run_batches(self._on_batch, until, should_stop)
                        if metrics is None and not stop_now:
                            self.checkpointing.write()  # the periodic one, mid-epoch
                    if metrics is None:  # stopped in the middle of the epoch
                        break
                    self._measure(metrics)
                    run.history.append(metrics.as_dict())
                    for callback in self.observers:
                        callback.on_epoch_end(run, metrics)
                    if stop_now or run.stop_training:
                        break
                if stop_now:
                    return self._stopped(signals.name or "callback", bool(signals))
        except TrainingDiverged as exc:
            last = self.writer.last
            kept = (
                f" The last good checkpoint, {last} ({self.writer.last_where}), is unchanged."
                if last
                else ""
            )
            unsaved = f" {self.outputs.save} was not written." if self.outputs.save else ""
            failed = self.output_error(close=True)
            also = f" Also {failed}." if failed is not None else ""
            raise TrainingDiverged(f"{exc}{kept}{unsaved}{also}") from None
        except KeyboardInterrupt:
            last = self.writer.last
            kept = (
                f"the last checkpoint, {last} ({self.writer.last_where}), is intact"
                if last
                else "nothing was saved"
            )
            self.log(f"interrupted again: stopped at once; {kept}", err=True, always=True)
            raise
        finally:
            for callback in self.observers:
                callback.on_train_end(run)
        return self._finished()

    # --- the two ends --------------------------------------------------------------------------

    def _stopped(self, reason: str, by_signal: bool) -> FitResult:
        """A stop asked for (a signal, or a callback): write the checkpoint to resume from (into
        a new directory for a signalled run that named none) and say where it stands."""
        from numbamlp.training.checkpoint import position

        trainer, writer = self.trainer, self.writer
        if not writer.is_current():
            if self.outputs.checkpoint_dir is not None:
                self.checkpointing.write()
            elif by_signal:
                writer.write(interrupt_directory())
        checkpoint = writer.last if writer.is_current() else None
        where = position(trainer.epoch, trainer.batch)
        written = f"; checkpoint written to {checkpoint}" if checkpoint else ""
        self.log(
            f"{reason}: stopped at {where} (step {trainer.step_count}){written}",
            err=True,
            always=True,
        )
        result = FitResult(
            self.model,
            self.run.history,
            None,
            trainer.epoch - (0 if trainer.at_epoch_boundary else 1),
            time.perf_counter() - self.started,
            reason,
            where,
            trainer.step_count,
            checkpoint,
            outputs=self.written(),
            **self.data_records(),
        )
        failed = self.output_error(close=True)
        if failed is not None:
            kept = (
                f"the run stopped at {where} and its checkpoint was written to {checkpoint} "
                f"(resume it with `resume={checkpoint.parent}`)"
                if checkpoint
                else f"the run stopped at {where} (no checkpoint was written)"
            )
            error = NumbamlpError(f"{failed}; {kept}")
            error.result = result  # type: ignore[attr-defined]
            raise error
        return result

    def _finished(self) -> FitResult:
        """The end of a run that was not stopped: early stopping's best weights, the summary
        line, the model file."""
        trainer, early, history = self.trainer, self.early, self.run.history
        total = time.perf_counter() - self.started
        final_accuracy = test_score(history[-1]) if history else self.test_accuracy()
        ran = trainer.epoch
        epochs = f"{self.run.epochs} epoch{'' if self.run.epochs == 1 else 's'}"
        converged, reason = self._convergence()
        if converged is not None:
            epochs = f"{ran} epoch{'' if ran == 1 else 's'}"
            self.log(reason)
        best_epoch = None
        keeper = early if early is not None and early.best_epoch else None
        converging = self.converging
        if keeper is None and converging is not None and converging.best_theta is not None:
            keeper = converging if converging.best_epoch else None
        if keeper is not None:
            # scikit-learn's MLPClassifier(early_stopping=True): the model is the best epoch's
            trainer.load_parameters(keeper.best_theta)
            final_accuracy = self.test_accuracy()
            best_epoch = keeper.best_epoch
            if keeper is early:
                why = (
                    f"val_loss has not improved for {early.patience} epoch(s), stopped after "
                    f"epoch {ran}"
                    if early.stopped
                    else f"ran all {ran} epochs"
                )
                self.log(
                    f"early stopping: {why}; restored the weights of the best epoch, "
                    f"{early.best_epoch} (val_loss {early.best_loss:.4f})"
                )
            else:
                self.log(
                    f"restored the weights of the best epoch, {keeper.best_epoch} (val_loss "
                    f"{keeper.best_loss:.4f})"
                )
            epochs = f"{ran} epoch{'' if ran == 1 else 's'}, best epoch {keeper.best_epoch}"
        if converged:
            epochs += ", converged"
        first = self.first_batch_done
        ready = f"; ready in {first - self.called:.2f} s" if first is not None else ""
        shown = "n/a" if final_accuracy is None else f"{final_accuracy:.4f}"
        timing = f"{total:.1f} s{ready}"
        if self.plan.finished:
            timing = "the run had finished: its outputs written without training"
        summary = (
            f"test {'R²' if self.regression else 'accuracy'} {shown} after {epochs} ({timing})"
        )
        if not self.outputs.save:
            summary += " (the model was not saved: give `save=PATH` to keep it)"
        self.log(summary)
        compiled = compiled_kernels()
        if compiled and first is not None:
            seconds = self.preload_seconds + first - self.started
            self.log(
                f"compiled {compiled} kernel(s) in {seconds:.1f} s on this first run; they are "
                "cached on disk for the next (numbamlp info shows where)"
            )
        trainer.host_state()  # θ and the optimizer state, for the model file (from a device)
        saved = None
        save = self.outputs.save
        if save and self.lead:
            from numbamlp.model.modelio import save_model

            meta = self.metadata()
            if keeper is not None:
                meta.update(
                    test_accuracy=final_accuracy, best_epoch=best_epoch, val_loss=keeper.best_loss
                )
            failed = self.output_error()
            try:
                save_model(save, self.model, trainer.optimizer, metadata=meta)
            except NumbamlpError as exc:
                if failed is None:
                    raise
                raise NumbamlpError(f"{exc}; and {failed}") from None
            saved = Path(save)
            self.log(f"saved model to {save}")
        result = FitResult(
            self.model,
            history,
            final_accuracy,
            ran,
            total,
            best_epoch=best_epoch,
            saved=saved,
            summary=summary,
            step=trainer.step_count,
            outputs=self.written(),
            converged=converged,
            stop_reason=reason,
            optimizer=trainer.optimizer,
            generator=trainer.rng.bit_generator.state,
            **self.data_records(),
        )
        failed = self.output_error()
        if failed is not None:
            kept = (
                f"the model was saved to {save}"
                if saved
                else "the run finished (no `save` was given: the model was not kept)"
            )
            error = NumbamlpError(f"{failed}; {kept}")
            error.result = result  # type: ignore[attr-defined]
            raise error
        return result

    def _convergence(self) -> tuple[bool | None, str]:
        """(converged, why) of a run given no ``epochs``: whether its monitored loss converged or
        it reached ``max_epochs`` first; (None, "") for a run of a fixed length, or one that
        something else ended (``patience``, a callback's ``stop_training``)."""
        converging, plan = self.converging, self.plan
        if converging is None:
            return None, ""
        what = "validation loss" if self.X_val is not None else "training loss"
        if not converging.stopped and self.trainer.epoch < plan.max_epochs:
            return None, ""  # ended otherwise: by `patience`, or by a callback
        if converging.stopped:
            return True, (
                f"converged: the {what} improved by less than tol={plan.tol:g} for "
                f"{plan.n_iter_no_change} epochs; stopped after epoch {self.trainer.epoch}"
            )
        return False, (
            f"not converged: the {what} still improved by tol={plan.tol:g} within the last "
            f"{plan.n_iter_no_change} epochs when the run reached `max_epochs={plan.max_epochs}`; "
            "give a larger `max_epochs` (or a larger `lr`) to train to convergence"
        )

    def output_error(self, close: bool = False) -> NumbamlpError | None:
        """The first error of an output that the run gave up on (the metrics file); with
        ``close``, the metrics file is closed first (before the callbacks' on_train_end), so
        that an error at close is known too."""
        for callback in self.observers:
            if close and isinstance(callback, MetricsFile):
                callback.on_train_end(self.run)
        for callback in self.observers:
            if isinstance(callback, MetricsFile) and callback.error is not None:
                return callback.error
        return None


def prepare(
    plan: RunPlan,
    cluster: Any,
    outputs: Outputs,
    inputs: Inputs,
    callbacks: Sequence[Callback],
) -> Session:
    """Everything the run needs, in the order that keeps its random streams where a run of
    the same seed has them: the weights' stream draws the initial θ, the minibatches' stream
    first any held-out split of a user's file, then the minibatches."""
    config, resume = plan.config, plan.resume
    on_gpu = config.device == "cuda"
    if on_gpu:  # fail before loading any data when no GPU is usable
        from numbamlp.engines.cuda.backend import require_device

        require_device()
    from numbamlp.training.randomness import generators

    init_rng, train_rng = generators(config.seed)
    preload_seconds = 0.0
    data, model = inputs.data, inputs.model
    previous = None
    if isinstance(model, FitResult):  # a run to continue exactly
        if model.optimizer is None or model.generator is None:
            raise NumbamlpError("`model`: this result cannot be continued (it has no optimizer)")
        previous, model = model, model.model
        if resume is not None:
            raise NumbamlpError("`model`: a resumed run continues its checkpoint's model")
    if data is None:
        preload = config.engine == "fused" and not on_gpu
        data, preload_seconds = load_data(plan, train_rng, inputs.download, preload)
    elif not hasattr(data, "X_train_raw"):
        if inputs.y is None:
            raise NumbamlpError("`y`: fit(X, y) needs the labels too")
        data = arrays_dataset(
            data,
            inputs.y,
            inputs.X_test,
            inputs.y_test,
            plan.data.n_classes,
            plan.data.task,
            inputs.sample_weight,
        )
    data, weights = _prepared_data(plan, data, inputs, model, outputs.verbose)
    n_threads = set_threads(inputs.threads)
    X_train, y_train, X_val, y_val = _split(plan, data)
    if weights is not None and X_val is not None:
        weights = _split(plan, replace(data, X_train_raw=data.X_train_raw, y_train=weights))[1]
    plan.settle(builtin_images(data), X_train.shape[0])
    config = plan.config
    # Without `threads`, the fused engine follows the machine: all threads, or one while
    # another process holds a core (engines/threads.py; the same bits either way).
    adaptive = (
        inputs.threads is None
        and cluster is None
        and (config.device, config.engine) == ("cpu", "fused")
        and n_threads > 1
    )
    model, trainer, history = _model_and_trainer(
        cluster, plan, data, X_train, y_train, model, init_rng, train_rng, previous, weights,
        adaptive,
    )  # fmt: skip
    early = _early_stopping(config.patience, model, resume)
    converging = _converging(plan, model, X_val is not None)
    X_test_raw = model.check_inputs(data.X_test_raw, "test features", raw=True)
    if data.task == "regression":
        y_test_checked = model.check_targets(data.y_test, X_test_raw.shape[0], "test targets")
    else:
        y_test_checked = model.check_labels(data.y_test, X_test_raw.shape[0], "test labels")

    from numbamlp.training.checkpoint import CheckpointWriter

    record = plan.run_record()
    if resume is not None:
        record["fingerprint"] = resume.run["fingerprint"]  # checked equal in _model_and_trainer
    lead = cluster is None or cluster.rank == 0
    session: Session
    writer = CheckpointWriter(
        trainer,
        record,
        history,
        lambda: session.metadata(),
        (data.X_train_raw, data.y_train),
        early,
        enabled=lead,
        convergence=converging,
    )
    checkpointing = Checkpointing(writer, outputs.checkpoint_dir, plan.checkpoint_every)
    services: list[Callback] = []
    if draws_progress(outputs.progress, outputs.verbose, lead) and not plan.finished:
        services.append(ProgressBar())
    if early is not None:
        services.append(EarlyStoppingCallback(early))
    if converging is not None:
        monitor = "train_loss" if X_val is None else "val_loss"
        services.append(ConvergenceCallback(converging, monitor))
    if outputs.verbose:
        services.append(EpochLogger())
    if outputs.eval_every is not None:
        services.append(ThrottledEvaluation(outputs.eval_every))
    if outputs.metrics_out is not None and lead:
        services.append(MetricsFile(outputs.metrics_out))
    services.append(checkpointing)
    run = Run(trainer, model, plan.length, history, lambda *a, **k: None, lambda: None)
    session = Session(
        plan,
        outputs,
        cluster,
        data,
        model,
        trainer,
        X_val,
        y_val,
        X_test_raw,
        y_test_checked,
        early,
        converging,
        writer,
        checkpointing,
        services + list(callbacks),
        run,
        preload_seconds,
    )
    run.log, run.test_accuracy = session.log, session.test_accuracy
    _announce(session, n_threads)
    if cluster is not None:
        from numbamlp.training.checkpoint import fingerprint

        cluster.start()  # every rank reaches this before training: settles earlier failures
        cluster.check_same(json.dumps(record["options"], sort_keys=True), "options")
        cluster.check_same(fingerprint(data.X_train_raw, data.y_train), "training data")
    return session


def _prepared_data(
    plan: RunPlan, data: Any, inputs: Inputs, model: Any, verbose: int = 1
) -> tuple[Any, Any]:
    """The data the network trains on (Z.1, and Z.2 for a regression: Dataset.standardized),
    and the training rows' weights (sample weights times class weights; None: unweighted)."""
    import numpy as np

    from numbamlp.datasets.userfiles import check_sample_weights, class_weights

    wanted = plan.data
    if data.task == "regression" and wanted.task is None and verbose:
        log_line(
            f"task: regression (the labels of {data.name} are floating-point numbers, or several "
            "columns); give `task=classification` to train a classifier"
        )
    if wanted.task is not None and data.task != wanted.task:
        raise NumbamlpError(
            f"`task`: {data.name} is {data.task} data; `task={wanted.task!r}` does not fit it"
        )
    if wanted.sample_weight_column is not None and wanted.train_file is None:
        raise NumbamlpError("`sample_weight_column`: names a column of `train_file`; give one")
    resume = plan.resume
    network = getattr(model, "model", model)  # an MLP, or a FitResult's (fit(model=result))
    network = network if network is not None else resume.model if resume is not None else None
    dtype = network.dtype if network is not None else plan.config.dtype
    weights = data.sample_weight
    if inputs.sample_weight is not None and weights is None:
        weights = check_sample_weights(
            inputs.sample_weight, data.X_train_raw.shape[0], "`sample_weight`"
        )
    if wanted.class_weight is not None:
        if data.task == "regression":
            raise NumbamlpError("`class_weight`: a regression has no classes; leave it out")
        by_class = class_weights(data.y_train, data.class_names, wanted.class_weight)
        assert by_class is not None, "a class_weight gives every row a weight"
        weights = by_class if weights is None else weights * by_class
        weights = check_sample_weights(weights, weights.shape[0], "`class_weight`")
    if weights is not None:
        weights = np.ascontiguousarray(weights, dtype=np.float64)
    # a run that continues an earlier one (fit(model=result)) keeps the statistics it began with
    record, target = getattr(model, "input", None), getattr(model, "target", None)
    return data.standardized(wanted.standardize, dtype, record, target), weights


def log_line(message: str) -> None:
    """A line of the run's log before the Session exists (in the front end's words)."""
    words = LOG_WORDS.get()
    print(message if words is None else words(message), file=sys.stderr, flush=True)


def _split(plan: RunPlan, data: Any) -> tuple[Any, Any, Any, Any]:
    """(X_train, y_train, X_val, y_val): the validation rows held out by the seed's third
    stream (none, and nothing drawn, with validation_fraction 0)."""
    if plan.config.validation_fraction == 0:
        return data.X_train_raw, data.y_train, None, None
    from numbamlp.training.randomness import validation_generator
    from numbamlp.training.validation import split_validation

    return split_validation(
        data.X_train_raw,
        data.y_train,
        plan.config.validation_fraction,
        validation_generator(plan.config.seed),
    )


def _model_and_trainer(
    cluster: Any,
    plan: RunPlan,
    data: Any,
    X_train: Any,
    y_train: Any,
    model: Any,
    init_rng: Any,
    train_rng: Any,
    previous: FitResult | None = None,
    weights: Any = None,
    adaptive_threads: bool = False,
) -> tuple[Any, Any, list[dict[str, Any]]]:
    """The network (new, given, or the checkpoint's), its trainer (put where the checkpoint
    stood, or where ``previous``, a run to continue, ended), and the history so far."""
    from numbamlp.model.mlp import MLP
    from numbamlp.training.randomness import dropout_seed
    from numbamlp.training.trainer import TrainConfig

    config, resume = plan.config, plan.resume
    from numbamlp.training.trainer import Trainer

    engine: dict[str, Any] = {"device": config.device, "cluster": cluster}  # for make_engine
    if adaptive_threads:
        engine["engine_options"] = {"adaptive_threads": True}
    if weights is not None:  # S.2's weighted mean; unweighted runs keep S.1's code path
        engine["sample_weight"] = weights
    train_config = TrainConfig(
        epochs=plan.length,
        batch_size=int(config.batch_size or 0),  # settled by then (RunPlan.settle)
        optimizer=config.optimizer,
        lr=config.lr,
        schedule=config.schedule,
        decay_rate=config.decay_rate,
        decay_epochs=config.decay_epochs,
        min_lr=config.min_lr,
        sampling=config.sampling,
        engine=config.engine,
        weight_decay=config.weight_decay or 0.0,  # settled by then (RunPlan.settle)
        dropout=config.dropout,
        # a run without a seed drew its key's seed: the checkpoint keeps it for the resumed run
        dropout_seed=(
            int(resume.trainer["dropout_seed"])
            if resume is not None and resume.trainer.get("dropout_seed") is not None
            else dropout_seed(config.seed)
        ),
        optimizer_options=config.optimizer_options(),
    )
    scale = data.feature_scale
    _check_memory(config, data, X_train, model if resume is None else resume.model)
    if resume is None:
        if model is None:
            model = MLP.create(
                data.n_features,
                list(config.hidden),
                data.n_outputs,
                activations=list(config.activation),
                head="identity" if data.task == "regression" else config.head,
                dtype=config.dtype,
                rng=init_rng,
            )
        elif model.architecture.sizes[0] != data.n_features:
            raise NumbamlpError("`model`: the model's inputs do not fit the data's features")
        optimizer = None
        if previous is not None:  # continue it: its optimizer state and its minibatch stream
            optimizer = previous.optimizer
            if optimizer.name != config.optimizer:
                raise NumbamlpError(
                    f"`model`: the run to continue used the optimizer {optimizer.name}; give "
                    f"`optimizer={optimizer.name}`, or pass `model=result.model` to continue "
                    "with a fresh optimizer"
                )
            train_rng.bit_generator.state = previous.generator
        trainer = Trainer(
            model, X_train, y_train, train_config, train_rng, optimizer, scale=scale, **engine
        )
        return model, trainer, []
    from numbamlp.training.checkpoint import fingerprint

    if fingerprint(data.X_train_raw, data.y_train) != resume.run["fingerprint"]:
        raise NumbamlpError(
            f"the training data ({data.name}, {data.source}) is not the data the checkpoint "
            f"{resume.path} was trained on; a resumed run must see the same data"
        )
    model = resume.model
    if model.architecture.sizes[0] != data.n_features:
        raise NumbamlpError("the checkpoint's model does not fit the data's features")
    trainer = Trainer(
        model, X_train, y_train, train_config, train_rng, resume.optimizer, scale, **engine
    )
    try:
        trainer.restore(resume.trainer)
    except NumbamlpError as exc:
        raise NumbamlpError(f"cannot resume {resume.path}: {exc}") from None
    return model, trainer, list(resume.history)


def _check_memory(config: Any, data: Any, X_train: Any, model: Any) -> None:
    """Refuse, before anything of its size is allocated, a network or batch that the machine's
    memory cannot hold (model/memory_budget.py)."""
    import numpy as np

    from numbamlp.model.memory_budget import check_training_memory
    from numbamlp.model.network import Architecture

    if model is None:
        architecture = Architecture.for_classes(
            data.n_features,
            list(config.hidden),
            data.n_classes,
            activations=list(config.activation),
            head="identity" if data.task == "regression" else config.head,
        )
        widest = max(config.hidden) if config.hidden else data.n_features
        what = f"`hidden`: {widest} units" if config.hidden else f"{widest} features"
    else:
        architecture = model.architecture
        what = f"a model of {architecture.n_parameters} parameters"
    check_training_memory(
        architecture,
        np.dtype(model.dtype if model is not None else config.dtype).itemsize,
        config.batch_size,
        X_train.shape[0],
        config.sampling,
        config.optimizer,
        what,
    )


def _announce(session: Session, n_threads: int) -> None:
    """The lines that open the log: the network, the data, the optimizer, the engine."""
    config, trainer, data = session.plan.config, session.trainer, session.data
    session.log(f"{session.model}")
    held = "" if session.X_val is None else f"{session.X_val.shape[0]} validation / "
    session.log(
        f"data: {data.name}, {trainer.X.shape[0]} train / {held}{session.X_test.shape[0]} test "
        f"samples ({data.source})"
    )
    decay = f", weight decay {config.weight_decay:g}" if config.weight_decay else ""
    if config.dropout:
        decay += ", dropout " + ",".join(f"{p:g}" for p in config.dropout)
    session.log(
        f"optimizer: {config.optimizer} {trainer.optimizer.hyper}{decay}, "
        f"schedule {config.schedule}, sampling {config.sampling}, batch "
        f"{trainer.sampler.batch_size}, seed {config.seed}, {n_threads} thread(s)"
    )
    if trainer.sampler.batch_size < config.batch_size:  # shuffle: one permutation of n rows
        session.log(
            f"note: the batch size {config.batch_size} exceeds the {trainer.X.shape[0]} training "
            f"rows; each epoch is one batch of {trainer.sampler.batch_size}",
            err=True,
        )
    steps = trainer.sampler.steps_per_epoch * session.run.epochs
    if steps < FEW_STEPS and session.plan.resume is None:
        session.log(
            f"warning: this run makes only {steps} optimisation step(s) ({session.run.epochs} "
            f"epoch(s) of {trainer.sampler.steps_per_epoch} minibatch(es) of "
            f"{trainer.sampler.batch_size}), too few to learn much; give "
            + (
                "a larger `max_epochs`"
                if session.plan.converges
                else "more `epochs` (or none: train until the loss converges)"
            )
            + " or a smaller `batch_size`",
            err=True,
        )
    if session.cluster is not None:
        session.log(f"distributed: {session.cluster.size} MPI rank(s), {n_threads} thread(s) each")
    resume = session.plan.resume
    if session.plan.finished:
        written = " and ".join(session.written().values())
        session.log(
            f"the run in {resume.path} had finished its {trainer.epoch} epochs (step "
            f"{trainer.step_count}): writing {written} without training"
        )
    elif resume is not None:
        session.log(f"resuming {resume.path} from {resume.where} (step {trainer.step_count})")


def _early_stopping(patience: int | None, model: Any, resume: Any) -> Any:
    """The run's validation.EarlyStopping (None without ``patience``), with a resumed run's
    state."""
    if patience is None:
        return None
    from numbamlp.training.validation import EarlyStopping

    early = EarlyStopping(patience, model.params.theta)
    if resume is not None and resume.early_stopping is not None:
        try:
            early.restore(resume.early_stopping, resume.best_theta)
        except NumbamlpError as exc:
            raise NumbamlpError(f"cannot resume {resume.path}: {exc}") from None
    return early


def _converging(plan: RunPlan, model: Any, validates: bool) -> Any:
    """The convergence stop of a run given no ``epochs`` (None otherwise): scikit-learn's
    ``tol``/``n_iter_no_change`` rule on the training loss, or with a validation set on the
    validation loss (then keeping the best epoch's weights, as scikit-learn's early_stopping),
    with a resumed run's state."""
    if not plan.converges:
        return None
    from numbamlp.training.validation import EarlyStopping

    theta = model.params.theta
    converging = EarlyStopping(plan.n_iter_no_change, theta, plan.tol, keep_best=validates)
    resume = plan.resume
    if resume is not None and resume.convergence is not None:
        try:
            converging.restore(resume.convergence, resume.convergence_best_theta)
        except NumbamlpError as exc:
            raise NumbamlpError(f"cannot resume {resume.path}: {exc}") from None
    return converging


def test_score(record: dict[str, Any]) -> float | None:
    """An epoch record's test score: its accuracy, or a regression's R² (E.3)."""
    return record.get("test_accuracy", record.get("test_r2"))


def builtin_images(data: Any) -> bool:
    """Whether ``data`` is one of the built-in image sets (MNIST, Fashion-MNIST: bytes), whose
    default run is MMiDS §7.3's (20 epochs of 128)."""
    import numpy as np

    return data.name.lower() in DATASETS and data.X_train_raw.dtype == np.uint8


def compiled_kernels() -> int:
    """How many of the training kernels this process compiled rather than loaded from disk."""
    from numbamlp.engines.fused import regions

    dispatchers = [regions.run_steps, regions.forward_backward, regions.gradient_update]
    return sum(len(d.stats.cache_misses) for d in dispatchers if hasattr(d, "stats"))
