"""No output clobbers an input, and an output that fails does not take the others with it
(issue 17, items 3 and 4).

* Every output path that is, or links to (symbolic or hard link), an input of the same command
  is refused before any work: one ``error:`` line naming both and the fix, exit 2, nothing
  written. So are two outputs of one command naming the same file.
* ``predict --output`` writes the format its suffix names (.csv/.txt text, .npy the classes,
  .npz the classes and probabilities) and refuses any other.
* A full disk while the metrics file is written or closed: the model is still saved, then one
  ``error:`` line names the metrics file, the OS's reason and that the model was saved.
"""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import numbamlp
from numbamlp.cli.commands import main
from numbamlp.errors import NumbamlpError
from numbamlp.training import callbacks

FAST = ("--hidden", "8", "--batch-size", "32", "--lr", "0.05", "--epochs", "2")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error(result, *fragments: str) -> str:
    """Exit 2, exactly one ``error:`` line, no traceback, every fragment in it."""
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    errors = re.findall(r"^(?:error|Error):.*$", output, flags=re.M)
    assert len(errors) == 1, output
    for fragment in fragments:
        assert fragment in errors[0], output
    return errors[0]


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return 3.0 * np.eye(3, 4)[y] + rng.normal(size=(n, 4)), y


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("outputs")
    paths = {name: root / f"{name}.npz" for name in ("train", "test", "features")}
    X, y = _blobs(200, 0)
    Xt, yt = _blobs(60, 1)
    np.savez(paths["train"], X=X, y=y)
    np.savez(paths["test"], X=Xt, y=yt)
    np.savez(paths["features"], X=Xt)
    paths["model"] = root / "model.npz"
    result = run(
        "train", "--train-file", paths["train"], "--test-file", paths["test"], *FAST,
        "--save", paths["model"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return paths


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _copy(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes())
    return target


def _data_args(data, train: Path | None = None, test: Path | None = None) -> tuple:
    return ("--train-file", train or data["train"], "--test-file", test or data["test"], *FAST)


# --- predict and export: the output is the model or the input --------------------------------


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_predict_refuses_an_output_that_is_the_model(data, tmp_path, link):
    model = _copy(data["model"], tmp_path / "m.npz")
    output = {"same": model, "symlink": tmp_path / "s.npz", "hardlink": tmp_path / "h.npz"}[link]
    if link == "symlink":
        output.symlink_to(model)
    elif link == "hardlink":
        os.link(model, output)
    before = _snapshot(tmp_path)
    result = run("predict", "--model", model, "--input", data["features"], "--output", output)
    one_error(result, f"--output {output}", f"--model {model}", "choose another name for --output")
    assert _snapshot(tmp_path) == before


def test_predict_refuses_an_output_that_is_the_input(data, tmp_path):
    features = _copy(data["features"], tmp_path / "features.npz")
    before = _snapshot(tmp_path)
    result = run("predict", "--model", data["model"], "--input", features, "--output", features)
    one_error(result, f"--input {features}", "choose another name for --output")
    assert _snapshot(tmp_path) == before


def test_export_refuses_a_hard_link_to_the_model(data, tmp_path):
    pytest.importorskip("safetensors")
    model = _copy(data["model"], tmp_path / "m.npz")
    os.link(model, tmp_path / "h.st")
    before = _snapshot(tmp_path)
    result = run("export", "--model", model, "--output", tmp_path / "h.st")
    one_error(result, f"--model {model}", "choose another name for --output")
    assert _snapshot(tmp_path) == before


# --- predict: the output's suffix names its format ---------------------------------------------


def test_predict_npy_holds_the_classes(data, tmp_path):
    text = run("predict", "--model", data["model"], "--input", data["features"])
    assert text.exit_code == 0, text.output
    expected = [int(line) for line in text.stdout.split()]
    result = run(
        "predict", "--model", data["model"], "--input", data["features"],
        "--output", tmp_path / "p.npy",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    classes = np.load(tmp_path / "p.npy", allow_pickle=False)
    assert classes.dtype == np.int64 and classes.tolist() == expected


def test_predict_npz_holds_classes_and_probabilities(data, tmp_path):
    result = run(
        "predict", "--model", data["model"], "--input", data["features"], "--proba",
        "--output", tmp_path / "p.npz",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    csv = run(
        "predict", "--model", data["model"], "--input", data["features"], "--proba",
        "--output", tmp_path / "p.CSV",
    )  # fmt: skip
    assert csv.exit_code == 0, csv.output
    rows = np.loadtxt(tmp_path / "p.CSV", delimiter=",", skiprows=1)
    with np.load(tmp_path / "p.npz", allow_pickle=False) as saved:
        assert sorted(saved.files) == ["class_names", "classes", "probabilities"]
        assert saved["class_names"].tolist() == [
            str(k) for k in range(saved["probabilities"].shape[1])
        ]
        assert saved["classes"].tolist() == rows[:, 0].astype(int).tolist()
        np.testing.assert_allclose(saved["probabilities"], rows[:, 1:], rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "proba", "fragment"),
    [
        ("p.json", False, "a .json file"),
        ("predictions", False, "a file without a suffix"),
        ("p.npy", True, "holds one array"),
    ],
)
def test_predict_refuses_an_output_format_it_cannot_honour(data, tmp_path, name, proba, fragment):
    args = ["--proba"] if proba else []
    result = run(
        "predict", "--model", data["model"], "--input", data["features"], *args,
        "--output", tmp_path / name,
    )  # fmt: skip
    line = one_error(result, fragment, "--output")
    assert ".npz" in line and (proba or ".csv or .txt" in line)
    assert list(tmp_path.iterdir()) == []


# --- train and fit: an output is a data file, the resumed checkpoint, or another output -------


def test_train_refuses_to_save_over_its_training_file(data, tmp_path):
    train = _copy(data["train"], tmp_path / "train.npz")
    before = _snapshot(tmp_path)
    result = run("train", *_data_args(data, train=train), "--save", train)
    one_error(result, f"--save {train}", f"--train-file {train}", "choose another name for --save")
    assert _snapshot(tmp_path) == before


def test_train_refuses_metrics_over_its_test_file_through_a_link(data, tmp_path):
    test = _copy(data["test"], tmp_path / "test.npz")
    (tmp_path / "metrics.jsonl").symlink_to(test)
    before = _snapshot(tmp_path)
    result = run("train", *_data_args(data, test=test), "--metrics-out", tmp_path / "metrics.jsonl")
    one_error(result, "--metrics-out", f"--test-file {test}", "choose another name")
    assert _snapshot(tmp_path) == before


def test_train_refuses_two_outputs_naming_one_file(data, tmp_path):
    out = tmp_path / "out.npz"
    result = run("train", *_data_args(data), "--save", out, "--metrics-out", out)
    one_error(result, f"--save {out}", "choose another name for --metrics-out")
    (tmp_path / "ck").mkdir()
    result = run(
        "train", *_data_args(data), "--checkpoint-dir", tmp_path / "ck",
        "--save", tmp_path / "ck" / "checkpoint.npz",
    )  # fmt: skip
    one_error(result, "the run's checkpoint", "choose another name for --save")
    assert _snapshot(tmp_path) == {}


def test_train_refuses_to_save_over_a_file_of_its_data_dir(fake_fashion, tmp_path):
    folder = tmp_path / "fashion"
    folder.mkdir()
    for stem, raw in fake_fashion.raw.items():
        (folder / stem).write_bytes(raw)
    target = folder / "train-labels-idx1-ubyte"
    before = _snapshot(folder)
    result = run(
        "train", "--dataset", "fashion-mnist", "--data-dir", folder, "--hidden", "4",
        "--epochs", "1", "--save", target,
    )  # fmt: skip
    one_error(result, f"--save {target}", "--data-dir", "choose another name for --save")
    assert _snapshot(folder) == before


def test_resume_rewrites_its_checkpoint_but_no_output_may_be_it(data, tmp_path):
    ck = tmp_path / "ck"
    first = run("train", *_data_args(data), "--epochs", "1", "--checkpoint-dir", ck)
    assert first.exit_code == 0, first.output
    before = _snapshot(tmp_path)
    checkpoint = ck / "checkpoint.npz"
    for option in ("--save", "--metrics-out"):
        result = run("train", "--resume", ck, "--epochs", "2", option, checkpoint)
        one_error(result, f"{option} {checkpoint}", "--resume", f"choose another name for {option}")
        assert _snapshot(tmp_path) == before
    result = run("train", "--resume", ck, "--epochs", "2", "--save", tmp_path / "m.npz")
    assert result.exit_code == 0, result.output  # resuming rewrites its own checkpoint
    assert (tmp_path / "m.npz").exists()


def test_fit_refuses_to_save_over_its_training_file(data, tmp_path):
    train = _copy(data["train"], tmp_path / "train.npz")
    before = _snapshot(tmp_path)
    with pytest.raises(NumbamlpError, match="`save=.*` is the same file as `train_file=.*`"):
        numbamlp.fit(train_file=str(train), hidden=4, epochs=1, verbose=0, save=train)
    assert _snapshot(tmp_path) == before


# --- a full disk while the metrics file is written ---------------------------------------------


class _FullDisk:
    """A text file that fails with ENOSPC at its ``fail_at`` call: "write" (the second
    epoch's record) or "close" (the buffered lines flushed at close)."""

    def __init__(self, real, fail_at: str) -> None:
        self.real, self.fail_at, self.writes = real, fail_at, 0

    def write(self, text):
        self.writes += 1
        if self.fail_at == "write" and self.writes >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real.write(text)

    def flush(self):
        self.real.flush()

    def close(self):
        self.real.close()
        if self.fail_at == "close":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("fail_at", ["write", "close"])
def test_full_disk_in_the_metrics_file_still_saves_the_model(data, tmp_path, monkeypatch, fail_at):
    def full_open(path, *args, **kwargs):
        return _FullDisk(open(path, *args, **kwargs), fail_at)

    monkeypatch.setattr(callbacks, "open", full_open, raising=False)
    metrics, model = tmp_path / "metrics.jsonl", tmp_path / "m.npz"
    result = run(
        "train", *_data_args(data), "--epochs", "3", "--metrics-out", metrics, "--save", model
    )
    one_error(
        result, f"--metrics-out: cannot write {metrics}: No space left on device",
        f"the model was saved to {model}",
    )  # fmt: skip
    loaded = numbamlp.load_model(model)
    assert loaded.metadata["epochs"] == 3
    if fail_at == "write":
        records = [json.loads(line) for line in metrics.read_text().splitlines()]
        assert [r["epoch"] for r in records] == [1]


def test_full_disk_in_the_metrics_file_of_a_stopped_run_keeps_its_checkpoint(
    data, tmp_path, monkeypatch
):
    def full_open(path, *args, **kwargs):
        return _FullDisk(open(path, *args, **kwargs), "close")

    class StopAfterOneEpoch(numbamlp.Callback):
        def on_epoch_end(self, run, metrics):
            run.request_stop()

    monkeypatch.setattr(callbacks, "open", full_open, raising=False)
    with pytest.raises(NumbamlpError, match="its checkpoint was written to") as caught:
        numbamlp.fit(
            train_file=str(data["train"]), hidden=4, epochs=3, verbose=0,
            metrics_out=tmp_path / "metrics.jsonl", checkpoint_dir=tmp_path / "ck",
            callbacks=[StopAfterOneEpoch()],
        )  # fmt: skip
    assert "No space left on device" in str(caught.value)
    assert caught.value.result.stopped == "callback"  # type: ignore[attr-defined]
    assert (tmp_path / "ck" / "checkpoint.npz").exists()


def test_full_disk_in_the_metrics_file_of_a_diverged_run_is_reported_too(
    data, tmp_path, monkeypatch
):
    """θ poisoned when epoch 2 starts: the divergence line also names the metrics file that
    failed at its close (which raised OSError through the divergence before)."""
    from numbamlp.training.trainer import Trainer

    original = Trainer._start_epoch

    def poisoned(self, p0):
        original(self, p0)
        if self.epoch == 2:
            self.model.params.theta[:] = np.nan

    def full_open(path, *args, **kwargs):
        return _FullDisk(open(path, *args, **kwargs), "close")

    monkeypatch.setattr(Trainer, "_start_epoch", poisoned)
    monkeypatch.setattr(callbacks, "open", full_open, raising=False)
    metrics = tmp_path / "metrics.jsonl"
    result = run("train", *_data_args(data), "--epochs", "3", "--metrics-out", metrics)
    one_error(
        result, "training diverged", f"Also --metrics-out: cannot write {metrics}: No space left"
    )
