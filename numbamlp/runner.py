"""The run behind ``numbamlp.fit``: preparation (data, model, resume), the loop, the report.

Orchestration only: the equations are in the kernels, the engine in training.Trainer, and what
observes the run in callbacks.py.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from numbamlp.callbacks import (
    Callback,
    Checkpointing,
    EarlyStoppingCallback,
    EpochLogger,
    MetricsFile,
    ProgressBar,
    ThrottledEvaluation,
)
from numbamlp.errors import NumbamlpError
from numbamlp.fitting import (
    ACTIVATIONS,
    FitResult,
    Run,
    adopt_checkpoint,
    adopt_data,
    check_run_config,
    run_config,
)
from numbamlp.runconfig import DataConfig, RunConfig


@dataclass
class RunPlan:
    """A run's configuration, its data record, its length and, when resumed, its checkpoint."""

    config: RunConfig
    data: DataConfig
    epochs: int
    checkpoint_every: int | None
    resume: Any = None  # checkpoint.Checkpoint

    @classmethod
    def create(
        cls,
        given: dict[str, Any],
        data_given: dict[str, Any],
        epochs: int,
        checkpoint_every: int | None,
        resume: str | os.PathLike[str] | None,
        given_options: frozenset[str] = frozenset(),
    ) -> RunPlan:
        _check_count("epochs", epochs)
        if checkpoint_every is not None:
            _check_count("checkpoint_every", checkpoint_every)
        if resume is None:
            fields: dict[str, Any] = {
                name: str(Path(value).resolve())
                if name in ("train_file", "test_file") and value is not None
                else value
                for name, value in data_given.items()
            }
            data = DataConfig(**fields)
            return cls(run_config(given), data, epochs, checkpoint_every)
        from numbamlp.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(resume)
        run = checkpoint.run
        try:
            saved = RunConfig.from_json(run["options"], ACTIVATIONS)
            saved_data = DataConfig.from_json(run["data"])
        except (KeyError, TypeError, NumbamlpError) as exc:
            raise NumbamlpError(
                f"{checkpoint.path} is not a usable checkpoint (its options: {exc})"
            ) from None
        config = adopt_checkpoint(saved, given, given_options)
        check_run_config(config)
        data = adopt_data(saved_data, data_given, given_options)
        planned = run.get("config", {}).get("epochs")
        epoch = checkpoint.trainer["epoch"]
        if epochs != 20 or "epochs" in given_options:  # given: it may lengthen the run
            if epochs < epoch:
                raise NumbamlpError(f"`epochs`: the checkpoint is already at epoch {epoch}")
            if config.schedule == "cosine" and epochs != planned:
                raise NumbamlpError(
                    f"`epochs`: the cosine schedule's length is fixed by the run's {planned} epochs"
                )
        elif isinstance(planned, int) and planned >= 1:
            epochs = planned
        saved_every = run.get("config", {}).get("checkpoint_every")
        if checkpoint_every is None and isinstance(saved_every, int):
            checkpoint_every = saved_every
        early = checkpoint.early_stopping
        if isinstance(early, dict) and early.get("stopped") is True:
            raise NumbamlpError(
                f"the run in {checkpoint.path} stopped early at epoch {epoch} (val_loss had not "
                f"improved for {early.get('patience')} epochs; best epoch "
                f"{early.get('best_epoch')}); start a new run to train further"
            )
        if checkpoint.trainer["batch"] == 0 and epoch >= epochs:
            raise NumbamlpError(
                f"the run in {checkpoint.path} has finished its {epoch} epochs; pass "
                f"`epochs=N` (N > {epoch}) to train it further"
            )
        return cls(config, data, epochs, checkpoint_every, checkpoint)

    def run_record(self) -> dict[str, Any]:
        """What a checkpoint stores of the run (``run`` in checkpoint.py)."""
        return {
            "seed": self.config.seed,
            "options": self.config.to_json(),
            "data": self.data.to_json(),
            "fingerprint": None,  # of the training set, filled in at the first write
            "config": {"epochs": self.epochs, "checkpoint_every": self.checkpoint_every},
        }


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NumbamlpError(f"`{name}`: must be a positive integer, got {value!r}")


def check_writable(path: str | os.PathLike[str] | None, name: str) -> None:
    """Fail before training, not after it, when an output file cannot be written."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise NumbamlpError(f"`{name}`: {path} is a directory; give a file name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise NumbamlpError(f"`{name}`: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise NumbamlpError(f"`{name}`: directory {parent} is not writable")


def checkpoint_directory(
    directory: str | os.PathLike[str] | None, every: int | None, resume: Any
) -> Path | None:
    """Where the run writes checkpoints: ``checkpoint_dir``, else the resumed checkpoint's own
    directory. A fresh run never overwrites another run's checkpoint."""
    if directory is None:
        if every is not None and resume is None:
            raise NumbamlpError("`checkpoint_every`: needs `checkpoint_dir`")
        return None if resume is None else resume.path.parent
    from numbamlp.checkpoint import CHECKPOINT_NAME

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NumbamlpError(f"`checkpoint_dir`: {directory} is not a directory")
    existing = directory / CHECKPOINT_NAME
    if existing.exists() and (resume is None or existing.resolve() != resume.path.resolve()):
        raise NumbamlpError(
            f"`checkpoint_dir`: {directory} already holds a checkpoint; resume it with "
            f"`resume={directory}`, or choose another directory"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NumbamlpError(
            f"`checkpoint_dir`: cannot create {directory}: {exc.strerror or exc}"
        ) from None
    if not os.access(directory, os.W_OK):
        raise NumbamlpError(f"`checkpoint_dir`: {directory} is not writable")
    return directory


def interrupt_directory() -> Path:
    """A new directory for the checkpoint of an interrupted run that named none."""
    base = Path("numbamlp-checkpoint")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = Path(f"{base}-{n}")
    candidate.mkdir()
    return candidate


def set_threads(threads: int | None) -> int:
    """Use ``threads`` worker threads (None: leave Numba's setting); returns the number used."""
    import numba

    available = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set at run time
    if threads is not None:
        _check_count("threads", threads)
        if threads > available:
            raise NumbamlpError(
                f"`threads`: {threads} threads requested but at most {available} are available "
                "(set NUMBA_NUM_THREADS to raise the limit)"
            )
        numba.set_num_threads(threads)
    return numba.get_num_threads()


def connect(distributed: bool | None, config: RunConfig, timeout: float) -> Any:
    """The distributed.Cluster of a data-parallel run (``distributed``, or None and mpiexec
    started several processes), else None (mpi4py is then never imported)."""
    wanted = distributed
    if wanted is None:
        from numbamlp.distributed import launched_size

        wanted = launched_size() > 1
    if not wanted:
        return None
    if config.device != "cpu" or config.engine != "fused":
        raise NumbamlpError("`distributed`: distributed training runs the fused engine on the CPU")
    if not timeout > 0:
        raise NumbamlpError(f"`mpi_timeout`: must be a positive number, got {timeout}")
    from numbamlp.distributed import connect as connect_mpi

    return connect_mpi(timeout)


def load_data(plan: RunPlan, rng: Any, download: bool, preload: bool) -> tuple[Any, float]:
    """Read the run's data set (while, with ``preload``, the training kernel loads in this
    thread: decompressing and hashing release the GIL, so the two overlap). Returns the
    Dataset and the seconds the kernel took to load (or, on a first run, to compile)."""
    from concurrent.futures import ThreadPoolExecutor

    from numbamlp import datasets

    data = plan.data

    def read() -> Any:
        if data.train_file is not None:
            return datasets.load_user_dataset(
                data.train_file,
                data.test_file,
                label_column=data.label_column,
                n_classes=data.n_classes,
                rng=rng,
            )
        if data.test_file is not None:
            raise NumbamlpError("`test_file`: needs `train_file`")
        return datasets.load_dataset(data.dataset, data_dir=data.data_dir, download=download)

    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(read)
        seconds = 0.0
        if preload and data.train_file is None:
            from numbamlp.fused import preload as preload_kernel

            started = time.perf_counter()
            preload_kernel(plan.config.dtype, "uint8")  # the built-in sets are images of bytes
            seconds = time.perf_counter() - started
        return loading.result(), seconds


def arrays_dataset(X: Any, y: Any, X_test: Any, y_test: Any, n_classes: int | None) -> Any:
    """A Dataset of arrays given to ``fit`` (no test set: none is measured)."""
    import numpy as np

    from numbamlp.datasets import Dataset

    X, y = np.asarray(X), np.asarray(y)
    if (X_test is None) != (y_test is None):
        raise NumbamlpError("`X_test` and `y_test`: give both or neither")
    if X.ndim != 2:
        raise NumbamlpError(f"the training features must be a 2-d array (n, d), got {X.shape}")
    if X_test is None:
        X_test, y_test = np.empty((0, X.shape[1]), X.dtype), np.empty(0, np.int64)
    y_all = np.concatenate([np.ravel(y), np.ravel(y_test)])
    if y_all.size and y_all.dtype.kind not in "iu":
        raise NumbamlpError(
            "labels given to fit must be integers 0..M−1 (numbamlp.MLPClassifier takes any "
            f"labels), got dtype {y_all.dtype}"
        )
    if n_classes is None:
        n_classes = max(int(y_all.max()) + 1, 2) if y_all.size else 2
    return Dataset(
        name="arrays",
        X_train_raw=X,
        y_train=y,
        X_test_raw=np.asarray(X_test),
        y_test=np.asarray(y_test),
        n_classes=n_classes,
        class_names=tuple(str(k) for k in range(n_classes)),
        source="arrays given to fit",
    )


def execute(
    plan: RunPlan,
    *,
    data: Any,
    y: Any,
    X_test: Any,
    y_test: Any,
    model: Any,
    download: bool,
    threads: int | None,
    save: str | os.PathLike[str] | None,
    metrics_out: str | os.PathLike[str] | None,
    eval_every: float | None,
    checkpoint_dir: str | os.PathLike[str] | None,
    distributed: bool | None,
    mpi_timeout: float,
    verbose: int,
    callbacks: Sequence[Callback],
) -> FitResult:
    """Run ``plan`` (see ``fit``)."""
    called = time.perf_counter()
    config, resume = plan.config, plan.resume
    if eval_every is not None and not (isinstance(eval_every, (int, float)) and eval_every > 0):
        raise NumbamlpError(f"`eval_every`: must be a positive number, got {eval_every}")
    check_writable(save, "save")
    check_writable(metrics_out, "metrics_out")
    cluster = connect(distributed, config, mpi_timeout)
    try:
        return _execute(
            plan, cluster, called, data, y, X_test, y_test, model, download, threads, save,
            metrics_out, eval_every, checkpoint_dir, verbose, callbacks,
        )  # fmt: skip
    except NumbamlpError as exc:
        exc.cluster = cluster  # type: ignore[attr-defined]  # the command line ends every rank
        raise
    finally:
        del resume


def _execute(
    plan: RunPlan,
    cluster: Any,
    called: float,
    data: Any,
    y: Any,
    X_test: Any,
    y_test: Any,
    model: Any,
    download: bool,
    threads: int | None,
    save: Any,
    metrics_out: Any,
    eval_every: float | None,
    checkpoint_dir: Any,
    verbose: int,
    callbacks: Sequence[Callback],
) -> FitResult:
    config, resume = plan.config, plan.resume
    checkpoint_dir = checkpoint_directory(checkpoint_dir, plan.checkpoint_every, resume)
    lead = cluster is None or cluster.rank == 0  # the one process that logs and writes

    def log(message: str, err: bool = False, always: bool = False) -> None:
        if lead and (verbose or always):
            print(message, file=sys.stderr if err else sys.stdout, flush=True)

    on_gpu = config.device == "cuda"
    if on_gpu:  # fail before loading any data when no GPU is usable
        from numbamlp.cuda.backend import require_device

        require_device()
    from numbamlp.randomness import generators

    init_rng, train_rng = generators(config.seed)
    preload_seconds = 0.0
    if data is None:
        data, preload_seconds = load_data(
            plan, train_rng, download, config.engine == "fused" and not on_gpu
        )
    elif not hasattr(data, "X_train_raw"):
        if y is None:
            raise NumbamlpError("`y`: fit(X, y) needs the labels too")
        data = arrays_dataset(data, y, X_test, y_test, plan.data.n_classes)
    n_threads = set_threads(threads)
    from numbamlp.model import MLP
    from numbamlp.training import TrainConfig, Trainer, TrainingDiverged

    train_config = TrainConfig(
        epochs=plan.epochs,
        batch_size=config.batch_size,
        optimizer=config.optimizer,
        lr=config.lr,
        schedule=config.schedule,
        decay_rate=config.decay_rate,
        decay_epochs=config.decay_epochs,
        min_lr=config.min_lr,
        sampling=config.sampling,
        engine=config.engine,
        weight_decay=config.weight_decay,
        optimizer_options=config.optimizer_options(),
    )
    scale = data.feature_scale
    X_train, y_train = data.X_train_raw, data.y_train
    X_val = y_val = None
    if config.validation_fraction > 0:  # 0: nothing held out, no generator drawn from
        from numbamlp.randomness import validation_generator
        from numbamlp.validation import split_validation

        X_train, y_train, X_val, y_val = split_validation(
            X_train, y_train, config.validation_fraction, validation_generator(config.seed)
        )
    trainer_class: type[Trainer] = Trainer
    if on_gpu:
        from numbamlp.cuda.training import DeviceTrainer

        trainer_class = DeviceTrainer
    record = plan.run_record()
    if resume is None:
        if model is None:
            model = MLP.create(
                data.n_features,
                list(config.hidden),
                data.n_classes,
                activations=list(config.activation),
                head=config.head,
                dtype=config.dtype,
                rng=init_rng,
            )
        elif model.architecture.sizes[0] != data.n_features:
            raise NumbamlpError("`model`: the model's inputs do not fit the data's features")
        trainer = trainer_class(model, X_train, y_train, train_config, train_rng, scale=scale)
        history: list[dict[str, Any]] = []
    else:
        from numbamlp.checkpoint import fingerprint

        record["fingerprint"] = fingerprint(data.X_train_raw, data.y_train)
        if record["fingerprint"] != resume.run["fingerprint"]:
            raise NumbamlpError(
                f"the training data ({data.name}, {data.source}) is not the data the checkpoint "
                f"{resume.path} was trained on; a resumed run must see the same data"
            )
        model = resume.model
        if model.architecture.sizes[0] != data.n_features:
            raise NumbamlpError("the checkpoint's model does not fit the data's features")
        trainer = trainer_class(
            model, X_train, y_train, train_config, train_rng, resume.optimizer, scale
        )
        try:
            trainer.restore(resume.trainer)
        except NumbamlpError as exc:
            raise NumbamlpError(f"cannot resume {resume.path}: {exc}") from None
        history = list(resume.history)
    early = _early_stopping(config.patience, model, resume)
    if cluster is not None:
        from numbamlp.distributed import distribute

        distribute(trainer, cluster)
    X_test_raw = model.check_inputs(data.X_test_raw, "test features", raw=True)
    y_test_checked = model.check_labels(data.y_test, X_test_raw.shape[0], "test labels")

    def test_accuracy() -> float | None:
        if X_test_raw.shape[0] == 0:
            return None
        return trainer.accuracy(X_test_raw, y_test_checked, scale)

    log(f"{model}")
    held = "" if X_val is None else f"{X_val.shape[0]} validation / "
    log(
        f"data: {data.name}, {X_train.shape[0]} train / {held}{X_test_raw.shape[0]} test samples "
        f"({data.source})"
    )
    decay = f", weight decay {config.weight_decay:g}" if config.weight_decay else ""
    log(
        f"optimizer: {config.optimizer} {trainer.optimizer.hyper}{decay}, "
        f"schedule {config.schedule}, sampling {config.sampling}, batch "
        f"{trainer.sampler.batch_size}, seed {config.seed}, {n_threads} thread(s)"
    )
    if cluster is not None:
        log(f"distributed: {cluster.size} MPI rank(s), {n_threads} thread(s) each")
    if resume is not None:
        log(f"resuming {resume.path} from {resume.where} (step {trainer.step_count})")

    from numbamlp.checkpoint import CheckpointWriter, position
    from numbamlp.inputscale import record_for

    def metadata() -> dict[str, Any]:
        return {
            "dataset": data.name if plan.data.train_file is None and data.name != "arrays"
            else None,
            "class_names": list(data.class_names),
            "epochs": trainer.epoch if trainer.at_epoch_boundary else trainer.epoch - 1,
            "seed": config.seed,
            "test_accuracy": history[-1]["test_accuracy"] if history else None,
            "weight_decay": config.weight_decay,  # λ of R.1: the steps followed ℓ_λ
            "input": record_for(data.X_train_raw, data.feature_scale).as_metadata(),
        }  # fmt: skip

    writer = CheckpointWriter(
        trainer, record, history, metadata, (data.X_train_raw, data.y_train), early,
        enabled=lead,
    )  # fmt: skip
    checkpointing = Checkpointing(writer, checkpoint_dir, plan.checkpoint_every)
    services: list[Callback] = []
    if verbose and lead and sys.stdout.isatty():
        services.append(ProgressBar())
    if early is not None:
        services.append(EarlyStoppingCallback(early))
    if verbose:
        services.append(EpochLogger())
    if eval_every is not None:
        services.append(ThrottledEvaluation(eval_every))
    if metrics_out is not None and lead:
        services.append(MetricsFile(metrics_out))
    services.append(checkpointing)
    observers = services + list(callbacks)
    run = Run(trainer, model, plan.epochs, history, log, test_accuracy)

    first_batch_done: list[float] = []

    def on_batch(b: int) -> None:
        if not first_batch_done:
            first_batch_done.append(time.perf_counter())
        for callback in observers:
            callback.on_batch_end(run, b)

    if cluster is not None:
        from numbamlp.checkpoint import fingerprint

        cluster.start()  # every rank reaches this before training: settles earlier failures
        cluster.check_same(str(sorted(record["options"].items())), "options")
        cluster.check_same(fingerprint(data.X_train_raw, data.y_train), "training data")
    from numbamlp.interrupt import StopRequest

    started = time.perf_counter()
    stopped: str | None = None
    checkpoint_path: Path | None = None
    try:
        with StopRequest() as signals:

            def local_stop() -> bool:
                return bool(signals) or run.stop_requested

            should_stop: Callable[[], bool] = local_stop
            if cluster is not None:  # every rank stops at the same minibatch
                cluster.interrupted = signals.requested
                should_stop = lambda: cluster.any(local_stop())  # noqa: E731
            stop_now = [False]

            def poll() -> bool:
                stop_now[0] = should_stop()
                return stop_now[0]

            for callback in observers:
                callback.on_train_begin(run)
            while trainer.epoch < plan.epochs or not trainer.at_epoch_boundary:
                while True:
                    until = checkpointing.until(run)
                    metrics = trainer.run_batches(on_batch, until, poll)
                    if metrics is not None or stop_now[0]:
                        break
                    checkpointing.write()  # the periodic one, mid-epoch
                if metrics is None:  # stopped in the middle of the epoch
                    break
                if cluster is not None:  # the ranks' θ must still be one θ
                    cluster.check_parameters(model.params.theta, trainer.state)
                metrics.test_accuracy = test_accuracy()
                if X_val is not None and y_val is not None:  # split together
                    metrics.val_loss, metrics.val_accuracy = trainer.validation_metrics(
                        X_val, y_val, scale
                    )
                history.append(metrics.as_dict())
                for callback in observers:
                    callback.on_epoch_end(run, metrics)
                if stop_now[0] or run.stop_training:
                    break
            if stop_now[0]:
                stopped = signals.name or ("callback" if run.stop_requested else "SIGINT")
                if not writer.is_current():
                    if checkpoint_dir is not None:
                        checkpointing.write()
                    elif signals:
                        writer.write(interrupt_directory())
                checkpoint_path = writer.last if writer.is_current() else None
                where = position(trainer.epoch, trainer.batch)
                saved_to = f"; checkpoint written to {checkpoint_path}" if checkpoint_path else ""
                log(f"{stopped}: stopped at {where} (step {trainer.step_count}){saved_to}",
                    err=True, always=True)  # fmt: skip
                return FitResult(
                    model, history, None, trainer.epoch - (0 if trainer.at_epoch_boundary else 1),
                    time.perf_counter() - started, stopped, where, trainer.step_count,
                    checkpoint_path,
                )  # fmt: skip
    except TrainingDiverged as exc:
        kept = (
            f" The last good checkpoint, {writer.last} ({writer.last_where}), is unchanged."
            if writer.last
            else ""
        )
        unsaved = f" {save} was not written." if save else ""
        raise TrainingDiverged(f"{exc}{kept}{unsaved}") from None
    except KeyboardInterrupt:
        kept = (
            f"the last checkpoint, {writer.last} ({writer.last_where}), is intact"
            if writer.last
            else "nothing was saved"
        )
        log(f"interrupted again: stopped at once; {kept}", err=True, always=True)
        raise
    finally:
        for callback in observers:
            callback.on_train_end(run)
    return _finish(
        run, trainer, model, early, history, started, called, first_batch_done, preload_seconds,
        test_accuracy, save, lead, log, metadata, plan,
    )  # fmt: skip


def _finish(
    run: Run,
    trainer: Any,
    model: Any,
    early: Any,
    history: list[dict[str, Any]],
    started: float,
    called: float,
    first_batch_done: list[float],
    preload_seconds: float,
    test_accuracy: Callable[[], float | None],
    save: Any,
    lead: bool,
    log: Callable[..., None],
    metadata: Callable[[], dict[str, Any]],
    plan: RunPlan,
) -> FitResult:
    """The end of a run that was not stopped: early stopping's best weights, the summary line,
    the model file."""
    total = time.perf_counter() - started
    final_accuracy = history[-1]["test_accuracy"] if history else test_accuracy()
    ran = trainer.epoch
    epochs = f"{plan.epochs} epoch{'' if plan.epochs == 1 else 's'}"
    best_epoch = None
    if early is not None and early.best_epoch:
        # scikit-learn's MLPClassifier(early_stopping=True): the model is the best epoch's
        trainer.load_parameters(early.best_theta)
        final_accuracy = test_accuracy()
        best_epoch = early.best_epoch
        why = (
            f"val_loss has not improved for {early.patience} epoch(s), stopped after epoch {ran}"
            if early.stopped
            else f"ran all {ran} epochs"
        )
        log(
            f"early stopping: {why}; restored the weights of the best epoch, "
            f"{early.best_epoch} (val_loss {early.best_loss:.4f})"
        )
        epochs = f"{ran} epoch{'' if ran == 1 else 's'}, best epoch {early.best_epoch}"
    ready = f"; ready in {first_batch_done[0] - called:.2f} s" if first_batch_done else ""
    shown = "n/a" if final_accuracy is None else f"{final_accuracy:.4f}"
    summary = f"test accuracy {shown} after {epochs} ({total:.1f} s{ready})"
    log(summary)
    compiled = compiled_kernels()
    if compiled and first_batch_done:
        seconds = preload_seconds + first_batch_done[0] - started
        log(
            f"compiled {compiled} kernel(s) in {seconds:.1f} s on this first run; they are "
            "cached on disk for the next (numbamlp info shows where)"
        )
    trainer.host_state()  # θ and the optimizer state, for the model file (from a device)
    saved = None
    if save and lead:
        from numbamlp.modelio import save_model

        meta = metadata()
        if best_epoch:
            meta.update(test_accuracy=final_accuracy, best_epoch=best_epoch,
                        val_loss=early.best_loss)  # fmt: skip
        save_model(save, model, trainer.optimizer, metadata=meta)
        saved = Path(save)
        log(f"saved model to {save}")
    return FitResult(
        model, history, final_accuracy, ran, total, best_epoch=best_epoch, saved=saved,
        summary=summary, step=trainer.step_count,
    )  # fmt: skip


def _early_stopping(patience: int | None, model: Any, resume: Any) -> Any:
    """The run's validation.EarlyStopping (None without ``patience``), with a resumed run's
    state."""
    if patience is None:
        return None
    from numbamlp.validation import EarlyStopping

    early = EarlyStopping(patience, model.params.theta)
    if resume is not None and resume.early_stopping is not None:
        try:
            early.restore(resume.early_stopping, resume.best_theta)
        except NumbamlpError as exc:
            raise NumbamlpError(f"cannot resume {resume.path}: {exc}") from None
    return early


def compiled_kernels() -> int:
    """How many of the training kernels this process compiled rather than loaded from disk."""
    from numbamlp import fused

    dispatchers = [fused.run_steps, fused.forward_backward, fused.gradient_update]
    return sum(len(d.stats.cache_misses) for d in dispatchers if hasattr(d, "stats"))


def exit_signal(stopped: str | None) -> int | None:
    """The signal number of a run stopped by one."""
    return {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}.get(stopped or "")
