"""The ``numbamlp`` command line.

Only click is imported at start-up, so ``numbamlp --help`` is fast; numpy, Numba and the kernels
load inside the command that needs them. Every user-fixable problem is a NumbamlpError (or a
click usage error): one message on stderr, exit status 2, no traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

#: When the command started: reset when a command is invoked (in-process callers like tests
#: invoke many); for the ``numbamlp`` script, import and invocation are milliseconds apart.
COMMAND_STARTED = time.perf_counter()
ACTIVATION_NAMES = ("sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity")
OPTIMIZER_NAMES = ("sgd", "momentum", "adagrad", "adadelta", "rmsprop", "adam")
SCHEDULE_NAMES = ("constant", "step", "inverse-time", "cosine")
DATASET_NAMES = ("mnist", "fashion-mnist")
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _user_error_type() -> type[Exception]:
    from numbamlp.errors import NumbamlpError

    return NumbamlpError


class _Group(click.Group):
    """Turns NumbamlpError into one line on stderr and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        global COMMAND_STARTED
        COMMAND_STARTED = time.perf_counter()
        try:
            return super().invoke(ctx)
        except _user_error_type() as exc:
            click.echo(f"error: {exc}", err=True)
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


def _split_entries(values: tuple[str, ...], option: str) -> list[str]:
    """Flatten repeated and comma-separated entries; an empty entry is an error."""
    entries = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                raise click.BadParameter(f"empty entry in {value!r}", param_hint=option)
            entries.append(part)
    return entries


def parse_hidden(values: tuple[str, ...]) -> list[int]:
    entries = _split_entries(values, "--hidden")
    if entries == ["none"]:
        return []
    widths = []
    for entry in entries:
        try:
            width = int(entry)
        except ValueError:
            raise click.BadParameter(
                f"{entry!r} is not a layer width (a positive integer, or 'none')",
                param_hint="--hidden",
            ) from None
        if width < 1:
            raise click.BadParameter(
                f"layer width must be positive, got {width}", param_hint="--hidden"
            )
        widths.append(width)
    return widths


def parse_activations(values: tuple[str, ...], n_hidden: int) -> list[str]:
    entries = _split_entries(values, "--activation")
    for entry in entries:
        if entry not in ACTIVATION_NAMES:
            raise click.BadParameter(
                f"unknown activation {entry!r}; choose from {', '.join(ACTIVATION_NAMES)}",
                param_hint="--activation",
            )
    if len(entries) == 1:
        return entries * n_hidden
    if len(entries) != n_hidden:
        raise click.BadParameter(
            f"{len(entries)} activations for {n_hidden} hidden layer(s); "
            "give one, or one per layer",
            param_hint="--activation",
        )
    return entries


def _positive_float(
    ctx: click.Context, param: click.Parameter, value: float | None
) -> float | None:
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a positive number, got {value}")
    return value


def _set_threads(threads: int | None) -> int:
    import numba

    available = numba.config.NUMBA_NUM_THREADS
    if threads is not None:
        if threads > available:
            raise click.BadParameter(
                f"{threads} threads requested but at most {available} are available "
                "(set NUMBA_NUM_THREADS to raise the limit)",
                param_hint="--threads",
            )
        numba.set_num_threads(threads)
    return numba.get_num_threads()


def _check_writable(path: str | None, option: str) -> None:
    """Fail before training, not after it, when an output path cannot be written."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise click.BadParameter(f"{path} is a directory; give a file name", param_hint=option)
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise click.BadParameter(f"directory {parent} does not exist", param_hint=option)
    if not os.access(parent, os.W_OK):
        raise click.BadParameter(f"directory {parent} is not writable", param_hint=option)


def _load_data(
    dataset: str,
    data_dir: str | None,
    train_file: str | None,
    test_file: str | None,
    label_column: str,
    rng: Any,
    download: bool = True,
    n_classes: int | None = None,
):
    from numbamlp import datasets

    if train_file is not None:
        return datasets.load_user_dataset(
            train_file, test_file, label_column=label_column, n_classes=n_classes, rng=rng
        )
    if test_file is not None:
        raise click.BadParameter("--test-file needs --train-file", param_hint="--test-file")
    return datasets.load_dataset(dataset, data_dir=data_dir, download=download)


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
    "--output",
    "head",
    type=click.Choice(("softmax", "modified-softmax")),
    default="softmax",
    show_default=True,
    help="Output head: softmax (M outputs) or MMiDS's γ̃ (M−1 outputs).",
)
@click.option("--optimizer", type=click.Choice(OPTIMIZER_NAMES), default="adam", show_default=True)
@click.option(
    "--lr",
    type=float,
    default=None,
    callback=_positive_float,
    help="Step size γ_0 [default: the optimizer's: adam 1e-3, sgd 0.1, …].",
)
@click.option("--momentum", "mu", type=float, default=None, help="μ of --optimizer momentum [0.9].")
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
    type=click.Choice(("shuffle", "iid")),
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
    type=click.Choice(("fused", "kernels")),
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
@click.option("--quiet", "-q", is_flag=True, help="Print only the final result.")
def train(**opts: Any) -> None:
    """Train an MLP; the defaults reproduce MMiDS §7.3 on MNIST.

    Dense(784 => 32, σ) → Dense(32 => 10) → softmax, cross-entropy, Adam(1e-3), batch 128,
    20 shuffled epochs, float32, Glorot-uniform weights, seed 0.
    """
    hidden = parse_hidden(opts["hidden"])
    activations = parse_activations(opts["activation"], len(hidden))
    _check_writable(opts["save"], "--save")
    _check_writable(opts["metrics_out"], "--metrics-out")
    quiet = opts["quiet"]
    echo = (lambda *a, **k: None) if quiet else click.echo
    on_gpu = opts["device"] == "cuda"
    if on_gpu:  # fail before loading any data when no GPU is usable
        from numbamlp.cuda.backend import require_device

        require_device()

    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from numbamlp.randomness import generators

    init_rng, train_rng = generators(opts["seed"])
    # Read the data in a second thread while Numba and the kernels load in this one:
    # decompressing and hashing release the GIL, so the two overlap.
    with ThreadPoolExecutor(max_workers=1) as pool:
        loading = pool.submit(
            _load_data,
            opts["dataset"],
            opts["data_dir"],
            opts["train_file"],
            opts["test_file"],
            opts["label_column"],
            train_rng,
            download=not opts["no_download"],
            n_classes=opts["n_classes"],
        )
        threads = _set_threads(opts["threads"])
        from numbamlp.callbacks import Throttle
        from numbamlp.model import MLP
        from numbamlp.modelio import save_model
        from numbamlp.training import TrainConfig, Trainer

        data = loading.result()
    model = MLP.create(
        data.n_features,
        hidden,
        data.n_classes,
        activations=activations,
        head=opts["head"],
        dtype=opts["dtype"],
        rng=init_rng,
    )
    config = TrainConfig(
        epochs=opts["epochs"],
        batch_size=opts["batch_size"],
        optimizer=opts["optimizer"],
        lr=opts["lr"],
        schedule=opts["schedule"],
        decay_rate=opts["decay_rate"],
        decay_epochs=opts["decay_epochs"],
        min_lr=opts["min_lr"],
        sampling=opts["sampling"],
        engine=opts["engine"],
        optimizer_options={
            key: opts[key]
            for key in ("mu", "beta1", "beta2", "rho", "eps")
            if opts[key] is not None
        },
    )
    scale = data.feature_scale
    if on_gpu:
        from numbamlp.cuda.training import DeviceTrainer as Trainer
    trainer = Trainer(model, data.X_train_raw, data.y_train, config, train_rng, scale=scale)
    X_test = model.check_inputs(data.X_test_raw, "test features", raw=True)
    y_test = model.check_labels(data.y_test, X_test.shape[0], "test labels")

    def test_accuracy() -> float:
        if on_gpu:
            return trainer.accuracy(X_test, y_test, scale)
        return float(np.mean(model.predict(X_test, scale) == y_test))

    echo(f"{model}")
    echo(
        f"data: {data.name}, {data.X_train_raw.shape[0]} train / {X_test.shape[0]} test samples "
        f"({data.source})"
    )
    echo(
        f"optimizer: {config.optimizer} {trainer.optimizer.hyper}, schedule {config.schedule}, "
        f"sampling {config.sampling}, batch {trainer.sampler.batch_size}, seed {opts['seed']}, "
        f"{threads} thread(s)"
    )

    throttled = None
    if opts["eval_every"] is not None:
        throttled = Throttle(
            lambda: echo(f"  accuracy(Xtest, ytest) = {test_accuracy():.4f}"), opts["eval_every"]
        )

    metrics_file = open(opts["metrics_out"], "w", encoding="utf-8") if opts["metrics_out"] else None  # noqa: SIM115
    show_bar = not quiet and sys.stdout.isatty()
    started = time.perf_counter()
    first_batch_done: list[float] = []

    def after_batch(b: int) -> None:
        if not first_batch_done:
            first_batch_done.append(time.perf_counter())
        if throttled is not None:
            throttled()

    metrics = None
    try:
        for _ in range(config.epochs):
            on_batch = after_batch
            if show_bar:
                with click.progressbar(
                    length=trainer.sampler.steps_per_epoch,
                    label=f"epoch {trainer.epoch + 1}/{config.epochs}",
                ) as bar:

                    def on_batch(b: int, _inner=on_batch, _bar=bar) -> None:
                        _bar.update(1)
                        if _inner is not None:
                            _inner(b)

                    metrics = trainer.train_epoch(on_batch)
            else:
                metrics = trainer.train_epoch(on_batch)
            metrics.test_accuracy = test_accuracy()
            echo(
                f"epoch {metrics.epoch:3d}  train_loss {metrics.train_loss:.4f}  "
                f"test_accuracy {metrics.test_accuracy:.4f}  seconds {metrics.seconds:.2f}"
            )
            if metrics_file is not None:
                metrics_file.write(json.dumps(metrics.as_dict()) + "\n")
                metrics_file.flush()
    finally:
        if metrics_file is not None:
            metrics_file.close()
    total = time.perf_counter() - started
    epochs = f"{config.epochs} epoch{'' if config.epochs == 1 else 's'}"
    ready = first_batch_done[0] - COMMAND_STARTED
    click.echo(
        f"test accuracy {metrics.test_accuracy:.4f} after {epochs} ({total:.1f} s; "
        f"ready in {ready:.2f} s)"
    )
    compiled = _compiled_kernels()
    if compiled:
        echo(
            f"compiled {compiled} kernel(s) in {first_batch_done[0] - started:.1f} s on this first "
            "run; they are cached on disk for the next (numbamlp info shows where)"
        )
    if on_gpu:
        trainer.to_host()  # θ and the optimizer state, for the model file
    if opts["save"]:
        save_model(
            opts["save"],
            model,
            trainer.optimizer,
            metadata={
                "dataset": data.name if opts["train_file"] is None else None,
                "class_names": list(data.class_names),
                "epochs": trainer.epoch,
                "seed": opts["seed"],
                "test_accuracy": metrics.test_accuracy,
            },
        )
        echo(f"saved model to {opts['save']}")


# ---------------------------------------------------------------------------------------------
# evaluate / predict


@main.command()
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="A model file written by `numbamlp train --save`.",
)
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
    from numbamlp import datasets
    from numbamlp.metrics import accuracy, confusion_matrix, format_confusion_matrix
    from numbamlp.modelio import load_model

    loaded = load_model(model_path)
    model = loaded.model
    class_names = loaded.metadata.get("class_names")
    scale = 1.0
    if test_file is not None:
        X, y = datasets.load_arrays_file(test_file, label_column=label_column)
        source = test_file
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
@click.option("--model", "model_path", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--input",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Features: .npz with X, .csv (a label column, if present, is ignored), or IDX images.",
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
    _check_writable(output_path, "--output")
    _set_threads(threads)
    import io

    from numbamlp import datasets
    from numbamlp.atomic import atomic_write
    from numbamlp.modelio import load_model

    model = load_model(model_path).model
    X = datasets.load_features_file(input_path, label_column=label_column)
    X = model.check_inputs(X, f"features of {input_path}")
    classes = model.predict(X)
    lines = io.StringIO()
    if proba:
        probabilities = model.predict_proba(X)
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
# gradcheck / info


@main.command()
@click.option("--inputs", type=click.IntRange(min=1), default=6, show_default=True, help="d_0.")
@click.option("--hidden", multiple=True, default=("5,4",), show_default=True)
@click.option("--activation", multiple=True, default=("sigmoid",), show_default=True)
@click.option("--classes", type=click.IntRange(min=2), default=4, show_default=True, help="M.")
@click.option(
    "--output",
    "head",
    type=click.Choice(("softmax", "modified-softmax")),
    default="softmax",
    show_default=True,
)
@click.option("--samples", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--eps",
    type=float,
    default=1e-6,
    show_default=True,
    callback=_positive_float,
    help="Finite-difference step.",
)
@click.option(
    "--tolerance",
    type=float,
    default=1e-6,
    show_default=True,
    callback=_positive_float,
    help="Largest relative error that passes.",
)
def gradcheck(
    inputs: int,
    hidden: tuple[str, ...],
    activation: tuple[str, ...],
    classes: int,
    head: str,
    samples: int,
    seed: int,
    eps: float,
    tolerance: float,
) -> None:
    """Check backprop against central finite differences on a small random network (float64)."""
    widths = parse_hidden(hidden)
    activations = parse_activations(activation, len(widths))
    import numpy as np

    from numbamlp.gradcheck import check_gradient
    from numbamlp.model import MLP

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
    click.echo(f"{model}, {samples} samples, ε = {eps:g}")
    click.echo(f"{'parameter':>10}  {'relative error':>15}  {'max |Δ|':>10}")
    worst = 0.0
    for check in check_gradient(model, X, y, eps):
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
    from numbamlp import datasets
    from numbamlp.forward import batch_mean, predict_classes

    predict_classes(np.zeros(4, np.int64), np.zeros((4, 2)))  # run a parallel kernel once
    batch_mean(np.zeros(1))
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
    click.echo(
        f"threads: {numba.get_num_threads()} of {numba.config.NUMBA_NUM_THREADS} "
        f"(cores: {os.cpu_count()}), threading layer: {layer}"
    )
    click.echo(f"JIT cache: {cache or 'unknown'}")
    for name, where in datasets.find_datasets().items():
        click.echo(f"dataset {name}: {where or 'not found'}")


def _compiled_kernels() -> int:
    """How many of the training kernels this process compiled rather than loaded from disk."""
    from numbamlp import fused

    dispatchers = [fused.run_steps, fused.forward_backward, fused.gradient_update]
    return sum(
        len(getattr(d, "stats", None).cache_misses) for d in dispatchers if hasattr(d, "stats")
    )


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":  # pragma: no cover
    main()
