"""Runs that can always be finished (issue 17, item 5).

* The checkpoint remembers the run's outputs (`--save`, `--metrics-out`), so the printed
  `resume with: …` hint, followed as printed, writes them.
* A run killed after its last checkpoint but before its `--save` is finished by `--resume`: the
  outputs are written from the checkpoint without training, bit for bit those of a straight run.
* A run without `--save` says in its last line that the model was not kept.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner
from test_checkpoint import assert_same_model, run, train_args

from numbamlp.cli.commands import main
from numbamlp.training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from numbamlp.training.trainer import Trainer


def _signal_in_epoch_2(monkeypatch) -> None:
    original = Trainer.run_batches

    def run_batches(self, on_batch=None, until=None, should_stop=None):
        def hook(b: int) -> None:
            if on_batch is not None:
                on_batch(b)
            if self.epoch == 2 and not getattr(self, "_sent", False):
                self._sent = True
                os.kill(os.getpid(), signal.SIGINT)

        return original(self, hook, until, should_stop)

    monkeypatch.setattr(Trainer, "run_batches", run_batches)


# --- item 5: the outputs are remembered -------------------------------------------------------


def test_following_the_printed_hint_writes_the_outputs(data, tmp_path, monkeypatch):
    full = run(*train_args(data, "--epochs", "3", "--save", tmp_path / "full.npz"))
    assert full.exit_code == 0, full.output
    monkeypatch.chdir(tmp_path)  # relative outputs: the hint and the record make them absolute
    _signal_in_epoch_2(monkeypatch)
    stopped = run(*train_args(data, "--epochs", "3", "--checkpoint-dir", "ck",
                              "--save", "m.npz", "--metrics-out", "m.jsonl"))  # fmt: skip
    assert stopped.exit_code == 130, stopped.output
    monkeypatch.undo()
    hint = [line for line in stopped.output.splitlines() if line.startswith("resume with: ")]
    assert len(hint) == 1, stopped.output
    command = shlex.split(hint[0].removeprefix("resume with: "))
    assert command[:4] == ["numbamlp", "train", "--resume", "ck"]
    assert command[4:] == ["--save", str(tmp_path / "m.npz"), "--metrics-out",
                           str(tmp_path / "m.jsonl")]  # fmt: skip
    assert not (tmp_path / "m.npz").exists()
    # followed as printed, from another directory, and also with the bare --resume
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rest = run("train", "--resume", tmp_path / "ck", *command[4:], "-q")
    assert rest.exit_code == 0, rest.output
    assert_same_model(tmp_path / "full.npz", tmp_path / "m.npz")
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_a_bare_resume_writes_the_outputs_the_run_was_given(data, tmp_path, monkeypatch):
    full = run(*train_args(data, "--epochs", "3", "--save", tmp_path / "full.npz"))
    assert full.exit_code == 0, full.output
    _signal_in_epoch_2(monkeypatch)
    stopped = run(*train_args(data, "--epochs", "3", "--checkpoint-dir", tmp_path / "ck",
                              "--save", tmp_path / "m.npz"))  # fmt: skip
    assert stopped.exit_code == 130, stopped.output
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "ck").run["outputs"] == {
        "save": str(tmp_path / "m.npz"), "metrics_out": None,
    }  # fmt: skip
    rest = run("train", "--resume", tmp_path / "ck", "-q")
    assert rest.exit_code == 0, rest.output
    assert_same_model(tmp_path / "full.npz", tmp_path / "m.npz")
    assert "not saved" not in rest.output


def test_given_outputs_replace_the_remembered_ones(data, tmp_path, monkeypatch):
    _signal_in_epoch_2(monkeypatch)
    stopped = run(*train_args(data, "--epochs", "3", "--checkpoint-dir", tmp_path / "ck",
                              "--save", tmp_path / "m.npz"))  # fmt: skip
    assert stopped.exit_code == 130, stopped.output
    monkeypatch.undo()
    rest = run("train", "--resume", tmp_path / "ck", "-q", "--save", tmp_path / "other.npz")
    assert rest.exit_code == 0, rest.output
    assert (tmp_path / "other.npz").is_file() and not (tmp_path / "m.npz").exists()


def test_an_old_checkpoint_without_the_record_resumes_without_outputs(data, tmp_path):
    from test_checkpoint import _rewrite_checkpoint_metadata

    first = run(*train_args(data, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck",
                            "--save", tmp_path / "m.npz"))  # fmt: skip
    assert first.exit_code == 0, first.output
    (tmp_path / "m.npz").unlink()
    _rewrite_checkpoint_metadata(
        tmp_path / "ck" / CHECKPOINT_NAME, lambda part: part["run"].pop("outputs")
    )
    rest = run("train", "--resume", tmp_path / "ck", "--epochs", "2", "-q")
    assert rest.exit_code == 0, rest.output
    assert not (tmp_path / "m.npz").exists()
    assert "the model was not saved: give --save PATH to keep it" in rest.output
    again = run("train", "--resume", tmp_path / "ck")  # finished, and nothing to write
    assert again.exit_code == 2 and "has finished its 2 epochs" in again.output, again.output


# --- item 5: a finished run's outputs are written without training -----------------------------


KILLED_BEFORE_SAVE = """
import os, sys
import numbamlp
from numbamlp.training import runner

def killed(self):  # the process dies after its last checkpoint, before its outputs
    os._exit(9)

runner.Session._finished = killed
numbamlp.fit(train_file=sys.argv[1], test_file=sys.argv[2], hidden=[8], batch_size=32, lr=0.05,
             epochs=3, checkpoint_dir=sys.argv[3], save=sys.argv[4], metrics_out=sys.argv[5],
             verbose=0)
"""


def test_a_run_killed_before_its_save_is_finished_by_resume(data, tmp_path):
    train, test = data
    full = run(*train_args(data, "--epochs", "3", "--save", tmp_path / "full.npz",
                           "--metrics-out", tmp_path / "full.jsonl"))  # fmt: skip
    assert full.exit_code == 0, full.output
    killed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_BEFORE_SAVE), train, test, tmp_path / "ck",
         tmp_path / "m.npz", tmp_path / "m.jsonl"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == 9, killed.stderr
    assert not (tmp_path / "m.npz").exists()
    before = (tmp_path / "ck" / CHECKPOINT_NAME).read_bytes()
    assert load_checkpoint(tmp_path / "ck").where == "the end of epoch 3"

    steps = []
    original = Trainer.run_batches

    def counted(self, *args, **kwargs):
        steps.append(1)
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "run_batches", counted)
        rest = CliRunner().invoke(main, ["train", "--resume", str(tmp_path / "ck")])
    assert rest.exit_code == 0, rest.output
    assert steps == []  # nothing trained
    assert "had finished its 3 epochs" in rest.output and "without training" in rest.output
    assert_same_model(tmp_path / "full.npz", tmp_path / "m.npz")
    assert (tmp_path / "full.npz").read_bytes() == (tmp_path / "m.npz").read_bytes()
    assert (tmp_path / "full.jsonl").read_text().count("\n") == 3

    def records(path):
        return [
            {k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in path.read_text().splitlines()
        ]

    assert records(tmp_path / "full.jsonl") == records(tmp_path / "m.jsonl")
    assert (tmp_path / "ck" / CHECKPOINT_NAME).read_bytes() == before
    # -q: one line, which says so
    (tmp_path / "m.npz").unlink()
    quiet = run("train", "--resume", tmp_path / "ck", "-q")
    assert quiet.exit_code == 0, quiet.output
    assert quiet.output.count("\n") == 1 and "without training" in quiet.output, quiet.output
    assert (tmp_path / "full.npz").read_bytes() == (tmp_path / "m.npz").read_bytes()


def test_a_finished_run_with_no_outputs_still_says_how_to_go_on(data, tmp_path):
    first = run(*train_args(data, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck"))
    assert first.exit_code == 0, first.output
    again = run("train", "--resume", tmp_path / "ck")
    assert again.exit_code == 2, again.output
    assert "has finished its 1 epochs" in again.output and "--epochs N" in again.output
    assert "--save PATH" in again.output
    saved = run("train", "--resume", tmp_path / "ck", "-q", "--save", tmp_path / "m.npz")
    assert saved.exit_code == 0 and "without training" in saved.output, saved.output
    assert (tmp_path / "m.npz").is_file()


# --- item 5: a model not saved is said so --------------------------------------------------------


def test_a_run_without_save_says_the_model_was_not_kept(data, tmp_path):
    quiet = run(*train_args(data, "--epochs", "1"))
    assert quiet.exit_code == 0, quiet.output
    assert quiet.output.count("\n") == 1
    assert quiet.output.rstrip().endswith("(the model was not saved: give --save PATH to keep it)")
    loud = run(*[a for a in train_args(data, "--epochs", "1") if a != "-q"])
    assert loud.exit_code == 0, loud.output
    summary = [line for line in loud.output.splitlines() if line.startswith("test accuracy")]
    assert summary and summary[0].endswith("give --save PATH to keep it)"), loud.output
    assert "`save" not in loud.output
    saved = run(*train_args(data, "--epochs", "1", "--save", tmp_path / "m.npz"))
    assert "not saved" not in saved.output


def test_an_early_stopped_run_killed_before_its_save_is_finished_by_resume(tmp_path):
    """Early stopping ended the run (best epoch 3, stopped after 6); it was killed before its
    save. Resuming writes the best epoch's model, the straight run's bits, without training."""
    from test_validation import noisy_blobs

    for name, (n, seed) in (("train", (240, 0)), ("test", (90, 1))):
        X, y = noisy_blobs(n, seed)
        np.savez(tmp_path / f"{name}.npz", X=X, y=y)
    args = [
        "train", "--train-file", tmp_path / "train.npz", "--test-file", tmp_path / "test.npz",
        "--hidden", "128", "--activation", "relu", "--batch-size", "8", "--lr", "0.001",
        "--validation-fraction", "0.25", "--patience", "3", "-q", "--epochs", "30",
        "--no-standardize",  # the raw features' run stops early, as this test needs
    ]  # fmt: skip
    full = run(*args, "--save", tmp_path / "full.npz")
    assert full.exit_code == 0, full.output
    with pytest.MonkeyPatch.context() as patch:  # killed before its outputs: none written
        from numbamlp.training import runner

        def killed(self):
            raise SystemExit(9)

        patch.setattr(runner.Session, "_finished", killed)
        dead = run(*args, "--checkpoint-dir", tmp_path / "ck", "--save", tmp_path / "m.npz")
    assert dead.exit_code == 9 and not (tmp_path / "m.npz").exists()
    assert load_checkpoint(tmp_path / "ck").early_stopping["stopped"] is True
    rest = run("train", "--resume", tmp_path / "ck")
    assert rest.exit_code == 0, rest.output
    assert "without training" in rest.output
    assert (tmp_path / "full.npz").read_bytes() == (tmp_path / "m.npz").read_bytes()
    again = run("train", "--resume", tmp_path / "ck", "--epochs", "40")  # more: still refused
    assert again.exit_code == 2 and "stopped early at epoch 6" in again.output, again.output
