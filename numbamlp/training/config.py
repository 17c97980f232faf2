"""A run's identity: the typed configuration that decides its results, and the data it reads.

A checkpoint stores these (as JSON) so that ``fit(resume=...)`` continues the same run: the
model's shape, the optimizer and its hyperparameters, the schedule, the sampling, the seed, the
precision and the engine. Checkpoints written before this module existed stored the command
line's option values (``hidden`` as strings such as ``"64,32"``, the momentum as ``mu``); they
are read here too, so they keep resuming.

Only the standard library: the command line imports this without NumPy or Numba.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from numbamlp.errors import NumbamlpError

#: Parameters added after checkpoints were first written, with the value every run that
#: predates them had: a checkpoint without one resumes with it.
LATER_PARAMETERS: dict[str, Any] = {
    "weight_decay": 0.0,
    "validation_fraction": 0.0,
    "patience": None,
    "dropout": (),
}
#: The registries' names, which the command line's choices must equal (tests check both).
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity")
OPTIMIZERS = ("sgd", "momentum", "adagrad", "adadelta", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "inverse-time", "cosine")
HEADS = ("softmax", "modified-softmax", "identity")
DATASETS = ("mnist", "fashion-mnist")
SAMPLINGS = ("shuffle", "iid")
ENGINES = ("fused", "kernels")
DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float64")
EXPORT_FORMATS = ("safetensors", "onnx")  # numbamlp export --format (model/export.py)

#: The length and batch size of a run on a built-in image set that gives neither (MMiDS §7.3's).
BUILTIN_EPOCHS = 20
BUILTIN_BATCH_SIZE = 128
#: A run on data of its own without ``epochs`` trains until the monitored loss has not fallen
#: below best − ``tol`` for ``n_iter_no_change`` epochs in a row (scikit-learn's rule and
#: defaults), at most ``max_epochs``: with the default step size (Adam, 1e-3) iris, wine, breast
#: cancer and digits stop by that rule after 300–650 epochs of ~10 minibatches, well within it.
MAX_EPOCHS = 1000
TOL = 1e-4
N_ITER_NO_CHANGE = 10
#: A run making fewer optimisation steps than this in all is warned about.
FEW_STEPS = 100


def default_batch_size(n: int) -> int:
    """The minibatch size of a run on n training rows of its own that gives no ``batch_size``:
    about a tenth of the rows, so that every epoch makes ~10 steps (a few hundred rows would
    otherwise be one full batch, one step per epoch, as scikit-learn's min(200, n) makes them),
    at least 16 rows (fewer make noisy steps), at most scikit-learn's 200, at most n."""
    return max(1, min(200, n, max(16, math.ceil(n / 10))))


def default_weight_decay(n: int) -> float:
    """λ of R.1 for a run on n training rows of its own that gives no ``weight_decay``: 1/n.

    Minimising the mean loss plus (λ/2)‖W‖² with λ = 1/n is minimising (1/n)(Σ_s ℓ_s + ½‖W‖²):
    the maximum a posteriori estimate under a standard normal prior on every weight. The prior
    weighs less as the rows grow (a 300-row table: 3e-3; 60 000 rows: 2e-5), and it keeps a
    run to convergence on a few hundred rows from fitting their noise (docs/python.md)."""
    return 1.0 / max(1, n)


#: Old spellings of parameters in checkpoints, by the parameter's name now.
OLD_KEYS = {"momentum": "mu"}


def parse_hidden(entries: Sequence[int | str] | int | str) -> tuple[int, ...]:
    """Hidden widths d_1..d_{L−1} from ints, or from strings as the command line gives them
    (``"64,32"``, ``"64"``, ``"none"`` for no hidden layer)."""
    if isinstance(entries, (int, str)):
        entries = [entries]
    widths: list[int] = []
    for entry in entries:
        parts = entry.split(",") if isinstance(entry, str) else [entry]
        for part in parts:
            if isinstance(part, str):
                text = part.strip()
                if text == "none" and len(entries) == 1 and len(parts) == 1:
                    return ()
                if not text:
                    raise NumbamlpError(f"`hidden`: empty entry in {entry!r}")
                try:
                    width = int(text)
                except ValueError:
                    raise NumbamlpError(
                        f"`hidden`: {text!r} is not a layer width (a positive integer, or 'none')"
                    ) from None
            elif isinstance(part, bool) or not isinstance(part, int):
                raise NumbamlpError(f"`hidden`: {part!r} is not a layer width (a positive integer)")
            else:
                width = part
            if width < 1:
                raise NumbamlpError(f"`hidden`: layer width must be positive, got {width}")
            widths.append(int(width))
    return tuple(widths)


def parse_activations(
    entries: Sequence[str] | str, n_hidden: int, known: Sequence[str]
) -> tuple[str, ...]:
    """One activation name per hidden layer, from one name for all or one per layer (also as
    comma lists, as the command line gives them)."""
    if isinstance(entries, str):
        entries = [entries]
    names: list[str] = []
    for entry in entries:
        for part in str(entry).split(","):
            name = part.strip()
            if not name:
                raise NumbamlpError(f"`activation`: empty entry in {entry!r}")
            if name not in known:
                raise NumbamlpError(
                    f"`activation`: unknown activation {name!r}; choose from {', '.join(known)}"
                )
            names.append(name)
    if len(names) == 1:
        return tuple(names) * n_hidden
    if len(names) != n_hidden:
        raise NumbamlpError(
            f"`activation`: {len(names)} activations for {n_hidden} hidden layer(s); give one, "
            "or one per layer"
        )
    return tuple(names)


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides a run's results besides the data and its length (epochs)."""

    hidden: tuple[int, ...] = (32,)
    activation: tuple[str, ...] = ("sigmoid",)  # one per hidden layer
    head: str = "softmax"
    optimizer: str = "adam"
    lr: float | None = None
    momentum: float | None = None
    beta1: float | None = None
    beta2: float | None = None
    rho: float | None = None
    eps: float | None = None
    weight_decay: float | None = None  # None until the data is known (default_weight_decay)
    schedule: str = "constant"
    decay_rate: float = 0.5
    decay_epochs: float = 5.0
    min_lr: float = 0.0
    sampling: str = "shuffle"
    batch_size: int | None = None  # None until the data is known (default_batch_size)
    seed: int | None = 0
    dtype: str = "float32"
    engine: str = "fused"
    device: str = "cpu"
    validation_fraction: float = 0.0
    patience: int | None = None
    dropout: tuple[float, ...] = ()  # p_m of D.1–D.3: one for every hidden layer, or one each

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["hidden"], record["activation"] = list(self.hidden), list(self.activation)
        record["dropout"] = list(self.dropout)
        return record

    @classmethod
    def from_json(cls, record: Mapping[str, Any], activations: Sequence[str]) -> RunConfig:
        """Read ``to_json``'s record, or an older checkpoint's option values; anything missing
        or malformed raises NumbamlpError."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            key = field.name
            if key not in record and OLD_KEYS.get(key) in record:
                key = OLD_KEYS[field.name]
            if key in record:
                values[field.name] = record[key]
            elif field.name in LATER_PARAMETERS:
                values[field.name] = LATER_PARAMETERS[field.name]
            else:
                raise NumbamlpError(f"the run's configuration lacks {field.name!r}")
        hidden = parse_hidden(values["hidden"] or ["none"])
        values["hidden"] = hidden
        values["activation"] = parse_activations(
            values["activation"] or ["sigmoid"], len(hidden), activations
        )
        values["dropout"] = parse_dropout(values["dropout"])
        return cls(**values)

    def optimizer_options(self) -> dict[str, float]:
        """The optimizer's hyperparameters given besides γ_0, by the optimizers' own names."""
        given = {
            "mu": self.momentum,
            "beta1": self.beta1,
            "beta2": self.beta2,
            "rho": self.rho,
            "eps": self.eps,
        }
        return {key: value for key, value in given.items() if value is not None}


@dataclass(frozen=True)
class DataConfig:
    """Which data a run reads (a resumed run checks it by its fingerprint)."""

    dataset: str = "mnist"
    data_dir: str | None = None
    train_file: str | None = None
    test_file: str | None = None
    label_column: str = "label"
    n_classes: int | None = None
    task: str | None = None
    standardize: bool | None = None
    sample_weight_column: str | None = None
    #: "balanced", or {label name: weight} (labels as the classes' names, for JSON)
    class_weight: str | dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> DataConfig:
        try:
            return cls(
                **{
                    field.name: record[field.name]
                    if field.name in record or field.name not in LATER_DATA
                    else LATER_DATA[field.name]
                    for field in fields(cls)
                }
            )
        except KeyError as exc:
            raise NumbamlpError(f"the run's data record lacks {exc}") from None


#: Data keywords added after checkpoints were first written, with what every run before them
#: did: no standardisation (Z.1), labels as class indices, no weights.
LATER_DATA: dict[str, Any] = {
    "task": None,
    "standardize": False,
    "sample_weight_column": None,
    "class_weight": None,
}
TASKS = ("classification", "regression")


def parse_dropout(value: Any) -> tuple[float, ...]:
    """The dropout rates as RunConfig holds them: from a number, a text "0.2,0.5" (the command
    line's) or a sequence; () for none, and for rate 0 everywhere (the same run)."""
    if value is None:
        return ()
    if isinstance(value, str):
        entries: list[Any] = [e for e in value.replace(" ", "").split(",") if e]
    elif isinstance(value, (int, float)):
        entries = [value]
    else:
        entries = list(value)
    rates = []
    for entry in entries:
        try:
            rate = float(entry)
        except (TypeError, ValueError):
            raise NumbamlpError(f"`dropout`: a rate is a number in [0, 1), got {entry!r}") from None
        if not (math.isfinite(rate) and 0.0 <= rate < 1.0):
            raise NumbamlpError(f"`dropout`: each rate must be in [0, 1), got {rate:g}")
        rates.append(rate)
    if not any(rates):
        return ()
    return tuple(rates)


def _normalised(name: str, value: Any, hidden: tuple[int, ...]) -> Any:
    """A run parameter in the form RunConfig holds it."""
    if name == "dropout":
        return parse_dropout(value)
    if name == "hidden":
        return parse_hidden(value)
    if name == "activation":
        return parse_activations(value, len(hidden), ACTIVATIONS)
    return value


def run_config(given: dict[str, Any]) -> RunConfig:
    """The RunConfig of a new run from ``fit``'s keywords (checked)."""
    hidden = parse_hidden(given["hidden"])
    values = {name: _normalised(name, value, hidden) for name, value in given.items()}
    config = RunConfig(**values)
    check_run_config(config)
    return config


def check_run_config(config: RunConfig) -> None:
    """Raise NumbamlpError for a parameter outside its range (the estimators' and the command
    line's checks are these)."""
    for name, choices in (
        ("head", HEADS),
        ("optimizer", OPTIMIZERS),
        ("schedule", SCHEDULES),
        ("sampling", SAMPLINGS),
        ("engine", ENGINES),
        ("device", DEVICES),
        ("dtype", DTYPES),
    ):
        value = getattr(config, name)
        if value not in choices:
            raise NumbamlpError(
                f"`{name}`: unknown {name} {value!r}; choose one of: {', '.join(choices)}"
            )
    if config.batch_size is not None:
        _check_int("batch_size", config.batch_size)
    if config.seed is not None and (not isinstance(config.seed, int) or config.seed < 0):
        raise NumbamlpError(f"`seed`: must be an integer ≥ 0 (or None), got {config.seed!r}")
    for name in ("lr", "eps", "decay_epochs"):
        value = getattr(config, name)
        if value is not None and not (_is_number(value) and math.isfinite(value) and value > 0):
            raise NumbamlpError(f"`{name}`: must be a positive number, got {value}")
    if config.weight_decay is not None and not (
        _is_number(config.weight_decay)
        and math.isfinite(config.weight_decay)
        and config.weight_decay >= 0
    ):
        raise NumbamlpError(
            f"`weight_decay`: must be a finite number ≥ 0, got {config.weight_decay}"
        )
    if config.dropout and len(config.dropout) not in (1, len(config.hidden)):
        raise NumbamlpError(
            f"`dropout`: give one rate, or one per hidden layer ({len(config.hidden)}), got "
            f"{len(config.dropout)}"
        )
    if config.dropout and not config.hidden:
        raise NumbamlpError("`dropout`: the network has no hidden layer to drop units of")
    fraction = config.validation_fraction
    if not (_is_number(fraction) and math.isfinite(fraction) and 0.0 <= fraction < 1.0):
        raise NumbamlpError(
            f"`validation_fraction`: must be a fraction at least 0 and below 1, got {fraction}"
        )
    if config.patience is not None:
        _check_int("patience", config.patience)
        if not fraction > 0:
            raise NumbamlpError(
                "`patience`: early stopping watches the validation loss: give "
                "`validation_fraction=F` (0 < F < 1) too"
            )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NumbamlpError(f"`{name}`: must be a positive integer, got {value!r}")


def adopt_checkpoint(
    saved: RunConfig, given: dict[str, Any], explicit: Collection[str] = ()
) -> RunConfig:
    """The resumed run's configuration: the checkpoint's, with every keyword left at its default
    (and not named in ``explicit``) taken from it; a keyword given with another value raises
    NumbamlpError."""
    defaults = RunConfig()
    values = {}
    for name, value in given.items():
        mine = _normalised(name, value, saved.hidden)
        default = _normalised(name, getattr(defaults, name), saved.hidden)
        theirs = getattr(saved, name)
        if (mine != default or name in explicit) and mine != theirs:
            shown = ",".join(map(str, theirs)) if isinstance(theirs, tuple) else theirs
            raise NumbamlpError(
                f"`{name}`: the checkpoint's run used {shown or 'none'}; a resumed run keeps the "
                f"options it started with (leave `{name}` out, or start a new run without "
                "`resume`)"
            )
        values[name] = theirs
    return replace(saved, **values)


def adopt_data(
    saved: DataConfig, given: dict[str, Any], explicit: Collection[str] = ()
) -> DataConfig:
    """The resumed run's data record: the checkpoint's; ``data_dir`` says where the data is now
    (the fingerprint decides whether it is the same data); other keywords must agree."""
    defaults = DataConfig()
    values = {}
    for name, value in given.items():
        theirs = getattr(saved, name)
        if name in ("train_file", "test_file") and value is not None:
            value = str(Path(value).resolve())
        if name == "data_dir":
            values[name] = value if value is not None else theirs
            continue
        if (value != getattr(defaults, name) or name in explicit) and value != theirs:
            raise NumbamlpError(
                f"`{name}`: the checkpoint's run used {theirs}; a resumed run keeps the data it "
                f"started with (leave `{name}` out, or start a new run without `resume`)"
            )
        values[name] = theirs
    return DataConfig(**values)
