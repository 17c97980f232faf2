"""The ``numbamlp`` command line.

Only click is imported at start-up, so ``numbamlp --help`` is fast; numpy, Numba and the kernels
load inside the command that needs them. Every user-fixable problem is a NumbamlpError (or a
click usage error): one message on stderr, exit status 2, no traceback.
"""

from __future__ import annotations

import json
import os
import signal
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
HEAD_NAMES = ("softmax", "modified-softmax")
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
#: Where ``train --distributed`` keeps its distributed.Cluster (in ``click.Context.meta``).
CLUSTER = "numbamlp.cluster"


def _user_error_type() -> type[Exception]:
    from numbamlp.errors import NumbamlpError

    return NumbamlpError


class _Group(click.Group):
    """Turns NumbamlpError into one line on stderr and exit status 2; output that the terminal's
    encoding cannot show is spelled in ASCII (console.py) rather than crash."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        from numbamlp.console import fitted_streams

        with fitted_streams():
            return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        global COMMAND_STARTED
        COMMAND_STARTED = time.perf_counter()
        try:
            return super().invoke(ctx)
        except (_user_error_type(), click.ClickException) as exc:
            cluster = ctx.meta.get(CLUSTER)
            if cluster is None and isinstance(exc, click.ClickException):
                raise
            message = exc.format_message() if isinstance(exc, click.ClickException) else exc
            if cluster is None:
                click.echo(f"error: {message}", err=True)
            else:  # a distributed run: every rank must end (distributed.fail)
                from numbamlp.distributed import fail

                fail(cluster, exc, str(message), lambda line: click.echo(line, err=True))
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


def _fraction(ctx: click.Context, param: click.Parameter, value: float) -> float:
    import math

    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise click.BadParameter(f"must be a fraction at least 0 and below 1, got {value}")
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
    cluster = _connect(ctx, opts)
    resume = None
    if opts["resume"] is not None:
        from numbamlp.checkpoint import load_checkpoint

        resume = load_checkpoint(opts["resume"])
        _adopt_checkpoint_options(ctx, opts, resume)
    hidden = parse_hidden(opts["hidden"])
    activations = parse_activations(opts["activation"], len(hidden))
    if opts["patience"] is not None and not opts["validation_fraction"] > 0:
        raise click.BadParameter(
            "early stopping watches the validation loss: give --validation-fraction F "
            "(0 < F < 1) too",
            param_hint="--patience",
        )
    _check_writable(opts["save"], "--save")
    _check_writable(opts["metrics_out"], "--metrics-out")
    checkpoint_dir = _checkpoint_dir(opts, resume)
    quiet = opts["quiet"]
    lead = cluster is None or cluster.rank == 0  # the one process that prints and writes
    echo = (lambda *a, **k: None) if quiet or not lead else click.echo
    on_gpu = opts["device"] == "cuda"
    if on_gpu:  # fail before loading any data when no GPU is usable
        from numbamlp.cuda.backend import require_device

        require_device()

    from concurrent.futures import ThreadPoolExecutor

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

        preload_seconds = 0.0  # loading (or, on a first run, compiling) the training kernel
        if opts["engine"] == "fused" and not on_gpu and opts["train_file"] is None:
            # Load the training kernel (and Numba's compiler contexts) while the data is read.
            from numbamlp.fused import preload

            preload_started = time.perf_counter()
            preload(opts["dtype"], "uint8")  # the built-in data sets are images of bytes
            preload_seconds = time.perf_counter() - preload_started
        data = loading.result()
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
        weight_decay=opts["weight_decay"],
        optimizer_options={
            key: opts[key]
            for key in ("mu", "beta1", "beta2", "rho", "eps")
            if opts[key] is not None
        },
    )
    scale = data.feature_scale
    X_train, y_train = data.X_train_raw, data.y_train
    X_val = y_val = None
    if opts["validation_fraction"] > 0:  # 0: nothing held out, no generator drawn from
        from numbamlp.randomness import validation_generator
        from numbamlp.validation import split_validation

        X_train, y_train, X_val, y_val = split_validation(
            X_train, y_train, opts["validation_fraction"], validation_generator(opts["seed"])
        )
    if on_gpu:
        from numbamlp.cuda.training import DeviceTrainer as Trainer
    run_info = {
        "seed": opts["seed"],
        "options": {key: _jsonable(opts[key]) for key in RUN_OPTIONS},
        "data": {key: _jsonable(opts[key]) for key in DATA_OPTIONS},
        "fingerprint": None,  # of the training set, filled in when a checkpoint is first written
        "config": {"epochs": config.epochs, "checkpoint_every": opts["checkpoint_every"]},
    }
    if resume is None:
        model = MLP.create(
            data.n_features,
            hidden,
            data.n_classes,
            activations=activations,
            head=opts["head"],
            dtype=opts["dtype"],
            rng=init_rng,
        )
        trainer = Trainer(model, X_train, y_train, config, train_rng, scale=scale)
        history: list[dict[str, Any]] = []
    else:
        from numbamlp.checkpoint import fingerprint

        run_info["fingerprint"] = fingerprint(data.X_train_raw, data.y_train)
        if run_info["fingerprint"] != resume.run["fingerprint"]:
            raise _user_error_type()(
                f"the training data ({data.name}, {data.source}) is not the data the checkpoint "
                f"{resume.path} was trained on; a resumed run must see the same data"
            )
        model = resume.model
        if model.architecture.sizes[0] != data.n_features:
            raise _user_error_type()("the checkpoint's model does not fit the data's features")
        trainer = Trainer(model, X_train, y_train, config, train_rng, resume.optimizer, scale)
        try:
            trainer.restore(resume.trainer)
        except _user_error_type() as exc:
            raise _user_error_type()(f"cannot resume {resume.path}: {exc}") from None
        history = list(resume.history)
    early = _early_stopping(opts["patience"], model, resume)
    if cluster is not None:
        from numbamlp.distributed import distribute

        distribute(trainer, cluster)
    X_test = model.check_inputs(data.X_test_raw, "test features", raw=True)
    y_test = model.check_labels(data.y_test, X_test.shape[0], "test labels")

    def test_accuracy() -> float:
        return trainer.accuracy(X_test, y_test, scale)

    echo(f"{model}")
    held = "" if X_val is None else f"{X_val.shape[0]} validation / "
    echo(
        f"data: {data.name}, {X_train.shape[0]} train / {held}{X_test.shape[0]} test samples "
        f"({data.source})"
    )
    decay = f", weight decay {config.weight_decay:g}" if config.weight_decay else ""
    echo(
        f"optimizer: {config.optimizer} {trainer.optimizer.hyper}{decay}, "
        f"schedule {config.schedule}, "
        f"sampling {config.sampling}, batch {trainer.sampler.batch_size}, seed {opts['seed']}, "
        f"{threads} thread(s)"
    )
    if cluster is not None:
        echo(f"distributed: {cluster.size} MPI rank(s), {threads} thread(s) each")
    if resume is not None:
        echo(f"resuming {resume.path} from {resume.where} (step {trainer.step_count})")

    from numbamlp.checkpoint import CheckpointWriter, position

    checkpoints = CheckpointWriter(
        trainer,
        run_info,
        history,
        lambda: _model_metadata(data, opts, trainer, history),
        (data.X_train_raw, data.y_train),
        early,
        enabled=lead,
    )

    throttled = None
    if opts["eval_every"] is not None:
        throttled = Throttle(
            lambda: echo(f"  accuracy(Xtest, ytest) = {test_accuracy():.4f}"), opts["eval_every"]
        )

    metrics_out = opts["metrics_out"] if lead else None
    metrics_file = open(metrics_out, "w", encoding="utf-8") if metrics_out else None  # noqa: SIM115
    if metrics_file is not None:
        for record in history:
            metrics_file.write(json.dumps(record) + "\n")
    show_bar = not quiet and lead and sys.stdout.isatty()
    every = opts["checkpoint_every"]
    started = time.perf_counter()
    first_batch_done: list[float] = []

    def after_batch(b: int) -> None:
        if not first_batch_done:
            first_batch_done.append(time.perf_counter())
        if throttled is not None:
            throttled()

    from numbamlp.interrupt import StopRequest
    from numbamlp.training import TrainingDiverged

    steps = trainer.sampler.steps_per_epoch
    should_stop = None
    if cluster is not None:
        _start_distributed(cluster, run_info, data)
    try:
        with StopRequest() as stop:
            should_stop = stop.requested
            if cluster is not None:  # every rank stops at the same minibatch
                cluster.interrupted = stop.requested
                should_stop = lambda: cluster.any(stop.requested())  # noqa: E731
            while trainer.epoch < config.epochs or not trainer.at_epoch_boundary:
                epoch = trainer.epoch + (1 if trainer.at_epoch_boundary else 0)
                label = f"epoch {epoch}/{config.epochs}"
                with _progress(show_bar, steps, label) as bar:
                    if bar is not None and trainer.batch:  # a resumed epoch
                        bar.skip(trainer.batch, float(trainer.batch_losses[: trainer.batch].sum()))

                    def on_batch(b: int, _bar=bar) -> None:
                        if _bar is not None:
                            _bar.update(float(trainer.batch_losses[b]))
                        after_batch(b)

                    while True:
                        until = None
                        if every is not None and checkpoint_dir is not None:
                            until = trainer.batch + every - trainer.step_count % every
                        metrics = trainer.run_batches(on_batch, until, should_stop)
                        if metrics is not None or stop:
                            break
                        checkpoints.write(checkpoint_dir)  # the periodic one, mid-epoch
                if metrics is None:  # stopped by a signal in the middle of the epoch
                    break
                if cluster is not None:  # the ranks' θ must still be one θ
                    cluster.check_parameters(model.params.theta, trainer.state)
                metrics.test_accuracy = test_accuracy()
                stop_early = False
                if X_val is not None:
                    metrics.val_loss, metrics.val_accuracy = trainer.validation_metrics(
                        X_val, y_val, scale
                    )
                    if early is not None:
                        stop_early = early.update(
                            metrics.epoch, metrics.val_loss, model.params.theta
                        )
                record = metrics.as_dict()
                history.append(record)
                echo(_epoch_line(metrics))
                if metrics_file is not None:
                    metrics_file.write(json.dumps(record) + "\n")
                    metrics_file.flush()
                if checkpoint_dir is not None:
                    checkpoints.write(checkpoint_dir)
                if stop or stop_early:
                    break
            if stop:
                if not checkpoints.is_current():
                    checkpoints.write(checkpoint_dir or _interrupt_dir())
                (click.echo if lead else echo)(
                    f"{stop.name}: stopped at {position(trainer.epoch, trainer.batch)} (step "
                    f"{trainer.step_count}); checkpoint written to {checkpoints.last}\n"
                    f"resume with: numbamlp train --resume {checkpoints.last.parent}",
                    err=True,
                )
                ctx.exit(EXIT_INTERRUPTED if stop.signal == signal.SIGINT else EXIT_TERMINATED)
    except TrainingDiverged as exc:
        kept = (
            f" The last good checkpoint, {checkpoints.last} ({checkpoints.last_where}), is "
            "unchanged."
            if checkpoints.last
            else ""
        )
        saved = f" {opts['save']} was not written." if opts["save"] else ""
        raise TrainingDiverged(f"{exc}{kept}{saved}") from None
    except KeyboardInterrupt:
        kept = (
            f"the last checkpoint, {checkpoints.last} ({checkpoints.last_where}), is intact"
            if checkpoints.last
            else "nothing was saved"
        )
        click.echo(f"interrupted again: stopped at once; {kept}", err=True)
        ctx.exit(EXIT_INTERRUPTED)
    finally:
        if metrics_file is not None:
            metrics_file.close()
    total = time.perf_counter() - started
    final_accuracy = history[-1]["test_accuracy"] if history else test_accuracy()
    epochs = f"{config.epochs} epoch{'' if config.epochs == 1 else 's'}"
    if early is not None and early.best_epoch:
        # sklearn's MLPClassifier(early_stopping=True): the model is the best epoch's
        trainer.load_parameters(early.best_theta)
        final_accuracy = test_accuracy()
        ran = trainer.epoch
        why = (
            f"val_loss has not improved for {early.patience} epoch(s), stopped after epoch {ran}"
            if early.stopped
            else f"ran all {ran} epochs"
        )
        echo(
            f"early stopping: {why}; restored the weights of the best epoch, "
            f"{early.best_epoch} (val_loss {early.best_loss:.4f})"
        )
        epochs = f"{ran} epoch{'' if ran == 1 else 's'}, best epoch {early.best_epoch}"
    ready = f"; ready in {first_batch_done[0] - COMMAND_STARTED:.2f} s" if first_batch_done else ""
    (click.echo if lead else echo)(
        f"test accuracy {final_accuracy:.4f} after {epochs} ({total:.1f} s{ready})"
    )
    compiled = _compiled_kernels()
    if compiled and first_batch_done:
        seconds = preload_seconds + first_batch_done[0] - started
        echo(
            f"compiled {compiled} kernel(s) in {seconds:.1f} s on this first run; they are "
            "cached on disk for the next (numbamlp info shows where)"
        )
    trainer.host_state()  # θ and the optimizer state, for the model file (from a device)
    if opts["save"] and lead:
        metadata = _model_metadata(data, opts, trainer, history)
        if early is not None and early.best_epoch:
            metadata.update(
                test_accuracy=final_accuracy,
                best_epoch=early.best_epoch,
                val_loss=early.best_loss,
            )
        save_model(opts["save"], model, trainer.optimizer, metadata=metadata)
        echo(f"saved model to {opts['save']}")


def _connect(ctx: click.Context, opts: dict[str, Any]) -> Any:
    """train --distributed (or a run that mpiexec started on several processes): initialise
    MPI and return the distributed.Cluster, else None (mpi4py is then never imported)."""
    wanted = opts["distributed"]
    if wanted is None:
        from numbamlp.distributed import launched_size

        wanted = launched_size() > 1
    if not wanted:
        return None
    if opts["device"] != "cpu" or opts["engine"] != "fused":
        raise click.BadParameter(
            "distributed training runs the fused engine on the CPU",
            param_hint="--distributed",
        )
    from numbamlp.distributed import connect

    cluster = connect(opts["mpi_timeout"])
    ctx.meta[CLUSTER] = cluster
    return cluster


def _start_distributed(cluster: Any, run_info: dict[str, Any], data: Any) -> None:
    """Every rank reaches this before training: settle any rank's failure so far
    (``distributed.fail``), then check that all ranks have the same options and data."""
    from numbamlp.checkpoint import fingerprint

    cluster.start()
    cluster.check_same(json.dumps(run_info["options"], sort_keys=True), "options")
    cluster.check_same(fingerprint(data.X_train_raw, data.y_train), "training data")


#: Options that decide a run's results: a resumed run takes them from its checkpoint.
RUN_OPTIONS = (
    "hidden", "activation", "head", "optimizer", "lr", "mu", "beta1", "beta2", "rho", "eps",
    "schedule", "decay_rate", "decay_epochs", "min_lr", "sampling", "batch_size", "seed",
    "dtype", "engine", "device", "weight_decay", "validation_fraction", "patience",
)  # fmt: skip
#: Run options added after checkpoints were first written, with the value every run that
#: predates them had: a checkpoint without one resumes with it.
LATER_RUN_OPTIONS = {"weight_decay": 0.0, "validation_fraction": 0.0, "patience": None}
#: Options that say which data the run trains on (checked by fingerprint when resuming).
DATA_OPTIONS = ("dataset", "data_dir", "train_file", "test_file", "label_column", "n_classes")
#: The usual exit status of a process stopped by SIGTERM (128 + 15).
EXIT_TERMINATED = 143


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


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


def _adopt_checkpoint_options(ctx: click.Context, opts: dict[str, Any], resume: Any) -> None:
    """Take the run's options from its checkpoint; refuse any given option that contradicts it."""
    saved_options = resume.run.get("options")
    saved_data = resume.run.get("data")
    config = resume.run.get("config")
    if isinstance(saved_options, dict):
        saved_options = LATER_RUN_OPTIONS | saved_options
    if not (
        isinstance(saved_options, dict)
        and isinstance(saved_data, dict)
        and isinstance(config, dict)
        and set(RUN_OPTIONS) - set(LATER_RUN_OPTIONS) <= set(saved_options)
        and set(DATA_OPTIONS) <= set(saved_data)
    ):
        raise _user_error_type()(f"{resume.path} is not a usable checkpoint (options missing)")
    saved_options = LATER_RUN_OPTIONS | saved_options
    for name in RUN_OPTIONS + DATA_OPTIONS:
        saved = saved_options[name] if name in saved_options else saved_data[name]
        given = _jsonable(opts[name])
        if name in ("train_file", "test_file", "data_dir"):
            given = _absolute(given)
        if name == "data_dir" and not _given(ctx, name):
            opts[name] = saved  # the data may have moved: --data-dir says where it is now
            continue
        if name == "data_dir":
            continue  # wherever it is, the fingerprint decides whether it is the same data
        if _given(ctx, name) and given != saved:
            shown = ",".join(map(str, saved)) if isinstance(saved, list) else saved
            raise click.BadParameter(
                f"the checkpoint's run used {shown}; a resumed run keeps the options it started "
                "with (leave the option out, or start a new run without --resume)",
                param_hint=_option_flag(ctx, name),
            )
        opts[name] = tuple(saved) if isinstance(saved, list) else saved
    planned = config.get("epochs")
    epoch = resume.trainer["epoch"]
    if _given(ctx, "epochs"):
        if opts["epochs"] < epoch:
            raise click.BadParameter(
                f"the checkpoint is already at epoch {epoch}", param_hint="--epochs"
            )
        if opts["schedule"] == "cosine" and opts["epochs"] != planned:
            raise click.BadParameter(
                f"the cosine schedule's length is fixed by the run's {planned} epochs",
                param_hint="--epochs",
            )
    elif isinstance(planned, int) and planned >= 1:
        opts["epochs"] = planned
    if not _given(ctx, "checkpoint_every") and isinstance(config.get("checkpoint_every"), int):
        opts["checkpoint_every"] = config["checkpoint_every"]
    early = resume.early_stopping
    if isinstance(early, dict) and early.get("stopped") is True:
        raise _user_error_type()(
            f"the run in {resume.path} stopped early at epoch {epoch} (val_loss had not improved "
            f"for {early.get('patience')} epochs; best epoch {early.get('best_epoch')}); start a "
            "new run to train further"
        )
    if resume.trainer["batch"] == 0 and epoch >= opts["epochs"]:
        raise _user_error_type()(
            f"the run in {resume.path} has finished its {epoch} epochs; pass --epochs N (N > "
            f"{epoch}) to train it further"
        )


def _checkpoint_dir(opts: dict[str, Any], resume: Any) -> Path | None:
    """Where this run writes checkpoints: --checkpoint-dir, else the resumed checkpoint's own
    directory. A fresh run never overwrites another run's checkpoint."""
    if opts["checkpoint_dir"] is None:
        if opts["checkpoint_every"] is not None and resume is None:
            raise click.BadParameter("needs --checkpoint-dir", param_hint="--checkpoint-every")
        return None if resume is None else resume.path.parent
    # Imported here, not above: it imports NumPy and Numba, which a plain run loads in parallel
    # with the data (see `train`).
    from numbamlp.checkpoint import CHECKPOINT_NAME

    directory = Path(opts["checkpoint_dir"])
    if directory.exists() and not directory.is_dir():
        raise click.BadParameter(f"{directory} is not a directory", param_hint="--checkpoint-dir")
    existing = directory / CHECKPOINT_NAME
    if existing.exists() and (resume is None or existing.resolve() != resume.path.resolve()):
        raise click.BadParameter(
            f"{directory} already holds a checkpoint; resume it with --resume {directory}, or "
            "choose another directory",
            param_hint="--checkpoint-dir",
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.BadParameter(
            f"cannot create {directory}: {exc.strerror or exc}", param_hint="--checkpoint-dir"
        ) from None
    if not os.access(directory, os.W_OK):
        raise click.BadParameter(f"{directory} is not writable", param_hint="--checkpoint-dir")
    return directory


def _interrupt_dir() -> Path:
    """A new directory for the checkpoint of an interrupted run that named none."""
    base = Path("numbamlp-checkpoint")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = Path(f"{base}-{n}")
    candidate.mkdir()
    return candidate


def _early_stopping(patience: int | None, model: Any, resume: Any) -> Any:
    """The run's validation.EarlyStopping (None without --patience), with a resumed run's state."""
    if patience is None:
        return None
    from numbamlp.validation import EarlyStopping

    early = EarlyStopping(patience, model.params.theta)
    if resume is not None and resume.early_stopping is not None:
        try:
            early.restore(resume.early_stopping, resume.best_theta)
        except _user_error_type() as exc:
            raise _user_error_type()(f"cannot resume {resume.path}: {exc}") from None
    return early


def _epoch_line(metrics: Any) -> str:
    """The line printed after each epoch (the fields of --metrics-out, rounded)."""
    accuracy = metrics.train_accuracy
    line = f"epoch {metrics.epoch:3d}  train_loss {metrics.train_loss:.4f}  train_accuracy " + (
        "n/a" if accuracy is None else f"{accuracy:.4f}"
    )
    if metrics.val_loss is not None:
        line += f"  val_loss {metrics.val_loss:.4f}  val_accuracy {metrics.val_accuracy:.4f}"
    return line + f"  test_accuracy {metrics.test_accuracy:.4f}  seconds {metrics.seconds:.2f}"


def _model_metadata(data: Any, opts: dict[str, Any], trainer: Any, history: list) -> dict:
    return {
        "dataset": data.name if opts["train_file"] is None else None,
        "class_names": list(data.class_names),
        "epochs": trainer.epoch if trainer.at_epoch_boundary else trainer.epoch - 1,
        "seed": opts["seed"],
        "test_accuracy": history[-1]["test_accuracy"] if history else None,
        "weight_decay": opts["weight_decay"],  # λ of R.1: the optimizer's steps followed ℓ_λ
        "input": _input_record(data).as_metadata(),
    }


def _input_record(data: Any) -> Any:
    """How the training features were scaled (predict/evaluate apply it: inputscale.py)."""
    from numbamlp.inputscale import record_for

    return record_for(data.X_train_raw, data.feature_scale)


def _model_inputs(model: Any, record: Any, X: Any, what: str) -> tuple[Any, float]:
    """(X, scale) for model.predict: checked, then scaled as the model's training data was."""
    from numbamlp.inputscale import prepare_input

    X, scale = prepare_input(model.check_inputs(X, what, raw=True), record, what)
    return model.check_inputs(X, what, raw=True), scale


def _progress(show: bool, length: int, label: str) -> Any:
    """A progress bar over an epoch's minibatches (rate, ETA, running loss: progress.py); a
    context giving None when off."""
    import contextlib

    if not show:
        return contextlib.nullcontext(None)
    from numbamlp.progress import EpochBar

    return EpochBar(sys.stdout, length, label)


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
    _check_writable(output_path, "--output")
    _set_threads(threads)
    import io

    from numbamlp import datasets
    from numbamlp.atomic import atomic_write
    from numbamlp.modelio import load_model

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
    _check_writable(output_path, "--output")
    if Path(output_path).resolve() == Path(model_path).resolve():
        raise click.BadParameter(
            f"{output_path} is the model file itself; give another name", param_hint="--output"
        )
    from numbamlp.export import export_safetensors
    from numbamlp.modelio import load_model

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
    from numbamlp.precompile import precompile as compile_kernels

    seconds = compile_kernels(dtypes, report=click.echo)
    click.echo(f"kernels for {', '.join(dtypes)} are in the JIT cache ({seconds:.1f} s)")


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
