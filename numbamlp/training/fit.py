"""``numbamlp.fit``: one training run, from the data to the saved model.

The command line's ``numbamlp train`` and the scikit-learn estimators call this function; every
``numbamlp train`` option is a keyword here with the same name (dashes as underscores) and the
same default, so the two give the same model files, bit for bit. The loop is short: call the
engine (training.Trainer.run_batches) until the epoch ends, measure, let the callbacks observe
(callbacks.py); everything else is preparation (data, model, resume) and reporting.

Messages name parameters as the library spells them, in backquotes (`` `lr=1e-4` ``); the
command line rewrites them as its flags (``--lr 1e-4``).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from numbamlp.training.callbacks import Callback

if TYPE_CHECKING:
    import numpy as np

    from numbamlp.datasets.loaders import Dataset
    from numbamlp.model.mlp import MLP
    from numbamlp.training.runner import FitResult


def fit(
    data: Dataset | np.ndarray | None = None,
    y: np.ndarray | None = None,
    *,
    X_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    model: MLP | FitResult | None = None,
    dataset: str = "mnist",
    data_dir: str | None = None,
    train_file: str | None = None,
    test_file: str | None = None,
    label_column: str = "label",
    n_classes: int | None = None,
    task: str | None = None,
    standardize: bool | None = None,
    sample_weight: np.ndarray | None = None,
    sample_weight_column: str | None = None,
    class_weight: str | Mapping[Any, float] | None = None,
    download: bool = True,
    hidden: Sequence[int] | int | str = (32,),
    activation: Sequence[str] | str = "sigmoid",
    head: str = "softmax",
    optimizer: str = "adam",
    lr: float | None = None,
    momentum: float | None = None,
    beta1: float | None = None,
    beta2: float | None = None,
    rho: float | None = None,
    eps: float | None = None,
    weight_decay: float | None = None,
    dropout: float | Sequence[float] | str | None = None,
    schedule: str = "constant",
    decay_rate: float = 0.5,
    decay_epochs: float = 5.0,
    min_lr: float = 0.0,
    sampling: str = "shuffle",
    batch_size: int | None = None,
    epochs: int | None = None,
    max_epochs: int = 1000,
    tol: float = 1e-4,
    n_iter_no_change: int = 10,
    seed: int | None = 0,
    threads: int | None = None,
    dtype: str = "float32",
    validation_fraction: float = 0.0,
    patience: int | None = None,
    save: str | os.PathLike[str] | None = None,
    metrics_out: str | os.PathLike[str] | None = None,
    eval_every: float | None = None,
    engine: str = "fused",
    device: str = "cpu",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: str | os.PathLike[str] | None = None,
    distributed: bool | None = None,
    mpi_timeout: float = 300.0,
    progress: bool | None = None,
    verbose: int = 1,
    callbacks: Sequence[Callback] = (),
    given_options: Collection[str] = (),
) -> FitResult:
    """Train an MLP; with no arguments, MMiDS §7.3 on the bundled MNIST.

    Data: a ``Dataset`` (``load_mnist()``, ``load_dataset(...)``), or arrays ``fit(X, y,
    X_test=..., y_test=...)`` with integer labels 0..M−1, or nothing (``dataset``,
    ``train_file``/``test_file`` name what to load, as ``numbamlp train`` does). ``model``
    continues training an existing MLP (with a fresh optimizer) instead of creating one; given
    the ``FitResult`` of an earlier run, it continues that run exactly — its optimizer's state
    and step count, its minibatch generator — on the data given now (so that ``fit(X, y,
    epochs=1)`` then ``fit(X, y, model=result, epochs=1)`` is bitwise ``fit(X, y, epochs=2)``
    under a constant step size; the estimators' ``partial_fit``).

    Every other keyword is the ``numbamlp train`` option of the same name (``numbamlp train
    --help``): the network (``hidden``, ``activation``, ``head``, ``dtype``), the optimizer
    (``optimizer``, ``lr``, ``momentum``, ``beta1``, ``beta2``, ``rho``, ``eps``,
    ``weight_decay``), dropout (``dropout``: the rate p of D.1–D.3, one for every hidden layer or
    one per hidden layer, each in [0, 1); the masks are a function of the seed, the step, the
    sample's row, the layer and the unit, so the trained θ is the same for any thread or process
    count, engine or device, and after a resume; evaluation and prediction use no mask), the
    step sizes (``schedule``, ``decay_rate``, ``decay_epochs``,
    ``min_lr``), the minibatches (``sampling``, ``batch_size``, ``seed``), the length (``epochs``,
    ``max_epochs``, ``tol``, ``n_iter_no_change``, below), the
    engine (``engine``, ``device``, ``threads``, ``distributed``, ``mpi_timeout``), validation
    (``validation_fraction``, ``patience``), and the files (``save``, ``metrics_out``,
    ``checkpoint_dir``, ``checkpoint_every``, ``resume``), and ``progress``: a progress bar
    over each epoch's minibatches on standard output, ``None`` (the default) drawing it only
    when standard output is a terminal, ``verbose`` ≥ 1 and no MPI launcher (mpiexec, srun)
    started this process, ``True`` always on the run's lead process (alone, or MPI rank 0),
    even into a file or a pipe, ``False`` never. ``verbose`` is how much the run logs on
    standard output: ``0`` nothing (errors and the interruption messages still go to standard
    error), ``1`` (the default) the model, one line per epoch and the summary line.
    ``callbacks`` observe the run (numbamlp.Callback).

    The data's labels may be of any type (text, integers with gaps, booleans): the classes are
    their sorted unique values, as scikit-learn's; ``n_classes`` instead takes them as the
    class indices 0..n_classes−1 themselves. ``task`` None infers classification or regression
    (regression when the labels are floating-point numbers — 2.5 or 151.0 in a CSV, a float
    array — or several target
    columns); ``"regression"`` trains the identity head on the squared error. ``standardize``
    (Z.1: each feature less its training mean, over its standard deviation; a regression's
    targets too, Z.2) is on for feature data when None, off for the built-in image sets of
    bytes; the model file records it and ``predict`` applies it. ``sample_weight`` (n,) weighs
    the training rows (arrays given to fit); ``sample_weight_column`` names the column of
    ``train_file`` that holds them; ``class_weight`` ``"balanced"`` (C.1: n/(M·n_k)) or a
    mapping {label: weight} multiplies them by class.

    The length: ``epochs=N`` trains exactly N epochs. Without it (``None``, the default) a
    built-in image set trains 20 (MMiDS §7.3), and other data until the monitored loss converges
    — the training loss, or with ``validation_fraction`` the validation loss (then keeping the
    best epoch's weights) — that is until for ``n_iter_no_change`` epochs in a row it has not
    fallen below its best − ``tol`` (scikit-learn's rule and defaults), at most ``max_epochs``;
    ``result.converged`` and ``result.stop_reason`` say how it ended. ``batch_size=None`` is
    128 on a built-in set, else about a tenth of the training rows, between 16 and 200
    (training.config.default_batch_size). A run that makes fewer than 100 steps in all warns.

    ``resume`` continues the run whose checkpoint is in that directory (or file), bit for bit
    as if it had not stopped. It keeps the options the run started with: a keyword left at its
    default takes the checkpoint's value, any other must equal it (``epochs`` may grow).
    ``given_options`` names keywords that count as given even at their default value (the
    command line passes the options the user typed, so that ``--head softmax`` is checked).
    The checkpoint also remembers ``save`` and ``metrics_out``: a resumed run writes them unless
    given others. A run that had finished (stopped after its last checkpoint, before writing
    them) is finished by ``resume``: its outputs are written without training. Only one run at a
    time may use a checkpoint directory (an OS lock, held for the run's life).

    A run stopped by SIGINT/SIGTERM or by a callback's ``run.request_stop()`` writes its
    checkpoint and returns with ``stopped`` set; a second signal raises KeyboardInterrupt.
    Problems with the input raise NumbamlpError; divergence raises TrainingDiverged.
    """
    given = {
        "hidden": hidden,
        "activation": activation,
        "head": head,
        "optimizer": optimizer,
        "lr": lr,
        "momentum": momentum,
        "beta1": beta1,
        "beta2": beta2,
        "rho": rho,
        "eps": eps,
        "weight_decay": weight_decay,
        "dropout": dropout,
        "schedule": schedule,
        "decay_rate": decay_rate,
        "decay_epochs": decay_epochs,
        "min_lr": min_lr,
        "sampling": sampling,
        "batch_size": batch_size,
        "seed": seed,
        "dtype": dtype,
        "engine": engine,
        "device": device,
        "validation_fraction": validation_fraction,
        "patience": patience,
    }
    data_given = {
        "dataset": dataset,
        "data_dir": data_dir,
        "train_file": train_file,
        "test_file": test_file,
        "label_column": label_column,
        "n_classes": n_classes,
        "task": task,
        "standardize": standardize,
        "sample_weight_column": sample_weight_column,
        "class_weight": _class_weight_record(class_weight),
    }
    from numbamlp.training.plan import RunPlan
    from numbamlp.training.runner import Inputs, execute

    plan = RunPlan.create(
        given,
        data_given,
        epochs=epochs,
        stopping={"max_epochs": max_epochs, "tol": tol, "n_iter_no_change": n_iter_no_change},
        checkpoint_every=checkpoint_every,
        resume=resume,
        given_options=frozenset(given_options),
        outputs={"save": save, "metrics_out": metrics_out},
    )
    return execute(
        plan,
        Inputs(data, y, X_test, y_test, model, download, threads, sample_weight),
        save=save,
        metrics_out=metrics_out,
        eval_every=eval_every,
        checkpoint_dir=checkpoint_dir,
        distributed=distributed,
        mpi_timeout=mpi_timeout,
        progress=progress,
        verbose=verbose,
        callbacks=callbacks,
    )


def _class_weight_record(class_weight: Any) -> Any:
    """``class_weight`` as the run's data record holds it (JSON): a mapping's labels as the
    classes' names."""
    if class_weight is None or isinstance(class_weight, str):
        return class_weight
    if not isinstance(class_weight, Mapping):
        from numbamlp.errors import NumbamlpError

        raise NumbamlpError(
            f"`class_weight`: give 'balanced' or a mapping {{label: weight}}, got "
            f"{type(class_weight).__name__}"
        )
    from numbamlp.datasets.userfiles import label_name

    return {label_name(label): weight for label, weight in class_weight.items()}


def train(*args: Any, **kwargs: Any) -> Any:
    """Deprecated since 0.2.0: use ``numbamlp.fit``. ``numbamlp.train(model, X, y, config,
    rng, ...)`` still runs ``training.train`` with the same arguments and results."""
    import warnings

    from numbamlp.training.trainer import train as train_model

    warnings.warn(
        "numbamlp.train is deprecated; use numbamlp.fit (the same run as `numbamlp train`)",
        DeprecationWarning,
        stacklevel=2,
    )
    return train_model(*args, **kwargs)
