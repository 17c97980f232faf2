"""What the commands share: option callbacks, the old spellings of renamed options, the
registries' choices, and the small checks each command runs before its work."""

from __future__ import annotations

from typing import Any

import click

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
#: The usual exit status of a process stopped by SIGTERM (128 + 15).
EXIT_TERMINATED = 143


def positive_float(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a positive number, got {value}")
    return value


def nonnegative_float(
    ctx: click.Context, param: click.Parameter, value: float | None
) -> float | None:
    import math

    if value is not None and not (math.isfinite(value) and value >= 0):
        raise click.BadParameter(f"must be a finite number ≥ 0, got {value}")
    return value


WEIGHT_DECAY_HELP = (
    "λ of L2 weight decay: minimise ℓ + (λ/2) Σ W² over the weights, biases not decayed (as "
    "scikit-learn's alpha, Keras's kernel_regularizer); coupled: λW is added to the gradient "
    "before every optimizer, as PyTorch's Adam(weight_decay=λ), not AdamW (PyTorch's also "
    "decays the biases unless given parameter groups). 0: none. Default: none on the built-in "
    "image sets, 1/n for data of your own (n training rows: a standard normal prior's MAP)."
)


#: Prefix of the hidden options that keep an option's old spelling working (old_name).
OLD_NAME = "old_name_of_"
#: Which meaning of an overloaded old spelling the note names, by the option it now sets.
OLD_NAME_MEANING = {"head": " (the output head)", "fd_step": " (the finite-difference step)"}


def old_name(flag: str, name: str, **kwargs: Any) -> Any:
    """A hidden option ``flag``, the old spelling of option ``name``: scripts written before the
    rename keep working (with a note on stderr; take_old_names)."""
    return click.option(flag, OLD_NAME + name, hidden=True, default=None, **kwargs)


def take_old_names(ctx: click.Context, opts: dict[str, Any]) -> None:
    """Move the values given under old spellings to their options, noting the new names."""
    for param in ctx.command.params:
        if not (param.name or "").startswith(OLD_NAME):
            continue
        value = opts.pop(param.name)
        if value is None:
            continue
        name = param.name[len(OLD_NAME) :]
        old, new = param.opts[0], option_flag(ctx, name)
        if is_given(ctx, name) and opts[name] != value:
            raise click.BadParameter(
                f"{old} is the old name of {new}; give only one of them", param_hint=new
            )
        opts[name] = value
        ctx.meta.setdefault(OLD_NAME, set()).add(name)
        click.echo(
            f"note: {old}{OLD_NAME_MEANING.get(name, '')} is now {new}; the old name still works",
            err=True,
        )


def set_threads(threads: int | None) -> int:
    from numbamlp.training.plan import set_threads

    return set_threads(threads)


def check_writable(path: str | None, name: str) -> None:
    from numbamlp.training.plan import check_writable

    check_writable(path, name)


def is_given(ctx: click.Context, name: str) -> bool:
    """Whether the user set option ``name`` (on the command line or through the environment)."""
    source = ctx.get_parameter_source(name)
    return source not in (None, click.core.ParameterSource.DEFAULT) or name in ctx.meta.get(
        OLD_NAME, ()
    )


def option_flag(ctx: click.Context, name: str) -> str:
    for param in ctx.command.params:
        if param.name == name and param.opts:
            return max(param.opts, key=len)
    return name


def model_inputs(model: Any, record: Any, X: Any, what: str) -> tuple[Any, float]:
    """(X, scale) for model.predict: checked, then scaled as the model's training data was.
    Features to standardise (Z.1) keep the precision they were read in until then, as the
    training rows did: rounding them to a float32 model's dtype first would shift a feature such
    as 3 ± 0.01 by ~1e-5 of its spread."""
    import warnings

    import numpy as np

    from numbamlp.datasets.inputscale import InputRangeWarning, prepare_input

    checked = model.check_inputs(X, what, raw=True)  # shape, type, finiteness
    X = np.asarray(X)
    source = X if record.standardized and X.dtype.kind == "f" else checked
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InputRangeWarning)
        X, scale = prepare_input(source, record, what, dtype=model.dtype)
    for warning in caught:  # one line each, as the errors are
        click.echo(f"warning: {warning.message}", err=True)
    return model.check_inputs(X, what, raw=True), scale


def fraction(ctx: click.Context, param: click.Parameter, value: float) -> float:
    import math

    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise click.BadParameter(f"must be a fraction at least 0 and below 1, got {value}")
    return value


# ---------------------------------------------------------------------------------------------
# train


#: The model file that evaluate, predict and export read.
MODEL_OPTION = click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="A model file written by `numbamlp train --save`.",
)
