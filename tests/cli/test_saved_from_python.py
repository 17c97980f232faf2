"""A model saved from Python records what it was trained on, and the command line uses it
(issue 17, item 7). Before: ``save_model`` wrote no input record, so ``evaluate --test-file``
fed 0..255 pixels to a model trained on [0, 1] with no word said, and ``evaluate`` without a
data option claimed the model "was trained on a file"."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

import numbamlp
from numbamlp.cli.commands import main
from numbamlp.datasets.inputscale import InputRangeWarning, InputRecord, prepare_input
from numbamlp.datasets.loaders import load_mnist
from numbamlp.model.modelio import load_model, save_model


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def mnist_fit():
    data = load_mnist()
    result = numbamlp.fit(data, hidden=[16], epochs=1, verbose=0)
    return data, result


@pytest.fixture(scope="module")
def raw_test_file(tmp_path_factory, mnist_fit):
    data, _ = mnist_fit
    path = tmp_path_factory.mktemp("raw") / "test.npz"
    np.savez(path, X=data.X_test_raw, y=data.y_test)  # uint8 pixels 0..255
    return path


def _accuracy(result) -> str:
    assert result.exit_code == 0, result.output
    match = re.search(r"^accuracy (\S+) on", result.output, flags=re.M)
    assert match, result.output
    return match.group(1)


def test_saved_with_data_scores_as_in_python(tmp_path, mnist_fit, raw_test_file):
    data, fitted = mnist_fit
    path = tmp_path / "m.npz"
    save_model(path, fitted.model, data=data)
    assert load_model(path).input == InputRecord(1 / 255, "uint8", 0.0, 255.0)
    result = run("evaluate", "--model", path, "--test-file", raw_test_file)
    assert _accuracy(result) == f"{fitted.test_accuracy:.4f}"
    assert "warning" not in result.output
    # the data set is recorded too: evaluate needs no data option
    assert _accuracy(run("evaluate", "--model", path)) == f"{fitted.test_accuracy:.4f}"


def test_saved_with_the_record_from_fit_scores_as_in_python(tmp_path, mnist_fit, raw_test_file):
    _, fitted = mnist_fit
    path = tmp_path / "m.npz"
    numbamlp.fit(load_mnist(), hidden=[16], epochs=1, verbose=0, save=path)
    result = run("evaluate", "--model", path, "--test-file", raw_test_file)
    assert _accuracy(result) == f"{fitted.test_accuracy:.4f}"  # same seed, same model


def test_saved_without_the_record_warns(tmp_path, mnist_fit, raw_test_file):
    _, fitted = mnist_fit
    path = tmp_path / "m.npz"
    save_model(path, fitted.model)
    assert load_model(path).metadata["input"] == {"recorded": False}
    result = run("evaluate", "--model", path, "--test-file", raw_test_file)
    assert result.exit_code == 0, result.output
    assert (
        len(re.findall(r"^warning: the model records no training data", result.stderr, re.M)) == 1
    )
    result = run("evaluate", "--model", path)
    assert result.exit_code == 2, result.output
    assert "trained on a file" not in result.output
    assert "names no built-in data set" in result.output


def test_float_model_fed_pixels_is_warned_about(tmp_path, mnist_fit, raw_test_file):
    """Trained in Python on X / 255 as floats: 0..255 pixels are far outside [0, 1]."""
    data, _ = mnist_fit
    X = data.X_train_raw[:2000].astype(np.float32) / 255
    fitted = numbamlp.fit(X, data.y_train[:2000], hidden=[8], epochs=1, verbose=0)
    path = tmp_path / "m.npz"
    save_model(path, fitted.model, data=InputRecord(1.0, "float32", 0.0, 1.0))
    result = run("evaluate", "--model", path, "--test-file", raw_test_file)
    assert result.exit_code == 0, result.output
    assert re.search(r"^warning: .* far outside the training range \[0, 1\]", result.stderr, re.M)
    # fit records the range itself
    fit_path = tmp_path / "fit.npz"
    numbamlp.fit(X, data.y_train[:2000], hidden=[8], epochs=1, verbose=0, save=fit_path)
    assert load_model(fit_path).input.high == pytest.approx(1.0)
    result = run("predict", "--model", fit_path, "--input", raw_test_file)
    assert "far outside the training range" in result.stderr


def test_input_within_the_range_is_not_warned_about():
    record = InputRecord(1.0, "float64", -3.0, 3.0)
    with pytest.warns(InputRangeWarning):
        prepare_input(np.array([[40.0]]), record, "x")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        prepare_input(np.array([[-5.0, 4.5]]), record, "x")  # outliers, not another scale
