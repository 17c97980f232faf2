"""numbamlp.fit owns the run: the command line and Python give the same bits.

* one truth: ``fit(...)`` and ``numbamlp train ...`` with the same options (validation,
  patience, checkpoints, metrics) write identical model files and the same metrics;
* a callback that asks for a stop leaves a checkpoint that ``fit(resume=...)`` finishes,
  bitwise equal to the run that never stopped;
* every ``numbamlp train`` option is a keyword of ``fit`` with the same default;
* arrays, a Dataset, an existing model, and the callbacks' four calls.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_validation import noisy_blobs  # val_loss best at epoch 3, early stop at 6

import numbamlp
from numbamlp.cli.commands import main, train
from numbamlp.errors import NumbamlpError
from numbamlp.model.modelio import load_model
from numbamlp.training.checkpoint import CHECKPOINT_NAME
from numbamlp.training.config import parse_hidden
from numbamlp.training.fit import fit


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    X, y = noisy_blobs()
    Xt, yt = noisy_blobs(90, seed=1)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    np.savez(tmp_path / "test.npz", X=Xt, y=yt)
    return tmp_path / "train.npz", tmp_path / "test.npz"


OPTIONS = dict(
    hidden=[64],
    activation="relu",
    lr=0.05,
    batch_size=16,
    epochs=12,
    seed=2,
    validation_fraction=0.2,
    patience=3,
    threads=1,
)


def cli_args(options: dict) -> list[str]:
    args = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, list):
            value = ",".join(map(str, value))
        args += [flag, str(value)]
    return args


def records(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row.pop("seconds")
    return rows


def assert_same_files(a: Path, b: Path) -> None:
    ma, mb = load_model(a), load_model(b)
    assert ma.model.params.theta.tobytes() == mb.model.params.theta.tobytes()
    assert ma.optimizer.step_count == mb.optimizer.step_count
    for name, value in ma.optimizer.state.items():
        assert mb.optimizer.state[name].tobytes() == value.tobytes()
    for meta in (ma.metadata, mb.metadata):
        meta.pop("checkpoint", None)
    assert ma.metadata == mb.metadata


def test_fit_and_the_command_line_write_the_same_bits(files, tmp_path):
    train_file, test_file = files
    data = dict(train_file=str(train_file), test_file=str(test_file))
    result = fit(
        **data,
        **OPTIONS,
        save=tmp_path / "py.npz",
        metrics_out=tmp_path / "py.jsonl",
        checkpoint_dir=tmp_path / "py-ck",
        checkpoint_every=5,
        verbose=0,
    )
    out = CliRunner().invoke(
        main,
        [
            "train",
            "-q",
            *cli_args(data | OPTIONS),
            "--save",
            str(tmp_path / "cli.npz"),
            "--metrics-out",
            str(tmp_path / "cli.jsonl"),
            "--checkpoint-dir",
            str(tmp_path / "cli-ck"),
            "--checkpoint-every",
            "5",
        ],
    )
    assert out.exit_code == 0, out.output
    # early stopping fired (the premise of the comparison), and both ran the same epochs
    assert result.best_epoch is not None and result.epochs < OPTIONS["epochs"]
    assert_same_files(tmp_path / "py.npz", tmp_path / "cli.npz")
    assert records(tmp_path / "py.jsonl") == records(tmp_path / "cli.jsonl")
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in result.history] == records(
        tmp_path / "py.jsonl"
    )
    assert_same_files(tmp_path / "py-ck" / CHECKPOINT_NAME, tmp_path / "cli-ck" / CHECKPOINT_NAME)
    # -q prints the summary alone; the same as fit's, but for the seconds it took
    assert out.output.count("\n") == 1
    assert out.output.split(" (")[0] == result.summary.split(" (")[0]
    assert result.summary.startswith(f"test accuracy {result.test_accuracy:.4f} after ")


class StopAt(numbamlp.Callback):
    """Requests a stop after minibatch ``batch`` of epoch ``epoch`` and records every call."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch, self.batch = epoch, batch
        self.calls: list[str] = []

    def on_train_begin(self, run):
        self.calls.append("begin")

    def on_batch_end(self, run, batch):
        if run.trainer.epoch == self.epoch and batch == self.batch:
            run.request_stop()

    def on_epoch_end(self, run, metrics):
        self.calls.append(f"epoch {metrics.epoch}")

    def on_train_end(self, run):
        self.calls.append("end")


def test_a_callback_stops_the_run_and_resume_finishes_it_bitwise(files, tmp_path):
    train_file, test_file = files
    options = dict(
        train_file=str(train_file),
        test_file=str(test_file),
        hidden=[16],
        lr=0.05,
        batch_size=32,
        epochs=4,
        seed=1,
        verbose=0,
    )
    fit(**options, save=tmp_path / "straight.npz", metrics_out=tmp_path / "straight.jsonl")
    # The engine's first call of an epoch makes one minibatch (training.Trainer._call_size), so
    # a stop asked for after minibatch 0 takes effect at once: mid-epoch.
    stopper = StopAt(epoch=2, batch=0)
    stopped = fit(**options, checkpoint_dir=tmp_path / "ck", callbacks=[stopper])
    assert stopped.stopped == "callback"
    assert stopped.checkpoint == tmp_path / "ck" / CHECKPOINT_NAME
    assert stopped.position == "epoch 2, batch 1"
    assert stopper.calls == ["begin", "epoch 1", "end"]
    assert not (tmp_path / "resumed.npz").exists()
    resumed = fit(
        resume=tmp_path / "ck",
        save=tmp_path / "resumed.npz",
        metrics_out=tmp_path / "resumed.jsonl",
        verbose=0,
    )
    assert resumed.stopped is None and resumed.epochs == 4
    assert_same_files(tmp_path / "straight.npz", tmp_path / "resumed.npz")
    assert records(tmp_path / "straight.jsonl") == records(tmp_path / "resumed.jsonl")


def test_resume_keeps_the_run_s_options(files, tmp_path):
    train_file, test_file = files
    options = dict(
        train_file=str(train_file), test_file=str(test_file), hidden=[8], epochs=1, verbose=0
    )
    fit(**options, checkpoint_dir=tmp_path / "ck")
    with pytest.raises(NumbamlpError, match="`hidden`: the checkpoint's run used 8"):
        fit(resume=tmp_path / "ck", hidden=[16], epochs=2, verbose=0)
    with pytest.raises(NumbamlpError, match="has finished its 1 epochs; pass `epochs=N`"):
        fit(resume=tmp_path / "ck", verbose=0)
    # hidden given as the command line gives it, equal to the checkpoint's: accepted
    result = fit(resume=tmp_path / "ck", hidden=("8",), epochs=2, verbose=0)
    assert result.epochs == 2


def test_the_command_line_speaks_in_flags_where_fit_speaks_in_parameters(files, tmp_path):
    train_file, _ = files
    with pytest.raises(NumbamlpError, match="`patience`: .*`validation_fraction=F`"):
        fit(train_file=str(train_file), patience=2, verbose=0)
    out = CliRunner().invoke(main, ["train", "--train-file", str(train_file), "--patience", "2"])
    assert out.exit_code == 2
    assert out.output.strip().splitlines() == [
        "error: --patience: early stopping watches the validation loss: give "
        "--validation-fraction F (0 < F < 1) too"
    ]


def test_arrays_and_an_existing_model(tmp_path):
    X, y = noisy_blobs()
    Xt, yt = noisy_blobs(90, seed=1)
    first = fit(X, y, X_test=Xt, y_test=yt, hidden=8, epochs=2, batch_size=32, verbose=0)
    assert first.model.architecture.sizes == (4, 8, 3)
    assert len(first.history) == 2 and first.test_accuracy == first.history[-1]["test_accuracy"]
    before = first.model.params.theta.copy()
    more = fit(X, y, model=first.model, epochs=1, batch_size=32, verbose=0)
    assert more.model is first.model and not np.array_equal(before, more.model.params.theta)
    assert more.test_accuracy is None and more.history[-1]["test_accuracy"] is None
    data = numbamlp.load_mnist()
    assert isinstance(data, numbamlp.Dataset)
    with pytest.raises(NumbamlpError, match="`y`"):
        fit(X, verbose=0)


def test_fit_prints_what_the_command_prints(files, capsys):
    train_file, test_file = files
    fit(train_file=str(train_file), test_file=str(test_file), hidden=[8], epochs=2)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("MLP(Dense(4 => 8, sigmoid)")
    assert [line.split()[1] for line in printed if line.startswith("epoch")] == ["1", "2"]
    # the summary; on a cold JIT cache a line saying what was compiled follows it
    assert [line for line in printed if line.startswith("test accuracy ")] != []


def _cli_default(param) -> object:
    default = param.default
    if param.name == "hidden":
        return parse_hidden(default)
    if param.multiple:
        return tuple(default) if len(default) > 1 else default[0]
    return default


def test_every_train_option_is_a_keyword_of_fit_with_the_same_default():
    keywords = inspect.signature(fit).parameters
    translated = {"quiet": "verbose", "no_download": "download"}  # flags that invert a keyword
    assert set(keywords) - {p.name for p in train.params} - set(translated.values()) == {
        "data",
        "y",
        "X_test",
        "y_test",
        "model",
        "sample_weight",
        "callbacks",
        "given_options",
    }  # Python's alone: data as objects, and what observes the run
    for param in train.params:
        if not param.opts or param.hidden:  # the old spellings
            continue
        name = translated.get(param.name, param.name)
        assert name in keywords, f"{param.opts[0]} has no keyword {name!r} in fit"
        if name in translated.values():
            continue
        default = keywords[name].default
        if name == "hidden":
            default = parse_hidden(default)
        assert _cli_default(param) == default, param.name


def test_a_checkpoint_written_by_0_1_0_still_resumes(files, tmp_path):
    """0.1.0 stored the command line's option values: hidden as strings ("8"), the activation
    as given, the momentum as "mu", and no weight_decay/validation_fraction/patience before
    they existed. Such a checkpoint resumes, to the same bits as a run that never stopped."""
    from numbamlp.training.checkpoint import load_checkpoint, save_checkpoint

    train_file, test_file = files
    options = dict(
        train_file=str(train_file),
        test_file=str(test_file),
        hidden=[8],
        optimizer="momentum",
        momentum=0.8,
        lr=0.05,
        batch_size=32,
        weight_decay=0.0,  # what 0.1.0 trained with (the default 1/n came later)
        verbose=0,
    )
    fit(**options, epochs=2, save=tmp_path / "straight.npz")
    fit(**options, epochs=1, checkpoint_dir=tmp_path / "ck")
    path = tmp_path / "ck" / CHECKPOINT_NAME
    new = load_checkpoint(path)
    old_options = dict(new.run["options"], hidden=["8"], activation=["sigmoid"], mu=0.8)
    for later in ("momentum", "weight_decay", "validation_fraction", "patience", "dropout"):
        del old_options[later]
    metadata = {k: v for k, v in load_model(path).metadata.items() if k != "checkpoint"}
    old_run = dict(new.run, options=old_options)
    save_checkpoint(path, new.model, new.optimizer, old_run, new.trainer, new.history, metadata)
    out = CliRunner().invoke(
        main,
        [
            "train",
            "--resume",
            str(tmp_path / "ck"),
            "--epochs",
            "2",
            "-q",
            "--save",
            str(tmp_path / "resumed.npz"),
        ],
    )
    assert out.exit_code == 0, out.output
    assert_same_files(tmp_path / "straight.npz", tmp_path / "resumed.npz")
