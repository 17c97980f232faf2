"""The ``numbamlp`` command line.

Only click is imported at start-up, so ``numbamlp --help`` is fast; numpy, Numba and the kernels
load inside the command that needs them. Every user-fixable problem is a NumbamlpError (or a
click usage error): one message on stderr, exit status 2, no traceback.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import click

# The choices are the registries' names (numbamlp.training.config holds them without NumPy;
# tests/test_conventions.py checks them against the registries themselves).
from numbamlp.training.config import ACTIVATIONS as ACTIVATION_NAMES  # noqa: E402
from numbamlp.training.config import DATASETS as DATASET_NAMES  # noqa: E402
from numbamlp.training.config import ENGINES as ENGINE_NAMES  # noqa: E402
from numbamlp.training.config import HEADS as HEAD_NAMES  # noqa: E402
from numbamlp.training.config import OPTIMIZERS as OPTIMIZER_NAMES  # noqa: E402
from numbamlp.training.config import SAMPLINGS as SAMPLING_NAMES  # noqa: E402
from numbamlp.training.config import SCHEDULES as SCHEDULE_NAMES  # noqa: E402

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
#: The usual exit status of a process stopped by SIGTERM (128 + 15).
EXIT_TERMINATED = 143


def _user_error_type() -> type[Exception]:
    from numbamlp.errors import NumbamlpError

    return NumbamlpError


class _Group(click.Group):
    """Turns NumbamlpError into one line on stderr and exit status 2, in the command line's
    words (cli_message); output that the terminal's encoding cannot show is spelled in ASCII
    (console.py) rather than crash."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        from numbamlp.cli.console import fitted_streams

        with fitted_streams():
            return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (_user_error_type(), click.ClickException) as exc:
            cluster = getattr(exc, "cluster", None)  # set by fit on a distributed run
            if cluster is None and isinstance(exc, click.ClickException):
                raise
            if isinstance(exc, click.ClickException):
                message = exc.format_message()
            else:
                command = self.get_command(ctx, ctx.invoked_subcommand or "")
                message = cli_message(str(exc), command)
            if cluster is None:
                click.echo(f"error: {message}", err=True)
            else:  # a distributed run: every rank must end (distributed.fail)
                from numbamlp.engines.cluster import fail

                fail(cluster, exc, message, lambda line: click.echo(line, err=True))
            ctx.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="numbamlp")
def main() -> None:
    """Train small MLPs whose backprop is the textbook index formulas, compiled with Numba.

    Start with `numbamlp train` (the MMiDS §7.3 MNIST experiment), or `numbamlp gradcheck`.
    """


# ---------------------------------------------------------------------------------------------
# Option parsing helpers


def _positive_float(
    ctx: click.Context, param: click.Parameter, value: float | None
) -> float | None:
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a positive number, got {value}")
    return value


def _nonnegative_float(ctx: click.Context, param: click.Parameter, value: float) -> float:
    import math

    if not (math.isfinite(value) and value >= 0):
        raise click.BadParameter(f"must be a finite number ≥ 0, got {value}")
    return value


WEIGHT_DECAY_HELP = (
    "λ of L2 weight decay: minimise ℓ + (λ/2) Σ W² over the weights, biases not decayed (as "
    "scikit-learn's alpha, Keras's kernel_regularizer); coupled: λW is added to the gradient "
    "before every optimizer, as PyTorch's Adam(weight_decay=λ), not AdamW (PyTorch's also "
    "decays the biases unless given parameter groups). 0: none."
)


#: Prefix of the hidden options that keep an option's old spelling working (_old_name).
OLD_NAME = "old_name_of_"
#: Which meaning of an overloaded old spelling the note names, by the option it now sets.
OLD_NAME_MEANING = {"head": " (the output head)", "fd_step": " (the finite-difference step)"}


def _old_name(flag: str, name: str, **kwargs: Any) -> Any:
    """A hidden option ``flag``, the old spelling of option ``name``: scripts written before the
    rename keep working (with a note on stderr; _take_old_names)."""
    return click.option(flag, OLD_NAME + name, hidden=True, default=None, **kwargs)


def _take_old_names(ctx: click.Context, opts: dict[str, Any]) -> None:
    """Move the values given under old spellings to their options, noting the new names."""
    for param in ctx.command.params:
        if not (param.name or "").startswith(OLD_NAME):
            continue
        value = opts.pop(param.name)
        if value is None:
            continue
        name = param.name[len(OLD_NAME) :]
        old, new = param.opts[0], _option_flag(ctx, name)
        if _given(ctx, name) and opts[name] != value:
            raise click.BadParameter(
                f"{old} is the old name of {new}; give only one of them", param_hint=new
            )
        opts[name] = value
        ctx.meta.setdefault(OLD_NAME, set()).add(name)
        click.echo(
            f"note: {old}{OLD_NAME_MEANING.get(name, '')} is now {new}; the old name still works",
            err=True,
        )


def _set_threads(threads: int | None) -> int:
    from numbamlp.training.plan import set_threads

    return set_threads(threads)


def _check_writable(path: str | None, name: str) -> None:
    from numbamlp.training.plan import check_writable

    check_writable(path, name)


def _given(ctx: click.Context, name: str) -> bool:
    """Whether the user set option ``name`` (on the command line or through the environment)."""
    source = ctx.get_parameter_source(name)
    return source not in (None, click.core.ParameterSource.DEFAULT) or name in ctx.meta.get(
        OLD_NAME, ()
    )


def _option_flag(ctx: click.Context, name: str) -> str:
    for param in ctx.command.params:
        if param.name == name and param.opts:
            return max(param.opts, key=len)
    return name


def _model_inputs(model: Any, record: Any, X: Any, what: str) -> tuple[Any, float]:
    """(X, scale) for model.predict: checked, then scaled as the model's training data was."""
    from numbamlp.datasets.inputscale import prepare_input

    X, scale = prepare_input(model.check_inputs(X, what, raw=True), record, what)
    return model.check_inputs(X, what, raw=True), scale


def _fraction(ctx: click.Context, param: click.Parameter, value: float) -> float:
    import math

    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise click.BadParameter(f"must be a fraction at least 0 and below 1, got {value}")
    return value


# ---------------------------------------------------------------------------------------------
# train


@main.command()
@click.option(
    "--dataset",
    type=click.Choice(DATASET_NAMES),
    default="mnist",
    show_default=True,
    help="Built-in data set (MNIST is bundled).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory holding the four IDX files of --dataset.",
)
@click.option(
    "--train-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Your own training data: .npz with X (n, d) and y (n,), or .csv with a label column.",
)
@click.option(
    "--test-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Your own test data (same format); without it 10% of --train-file is held out.",
)
@click.option(
    "--label-column", default="label", show_default=True, help="Label column of CSV files."
)
@click.option(
    "--n-classes",
    type=click.IntRange(min=2),
    default=None,
    help="Number of classes of --train-file data [default: largest label + 1].",
)
@click.option("--no-download", is_flag=True, help="Never download Fashion-MNIST.")
@click.option(
    "--hidden",
    multiple=True,
    default=("32",),
    show_default=True,
    help="Hidden layer widths: repeat, or a comma list (64,32); 'none' for no hidden layer.",
)
@click.option(
    "--activation",
    multiple=True,
    default=("sigmoid",),
    show_default=True,
    help=f"Hidden activation(s), one for all or one per layer: {', '.join(ACTIVATION_NAMES)}.",
)
@click.option(
    "--head",
    type=click.Choice(HEAD_NAMES),
    default="softmax",
    show_default=True,
    help="Output head: softmax (M outputs) or MMiDS's γ̃ (M−1 outputs).",
)
@_old_name("--output", "head", type=click.Choice(HEAD_NAMES))
@click.option("--optimizer", type=click.Choice(OPTIMIZER_NAMES), default="adam", show_default=True)
@click.option(
    "--lr",
    type=float,
    default=None,
    callback=_positive_float,
    help="Step size γ_0 [default: the optimizer's: adam 1e-3, sgd 0.1, …].",
)
@click.option("--momentum", type=float, default=None, help="μ of --optimizer momentum [0.9].")
@click.option("--beta1", type=float, default=None, help="β₁ of Adam [0.9].")
@click.option("--beta2", type=float, default=None, help="β₂ of Adam [0.999].")
@click.option("--rho", type=float, default=None, help="ρ of RMSprop/Adadelta [0.9].")
@click.option(
    "--eps",
    type=float,
    default=None,
    callback=_positive_float,
    help="ε of Adagrad/Adadelta/RMSprop/Adam.",
)
@click.option(
    "--weight-decay",
    type=float,
    default=0.0,
    show_default=True,
    callback=_nonnegative_float,
    help=WEIGHT_DECAY_HELP,
)
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULE_NAMES),
    default="constant",
    show_default=True,
    help="Step sizes γ_p.",
)
@click.option(
    "--decay-rate", type=float, default=0.5, show_default=True, help="Factor of --schedule step."
)
@click.option(
    "--decay-epochs",
    type=float,
    default=5.0,
    show_default=True,
    callback=_positive_float,
    help="Period of --schedule step; τ of inverse-time (in epochs).",
)
@click.option(
    "--min-lr", type=float, default=0.0, show_default=True, help="Final γ of --schedule cosine."
)
@click.option(
    "--sampling",
    type=click.Choice(SAMPLING_NAMES),
    default="shuffle",
    show_default=True,
    help="shuffle: a permutation per epoch; iid: indices uniform with replacement (FB §1).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Worker threads [default: all cores]; results do not depend on it.",
)
@click.option(
    "--dtype", type=click.Choice(("float32", "float64")), default="float32", show_default=True
)
@click.option(
    "--validation-fraction",
    type=float,
    default=0.0,
    show_default=True,
    callback=_fraction,
    help="Hold out this fraction of the training rows (drawn from the seed) as a validation "
    "set, measured after every epoch (val_loss, val_accuracy); 0: none.",
)
@click.option(
    "--patience",
    type=click.IntRange(min=1),
    default=None,
    help="Early stopping: stop when val_loss has not improved for this many epochs, and keep "
    "the weights of the best epoch (as sklearn's MLPClassifier(early_stopping=True)); needs "
    "--validation-fraction.",
)
@click.option(
    "--save",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the trained model (and optimizer state) here, atomically.",
)
@click.option(
    "--metrics-out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write one JSON object per epoch (JSON Lines).",
)
@click.option(
    "--eval-every",
    type=float,
    default=None,
    callback=_positive_float,
    help="Also print the test accuracy during an epoch, at most every this many seconds.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINE_NAMES),
    default="fused",
    show_default=True,
    help="fused: many steps per call, blocked loops (fast); kernels: one call per equation "
    "kernel (the plain loops, for reading and checking).",
)
@click.option(
    "--device",
    type=click.Choice(("cpu", "cuda")),
    default="cpu",
    show_default=True,
    help="cuda: train on an NVIDIA GPU (pip install 'numbamlp[cuda]'); --engine is then ignored.",
)
@click.option(
    "--checkpoint-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write DIR/checkpoint.npz (model, optimizer, position, random state, metrics) at the "
    "end of every epoch, atomically.",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=None,
    help="Also write the checkpoint every this many minibatches.",
)
@click.option(
    "--resume",
    type=click.Path(),
    default=None,
    help="Continue the run whose checkpoint is in this directory (or file), exactly where it "
    "stopped; --epochs may raise its length.",
)
@click.option(
    "--distributed/--no-distributed",
    default=None,
    help="Data-parallel training over MPI, started with mpiexec -n N (pip install "
    "'numbamlp[mpi]'): the same model as one process, bit for bit. Default: on when mpiexec "
    "(or srun with PMI) started more than one process.",
)
@click.option(
    "--mpi-timeout",
    type=float,
    default=300.0,
    show_default=True,
    callback=_positive_float,
    help="With --distributed: seconds a rank waits for the others before it ends the run.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the final result.")
@click.pass_context
def train(ctx: click.Context, **opts: Any) -> None:
    """Train an MLP; the defaults reproduce MMiDS §7.3 on MNIST.

    Dense(784 => 32, σ) → Dense(32 => 10) → softmax, cross-entropy, Adam(1e-3), batch 128,
    20 shuffled epochs, float32, Glorot-uniform weights, seed 0.

    Ctrl-C (or SIGTERM) finishes the current minibatches, writes a checkpoint and says how to
    resume; a second Ctrl-C stops at once.
    """
    _take_old_names(ctx, opts)
    quiet = opts.pop("quiet")
    download = not opts.pop("no_download")
    from numbamlp.training.fit import fit

    try:
        given = [name for name in opts if _given(ctx, name)]
        result = fit(**opts, download=download, verbose=0 if quiet else 1, given_options=given)
    except KeyboardInterrupt:  # the second Ctrl-C: fit said what was kept
        ctx.exit(EXIT_INTERRUPTED)
    if result.stopped is not None:
        if result.checkpoint is not None:
            click.echo(f"resume with: numbamlp train --resume {result.checkpoint.parent}", err=True)
        ctx.exit(EXIT_INTERRUPTED if result.stopped == "SIGINT" else EXIT_TERMINATED)
    if quiet and result.summary:
        if _lead_process():
            click.echo(result.summary)


def _lead_process() -> bool:
    """Whether this process prints a run's result: the only one, or MPI rank 0."""
    from numbamlp.engines.cluster import launched_rank

    return launched_rank() == 0


def cli_message(message: str, command: click.Command | None) -> str:
    """A library message in the command line's words: `name=value` becomes ``--flag value``
    and `name` ``--flag``, for every parameter that is an option of ``command`` (or else of
    ``train``, whose options name every run parameter)."""
    flags: dict[str, str] = {}
    for source in (train, command):
        for param in source.params if source is not None else ():
            if param.name and param.opts and not param.name.startswith(OLD_NAME):
                flags[param.name] = max(param.opts, key=len)

    def flag(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(3)
        if name not in flags:
            return match.group(0)
        return flags[name] if value is None else f"{flags[name]} {value}"

    return re.sub(r"`([A-Za-z_][A-Za-z0-9_]*)(=([^`]*))?`", flag, message)


# ---------------------------------------------------------------------------------------------
# evaluate / predict

#: The model file that evaluate, predict and export read.
MODEL_OPTION = click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="A model file written by `numbamlp train --save`.",
)


@main.command()
@MODEL_OPTION
@click.option(
    "--dataset",
    type=click.Choice(DATASET_NAMES),
    default=None,
    help="Evaluate on this data set's test split [default: the one the model was trained on].",
)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None)
@click.option(
    "--test-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Evaluate on your own labelled .npz/.csv file instead.",
)
@click.option("--label-column", default="label", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None)
def evaluate(
    model_path: str,
    dataset: str | None,
    data_dir: str | None,
    test_file: str | None,
    label_column: str,
    threads: int | None,
) -> None:
    """Print the test accuracy and the confusion matrix of a saved model."""
    _set_threads(threads)
    from numbamlp.datasets import loaders as datasets
    from numbamlp.kernels.metrics import accuracy, confusion_matrix, format_confusion_matrix
    from numbamlp.model.modelio import load_model

    loaded = load_model(model_path)
    model = loaded.model
    class_names = loaded.metadata.get("class_names")
    scale = 1.0
    if test_file is not None:
        X, y = datasets.load_arrays_file(test_file, label_column=label_column)
        source = test_file
        X, scale = _model_inputs(model, loaded.input, X, f"features of {source}")
    else:
        name = dataset or loaded.metadata.get("dataset")
        if name is None:
            raise click.UsageError(
                "this model was trained on a file: give --test-file or --dataset"
            )
        data = datasets.load_dataset(name, data_dir=data_dir)
        X, y, source = data.X_test_raw, data.y_test, f"{data.name} test set"
        scale = data.feature_scale
        class_names = list(data.class_names)
    X = model.check_inputs(X, f"features of {source}", raw=True)
    y = model.check_labels(y, X.shape[0], f"labels of {source}")
    predicted = model.predict(X, scale)
    C = confusion_matrix(y, predicted, model.architecture.n_classes)
    click.echo(f"{model}")
    click.echo(f"accuracy {accuracy(predicted, y):.4f} on {X.shape[0]} samples ({source})")
    names = tuple(class_names) if class_names and len(class_names) == C.shape[0] else None
    click.echo(format_confusion_matrix(C, names))


@main.command()
@MODEL_OPTION
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Features: .npz with X, .npy (n, d), .csv (a label column, if present, is ignored), or "
    "IDX images.",
)
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the classes here (one per line) instead of standard output.",
)
@click.option("--label-column", default="label", show_default=True)
@click.option("--proba", is_flag=True, help="Also write the class probabilities (CSV).")
@click.option("--threads", type=click.IntRange(min=1), default=None)
def predict(
    model_path: str,
    input_path: str,
    output_path: str | None,
    label_column: str,
    proba: bool,
    threads: int | None,
) -> None:
    """Write the predicted class of every input row."""
    _check_writable(output_path, "output_path")
    _set_threads(threads)
    import io

    from numbamlp.datasets import loaders as datasets
    from numbamlp.datasets.atomic import atomic_write
    from numbamlp.model.modelio import load_model

    loaded = load_model(model_path)
    model = loaded.model
    X = datasets.load_features_file(input_path, label_column=label_column)
    X, scale = _model_inputs(model, loaded.input, X, f"features of {input_path}")
    classes = model.predict(X, scale)
    lines = io.StringIO()
    if proba:
        probabilities = model.predict_proba(X, scale)
        M = probabilities.shape[1]
        lines.write("class," + ",".join(f"p{k}" for k in range(M)) + "\n")
        for c, row in zip(classes, probabilities, strict=True):
            lines.write(f"{c}," + ",".join(f"{p:.6g}" for p in row) + "\n")
    else:
        for c in classes:
            lines.write(f"{c}\n")
    if output_path is None:
        click.echo(lines.getvalue(), nl=False)
    else:
        atomic_write(output_path, lambda f: f.write(lines.getvalue().encode()))
        click.echo(f"wrote {len(classes)} predictions to {output_path}", err=True)


# ---------------------------------------------------------------------------------------------
# export


@main.command(name="export")
@MODEL_OPTION
@click.option(
    "--format",
    "export_format",
    type=click.Choice(("safetensors",)),
    default="safetensors",
    show_default=True,
    help="safetensors: tensors named as a PyTorch nn.Sequential of Linear and activation "
    'modules ("0.weight", "0.bias", "2.weight", …), W^k of shape (d_k, d_{k-1}).',
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The file to write (atomically; an existing file is replaced only when complete).",
)
def export_model(model_path: str, export_format: str, output_path: str) -> None:
    """Write a saved model's weights for other frameworks (needs numbamlp[export])."""
    _check_writable(output_path, "output_path")
    if Path(output_path).resolve() == Path(model_path).resolve():
        raise click.BadParameter(
            f"{output_path} is the model file itself; give another name", param_hint="--output"
        )
    from numbamlp.model.export import export_safetensors
    from numbamlp.model.modelio import load_model

    loaded = load_model(model_path)
    export_safetensors(output_path, loaded.model, loaded.metadata)
    arch = loaded.model.architecture
    click.echo(
        f"wrote {2 * arch.L} tensors ({arch.n_parameters:,} parameters, {loaded.model.dtype}) "
        f"to {output_path}",
        err=True,
    )


# ---------------------------------------------------------------------------------------------
# gradcheck / info


@main.command()
@click.option("--inputs", type=click.IntRange(min=1), default=6, show_default=True, help="d_0.")
@click.option("--hidden", multiple=True, default=("5,4",), show_default=True)
@click.option("--activation", multiple=True, default=("sigmoid",), show_default=True)
@click.option("--n-classes", type=click.IntRange(min=2), default=4, show_default=True, help="M.")
@_old_name("--classes", "n_classes", type=click.IntRange(min=2))
@click.option("--head", type=click.Choice(HEAD_NAMES), default="softmax", show_default=True)
@_old_name("--output", "head", type=click.Choice(HEAD_NAMES))
@click.option("--samples", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--fd-step",
    type=float,
    default=1e-6,
    show_default=True,
    callback=_positive_float,
    help="Finite-difference step ε.",
)
@_old_name("--eps", "fd_step", type=float, callback=_positive_float)
@click.option(
    "--tolerance",
    type=float,
    default=1e-6,
    show_default=True,
    callback=_positive_float,
    help="Largest relative error that passes.",
)
@click.option(
    "--weight-decay",
    type=float,
    default=0.0,
    show_default=True,
    callback=_nonnegative_float,
    help="λ: check the gradient of ℓ + (λ/2) Σ W² (weights only, as train --weight-decay).",
)
@click.pass_context
def gradcheck(ctx: click.Context, **opts: Any) -> None:
    """Check backprop against central finite differences on a small random network (float64).

    With --weight-decay λ the objective is ℓ_λ = ℓ + (λ/2) Σ W² (R.1), penalty included in both
    the backprop gradient and the differences."""
    _take_old_names(ctx, opts)
    inputs, hidden, activation = opts["inputs"], opts["hidden"], opts["activation"]
    classes, head, samples, seed = opts["n_classes"], opts["head"], opts["samples"], opts["seed"]
    eps, tolerance, weight_decay = opts["fd_step"], opts["tolerance"], opts["weight_decay"]
    from numbamlp.training.config import parse_activations, parse_hidden

    widths = list(parse_hidden(hidden))
    activations = list(parse_activations(activation, len(widths), ACTIVATION_NAMES))
    import numpy as np

    from numbamlp.model.gradcheck import check_gradient
    from numbamlp.model.mlp import MLP

    rng = np.random.default_rng(seed)
    model = MLP.create(
        inputs, widths, classes, activations=activations, head=head, dtype="float64", rng=rng
    )
    # Glorot-uniform leaves b = 0, so a unit fed only by dead ReLUs has a pre-activation of
    # exactly 0: the kink, where central differences cannot agree with relu′(0) = 0. Random
    # biases keep every pre-activation off the kinks (and give ∂ℓ/∂b a non-trivial point).
    for k in range(1, model.architecture.L + 1):
        model.params.b[k][...] = rng.normal(scale=0.5, size=model.params.b[k].shape)
    X = rng.normal(size=(samples, inputs))
    y = rng.integers(0, classes, size=samples)
    decay = f", weight decay λ = {weight_decay:g}" if weight_decay else ""
    click.echo(f"{model}, {samples} samples, ε = {eps:g}{decay}")
    click.echo(f"{'parameter':>10}  {'relative error':>15}  {'max |Δ|':>10}")
    worst = 0.0
    for check in check_gradient(model, X, y, eps, weight_decay):
        worst = max(worst, check.relative_error)
        click.echo(f"{check.name:>10}  {check.relative_error:15.3e}  {check.max_abs_error:10.3e}")
    if worst > tolerance:
        click.echo(
            f"FAILED: largest relative error {worst:.3e} > tolerance {tolerance:g}", err=True
        )
        sys.exit(1)
    click.echo(f"ok: largest relative error {worst:.3e} ≤ {tolerance:g}")


@main.command()
def info() -> None:
    """Versions, threads, threading layer, JIT cache location and the data sets found."""
    import platform

    import llvmlite
    import numba
    import numpy as np

    import numbamlp
    from numbamlp.datasets import loaders as datasets
    from numbamlp.kernels.forward import batch_mean, predict_classes

    predict_classes(np.zeros(4, np.int64), np.zeros((4, 2)))  # run a parallel kernel once
    batch_mean(np.zeros(1))
    layer: str
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialised"
    cache = getattr(getattr(predict_classes, "_cache", None), "_cache_path", None)
    click.echo(f"numbamlp {numbamlp.__version__}")
    click.echo(f"python {platform.python_version()} ({sys.executable})")
    click.echo(
        f"numba {numba.__version__}, llvmlite {llvmlite.__version__}, "
        f"numpy {np.__version__}, click {_version('click')}"
    )
    available = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set at run time
    click.echo(
        f"threads: {numba.get_num_threads()} of {available} "
        f"(cores: {os.cpu_count()}), threading layer: {layer}"
    )
    click.echo(f"JIT cache: {cache or 'unknown'}")
    for name, where in datasets.find_datasets().items():
        click.echo(f"dataset {name}: {where or 'not found'}")


@main.command()
@click.option(
    "--dtype",
    "dtypes",
    type=click.Choice(("float32", "float64")),
    multiple=True,
    default=("float32",),
    show_default=True,
    help="θ's dtype to compile for; repeat for both.",
)
def precompile(dtypes: tuple[str, ...]) -> None:
    """Compile the training, evaluation and prediction kernels into the JIT cache now.

    `pip install .` already does this for float32; use it after an editable install, or for
    --dtype float64, so that the first run does not wait for the compiler.
    """
    from numbamlp.cli.precompile import precompile as compile_kernels

    seconds = compile_kernels(dtypes, report=click.echo)
    click.echo(f"kernels for {', '.join(dtypes)} are in the JIT cache ({seconds:.1f} s)")


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":  # pragma: no cover
    main()
