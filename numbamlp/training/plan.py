"""What a run needs before its loop: its plan (configuration, data record, length, the
checkpoint it resumes), its output paths checked, its threads, its MPI connection, its data.

Orchestration only; importing this module is cheap (no NumPy, no Numba): the command line runs
these checks before it starts reading the data.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from numbamlp.errors import NumbamlpError
from numbamlp.training.config import (
    ACTIVATIONS,
    BUILTIN_BATCH_SIZE,
    BUILTIN_EPOCHS,
    MAX_EPOCHS,
    N_ITER_NO_CHANGE,
    TOL,
    DataConfig,
    RunConfig,
    adopt_checkpoint,
    adopt_data,
    check_run_config,
    default_batch_size,
    default_weight_decay,
    run_config,
)


@dataclass
class RunPlan:
    """A run's configuration, its data record, its length and, when resumed, its checkpoint."""

    config: RunConfig
    data: DataConfig
    #: Exactly this many epochs; None: until the monitored loss converges (``tol``,
    #: ``n_iter_no_change``), at most ``max_epochs``. ``settle`` makes it 20 on a built-in set.
    epochs: int | None
    checkpoint_every: int | None
    resume: Any = None  # checkpoint.Checkpoint
    #: Where the run writes its model (``save``) and metrics (``metrics_out``): as given, or
    #: when resuming and not given, as the checkpoint's run record has them (absolute paths).
    outputs: dict[str, str | os.PathLike[str] | None] = field(default_factory=dict)
    #: The outputs taken from the checkpoint rather than given.
    recorded: frozenset[str] = frozenset()
    #: A resumed run that had already finished (killed before writing its outputs): its
    #: outputs are written from the checkpoint, nothing is trained.
    finished: bool = False
    max_epochs: int = MAX_EPOCHS
    tol: float = TOL
    n_iter_no_change: int = N_ITER_NO_CHANGE

    @property
    def converges(self) -> bool:
        """Whether the run stops when its monitored loss converges (no ``epochs`` given)."""
        return self.epochs is None

    @property
    def length(self) -> int:
        """The most epochs the run makes: ``epochs``, else ``max_epochs``."""
        return self.max_epochs if self.epochs is None else self.epochs

    def settle(self, builtin: bool, n_train: int) -> None:
        """Fill in what the data decides, once it is known: on a built-in image set 20 epochs of
        128 (MMiDS §7.3, unchanged), on data of its own a batch size suited to its ``n_train``
        training rows (default_batch_size), a weight decay (default_weight_decay; none on the
        built-in sets) and, without ``epochs``, training to convergence."""
        if self.config.batch_size is None:
            size = BUILTIN_BATCH_SIZE if builtin else default_batch_size(n_train)
            self.config = replace(self.config, batch_size=size)
        if self.config.weight_decay is None:
            decay = 0.0 if builtin else default_weight_decay(n_train)
            self.config = replace(self.config, weight_decay=decay)
        if self.epochs is None and builtin and self.resume is None:
            self.epochs = BUILTIN_EPOCHS

    @classmethod
    def create(
        cls,
        given: dict[str, Any],
        data_given: dict[str, Any],
        epochs: int | None,
        checkpoint_every: int | None,
        resume: str | os.PathLike[str] | None,
        given_options: frozenset[str] = frozenset(),
        outputs: dict[str, str | os.PathLike[str] | None] | None = None,
        stopping: dict[str, Any] | None = None,
    ) -> RunPlan:
        """``outputs``: ``save`` and ``metrics_out`` as given (None: not given). ``stopping``:
        ``max_epochs``, ``tol`` and ``n_iter_no_change`` as given (absent: their defaults)."""
        outputs = {name: (outputs or {}).get(name) for name in OUTPUTS}
        stops: dict[str, Any] = {
            "max_epochs": MAX_EPOCHS,
            "tol": TOL,
            "n_iter_no_change": N_ITER_NO_CHANGE,
        }
        stops |= stopping or {}
        if epochs is not None:
            _check_count("epochs", epochs)
        _check_stopping(stops)
        if checkpoint_every is not None:
            _check_count("checkpoint_every", checkpoint_every)
        if resume is None:
            files = {
                name: str(Path(data_given[name]).resolve())
                for name in ("train_file", "test_file")
                if data_given.get(name) is not None
            }
            data = DataConfig(**(data_given | files))
            return cls(run_config(given), data, epochs, checkpoint_every, outputs=outputs, **stops)
        from numbamlp.training.checkpoint import load_checkpoint

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
        record = run.get("config", {})
        planned = record.get("epochs")  # None: a run to convergence (0.2.0 on)
        converging = planned is None and "max_epochs" in record
        epoch = checkpoint.trainer["epoch"]
        epochs_given = epochs is not None
        if converging and not epochs_given:
            stops = _adopt_stopping(record, stops, given_options, epoch, config.schedule)
        elif epochs_given:  # it may lengthen the run
            if epochs < epoch:
                raise NumbamlpError(f"`epochs`: the checkpoint is already at epoch {epoch}")
            length = record.get("max_epochs") if converging else planned
            if config.schedule == "cosine" and epochs != length:
                raise NumbamlpError(
                    f"`epochs`: the cosine schedule's length is fixed by the run's {length} epochs"
                )
        elif isinstance(planned, int) and planned >= 1:
            epochs = planned
        else:
            epochs = BUILTIN_EPOCHS  # a checkpoint without its length: as before 0.2.0
        saved_every = record.get("checkpoint_every")
        if checkpoint_every is None and isinstance(saved_every, int):
            checkpoint_every = saved_every
        recorded = run.get("outputs")
        recorded = recorded if isinstance(recorded, dict) else {}  # none before 0.2.0
        taken = frozenset(
            name
            for name in OUTPUTS
            if outputs[name] is None and isinstance(recorded.get(name), str)
        )
        outputs |= {name: recorded[name] for name in taken}
        writes = any(outputs.values())
        early, converged = checkpoint.early_stopping, checkpoint.convergence
        length = stops["max_epochs"] if epochs is None else epochs
        finished = False
        if isinstance(early, dict) and early.get("stopped") is True:
            if not writes or epochs_given:
                raise NumbamlpError(
                    f"the run in {checkpoint.path} stopped early at epoch {epoch} (val_loss had "
                    f"not improved for {early.get('patience')} epochs; best epoch "
                    f"{early.get('best_epoch')}); start a new run to train further"
                )
            finished = True
        elif epochs is None and isinstance(converged, dict) and converged.get("stopped") is True:
            if not writes:
                raise NumbamlpError(
                    f"the run in {checkpoint.path} converged at epoch {epoch}; pass `epochs=N` "
                    f"(N > {epoch}) to train it further, or `save=PATH` to write its model"
                )
            finished = True
        elif checkpoint.trainer["batch"] == 0 and epoch >= length:
            if not writes:
                more = "max_epochs" if epochs is None else "epochs"
                raise NumbamlpError(
                    f"the run in {checkpoint.path} has finished its {epoch} epochs; pass "
                    f"`{more}=N` (N > {epoch}) to train it further, or `save=PATH` to write "
                    "its model"
                )
            finished = True
        return cls(
            config,
            data,
            epochs,
            checkpoint_every,
            checkpoint,
            outputs,
            taken,
            finished,
            **stops,
        )

    def run_record(self) -> dict[str, Any]:
        """What a checkpoint stores of the run (``run`` in checkpoint.py)."""
        return {
            "seed": self.config.seed,
            "options": self.config.to_json(),
            "data": self.data.to_json(),
            "fingerprint": None,  # of the training set, filled in at the first write
            "config": {
                "epochs": self.epochs,  # None: to convergence, by the three below
                "checkpoint_every": self.checkpoint_every,
                "max_epochs": self.max_epochs,
                "tol": self.tol,
                "n_iter_no_change": self.n_iter_no_change,
            },
            # what the run writes when it ends: a resumed run writes them too (absolute, so
            # that it may be resumed from another directory)
            "outputs": {
                name: None if path is None else os.path.abspath(path)
                for name, path in self.outputs.items()
            },
        }


#: The files a run writes when it ends, remembered by its checkpoints.
OUTPUTS = ("save", "metrics_out")


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NumbamlpError(f"`{name}`: must be a positive integer, got {value!r}")


def _check_stopping(stops: dict[str, Any]) -> None:
    _check_count("max_epochs", stops["max_epochs"])
    _check_count("n_iter_no_change", stops["n_iter_no_change"])
    tol = stops["tol"]
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < math.inf:
        raise NumbamlpError(f"`tol`: must be a finite number ≥ 0, got {tol!r}")


def _adopt_stopping(
    record: dict[str, Any],
    given: dict[str, Any],
    given_options: frozenset[str],
    epoch: int,
    schedule: str,
) -> dict[str, Any]:
    """A resumed run to convergence keeps its ``tol`` and ``n_iter_no_change``; ``max_epochs``
    may change (not below the epoch reached, and not under the cosine schedule)."""
    defaults = {"max_epochs": MAX_EPOCHS, "tol": TOL, "n_iter_no_change": N_ITER_NO_CHANGE}
    stops: dict[str, Any] = {}
    for name, default in defaults.items():
        theirs = record.get(name)
        mine = given[name]
        if (mine == default and name not in given_options) or mine == theirs:
            stops[name] = theirs
            continue
        if name != "max_epochs":
            raise NumbamlpError(
                f"`{name}`: the checkpoint's run used {theirs}; a resumed run keeps the options "
                f"it started with (leave `{name}` out, or start a new run without `resume`)"
            )
        if mine < epoch:
            raise NumbamlpError(f"`max_epochs`: the checkpoint is already at epoch {epoch}")
        if schedule == "cosine":
            raise NumbamlpError(
                f"`max_epochs`: the cosine schedule's length is fixed by the run's {theirs} epochs"
            )
        stops[name] = mine
    _check_stopping(stops)
    return stops


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


def check_outputs(
    plan: RunPlan,
    save: str | os.PathLike[str] | None,
    metrics_out: str | os.PathLike[str] | None,
    checkpoint_dir: str | os.PathLike[str] | None,
    reads_files: bool,
) -> None:
    """Refuse, before anything is read or written, an output that is a file the run reads (its
    data files, the checkpoint it resumes) or another of its outputs (``save``,
    ``metrics_out``, the checkpoint in ``checkpoint_dir``). ``reads_files``: the run loads its
    data from the paths of ``plan.data`` (no arrays or Dataset given to ``fit``). A resumed
    run rewriting its own checkpoint is how it resumes, and allowed."""
    from numbamlp.datasets.paths import check_distinct_paths
    from numbamlp.training.checkpoint import CHECKPOINT_NAME

    inputs: list[tuple[str, str | os.PathLike[str] | None]] = []
    data = plan.data
    if reads_files:
        inputs += [("train_file", data.train_file), ("test_file", data.test_file)]
        if data.train_file is None and (save is not None or metrics_out is not None):
            from numbamlp.datasets.loaders import dataset_files

            where = "`data_dir`" if data.data_dir is not None else "the built-in data"
            inputs += [
                (f"a file of {where}", f) for f in dataset_files(data.dataset, data.data_dir)
            ]
    if plan.resume is not None:
        inputs.append(("the checkpoint `resume` continues", plan.resume.path))
    folder = checkpoint_dir
    if folder is None and plan.resume is not None:
        folder = plan.resume.path.parent  # a resumed run writes beside its checkpoint
    checkpoint = None if folder is None else Path(folder) / CHECKPOINT_NAME
    check_distinct_paths(
        {"save": save, "metrics_out": metrics_out},
        inputs,
        derived=[("the run's checkpoint", checkpoint)],
    )


def checkpoint_directory(
    directory: str | os.PathLike[str] | None,
    every: int | None,
    resume: Any,
    hold: contextlib.ExitStack | None = None,
) -> Path | None:
    """Where the run writes checkpoints: ``checkpoint_dir``, else the resumed checkpoint's own
    directory. A fresh run never overwrites another run's checkpoint.

    With ``hold`` (the process that writes the checkpoints: the only one, or MPI rank 0), the
    directory is locked (dirlock.py) until ``hold`` closes, so that no second run writes there
    meanwhile; the temporary files of a checkpoint writer killed mid-write are then removed."""
    name = "checkpoint_dir"
    if directory is None:
        if every is not None and resume is None:
            raise NumbamlpError("`checkpoint_every`: needs `checkpoint_dir`")
        if resume is None:
            return None
        name, directory = "resume", resume.path.parent
    from numbamlp.training.checkpoint import CHECKPOINT_NAME

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise NumbamlpError(f"`checkpoint_dir`: {directory} is not a directory")
    existing = directory / CHECKPOINT_NAME

    def check_existing() -> None:
        if name != "checkpoint_dir":  # resuming into its own directory: as before locks
            return
        if existing.exists() and (resume is None or existing.resolve() != resume.path.resolve()):
            raise NumbamlpError(
                f"`checkpoint_dir`: {directory} already holds a checkpoint; resume it with "
                f"`resume={directory}`, or choose another directory"
            )

    check_existing()
    if name == "checkpoint_dir":
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise NumbamlpError(
                f"`checkpoint_dir`: cannot create {directory}: {exc.strerror or exc}"
            ) from None
        if not os.access(directory, os.W_OK):
            raise NumbamlpError(f"`checkpoint_dir`: {directory} is not writable")
    if hold is not None:
        _lock_directory(directory, name, hold)
        check_existing()  # again, under the lock: a run started beside this one may have written
        from numbamlp.datasets.atomic import leftover_temporaries

        for leftover in leftover_temporaries(existing):
            with contextlib.suppress(OSError):
                leftover.unlink()
    return directory


def _lock_directory(directory: Path, name: str, hold: contextlib.ExitStack) -> None:
    from numbamlp.training.dirlock import DirectoryInUse, DirectoryLock

    try:
        hold.enter_context(DirectoryLock(directory))
    except DirectoryInUse as exc:
        holder = "" if exc.pid is None else f" (pid {exc.pid})"
        raise NumbamlpError(
            f"`{name}`: {directory} is in use by another run{holder}; wait for it to end, or "
            "choose another directory"
        ) from None
    except OSError as exc:
        if name == "resume":  # a read-only directory: no run can write its checkpoint anyway
            return
        raise NumbamlpError(f"`{name}`: cannot lock {directory}: {exc.strerror or exc}") from None


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
    """The engines.cluster.Cluster of a data-parallel run (``distributed``, or None and mpiexec
    started several processes), else None (mpi4py is then never imported)."""
    wanted = distributed
    if wanted is None:
        from numbamlp.engines.cluster import launched_size

        wanted = launched_size() > 1
    if not wanted:
        return None
    if config.device != "cpu" or config.engine != "fused":
        raise NumbamlpError("`distributed`: distributed training runs the fused engine on the CPU")
    if not timeout > 0:
        raise NumbamlpError(f"`mpi_timeout`: must be a positive number, got {timeout}")
    from numbamlp.engines.cluster import connect as connect_mpi

    return connect_mpi(timeout)


def load_data(plan: RunPlan, rng: Any, download: bool, preload: bool) -> tuple[Any, float]:
    """Read the run's data set (while, with ``preload``, the training kernel loads in this
    thread: decompressing and hashing release the GIL, so the two overlap). Returns the
    Dataset and the seconds the kernel took to load (or, on a first run, to compile)."""
    from concurrent.futures import ThreadPoolExecutor

    from numbamlp.datasets import loaders as datasets
    from numbamlp.datasets import userfiles

    data = plan.data

    def read() -> Any:
        if data.train_file is not None:
            return userfiles.load_user_dataset(
                data.train_file,
                data.test_file,
                label_column=data.label_column,
                n_classes=data.n_classes,
                rng=rng,
                task=data.task,
                sample_weight_column=data.sample_weight_column,
            )
        if data.test_file is not None:
            raise NumbamlpError("`test_file`: needs `train_file`")
        return datasets.load_dataset(data.dataset, data_dir=data.data_dir, download=download)

    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(read)
        seconds = 0.0
        if preload and data.train_file is None:
            from numbamlp.engines.fused import preload as preload_kernel

            started = time.perf_counter()
            preload_kernel(plan.config.dtype, "uint8")  # the built-in sets are images of bytes
            seconds = time.perf_counter() - started
        return loading.result(), seconds


def arrays_dataset(
    X: Any,
    y: Any,
    X_test: Any,
    y_test: Any,
    n_classes: int | None,
    task: str | None = None,
    sample_weight: Any = None,
) -> Any:
    """A Dataset of arrays given to ``fit`` (no test set: none is measured); labels of any
    type, or regression targets (datasets.userfiles.arrays_dataset)."""
    from numbamlp.datasets.userfiles import arrays_dataset as dataset_of

    return dataset_of(X, y, X_test, y_test, n_classes, task, sample_weight)
