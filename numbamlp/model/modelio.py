"""Model files: architecture, θ, optimizer state and metadata in one ``.npz``.

Loading never executes code from the file: ``np.load(..., allow_pickle=False)``, text fields are
JSON stored as plain unicode arrays, and every field is validated before it is used. Writing is
atomic (atomic.py), so a crash never leaves a half-written file in place of a good one.
"""

from __future__ import annotations

import json
import os
import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from numbamlp.datasets.atomic import atomic_write
from numbamlp.datasets.idx import require_regular_file
from numbamlp.datasets.inputscale import (
    BUILTIN_DATASETS,
    FLOAT_INPUT,
    UNKNOWN_INPUT,
    InputRecord,
    TargetRecord,
    record_for,
    record_from_metadata,
    target_from_metadata,
)
from numbamlp.datasets.npzfile import NpzReader
from numbamlp.errors import NumbamlpError
from numbamlp.kernels.optimizers import OPTIMIZERS, Optimizer, _check_hyper
from numbamlp.model.mlp import MLP
from numbamlp.model.network import DTYPES, Architecture, Parameters

FORMAT = "numbamlp-model"
FORMAT_VERSION = 1
_STATE_PREFIX = "optimizer_state/"


@dataclass
class LoadedModel:
    model: MLP
    optimizer: Optimizer | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: The input scaling it was trained with (metadata "input", or what an older file assumes).
    input: InputRecord = FLOAT_INPUT
    #: A regression's Z.2 record (metadata "target"): the targets' names, mean and std.
    target: TargetRecord | None = None
    #: Further arrays the writer stored (``save_model``'s ``arrays``), unchecked: their reader
    #: validates them (a checkpoint's best weights of early stopping).
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def save_model(
    path: str | os.PathLike,
    model: MLP,
    optimizer: Optimizer | None = None,
    metadata: dict[str, Any] | None = None,
    arrays: dict[str, np.ndarray] | None = None,
    *,
    data: Any = None,
) -> None:
    """Write the model (and optimizer state, and any further named ``arrays``) to ``path``
    atomically.

    The file records what the model was trained on (``metadata["input"]``: the raw features'
    dtype, their scale and range; datasets/inputscale.py), which ``predict`` and ``evaluate``
    apply to new input. ``data`` is the training ``Dataset`` (its name and class names are
    recorded too) or an ``InputRecord``; ``metadata`` may carry the record instead (``fit``
    writes it so). With neither, the file says that it records nothing, and the command line
    warns when it uses the model.
    """
    metadata = dict(metadata or {})
    if data is not None:
        metadata.update(_data_metadata(data))
    elif "input" not in metadata:
        metadata["input"] = UNKNOWN_INPUT.as_metadata()
    arch = model.architecture
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": {
            "sizes": list(arch.sizes),
            "activations": list(arch.activations),
            "head": arch.head,
        },
        "dtype": str(model.dtype),
        "optimizer": None
        if optimizer is None
        else {"name": optimizer.name, "hyper": optimizer.hyper, "step_count": optimizer.step_count},
        "metadata": metadata,
    }
    extra = dict(arrays or {})
    # The .npz members. Any, not np.ndarray: numpy's stub types savez's **kwds against its
    # allow_pickle keyword too.
    members: dict[str, Any] = {
        "header": np.array(json.dumps(header)),
        "theta": model.params.theta,
    }
    if optimizer is not None:
        for name, value in optimizer.state.items():
            members[_STATE_PREFIX + name] = value
    if set(extra) & set(members) or any(name.startswith(_STATE_PREFIX) for name in extra):
        raise ValueError(f"save_model: extra array names {sorted(extra)} collide with the model's")
    members.update(extra)
    atomic_write(path, lambda f: np.savez(f, **members))


def _data_metadata(data: Any) -> dict[str, Any]:
    """The metadata a model's training ``data`` gives: the input record, and for a Dataset its
    class names and, for a built-in set, its name."""
    if isinstance(data, InputRecord):
        return {"input": data.as_metadata()}
    if not hasattr(data, "X_train_raw") or not hasattr(data, "feature_scale"):
        raise NumbamlpError(
            "`data`: give the Dataset the model was trained on, or an InputRecord, got "
            f"{type(data).__name__}"
        )
    if hasattr(data, "input_record"):
        record = data.input_record()
    else:
        record = record_for(data.X_train_raw, data.feature_scale)
    fields: dict[str, Any] = {"input": record.as_metadata(), "class_names": list(data.class_names)}
    target = data.target_record() if hasattr(data, "target_record") else None
    if target is not None:
        fields["target"] = target.as_metadata()
    if data.name in BUILTIN_DATASETS:
        fields["dataset"] = data.name
    return fields


def check_version(
    version: Any, supported: int, bad: Callable[[str], NumbamlpError], newer: str, fix: str
) -> int:
    """A file's format version: a positive integer no newer than ``supported``. A malformed one
    raises ``bad(reason)``; a newer one says ``{newer} N, newer than …; {fix}``."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"format version {reprlib.repr(version)} is not a positive integer")
    if version > supported:
        raise NumbamlpError(
            f"{newer} {version}, newer than this numbamlp understands ({supported}); {fix}"
        )
    return version


def load_model(path: str | os.PathLike) -> LoadedModel:
    """Read and validate a model file; any problem raises NumbamlpError naming the file."""
    path = Path(path)
    if path.exists() and not path.is_dir():  # a device or FIFO: refused, not called missing
        require_regular_file(path, "model file")
    if not path.is_file():
        raise NumbamlpError(f"model file {path} does not exist")

    def bad(reason: str) -> NumbamlpError:
        return NumbamlpError(
            f"model file {path} is not a valid numbamlp model ({reason}); "
            "train it again and save it (`save=PATH`)"
        )

    # NpzReader: nothing unpickled, no allocation beyond what the file holds, file closed.
    with NpzReader(path, bad) as npz:
        if "header" not in npz.names or "theta" not in npz.names:
            raise bad("missing header or parameters")
        arrays = {name: npz.read(name) for name in npz.names}
    header_array = arrays["header"]
    if header_array.dtype.kind != "U" or header_array.ndim != 0:
        raise bad("header is not text")
    try:
        header = json.loads(str(header_array))
    except json.JSONDecodeError as exc:
        raise bad(f"header is not JSON: {exc}") from None
    except RecursionError:  # e.g. [[[[...]]]] nested deeper than the parser's stack
        raise bad("header is not JSON: nested too deeply") from None
    except ValueError:  # an integer of more than 4300 digits (Python's int-parsing limit)
        raise bad("header is not JSON: it holds a number too long to read") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise bad("not a numbamlp model file")
    check_version(
        header.get("format_version"),
        FORMAT_VERSION,
        bad,
        f"model file {path} has format version",
        "upgrade numbamlp to read it",
    )
    try:
        arch_fields = _mapping(header.get("architecture"), "architecture")
        arch = Architecture(
            tuple(_integer(d, "layer width") for d in _list(arch_fields.get("sizes"), "sizes")),
            tuple(
                _text(a, "activation") for a in _list(arch_fields.get("activations"), "activations")
            ),
            _text(arch_fields.get("head"), "head"),
        )
        dtype = header.get("dtype")
        if not isinstance(dtype, str) or dtype not in DTYPES:
            raise ValueError(f"unknown dtype {reprlib.repr(dtype)}")
    except (ValueError, NumbamlpError) as exc:
        raise bad(f"bad architecture: {exc}") from None

    theta = arrays["theta"]
    if theta.dtype != np.dtype(dtype) or theta.shape != (arch.n_parameters,):
        raise bad(
            f"parameters have shape {theta.shape} and dtype {theta.dtype}, the architecture "
            f"needs ({arch.n_parameters},) {dtype}"
        )
    if not np.isfinite(theta).all():
        raise bad("parameters contain NaN or Inf")
    model = MLP(arch, Parameters(arch, theta.copy()))

    optimizer = None
    opt = header.get("optimizer")
    if opt is not None:
        try:
            opt = _mapping(opt, "optimizer")
            name = opt.get("name")
            if not isinstance(name, str) or name not in OPTIMIZERS:
                raise ValueError(f"unknown optimizer {reprlib.repr(name)}")
            state_names, defaults = OPTIMIZERS[name]
            hyper = {
                # a name that is not an identifier is quoted: it may hold a newline
                str(k): _number(v, f"hyperparameter {k if str(k).isidentifier() else repr(k)}")
                for k, v in _mapping(opt.get("hyper"), "hyperparameters").items()
            }
            missing = set(defaults) - set(hyper)
            if missing:
                raise ValueError(f"hyperparameter(s) {', '.join(sorted(missing))} missing")
            step_count = _integer(opt.get("step_count"), "step count")
            if step_count < 0:
                raise ValueError(f"step count {step_count} is negative")
            _check_hyper(name, hyper)
            absent = [
                _STATE_PREFIX + key for key in state_names if _STATE_PREFIX + key not in arrays
            ]
            if absent:
                raise ValueError(f"array(s) {', '.join(absent)} missing")
            state = {key: arrays[_STATE_PREFIX + key] for key in state_names}
        except (ValueError, NumbamlpError) as exc:
            raise bad(f"bad optimizer state: {exc}") from None
        for key, value in state.items():
            if value.shape != theta.shape or value.dtype != theta.dtype:
                raise bad(f"optimizer state {key!r} does not match the parameters")
            if not np.isfinite(value).all():
                raise bad(f"optimizer state {key!r} contains NaN or Inf")
        optimizer = Optimizer(
            name=name,
            hyper=hyper,
            state={k: v.copy() for k, v in state.items()},
            step_count=step_count,
        )
    metadata = header.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise bad("metadata is not a mapping")
    # The fields `numbamlp evaluate` uses: a data set name and the class names.
    dataset = metadata.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise bad(f"metadata dataset {reprlib.repr(dataset)} is not a data set name")
    class_names = metadata.get("class_names")
    if class_names is not None and not (
        isinstance(class_names, list) and all(isinstance(c, str) for c in class_names)
    ):
        raise bad("metadata class_names is not a list of names")
    try:
        input_record = record_from_metadata(metadata)
        target = target_from_metadata(metadata)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if input_record.mean is not None and len(input_record.mean) != arch.sizes[0]:
        raise bad(
            f"metadata input mean has {len(input_record.mean)} entries for {arch.sizes[0]} inputs"
        )
    if target is not None and len(target.names) != arch.sizes[-1]:
        raise bad(f"metadata target names {len(target.names)} targets for {arch.sizes[-1]} outputs")
    extra = {
        name: value
        for name, value in arrays.items()
        if name not in ("header", "theta") and not name.startswith(_STATE_PREFIX)
    }
    return LoadedModel(model, optimizer, metadata, input_record, target=target, arrays=extra)


# Header fields are checked for their JSON type before use: int(), float() and str() would accept
# (or crash on) values the writer never produces: "323" as a list of sizes, Infinity as a step
# count (OverflowError), a 400-digit integer as a learning rate (OverflowError).


def _mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a mapping")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} is not a list")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} {reprlib.repr(value)} is not text")
    return value


def _integer(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{what} {reprlib.repr(value)} is not an integer")
    return value


def _number(value: Any, what: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{what} {reprlib.repr(value)} is not a number")
    try:
        return float(value)
    except OverflowError:  # an int beyond float's range
        raise ValueError(f"{what} {reprlib.repr(value)} is out of range") from None
