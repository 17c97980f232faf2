"""``numbamlp evaluate``, ``predict`` and ``export``: what a saved model does with new data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from numbamlp.cli.options import (
    MODEL_OPTION,
    check_writable,
    model_inputs,
    set_threads,
)
from numbamlp.errors import NumbamlpError

# The choices are the registries' names (tests/test_conventions.py checks it).
from numbamlp.training.config import DATASETS, EXPORT_FORMATS


@click.command()
@MODEL_OPTION
@click.option(
    "--dataset",
    type=click.Choice(DATASETS),
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
@click.option(
    "--label-column",
    default=None,
    help="Label column of a CSV test file (a regression's targets: a comma list, y1,y2) "
    "[default: the training file's, as the model records it, else label].",
)
@click.option("--threads", type=click.IntRange(min=1), default=None)
def evaluate(
    model_path: str,
    dataset: str | None,
    data_dir: str | None,
    test_file: str | None,
    label_column: str | None,
    threads: int | None,
) -> None:
    """Print the test accuracy, the confusion matrix and each class's precision, recall and F1
    of a saved classifier; a regressor's MSE, MAE and R²."""
    set_threads(threads)
    from numbamlp.datasets import loaders as datasets
    from numbamlp.datasets import userfiles
    from numbamlp.kernels.metrics import (
        accuracy,
        confusion_matrix,
        format_class_report,
        format_confusion_matrix,
    )
    from numbamlp.model.modelio import load_model

    loaded = load_model(model_path)
    model = loaded.model
    class_names = loaded.metadata.get("class_names")
    label_column = label_column or recorded_column(loaded.metadata, "label_column") or "label"
    scale = 1.0
    if test_file is not None:
        source = test_file
        if loaded.target is not None:
            X, y = userfiles.load_arrays_file(test_file, label_column, task="regression")
            X, scale = model_inputs(model, loaded.input, X, f"features of {source}")
            _evaluate_regression(loaded, X, y, scale, source)
            return
        names = class_names
        if not names or len(names) != model.architecture.n_classes:
            names = [str(k) for k in range(model.architecture.n_classes)]
        X, y = userfiles.load_arrays_file(
            test_file, label_column, class_names=names, task="classification"
        )
        X, scale = model_inputs(model, loaded.input, X, f"features of {source}")
    else:
        name = dataset or loaded.metadata.get("dataset")
        if name is None:
            raise click.UsageError(
                "this model names no built-in data set to evaluate on: "
                "give --test-file or --dataset"
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
    click.echo(format_class_report(C, names))


def _evaluate_regression(loaded: Any, X: Any, y: Any, scale: float, source: str) -> None:
    """A regressor's E.1–E.3 on (X, y), in the targets' own units (Z.2 inverted)."""
    from numbamlp.kernels.metrics import mean_absolute_error, mean_squared_error, r2_score

    model, target = loaded.model, loaded.target
    if y.shape[1] != len(target.names):
        raise NumbamlpError(
            f"{source} has {y.shape[1]} target column(s) but the model predicts "
            f"{len(target.names)} ({', '.join(target.names)}); name them with `label_column`"
        )
    X = model.check_inputs(X, f"features of {source}", raw=True)
    predicted = target.restore(model.predict(X, scale))
    click.echo(f"{model}")
    click.echo(
        f"MSE {mean_squared_error(y, predicted):.6g}, MAE {mean_absolute_error(y, predicted):.6g}"
        f", R² {r2_score(y, predicted):.4f} on {X.shape[0]} samples ({source}; targets "
        f"{', '.join(target.names)})"
    )


@click.command()
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
    help="Write the predictions here instead of standard output, in the format its suffix "
    "names: .csv or .txt text (as printed: class names, or a regressor's values under their "
    "target names), .npy the class indices (n,) (a regressor's values (n, T)) as one NumPy "
    "array, .npz the arrays classes (n,) and class_names (M,), with --proba probabilities "
    "(n, M) (a regressor's: values (n, T) and target_names).",
)
@click.option(
    "--label-column",
    default=None,
    help="A label column of a CSV input, left out [default: the training file's, as the model "
    "records it, else label].",
)
@click.option(
    "--proba",
    is_flag=True,
    help="Also write the class probabilities, one column per class headed by its name (CSV "
    "text, or the array probabilities of .npz).",
)
@click.option("--threads", type=click.IntRange(min=1), default=None)
def predict(
    model_path: str,
    input_path: str,
    output_path: str | None,
    label_column: str | None,
    proba: bool,
    threads: int | None,
) -> None:
    """Write the predicted class (its name) of every input row, or a regressor's values."""
    check_writable(output_path, "output_path")
    kind = None if output_path is None else prediction_format(output_path, proba)
    from numbamlp.datasets.paths import check_distinct_paths

    check_distinct_paths(
        {"output_path": output_path}, [("model_path", model_path), ("input_path", input_path)]
    )
    set_threads(threads)
    import csv
    import io

    import numpy as np

    from numbamlp.datasets import userfiles
    from numbamlp.datasets.atomic import atomic_write
    from numbamlp.model.modelio import load_model

    loaded = load_model(model_path)
    model = loaded.model
    if loaded.target is not None and proba:
        raise NumbamlpError("`proba`: the model is a regressor; it predicts values, not classes")
    label_column = label_column or recorded_column(loaded.metadata, "label_column") or "label"
    X = userfiles.load_features_file(
        input_path, label_column, recorded_column(loaded.metadata, "sample_weight_column")
    )
    X, scale = model_inputs(model, loaded.input, X, f"features of {input_path}")
    lines = io.StringIO()
    writer = csv.writer(lines, lineterminator="\n")
    arrays: dict[str, Any]
    if loaded.target is not None:  # a regressor: values in the targets' units (Z.2 inverted)
        values = loaded.target.restore(model.predict(X, scale))
        arrays = {"values": values, "target_names": np.array(loaded.target.names)}
        writer.writerow(loaded.target.names)
        for row in values:
            writer.writerow([f"{v:.9g}" for v in row])
        first = "values"
    else:
        classes = model.predict(X, scale)
        M = model.architecture.n_classes
        names = loaded.metadata.get("class_names")
        if not names or len(names) != M:
            names = [str(k) for k in range(M)]
        arrays = {"classes": np.asarray(classes, dtype=np.int64), "class_names": np.array(names)}
        if proba:
            probabilities = model.predict_proba(X, scale)
            arrays["probabilities"] = np.asarray(probabilities)
            writer.writerow(["class", *names])
            for c, row in zip(classes, probabilities, strict=True):
                writer.writerow([names[c], *(f"{p:.6g}" for p in row)])
        else:
            for c in classes:
                writer.writerow([names[c]])
        first = "classes"
    n = X.shape[0]
    if output_path is not None and kind in ("npy", "npz"):
        if kind == "npy":
            atomic_write(output_path, lambda f: np.save(f, arrays[first], allow_pickle=False))
        else:
            atomic_write(output_path, lambda f: np.savez(f, **arrays))
        click.echo(f"wrote {n} predictions to {output_path}", err=True)
        return
    if output_path is None:
        click.echo(lines.getvalue(), nl=False)
    else:
        atomic_write(output_path, lambda f: f.write(lines.getvalue().encode()))
        click.echo(f"wrote {n} predictions to {output_path}", err=True)


def recorded_column(metadata: dict[str, Any], key: str) -> str | None:
    """A column name the model file records of its training file (``label_column``,
    ``sample_weight_column``), or None."""
    value = metadata.get(key)
    return value if isinstance(value, str) and value else None


#: predict's output formats, by suffix (lower case).
PREDICTION_FORMATS = {".csv": "text", ".txt": "text", ".npy": "npy", ".npz": "npz"}


def prediction_format(path: str, proba: bool) -> str:
    """The format ``predict`` writes ``path`` in, from its suffix; a usage error for any other
    suffix, and for ``--proba`` with ``.npy`` (which holds one array: the classes)."""
    suffix = Path(path).suffix.lower()
    kind = PREDICTION_FORMATS.get(suffix)
    if kind is None:
        what = f"a {suffix} file" if suffix else "a file without a suffix"
        raise NumbamlpError(
            f"`output_path`: cannot write predictions to {what} ({path}); name it .csv or .txt "
            "(text), .npy (the classes as a NumPy array) or .npz (the arrays classes and "
            "probabilities)"
        )
    if kind == "npy" and proba:
        raise NumbamlpError(
            f"`output_path`: {path} is a .npy file, which holds one array (the classes); with "
            "`proba`, name it .npz (the arrays classes and probabilities) or .csv"
        )
    return kind


# ---------------------------------------------------------------------------------------------
# export


@click.command(name="export")
@MODEL_OPTION
@click.option(
    "--format",
    "export_format",
    type=click.Choice(EXPORT_FORMATS),
    default=None,
    help="safetensors: tensors named as a PyTorch nn.Sequential of Linear and activation "
    'modules ("0.weight", "0.bias", "2.weight", …), W^k of shape (d_k, d_{k-1}); onnx: the '
    "network as an ONNX graph (Gemm, the activations, Softmax) that takes the raw features "
    "and outputs probabilities and label, or a regressor's values [default: onnx for an "
    "--output ending .onnx, else safetensors].",
)
@click.option(
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The file to write (atomically; an existing file is replaced only when complete).",
)
def export_model(model_path: str, export_format: str | None, output_path: str) -> None:
    """Write a saved model for other frameworks: its weights as safetensors (needs
    numbamlp[export]) or the network as an ONNX graph (needs numbamlp[onnx])."""
    check_writable(output_path, "output_path")
    from numbamlp.datasets.paths import check_distinct_paths

    check_distinct_paths({"output_path": output_path}, [("model_path", model_path)])
    from numbamlp.model.modelio import load_model

    if export_format is None:
        export_format = "onnx" if Path(output_path).suffix.lower() == ".onnx" else "safetensors"
    loaded = load_model(model_path)
    arch = loaded.model.architecture
    if export_format == "onnx":
        from numbamlp.model.onnx_export import export_onnx

        export_onnx(output_path, loaded.model, loaded.metadata)
        outputs = "values" if arch.head == "identity" else "probabilities and label"
        click.echo(
            f"wrote an ONNX graph ({arch.L} Gemm layers, {arch.n_parameters:,} parameters, "
            f"{loaded.model.dtype}; input features (n, {arch.sizes[0]}), outputs {outputs}) "
            f"to {output_path}",
            err=True,
        )
        return
    from numbamlp.model.export import export_safetensors

    export_safetensors(output_path, loaded.model, loaded.metadata)
    click.echo(
        f"wrote {2 * arch.L} tensors ({arch.n_parameters:,} parameters, {loaded.model.dtype}) "
        f"to {output_path}",
        err=True,
    )


# ---------------------------------------------------------------------------------------------
# gradcheck / info
