"""``numbamlp gradcheck``, ``info`` and ``precompile``: checking backprop, the installation, the
JIT cache."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from numbamlp.cli.options import (
    nonnegative_float,
    old_name,
    positive_float,
    take_old_names,
)

# The choices are the registries' names (tests/test_conventions.py checks it).
from numbamlp.training.config import ACTIVATIONS, HEADS


@click.command()
@click.option("--inputs", type=click.IntRange(min=1), default=6, show_default=True, help="d_0.")
@click.option("--hidden", multiple=True, default=("5,4",), show_default=True)
@click.option("--activation", multiple=True, default=("sigmoid",), show_default=True)
@click.option("--n-classes", type=click.IntRange(min=2), default=4, show_default=True, help="M.")
@old_name("--classes", "n_classes", type=click.IntRange(min=2))
@click.option("--head", type=click.Choice(HEADS), default="softmax", show_default=True)
@old_name("--output", "head", type=click.Choice(HEADS))
@click.option("--samples", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--fd-step",
    type=float,
    default=1e-6,
    show_default=True,
    callback=positive_float,
    help="Finite-difference step ε.",
)
@old_name("--eps", "fd_step", type=float, callback=positive_float)
@click.option(
    "--tolerance",
    type=float,
    default=1e-6,
    show_default=True,
    callback=positive_float,
    help="Largest relative error that passes.",
)
@click.option(
    "--weight-decay",
    type=float,
    default=0.0,
    show_default=True,
    callback=nonnegative_float,
    help="λ: check the gradient of ℓ + (λ/2) Σ W² (weights only, as train --weight-decay).",
)
@click.pass_context
def gradcheck(ctx: click.Context, **opts: Any) -> None:
    """Check backprop against central finite differences on a small random network (float64).

    With --weight-decay λ the objective is ℓ_λ = ℓ + (λ/2) Σ W² (R.1), penalty included in both
    the backprop gradient and the differences."""
    take_old_names(ctx, opts)
    inputs, hidden, activation = opts["inputs"], opts["hidden"], opts["activation"]
    classes, head, samples, seed = opts["n_classes"], opts["head"], opts["samples"], opts["seed"]
    eps, tolerance, weight_decay = opts["fd_step"], opts["tolerance"], opts["weight_decay"]
    from numbamlp.training.config import parse_activations, parse_hidden

    widths = list(parse_hidden(hidden))
    activations = list(parse_activations(activation, len(widths), ACTIVATIONS))
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
    y = (
        rng.normal(size=(samples, classes))
        if head == "identity"
        else rng.integers(0, classes, size=samples)
    )
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


@click.command()
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


@click.command()
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
