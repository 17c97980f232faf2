"""``numbamlp train``: its options, parsed and passed to ``numbamlp.fit``, which runs the run."""

from __future__ import annotations

from typing import Any

import click

from numbamlp.cli.options import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    WEIGHT_DECAY_HELP,
    fraction,
    is_given,
    nonnegative_float,
    old_name,
    positive_float,
    take_old_names,
)

# The choices are the registries' names (tests/test_conventions.py checks it).
from numbamlp.training.config import (
    ACTIVATIONS,
    DATASETS,
    ENGINES,
    HEADS,
    OPTIMIZERS,
    SAMPLINGS,
    SCHEDULES,
    TASKS,
)

#: --class-weight's choices (Python's class_weight also takes a mapping {label: weight}).
CLASS_WEIGHTS = ("balanced",)


@click.command()
@click.option(
    "--dataset",
    type=click.Choice(DATASETS),
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
    "--label-column",
    default="label",
    show_default=True,
    help="Label column of CSV files: labels of any type (text, integers, booleans; the classes "
    "are their sorted unique values), or a regression's targets (several: a comma list, y1,y2).",
)
@click.option(
    "--n-classes",
    type=click.IntRange(min=2),
    default=None,
    help="Take the labels of --train-file as the class indices 0..N-1 themselves [default: the "
    "classes are the training labels' sorted unique values].",
)
@click.option(
    "--task",
    type=click.Choice(TASKS),
    default=None,
    help="[default: regression when the labels are floating-point numbers, 2.5 or 151.0 (or "
    "several columns), else classification].",
)
@click.option(
    "--standardize/--no-standardize",
    default=None,
    help="Standardise each feature with the training rows' mean and standard deviation (Z.1; "
    "a regression's targets too, Z.2), recorded in the model and applied by predict/evaluate. "
    "Default: on for --train-file data, off for the built-in image sets.",
)
@click.option(
    "--sample-weight-column",
    default=None,
    help="The CSV column (or .npz array) of --train-file holding each row's weight (not a "
    "feature): the loss is the weighted mean Σ w ℓ / Σ w.",
)
@click.option(
    "--class-weight",
    type=click.Choice(CLASS_WEIGHTS),
    default=None,
    help="balanced: weigh each class k by n / (M · n_k), as scikit-learn's.",
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
    help=f"Hidden activation(s), one for all or one per layer: {', '.join(ACTIVATIONS)}.",
)
@click.option(
    "--head",
    type=click.Choice(HEADS),
    default="softmax",
    show_default=True,
    help="Output head: softmax (M outputs) or MMiDS's γ̃ (M−1 outputs).",
)
@old_name("--output", "head", type=click.Choice(HEADS))
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True)
@click.option(
    "--lr",
    type=float,
    default=None,
    callback=positive_float,
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
    callback=positive_float,
    help="ε of Adagrad/Adadelta/RMSprop/Adam.",
)
@click.option(
    "--weight-decay",
    type=float,
    default=None,
    show_default=True,
    callback=nonnegative_float,
    help=WEIGHT_DECAY_HELP,
)
@click.option(
    "--dropout",
    type=str,
    default=None,
    help="Dropout rate p of the hidden layers, in [0, 1): one for all of them (0.5), or one per "
    "hidden layer (0.2,0.5). Inverted dropout: a unit is kept with probability 1 − p and scaled "
    "by 1/(1 − p); evaluation and prediction use every unit. The masks are a function of the "
    "seed, the step, the sample, the layer and the unit: the trained weights do not depend on "
    "--threads, the engine, MPI or resuming. Default: none.",
)
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
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
    callback=positive_float,
    help="Period of --schedule step; τ of inverse-time (in epochs).",
)
@click.option(
    "--min-lr", type=float, default=0.0, show_default=True, help="Final γ of --schedule cosine."
)
@click.option(
    "--sampling",
    type=click.Choice(SAMPLINGS),
    default="shuffle",
    show_default=True,
    help="shuffle: a permutation per epoch; iid: indices uniform with replacement (FB §1).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Minibatch size [default: 128 for --dataset; for your own data about a tenth of the "
    "training rows, 16 to 200].",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Train exactly this many epochs [default: 20 for --dataset; for your own data until "
    "the loss converges (--tol, --n-iter-no-change), at most --max-epochs].",
)
@click.option(
    "--max-epochs",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Without --epochs: the most epochs a run to convergence makes.",
)
@click.option(
    "--tol",
    type=float,
    default=1e-4,
    show_default=True,
    callback=nonnegative_float,
    help="Without --epochs: the run has converged when the monitored loss (training loss; "
    "val_loss with --validation-fraction) has not fallen below its best − tol for "
    "--n-iter-no-change epochs in a row (as scikit-learn's MLPClassifier).",
)
@click.option(
    "--n-iter-no-change",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Without --epochs: epochs without an improvement by --tol before the run stops.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Worker threads; results do not depend on it. Default: all cores, or one while another "
    "process holds a core (the fused engine chooses call by call).",
)
@click.option(
    "--dtype", type=click.Choice(("float32", "float64")), default="float32", show_default=True
)
@click.option(
    "--validation-fraction",
    type=float,
    default=0.0,
    show_default=True,
    callback=fraction,
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
    callback=positive_float,
    help="Also print the test accuracy during an epoch, at most every this many seconds.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
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
    callback=positive_float,
    help="With --distributed: seconds a rank waits for the others before it ends the run.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Draw a progress bar over each epoch's minibatches (on MPI rank 0). Default: only "
    "when standard output is a terminal and no MPI launcher started the process (mpiexec "
    "gives every rank a terminal, even when its own output goes to a file).",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the final result.")
@click.pass_context
def train(ctx: click.Context, **opts: Any) -> None:
    """Train an MLP; the defaults reproduce MMiDS §7.3 on MNIST.

    Dense(784 => 32, σ) → Dense(32 => 10) → softmax, cross-entropy, Adam(1e-3), batch 128,
    20 shuffled epochs, float32, Glorot-uniform weights, seed 0. On your own data (--train-file)
    it trains until the loss converges, with minibatches of about a tenth of the rows.

    Ctrl-C (or SIGTERM) finishes the current minibatches, writes a checkpoint and says how to
    resume; a second Ctrl-C stops at once.
    """
    take_old_names(ctx, opts)
    quiet = opts.pop("quiet")
    download = not opts.pop("no_download")
    from numbamlp.cli.commands import cli_message
    from numbamlp.training.fit import fit
    from numbamlp.training.runner import LOG_WORDS

    words = LOG_WORDS.set(lambda message: cli_message(message, train))  # the log in our flags
    try:
        given = [name for name in opts if is_given(ctx, name)]
        result = fit(**opts, download=download, verbose=0 if quiet else 1, given_options=given)
    except KeyboardInterrupt:  # the second Ctrl-C: fit said what was kept
        ctx.exit(EXIT_INTERRUPTED)
    finally:
        LOG_WORDS.reset(words)
    if result.stopped is not None:
        if result.checkpoint is not None:
            click.echo(f"resume with: {resume_command(result)}", err=True)
        ctx.exit(EXIT_INTERRUPTED if result.stopped == "SIGINT" else EXIT_TERMINATED)
    if quiet and result.summary:
        if _lead_process():
            click.echo(cli_message(result.summary, train))


def resume_command(result: Any) -> str:
    """The command that finishes a stopped run, its outputs spelled out (the checkpoint
    remembers them too, so ``--resume DIR`` alone writes the same files)."""
    import shlex

    words = ["numbamlp", "train", "--resume", str(result.checkpoint.parent)]
    for name, path in result.outputs.items():
        words += ["--" + name.replace("_", "-"), path]
    return " ".join(shlex.quote(word) for word in words)


def _lead_process() -> bool:
    """Whether this process prints a run's result: the only one, or MPI rank 0."""
    from numbamlp.engines.cluster import launched_rank

    return launched_rank() == 0
