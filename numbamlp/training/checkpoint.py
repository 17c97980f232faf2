"""Checkpoints: everything a training run needs to continue exactly where it stopped.

A checkpoint is a model file (modelio.py: θ, the optimizer's state and step count, never
unpickled, written atomically) whose metadata also holds, under ``"checkpoint"``:

* ``run``: what decides the run's results: the seed, the data (its source and a fingerprint of
  the training set), the architecture is in the model itself, and the TrainConfig;
* ``trainer``: the trainer's position (training.Trainer.run_state): epoch, minibatch within the
  epoch, the random generator's state, the losses of the epoch's minibatches so far;
* ``history``: the metrics of the epochs completed.
* ``early_stopping`` (runs with ``--patience``): validation.EarlyStopping's state, its best θ
  in the array ``checkpoint/best_theta`` next to θ.
* ``convergence`` (runs without ``--epochs`` on data of their own): the convergence stop's
  state (validation.EarlyStopping with ``tol``), its best θ (when it watches a validation set) in
  ``checkpoint/convergence_best_theta``.

Because it is a model file, ``numbamlp evaluate --model`` and ``predict`` accept a checkpoint.
A run keeps one checkpoint per directory, ``DIR/checkpoint.npz``; each write replaces it
atomically, so the last good checkpoint survives a crash, a full disk or a second Ctrl-C.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from numbamlp.errors import NumbamlpError
from numbamlp.kernels.optimizers import Optimizer
from numbamlp.model.mlp import MLP
from numbamlp.model.modelio import check_version, load_model, save_model

CHECKPOINT_NAME = "checkpoint.npz"
#: Version of the ``"checkpoint"`` metadata; a newer one is refused, as a newer model file is.
CHECKPOINT_VERSION = 1
#: The array holding early stopping's best θ (validation.EarlyStopping.best_theta).
BEST_THETA = "checkpoint/best_theta"
#: The array holding the convergence stop's best θ (when it watches the validation loss).
CONVERGENCE_BEST_THETA = "checkpoint/convergence_best_theta"


@dataclass
class Checkpoint:
    """A loaded checkpoint; ``run``/``trainer``/``history`` are the JSON parts named above."""

    path: Path
    model: MLP
    optimizer: Optimizer
    run: dict[str, Any]
    trainer: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    early_stopping: dict[str, Any] | None = None
    best_theta: np.ndarray | None = None
    convergence: dict[str, Any] | None = None
    convergence_best_theta: np.ndarray | None = None

    @property
    def where(self) -> str:
        return position(self.trainer["epoch"], self.trainer["batch"])


def position(epoch: int, batch: int) -> str:
    """Where a run stands: 'epoch 3, batch 120' (120 minibatches of epoch 3 done) or 'the end
    of epoch 3'."""
    return f"epoch {epoch}, batch {batch}" if batch else f"the end of epoch {epoch}"


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The checkpoint named by ``path``: a checkpoint file, or a directory holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
        if not path.is_file():
            raise NumbamlpError(f"no checkpoint in {path.parent} (expected {path})")
    elif not path.exists():
        raise NumbamlpError(f"checkpoint {path} does not exist")
    return path


def fingerprint(X: np.ndarray, y: np.ndarray) -> str:
    """SHA-256 of the training set's shape, dtype and bytes: a resumed run must see the same
    data in the same order, or its minibatches would differ."""
    digest = hashlib.sha256()
    for array in (X, y):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data.cast("B"))  # .data: the array's memoryview
    return digest.hexdigest()


def save_checkpoint(
    path: str | os.PathLike,
    model: MLP,
    optimizer: Optimizer,
    run: dict[str, Any],
    trainer: dict[str, Any],
    history: list[dict[str, Any]],
    metadata: dict[str, Any] | None = None,
    early_stopping: dict[str, Any] | None = None,
    best_theta: np.ndarray | None = None,
    convergence: dict[str, Any] | None = None,
    convergence_best_theta: np.ndarray | None = None,
) -> None:
    """Write a checkpoint atomically. θ must be finite: a diverged run is never saved over the
    last good checkpoint."""
    if not np.isfinite(model.params.theta).all():
        raise NumbamlpError("refusing to write a checkpoint: the parameters hold NaN or Inf")
    meta = dict(metadata or {})
    meta["checkpoint"] = {
        "version": CHECKPOINT_VERSION,
        "run": run,
        "trainer": trainer,
        "history": history,
    }
    if early_stopping is not None:
        meta["checkpoint"]["early_stopping"] = early_stopping
    if convergence is not None:
        meta["checkpoint"]["convergence"] = convergence
    named = ((BEST_THETA, best_theta), (CONVERGENCE_BEST_THETA, convergence_best_theta))
    arrays = {name: array for name, array in named if array is not None}
    save_model(path, model, optimizer, metadata=meta, arrays=arrays or None)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint (a file, or a directory holding ``checkpoint.npz``)."""
    path = checkpoint_file(path)
    loaded = load_model(path)

    def bad(reason: str) -> NumbamlpError:
        return NumbamlpError(f"{path} is not a usable checkpoint ({reason})")

    part = loaded.metadata.get("checkpoint")
    if not isinstance(part, dict):
        raise bad("it is a model file without the run's state; train with `checkpoint_dir`")
    check_version(
        part.get("version"),
        CHECKPOINT_VERSION,
        bad,
        f"checkpoint {path} has version",
        "upgrade numbamlp to resume it",
    )
    if loaded.optimizer is None:
        raise bad("it has no optimizer state")
    run, trainer, history = part.get("run"), part.get("trainer"), part.get("history")
    if not isinstance(run, dict) or not isinstance(trainer, dict):
        raise bad("the run's configuration or position is missing")
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise bad("the metrics history is malformed")
    for key, kind in (("epoch", int), ("batch", int)):
        if not isinstance(trainer.get(key), kind) or trainer[key] < 0:
            raise bad(f"the position's {key} is missing or negative")
    for key in ("seed", "config", "data", "fingerprint"):
        if key not in run:
            raise bad(f"the run's {key} is missing")
    early_stopping = part.get("early_stopping")
    if early_stopping is not None and not isinstance(early_stopping, dict):
        raise bad("the early-stopping state is malformed")
    convergence = part.get("convergence")
    if convergence is not None and not isinstance(convergence, dict):
        raise bad("the convergence state is malformed")
    return Checkpoint(
        path,
        loaded.model,
        loaded.optimizer,
        run,
        trainer,
        history,
        early_stopping,
        loaded.arrays.get(BEST_THETA),
        convergence,
        loaded.arrays.get(CONVERGENCE_BEST_THETA),
    )


class _Trainer(Protocol):  # what the writer needs of training.Trainer
    model: MLP
    optimizer: Optimizer
    epoch: int
    batch: int

    def check_parameters(self) -> None: ...
    def host_state(self) -> None: ...
    def run_state(self) -> dict: ...


class CheckpointWriter:
    """Writes one run's checkpoints and remembers the last one written.

    ``run`` and ``history`` are the run's own (mutable) records, read at each write;
    ``metadata()`` gives the model-file metadata of the moment. With ``enabled`` False (the
    MPI ranks other than 0) nothing is written. The training set's fingerprint
    is computed at the first write only (hashing it takes a pass over the whole training set;
    docs/performance.md, "Figures moved out of the code").
    """

    def __init__(
        self,
        trainer: _Trainer,
        run: dict[str, Any],
        history: list[dict[str, Any]],
        metadata: Any,
        training_set: tuple[np.ndarray, np.ndarray],
        early_stopping: Any = None,
        enabled: bool = True,
        convergence: Any = None,
    ) -> None:
        """``early_stopping``, ``convergence``: the run's validation.EarlyStopping objects (its
        ``patience`` stop and its convergence stop), if it has them."""
        self.trainer, self.run, self.history = trainer, run, history
        self.enabled = enabled  # False: only check θ and note the position (MPI ranks ≠ 0)
        self.metadata, self.training_set = metadata, training_set
        self.early_stopping = early_stopping
        self.convergence = convergence
        self.last: Path | None = None
        self.last_where = ""

    def write(self, directory: Path) -> Path:
        trainer = self.trainer
        trainer.check_parameters()  # a diverged θ is never written over a good checkpoint
        if not self.enabled:
            self.last, self.last_where = (
                directory / CHECKPOINT_NAME,
                position(trainer.epoch, trainer.batch),
            )
            return self.last
        trainer.host_state()  # θ and the optimizer's state from a device, if on one
        if self.run.get("fingerprint") is None:
            self.run["fingerprint"] = fingerprint(*self.training_set)
        path = directory / CHECKPOINT_NAME
        save_checkpoint(
            path,
            trainer.model,
            trainer.optimizer,
            self.run,
            trainer.run_state(),
            self.history,
            self.metadata(),
            **self._early_stopping_parts(),
        )
        self.last, self.last_where = path, position(trainer.epoch, trainer.batch)
        return path

    def _early_stopping_parts(self) -> dict[str, Any]:
        parts: dict[str, Any] = {}
        early = self.early_stopping
        if early is not None:
            best = early.best_theta if early.best_epoch else None
            parts |= {"early_stopping": early.state(), "best_theta": best}
        converging = self.convergence
        if converging is not None:
            best = converging.best_theta if converging.best_epoch else None
            parts |= {"convergence": converging.state(), "convergence_best_theta": best}
        return parts

    def is_current(self) -> bool:
        """Whether the last checkpoint written is of the trainer's present position."""
        return self.last is not None and self.last_where == position(
            self.trainer.epoch, self.trainer.batch
        )
