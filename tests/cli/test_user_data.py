"""Practitioners' tables on the command line (issue 18): labels of any type, standardised
features (Z.1), regression files, sample and class weights; `train`, `predict`, `evaluate`.

The tables are scikit-learn's bundled iris (string labels, as its target names) and diabetes
(a regression), split 70/30."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
from cli_support import one_error_line, run

from numbamlp.datasets.inputscale import prepare_input
from numbamlp.model.modelio import load_model

datasets = pytest.importorskip("sklearn.datasets")
model_selection = pytest.importorskip("sklearn.model_selection")

FAST = ("--epochs", "40", "--batch-size", "16", "--lr", "0.01")
IRIS_NAMES = ("setosa", "versicolor", "virginica")


def write_csv(path: Path, X: np.ndarray, columns: list[str], labels: dict[str, list]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*columns, *labels])
        for s, row in enumerate(X):
            writer.writerow([*(repr(float(v)) for v in row), *(v[s] for v in labels.values())])
    return path


@pytest.fixture(scope="module")
def iris(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("iris")
    bunch = datasets.load_iris()
    names = np.asarray(bunch.target_names)[bunch.target]
    X_tr, X_te, y_tr, y_te = model_selection.train_test_split(
        bunch.data, names, test_size=0.3, stratify=names, random_state=0
    )
    columns = [c.replace(" (cm)", "").replace(" ", "_") for c in bunch.feature_names]
    files = {
        "train": write_csv(root / "train.csv", X_tr, columns, {"species": list(y_tr)}),
        "test": write_csv(root / "test.csv", X_te, columns, {"species": list(y_te)}),
        "features": write_csv(root / "features.csv", X_te, columns, {}),
        "model": root / "model.npz",
    }
    result = run(
        "train", "--train-file", files["train"], "--test-file", files["test"],
        "--label-column", "species", *FAST, "--save", files["model"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    files["log"] = result.output  # type: ignore[assignment]
    files["y_test"] = y_te  # type: ignore[assignment]
    return files


def test_string_labels_train_a_network_with_named_classes(iris):
    log = iris["log"]
    assert "Dense(4 => 32, sigmoid) → Dense(32 => 3) → softmax" in log
    accuracy = float(re.search(r"^test accuracy (\S+) after", log, flags=re.M)[1])
    assert accuracy >= 0.9  # standardised features: iris is easy
    loaded = load_model(iris["model"])
    assert loaded.metadata["class_names"] == list(IRIS_NAMES)
    assert loaded.input.standardized and len(loaded.input.std) == 4
    assert loaded.metadata["input"]["mean"] == pytest.approx(list(loaded.input.mean))


def test_predict_writes_class_names_and_proba_columns_named_by_class(iris, tmp_path):
    result = run("predict", "--model", iris["model"], "--input", iris["features"])
    assert result.exit_code == 0, result.output
    predicted = result.stdout.splitlines()
    assert len(predicted) == 45 and set(predicted) <= set(IRIS_NAMES)
    assert np.mean(np.array(predicted) == iris["y_test"]) >= 0.9
    out = tmp_path / "p.csv"
    result = run("predict", "--model", iris["model"], "--input", iris["features"], "--proba",
                 "--output", out)  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["class", *IRIS_NAMES]
    assert [r[0] for r in rows[1:]] == predicted
    # the raw features, standardised by the model's record, give the same classes in Python
    loaded = load_model(iris["model"])
    X = np.loadtxt(iris["features"], delimiter=",", skiprows=1)
    classes = loaded.model.predict(*prepare_input(X, loaded.input, "x", loaded.model.dtype))
    assert [IRIS_NAMES[c] for c in classes] == predicted


def test_evaluate_names_both_axes_and_reports_each_class(iris):
    result = run("evaluate", "--model", iris["model"], "--test-file", iris["test"],
                 "--label-column", "species")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("rows: true class"))
    assert lines[head + 1].split("|")[1].split() == list(IRIS_NAMES)
    assert [lines[head + 3 + k].split("|")[0].strip() for k in range(3)] == list(IRIS_NAMES)
    report = lines.index(next(line for line in lines if line.lstrip().startswith("class ")))
    assert lines[report].split() == ["class", "precision", "recall", "f1", "support"]
    rows = [lines[report + 1 + k].split() for k in range(3)]
    assert [r[0] for r in rows] == list(IRIS_NAMES)
    assert sum(int(r[4]) for r in rows) == 45
    assert all(0.0 <= float(v) <= 1.0 for r in rows for v in r[1:4])


def test_evaluate_names_a_label_the_model_does_not_know(iris, tmp_path):
    text = Path(iris["test"]).read_text().replace("setosa", "iris-x", 1)
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    result = run("evaluate", "--model", iris["model"], "--test-file", bad,
                 "--label-column", "species")  # fmt: skip
    one_error_line(result, "label 'iris-x'", "not one of the 3 classes", "setosa")


def test_missing_value_is_one_error_naming_file_line_and_column(iris, tmp_path):
    lines = Path(iris["train"]).read_text().splitlines()
    cells = lines[4].split(",")
    cells[2] = "NA"
    lines[4] = ",".join(cells)
    bad = tmp_path / "missing.csv"
    bad.write_text("\n".join(lines) + "\n")
    result = run("train", "--train-file", bad, "--label-column", "species", "--epochs", "1")
    one_error_line(result, str(bad), "missing value 'NA' at line 5, column 'petal_length'")


def test_integer_labels_with_gaps_make_a_two_class_network(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.choice([3, 8], size=60)
    X = rng.normal(size=(60, 2)) + (y[:, None] == 8) * 3.0
    path = write_csv(tmp_path / "g.csv", X, ["a", "b"], {"label": list(y)})
    model = tmp_path / "g.npz"
    result = run("train", "--train-file", path, "--test-file", path, *FAST, "--save", model)
    assert result.exit_code == 0, result.output
    assert "Dense(32 => 2)" in result.output
    assert load_model(model).metadata["class_names"] == ["3", "8"]
    result = run("predict", "--model", model, "--input", path)
    assert set(result.stdout.split()) <= {"3", "8"}


def test_no_standardize_keeps_the_raw_features(iris, tmp_path):
    model = tmp_path / "raw.npz"
    result = run("train", "--train-file", iris["train"], "--label-column", "species",
                 "--epochs", "1", "--no-standardize", "--save", model)  # fmt: skip
    assert result.exit_code == 0, result.output
    loaded = load_model(model)
    assert not loaded.input.standardized and "mean" not in loaded.metadata["input"]


def test_class_weight_and_sample_weight_column_reach_the_trainer(iris, tmp_path, monkeypatch):
    """The weights the Trainer receives: C.1 times the file's column (H1's Trainer takes
    them; until then the keyword is what this checks)."""
    text = Path(iris["train"]).read_text().splitlines()
    weighted = tmp_path / "w.csv"
    weighted.write_text(
        "\n".join([text[0] + ",w"] + [f"{line},{1 + i % 2}" for i, line in enumerate(text[1:])])
        + "\n"
    )
    seen = {}

    class Stop(Exception):
        pass

    def spy(*args, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr("numbamlp.training.trainer.Trainer", spy)
    import numbamlp

    with pytest.raises(Stop):
        numbamlp.fit(train_file=str(weighted), test_file=str(iris["test"]), epochs=1,
                     label_column="species", verbose=0, sample_weight_column="w",
                     class_weight="balanced")  # the test file has no weight column  # fmt: skip
    w = seen["sample_weight"]
    assert w.shape == (105,) and w.dtype == np.float64
    np.testing.assert_array_equal(w, [1 + i % 2 for i in range(105)])  # 35 rows per class


def test_bad_class_weight_is_one_error_line(iris):
    result = run("train", "--train-file", iris["train"], "--label-column", "species",
                 "--class-weight", "heavy")  # fmt: skip
    assert result.exit_code == 2 and "heavy" in result.output


# --- regression: runs once the identity head (F.5, L.2, B.5) is in the model -------------------


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("diabetes")
    bunch = datasets.load_diabetes()
    X_tr, X_te, y_tr, y_te = model_selection.train_test_split(
        bunch.data, bunch.target * 1.5, test_size=0.3, random_state=0
    )  # × 1.5: targets that are not all integers, so the task is inferred
    columns = list(bunch.feature_names)
    return {
        "train": write_csv(root / "train.csv", X_tr, columns, {"progression": list(y_tr)}),
        "test": write_csv(root / "test.csv", X_te, columns, {"progression": list(y_te)}),
        "features": write_csv(root / "features.csv", X_te, columns, {}),
        "y_test": y_te,  # type: ignore[dict-item]
        "root": root,
    }


def test_regression_is_inferred_trained_predicted_and_evaluated(diabetes):
    from numbamlp.kernels.metrics import r2_score

    model = diabetes["root"] / "model.npz"
    result = run("train", "--train-file", diabetes["train"], "--test-file", diabetes["test"],
                 "--label-column", "progression", *FAST, "--save", model)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "task: regression" in result.output and "--task classification" in result.output
    assert "Dense(32 => 1)" in result.output
    loaded = load_model(model)
    assert loaded.target.names == ("progression",) and loaded.target.std[0] > 1
    assert loaded.metadata["target"]["mean"] == [pytest.approx(loaded.target.mean[0])]

    result = run("predict", "--model", model, "--input", diabetes["features"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "progression" and len(lines) == 1 + len(diabetes["y_test"])
    values = np.array([float(v) for v in lines[1:]])
    assert 25 < values.mean() < 500  # the targets' own units (Z.2 inverted), not standardised
    r2 = r2_score(diabetes["y_test"], values)

    result = run("evaluate", "--model", model, "--test-file", diabetes["test"],
                 "--label-column", "progression")  # fmt: skip
    assert result.exit_code == 0, result.output
    found = re.search(r"^MSE (\S+), MAE (\S+), R² (\S+) on 133 samples", result.output, re.M)
    assert found, result.output
    assert float(found[3]) == pytest.approx(r2, abs=1e-4)


def test_several_targets_and_task_regression_forced(diabetes, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3))
    Y = np.stack([X @ [1, 2, 3], 2 * X[:, 0].round()], axis=1).round()  # integers
    path = write_csv(
        tmp_path / "m.csv", X, ["a", "b", "c"], {"u": list(Y[:, 0]), "v": list(Y[:, 1])}
    )
    model = tmp_path / "m.npz"
    result = run("train", "--train-file", path, "--test-file", path, "--label-column", "u,v",
                 "--task", "regression", *FAST, "--save", model)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Dense(32 => 2)" in result.output
    result = run("predict", "--model", model, "--input", path, "--label-column", "u,v")
    assert result.stdout.splitlines()[0] == "u,v"


@pytest.mark.parametrize(
    "weights, fragment",
    [
        ((-1, 1, 1), "sample weight -1.0 at row 0 (line 2) is not a finite number ≥ 0"),
        ((0, 0, 0), "every sample weight is 0"),
        (("", 1, 1), "missing value '' at line 2, column 'w'"),
    ],
)
def test_bad_weights_are_one_error_line(tmp_path, weights, fragment):
    path = tmp_path / "w.csv"
    rows = [f"{a},{w},{label}" for a, w, label in zip((1, 2, 3), weights, "xyx", strict=True)]
    path.write_text("\n".join(["a,w,label", *rows]) + "\n")
    result = run("train", "--train-file", path, "--test-file", path,
                 "--sample-weight-column", "w", "--epochs", "1")  # fmt: skip
    one_error_line(result, str(path), fragment)


def test_weight_options_that_do_not_fit_the_data_are_one_error_line(iris, diabetes):
    result = run("train", "--train-file", iris["train"], "--label-column", "species",
                 "--sample-weight-column", "nope")  # fmt: skip
    one_error_line(result, "no sample weight column 'nope'", "--sample-weight-column")
    result = run("train", "--sample-weight-column", "w", "--epochs", "1")
    one_error_line(result, "--sample-weight-column", "--train-file")
    result = run("train", "--train-file", diabetes["train"], "--label-column", "progression",
                 "--class-weight", "balanced")  # fmt: skip
    one_error_line(result, "--class-weight", "a regression has no classes")


def test_predict_and_evaluate_take_the_recorded_label_column(iris, tmp_path):
    """The model records the training file's label column: the test file itself (its species
    column left out) is input for predict, and evaluate needs no --label-column."""
    assert load_model(iris["model"]).metadata["label_column"] == "species"
    result = run("predict", "--model", iris["model"], "--input", iris["test"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 45
    result = run("evaluate", "--model", iris["model"], "--test-file", iris["test"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output


def test_predict_leaves_out_the_recorded_weight_column(iris, tmp_path):
    text = Path(iris["train"]).read_text().splitlines()
    weighted = tmp_path / "w.csv"
    rows = [f"{line},{1 + i % 2}" for i, line in enumerate(text[1:])]
    weighted.write_text("\n".join([text[0] + ",w", *rows]) + "\n")
    model = tmp_path / "w.npz"
    result = run(
        "train", "--train-file", weighted, "--test-file", iris["test"], "--label-column",
        "species", "--sample-weight-column", "w", "--epochs", "2", "--save", model,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_model(model).metadata["sample_weight_column"] == "w"
    result = run("predict", "--model", model, "--input", weighted)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 105


def test_a_regression_logs_and_records_mse_mae_and_r2_in_the_targets_units(diabetes, tmp_path):
    """The epoch line and --metrics-out carry E.1–E.3 on the test set, in the targets' own
    units (what `numbamlp predict` writes), and no accuracy fields."""
    import json

    from numbamlp.kernels.metrics import mean_absolute_error, mean_squared_error, r2_score

    model, metrics = tmp_path / "model.npz", tmp_path / "metrics.jsonl"
    result = run("train", "--train-file", diabetes["train"], "--test-file", diabetes["test"],
                 "--label-column", "progression", *FAST, "--save", model,
                 "--metrics-out", metrics)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert re.search(r"^epoch +40 +train_loss \S+ +test_mse \S+ +test_mae \S+ +test_r2 ",
                     result.output, re.M), result.output  # fmt: skip
    last = json.loads(metrics.read_text().splitlines()[-1])
    assert not {"test_accuracy", "train_accuracy"} & set(last)
    predicted = run("predict", "--model", model, "--input", diabetes["features"])
    values = np.array([float(v) for v in predicted.stdout.splitlines()[1:]])
    truth = diabetes["y_test"]
    assert last["test_mse"] == pytest.approx(mean_squared_error(truth, values), rel=1e-4)
    assert last["test_mae"] == pytest.approx(mean_absolute_error(truth, values), rel=1e-4)
    assert last["test_r2"] == pytest.approx(r2_score(truth, values), abs=1e-4)
    assert last["test_mse"] > 100  # units of the targets (hundreds), not standardised ones


def test_predict_standardises_the_features_as_training_did(tmp_path):
    """Z.1 in float64 on the features as read, then θ's dtype: predict feeds the network the
    very numbers training made of the same rows, even for a narrow feature (3 ± 0.01) that
    rounding to float32 first would shift by ~1e-5 of its spread."""
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    X = np.column_stack([3 + 0.01 * rng.normal(size=60) + 0.01 * y, rng.normal(size=60) + y])
    data = write_csv(tmp_path / "t.csv", X, ["narrow", "wide"], {"label": list(y)})
    model, out = tmp_path / "m.npz", tmp_path / "p.npz"
    trained = run("train", "--train-file", data, "--test-file", data, "--epochs", "5",
                  "--save", model, "-q")  # fmt: skip
    assert trained.exit_code == 0, trained.output
    predicted = run("predict", "--model", model, "--input", data, "--proba", "--output", out)
    assert predicted.exit_code == 0, predicted.output
    loaded = load_model(model)
    features = loaded.input.standardise(X, 1.0, loaded.model.dtype)  # what training made
    expected = loaded.model.predict_proba(features)
    with np.load(out) as written:
        np.testing.assert_array_equal(written["probabilities"], expected)
