"""Checkpoints, exact resume, interruption and divergence (checkpoint.py, interrupt.py, the
Trainer's run_state/restore, and `numbamlp train --checkpoint-dir/--resume`).

The central property: a run stopped at any minibatch and resumed from its checkpoint ends with
a model bitwise identical to the run that was never stopped (same seed). It is checked
in-process at several stopping points for both engines and both sampling modes, through the CLI,
and with real SIGINT/SIGTERM sent to a real `numbamlp train` process.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_validation import noisy_blobs  # val_loss best at epoch 3, stop at 6

from numbamlp.cli.commands import main
from numbamlp.errors import NumbamlpError
from numbamlp.model.mlp import MLP
from numbamlp.model.modelio import load_model, save_model
from numbamlp.training.checkpoint import (
    CHECKPOINT_NAME,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
)
from numbamlp.training.randomness import generators
from numbamlp.training.trainer import TrainConfig, Trainer

SCRIPT = Path(sys.executable).with_name("numbamlp")
NUMBAMLP = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "numbamlp"]


def blobs(n: int, seed: int, d: int = 6, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    return 2.0 * np.eye(k, d)[y] + rng.normal(size=(n, d)), y


# --- the Trainer: stop anywhere, resume from the file, same bits --------------------------------

EPOCHS, N, B = 3, 230, 32  # 8 minibatches per epoch, the last one of 6


def fresh_trainer(engine: str, sampling: str, config: TrainConfig | None = None) -> Trainer:
    X, y = blobs(N, 0)
    init_rng, sampling_rng = generators(3)
    model = MLP.create(X.shape[1], [7], 3, activations="tanh", dtype="float32", rng=init_rng)
    config = config or TrainConfig(
        epochs=EPOCHS, batch_size=B, lr=0.02, sampling=sampling, engine=engine
    )
    return Trainer(model, X, y, config, sampling_rng)


def finish(trainer: Trainer) -> list[float]:
    losses = []
    while trainer.epoch < EPOCHS or not trainer.at_epoch_boundary:
        losses.append(trainer.train_epoch().train_loss)
    return losses


def save(trainer: Trainer, path: Path) -> None:
    X, y = trainer.X, trainer.y
    run = {"seed": 3, "config": {}, "data": {}, "fingerprint": fingerprint(X, y)}
    save_checkpoint(path, trainer.model, trainer.optimizer, run, trainer.run_state(), [])


def resumed(path: Path, engine: str, sampling: str) -> Trainer:
    """A new process's view: only the file and the seed's generators."""
    ckpt = load_checkpoint(path)
    X, y = blobs(N, 0)
    _, sampling_rng = generators(3)
    config = TrainConfig(epochs=EPOCHS, batch_size=B, lr=0.02, sampling=sampling, engine=engine)
    trainer = Trainer(ckpt.model, X, y, config, sampling_rng, optimizer=ckpt.optimizer)
    trainer.restore(ckpt.trainer)
    return trainer


@pytest.mark.parametrize("engine", ["fused", "kernels"])
@pytest.mark.parametrize("sampling", ["shuffle", "iid"])
@pytest.mark.parametrize(
    "stop_at",
    [(1, 0), (1, 1), (1, 5), (2, 0), (2, 7), (3, 3)],
    ids=lambda s: f"epoch{s[0]}-batch{s[1]}",
)
def test_resume_anywhere_is_bitwise_identical(engine, sampling, stop_at, tmp_path):
    """(epoch e, batch q): stop after q minibatches of epoch e (q = 0: after epoch e−1 ended,
    before epoch e started), write the checkpoint, resume in a new Trainer, finish."""
    straight = fresh_trainer(engine, sampling)
    losses = finish(straight)

    epoch, batch = stop_at
    first = fresh_trainer(engine, sampling)
    for _ in range(epoch - 1):
        first.train_epoch()
    if batch:
        assert first.run_batches(until=batch) is None
        assert (first.epoch, first.batch) == (epoch, batch)
    save(first, tmp_path / "ckpt.npz")
    second = resumed(tmp_path / "ckpt.npz", engine, sampling)
    assert (second.epoch, second.batch, second.step_count) == (
        first.epoch,
        first.batch,
        first.step_count,
    )
    resumed_losses = finish(second)

    assert second.model.params.theta.tobytes() == straight.model.params.theta.tobytes()
    for name, value in straight.optimizer.state.items():
        assert second.optimizer.state[name].tobytes() == value.tobytes(), name
    assert second.step_count == straight.step_count == EPOCHS * 8
    # The interrupted epoch's mean loss is the uninterrupted one, bit for bit.
    assert resumed_losses == losses[len(losses) - len(resumed_losses) :]
    assert straight.rng.bit_generator.state == second.rng.bit_generator.state


def test_a_stop_request_ends_the_call_at_a_minibatch_boundary():
    """should_stop is asked after each engine call; true stops there, mid-epoch."""
    trainer = fresh_trainer("fused", "shuffle")
    asked = []

    def stop() -> bool:
        asked.append(trainer.batch)
        return True

    assert trainer.run_batches(should_stop=stop) is None
    assert asked == [1] and (trainer.epoch, trainer.batch) == (1, 1)  # the epoch's first call
    metrics = trainer.run_batches(should_stop=lambda: False)
    assert metrics is not None and metrics.epoch == 1 and trainer.batch == 0


def test_restore_refuses_a_state_that_does_not_fit(tmp_path):
    trainer = fresh_trainer("fused", "shuffle")
    trainer.run_batches(until=3)
    state = trainer.run_state()
    other = fresh_trainer("fused", "shuffle")
    with pytest.raises(NumbamlpError, match="inconsistent"):
        other.restore(state)  # its optimizer is at step 0, the state at step 3
    bigger = fresh_trainer("fused", "shuffle", TrainConfig(epochs=EPOCHS, batch_size=16, lr=0.02))
    with pytest.raises(NumbamlpError, match="steps per epoch"):
        bigger.restore(state)
    broken = dict(state, epoch_rng_state={"bit_generator": "PCG64", "state": "nonsense"})
    ckpt_trainer = fresh_trainer("fused", "shuffle")
    ckpt_trainer.optimizer.step_count = 3
    with pytest.raises(NumbamlpError, match="generator"):
        ckpt_trainer.restore(broken)


def test_a_checkpoint_is_also_a_model_file(tmp_path):
    trainer = fresh_trainer("fused", "shuffle")
    trainer.train_epoch()
    save(trainer, tmp_path / "c.npz")
    loaded = load_model(tmp_path / "c.npz")
    assert loaded.model.params.theta.tobytes() == trainer.model.params.theta.tobytes()


def test_a_diverged_model_is_never_checkpointed(tmp_path):
    trainer = fresh_trainer("fused", "shuffle")
    trainer.train_epoch()
    save(trainer, tmp_path / "c.npz")
    good = (tmp_path / "c.npz").read_bytes()
    trainer.model.params.theta[3] = np.nan
    with pytest.raises(NumbamlpError, match="NaN or Inf"):
        save(trainer, tmp_path / "c.npz")
    assert (tmp_path / "c.npz").read_bytes() == good


# --- bad checkpoint files ------------------------------------------------------------------------


@pytest.fixture
def good_checkpoint(tmp_path) -> Path:
    trainer = fresh_trainer("fused", "shuffle")
    trainer.run_batches(until=2)
    path = tmp_path / "run" / CHECKPOINT_NAME
    path.parent.mkdir()
    save(trainer, path)
    return path


def _rewrite_checkpoint_metadata(path: Path, change) -> None:
    loaded = load_model(path)
    meta = loaded.metadata
    change(meta["checkpoint"])
    save_model(path, loaded.model, loaded.optimizer, meta)


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a valid"),
        (lambda p: p.write_bytes(b"PK\x03\x04" + b"\0" * 100), "not a valid"),
        (lambda p: p.write_bytes(b""), "not a valid"),
        (
            lambda p: _rewrite_checkpoint_metadata(p, lambda c: c.update(version=2)),
            "newer than this numbamlp",
        ),
        (
            lambda p: _rewrite_checkpoint_metadata(p, lambda c: c.update(version="1")),
            "not a positive integer",
        ),
        (lambda p: _rewrite_checkpoint_metadata(p, lambda c: c.pop("trainer")), "missing"),
        (
            lambda p: _rewrite_checkpoint_metadata(p, lambda c: c["trainer"].update(batch=-1)),
            "negative",
        ),
        (lambda p: _rewrite_checkpoint_metadata(p, lambda c: c["run"].pop("seed")), "seed"),
    ],
    ids=[
        "truncated",
        "zeros",
        "empty",
        "newer-version",
        "version-text",
        "no-position",
        "bad-batch",
        "no-seed",
    ],
)
def test_bad_checkpoints_are_refused(good_checkpoint, damage, fragment):
    damage(good_checkpoint)
    with pytest.raises(NumbamlpError, match=fragment):
        load_checkpoint(good_checkpoint.parent)


def test_a_plain_model_file_is_not_a_checkpoint(tmp_path):
    trainer = fresh_trainer("fused", "shuffle")
    save_model(tmp_path / "m.npz", trainer.model, trainer.optimizer)
    with pytest.raises(NumbamlpError, match="without the run's state"):
        load_checkpoint(tmp_path / "m.npz")
    with pytest.raises(NumbamlpError, match="no checkpoint in"):
        load_checkpoint(tmp_path)


# --- the command line ----------------------------------------------------------------------------


def run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def train_args(data, *more) -> list:
    train, test = data
    return [
        "train", "--train-file", train, "--test-file", test, "--hidden", "8",
        "--batch-size", "32", "--lr", "0.05", "-q", *more,
    ]  # fmt: skip


def assert_same_model(a: Path, b: Path) -> None:
    ma, mb = load_model(a), load_model(b)
    assert ma.model.params.theta.tobytes() == mb.model.params.theta.tobytes()
    assert ma.optimizer.step_count == mb.optimizer.step_count
    for name, value in ma.optimizer.state.items():
        assert mb.optimizer.state[name].tobytes() == value.tobytes()


def test_cli_resume_at_an_epoch_end_equals_the_straight_run(data, tmp_path):
    full = run(*train_args(data, "--epochs", "3", "--save", tmp_path / "full.npz"))
    assert full.exit_code == 0, full.output
    part = run(*train_args(data, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck"))
    assert part.exit_code == 0, part.output
    ckpt = load_checkpoint(tmp_path / "ck")
    assert ckpt.where == "the end of epoch 1" and len(ckpt.history) == 1
    outputs = ("--save", tmp_path / "resumed.npz", "--metrics-out", tmp_path / "m.jsonl")
    rest = run("train", "--resume", tmp_path / "ck", "--epochs", "3", "-q", "--threads", "1",
               *outputs)  # fmt: skip
    assert rest.exit_code == 0, rest.output
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]  # the whole run's
    assert_same_model(tmp_path / "full.npz", tmp_path / "resumed.npz")
    # The resumed run kept checkpointing where it came from; the history is the whole run's.
    assert load_checkpoint(tmp_path / "ck").trainer["epoch"] == 3
    assert [h["epoch"] for h in load_checkpoint(tmp_path / "ck").history] == [1, 2, 3]


def test_cli_dropout_run_resumed_equals_the_straight_run(data, tmp_path):
    """`--dropout`: the masks are a function of (seed, step, sample, layer, unit), so a run
    stopped at an epoch's end and resumed (without repeating the option: the checkpoint keeps
    it) trains the straight run's weights; the option changes them."""
    rates = ("--dropout", "0.5")
    full = run(*train_args(data, *rates, "--epochs", "2", "--save", tmp_path / "full.npz"))
    assert full.exit_code == 0, full.output
    part = run(*train_args(data, *rates, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck"))
    assert part.exit_code == 0, part.output
    rest = run("train", "--resume", tmp_path / "ck", "--epochs", "2", "-q", "--save",
               tmp_path / "resumed.npz")  # fmt: skip
    assert rest.exit_code == 0, rest.output
    assert_same_model(tmp_path / "full.npz", tmp_path / "resumed.npz")
    plain = run(*train_args(data, "--epochs", "2", "--save", tmp_path / "plain.npz"))
    assert plain.exit_code == 0, plain.output
    zero = run(*train_args(data, "--dropout", "0", "--epochs", "2", "--save", tmp_path / "z.npz"))
    assert zero.exit_code == 0, zero.output
    assert_same_model(tmp_path / "plain.npz", tmp_path / "z.npz")  # rate 0: the plain run
    a, b = load_model(tmp_path / "full.npz"), load_model(tmp_path / "plain.npz")
    assert a.model.params.theta.tobytes() != b.model.params.theta.tobytes()
    assert a.metadata["dropout"] == [0.5] and b.metadata["dropout"] == []
    bad = run(*train_args(data, "--dropout", "1.5", "--epochs", "1"))
    assert bad.exit_code == 2 and "--dropout" in bad.output and "[0, 1)" in bad.output


def _signal_at(monkeypatch, batch: int, signum: int = signal.SIGINT) -> None:
    """Deliver a real signal to this process once the trainer has made ``batch`` minibatches
    of epoch 2 (the CLI runs in-process under CliRunner, so its handler receives it)."""
    original = Trainer.run_batches

    def run_batches(self, on_batch=None, until=None, should_stop=None):
        def hook(b: int) -> None:
            if on_batch is not None:
                on_batch(b)
            if self.epoch == 2 and self.batch >= batch and not getattr(self, "_sent", False):
                self._sent = True
                os.kill(os.getpid(), signum)

        return original(self, hook, until, should_stop)

    monkeypatch.setattr(Trainer, "run_batches", run_batches)


@pytest.mark.parametrize("engine", ["fused", "kernels"])
def test_cli_sigint_mid_epoch_then_resume_equals_the_straight_run(
    data, tmp_path, monkeypatch, engine
):
    """Batch 8: 38 minibatches per epoch, so the fused engine's calls (1, then up to 32
    minibatches) end mid-epoch too; the stop comes at the end of the call the signal hit."""
    small = ("--batch-size", "8", "--engine", engine)
    full = run(*train_args(data, "--epochs", "3", *small, "--save", tmp_path / "full.npz"))
    assert full.exit_code == 0, full.output
    _signal_at(monkeypatch, batch=3)
    stopped = run(*train_args(data, "--epochs", "3", *small, "--checkpoint-dir",
                              tmp_path / "ck", "--save", tmp_path / "never.npz"))  # fmt: skip
    assert stopped.exit_code == 130, stopped.output
    assert "SIGINT: stopped at epoch 2, batch" in stopped.output
    assert f"resume with: numbamlp train --resume {tmp_path / 'ck'}" in stopped.output
    assert "Traceback" not in stopped.output
    assert not (tmp_path / "never.npz").exists()
    ckpt = load_checkpoint(tmp_path / "ck")
    assert ckpt.trainer["epoch"] == 2 and 3 <= ckpt.trainer["batch"] < 38
    monkeypatch.undo()
    rest = run("train", "--resume", tmp_path / "ck", "-q", "--save", tmp_path / "resumed.npz")
    assert rest.exit_code == 0, rest.output
    assert_same_model(tmp_path / "full.npz", tmp_path / "resumed.npz")


def test_cli_periodic_checkpoints_resume_exactly(data, tmp_path, monkeypatch):
    """--checkpoint-every 4: writes after steps 4, 8, the end of epoch 1 (step 10), 12, 16, 20
    (10 steps per epoch). Resuming from the one at step 12 (epoch 2, batch 2) gives the straight
    run's model."""
    import shutil

    import numbamlp.training.checkpoint as checkpoint

    full = run(*train_args(data, "--epochs", "3", "--save", tmp_path / "full.npz"))
    assert full.exit_code == 0
    original = checkpoint.save_checkpoint
    snaps = tmp_path / "snaps"
    snaps.mkdir()

    def save_and_keep(path, model, optimizer, run_info, trainer, history, metadata=None):
        original(path, model, optimizer, run_info, trainer, history, metadata)
        shutil.copy(path, snaps / f"step-{trainer['step_count']}.npz")

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_and_keep)
    result = run(*train_args(data, "--epochs", "3", "--checkpoint-dir", tmp_path / "ck",
                             "--checkpoint-every", "4"))  # fmt: skip
    assert result.exit_code == 0, result.output
    monkeypatch.undo()
    steps = sorted(int(p.stem.split("-")[1]) for p in snaps.iterdir())
    assert steps == [4, 8, 10, 12, 16, 20, 24, 28, 30]
    (tmp_path / "from12").mkdir()
    shutil.copy(snaps / "step-12.npz", tmp_path / "from12" / CHECKPOINT_NAME)
    assert load_checkpoint(tmp_path / "from12").where == "epoch 2, batch 2"
    rest = run("train", "--resume", tmp_path / "from12", "-q", "--save", tmp_path / "r.npz")
    assert rest.exit_code == 0, rest.output
    assert_same_model(tmp_path / "full.npz", tmp_path / "r.npz")


def test_cli_sigterm_exits_143_with_a_checkpoint(data, tmp_path, monkeypatch):
    _signal_at(monkeypatch, batch=1, signum=signal.SIGTERM)
    stopped = run(*train_args(data, "--epochs", "3", "--checkpoint-dir", tmp_path / "ck"))
    assert stopped.exit_code == 143, stopped.output
    assert "SIGTERM: stopped at" in stopped.output


def test_cli_interrupt_without_checkpoint_dir_still_saves(data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "numbamlp-checkpoint").mkdir()  # taken: the next free name is used
    _signal_at(monkeypatch, batch=2)
    stopped = run(*train_args(data, "--epochs", "3"))
    assert stopped.exit_code == 130
    assert "resume with: numbamlp train --resume numbamlp-checkpoint-2" in stopped.output
    assert load_checkpoint(tmp_path / "numbamlp-checkpoint-2").trainer["epoch"] == 2


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["--hidden", "16"], "--hidden"),
        (["--optimizer", "sgd"], "--optimizer"),
        (["--batch-size", "64"], "--batch-size"),
        (["--seed", "4"], "--seed"),
        (["--dtype", "float64"], "--dtype"),
        (["--engine", "kernels"], "--engine"),
        (["--dropout", "0.3"], "--dropout"),
        (["--epochs", "1"], "already at epoch 2"),
    ],
)
def test_cli_resume_refuses_a_different_run(data, tmp_path, options, fragment):
    first = run(*train_args(data, "--epochs", "2", "--checkpoint-dir", tmp_path / "ck"))
    assert first.exit_code == 0
    before = (tmp_path / "ck" / CHECKPOINT_NAME).read_bytes()
    result = run("train", "--resume", tmp_path / "ck", *options)
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert (tmp_path / "ck" / CHECKPOINT_NAME).read_bytes() == before


def test_cli_resume_refuses_other_data(data, tmp_path):
    first = run(*train_args(data, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck"))
    assert first.exit_code == 0
    X, y = blobs(300, 9, d=4)  # same shape, other numbers, same path
    np.savez(data[0], X=X, y=y)
    result = run("train", "--resume", tmp_path / "ck", "--epochs", "2")
    assert result.exit_code == 2
    assert "is not the data the checkpoint" in result.output


def test_cli_fresh_run_never_overwrites_a_checkpoint(data, tmp_path):
    first = run(*train_args(data, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck"))
    assert first.exit_code == 0
    before = (tmp_path / "ck" / CHECKPOINT_NAME).read_bytes()
    again = run(*train_args(data, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck"))
    assert again.exit_code == 2 and "already holds a checkpoint" in again.output
    assert (tmp_path / "ck" / CHECKPOINT_NAME).read_bytes() == before


def test_cli_divergence_keeps_the_last_good_checkpoint_and_model(data, tmp_path, monkeypatch):
    """θ is poisoned when epoch 2 starts (a stand-in for an exploding step); the loss of the
    next minibatch is NaN, the run stops, the epoch-1 checkpoint and the old model file stay."""
    (tmp_path / "model.npz").write_bytes(b"PK\x03\x04 the user's previous model")
    original = Trainer._start_epoch

    def poisoned(self, p0):
        original(self, p0)
        if self.epoch == 2:
            self.model.params.theta[:] = np.nan

    monkeypatch.setattr(Trainer, "_start_epoch", poisoned)
    result = run(*train_args(data, "--epochs", "3", "--checkpoint-dir", tmp_path / "ck",
                             "--save", tmp_path / "model.npz"))  # fmt: skip
    assert result.exit_code == 2
    output = result.output
    assert "training diverged" in output and "smaller learning rate" in output
    assert "last good checkpoint" in output and "(the end of epoch 1), is unchanged" in output
    assert "Traceback" not in output
    assert load_checkpoint(tmp_path / "ck").trainer["epoch"] == 1
    assert (tmp_path / "model.npz").read_bytes() == b"PK\x03\x04 the user's previous model"


def test_cli_full_disk_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch):
    """The second checkpoint write fails with ENOSPC after 512 bytes (a simulated full disk):
    one clear error, exit 2, the epoch-1 checkpoint intact and no temporary file left."""
    real_fdopen = os.fdopen
    writes = []

    class FullDisk:
        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, b):
            self.written += len(b)
            if self.written > 512:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.f.write(b)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        writes.append(fd)
        return FullDisk(f) if len(writes) >= 2 else f

    monkeypatch.setattr(os, "fdopen", fdopen)
    result = run(*train_args(data, "--epochs", "3", "--checkpoint-dir", tmp_path / "ck"))
    monkeypatch.undo()
    assert result.exit_code == 2, result.output
    assert "No space left on device" in result.output
    assert "previous file (if any) is unchanged" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [CHECKPOINT_NAME]
    assert load_checkpoint(tmp_path / "ck").trainer["epoch"] == 1


# --- a real process, real signals -------------------------------------------------------------


def _start(args: list, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    return subprocess.Popen(
        NUMBAMLP + [str(a) for a in args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run wrote no checkpoint"
        time.sleep(0.02)


LONG = 150  # epochs: long enough that the signal lands mid-run, short enough for CI


def _long_args(data, *more) -> list:
    return train_args(data, "--epochs", LONG, "--hidden", "32", *more)


@pytest.mark.slow
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_real_signal_to_a_real_process_then_resume(data, tmp_path, signum, status):
    straight = _start(_long_args(data, "--save", tmp_path / "full.npz"), tmp_path)
    stopped = _start(_long_args(data, "--checkpoint-dir", tmp_path / "ck",
                                "--save", tmp_path / "never.npz"), tmp_path)  # fmt: skip
    _wait_for(tmp_path / "ck" / CHECKPOINT_NAME, stopped)
    stopped.send_signal(signum)
    out, err = stopped.communicate(timeout=120)
    assert straight.wait(timeout=300) == 0, straight.communicate()
    assert stopped.returncode == status, err
    assert f"{signal.Signals(signum).name}: stopped at" in err
    assert "resume with: numbamlp train --resume" in err
    assert "Traceback" not in err + out
    assert not (tmp_path / "never.npz").exists()
    ckpt = load_checkpoint(tmp_path / "ck")
    assert ckpt.trainer["epoch"] < LONG  # it really stopped early

    rest = _start(["train", "--resume", tmp_path / "ck", "-q", "--save", tmp_path / "res.npz"],
                  tmp_path)  # fmt: skip
    out, err = rest.communicate(timeout=300)
    assert rest.returncode == 0, err
    assert_same_model(tmp_path / "full.npz", tmp_path / "res.npz")


def test_a_second_sigint_stops_at_once_and_corrupts_nothing(data, tmp_path):
    process = _start(_long_args(data, "--checkpoint-dir", tmp_path / "ck"), tmp_path)
    _wait_for(tmp_path / "ck" / CHECKPOINT_NAME, process)
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err + out
    assert "stopped at" in err  # "interrupted again: stopped at once" or the first stop's line
    # Whatever the second signal interrupted, the directory holds one loadable checkpoint.
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [CHECKPOINT_NAME]
    assert load_checkpoint(tmp_path / "ck").trainer["epoch"] >= 1


# --- early stopping: its state is in the checkpoint ---------------------------------------------


@pytest.fixture
def overfit(tmp_path):
    for name, (n, seed) in (("train", (240, 0)), ("test", (90, 1))):
        X, y = noisy_blobs(n, seed)
        np.savez(tmp_path / f"{name}.npz", X=X, y=y)
    return [
        "train", "--train-file", tmp_path / "train.npz", "--test-file", tmp_path / "test.npz",
        "--hidden", "128", "--activation", "relu", "--batch-size", "8", "--lr", "0.001",
        "--validation-fraction", "0.25", "--patience", "3", "-q",
        "--no-standardize",  # best epoch 3 is the raw features' run
    ]  # fmt: skip


@pytest.mark.parametrize("engine", ["fused", "kernels"])
def test_cli_early_stopping_run_stopped_mid_epoch_resumes_exactly(
    overfit, tmp_path, monkeypatch, engine
):
    """SIGINT in epoch 5 (best epoch 3, one epoch without improvement): the resumed run stops
    after epoch 6 as the straight one does, with the same best weights, bit for bit."""
    args = [*overfit, "--engine", engine, "--epochs", "30"]
    full = run(*args, "--save", tmp_path / "full.npz", "--metrics-out", tmp_path / "full.jsonl")
    assert full.exit_code == 0, full.output
    original = Trainer.run_batches

    def run_batches(self, on_batch=None, until=None, should_stop=None):
        def hook(b: int) -> None:
            if on_batch is not None:
                on_batch(b)
            if self.epoch == 5 and self.batch >= 3 and not getattr(self, "_sent", False):
                self._sent = True
                os.kill(os.getpid(), signal.SIGINT)

        return original(self, hook, until, should_stop)

    monkeypatch.setattr(Trainer, "run_batches", run_batches)
    # --checkpoint-every 5 cuts the fused engine's calls, so the stop comes mid-epoch
    stopped = run(*args, "--checkpoint-dir", tmp_path / "ck", "--checkpoint-every", "5")
    assert stopped.exit_code == 130, stopped.output
    monkeypatch.undo()
    ckpt = load_checkpoint(tmp_path / "ck")
    assert ckpt.trainer["epoch"] == 5 and ckpt.trainer["batch"] >= 3
    assert ckpt.early_stopping == {
        "patience": 3, "best_loss": ckpt.history[2]["val_loss"], "best_epoch": 3, "wait": 1,
        "stopped": False,
    }  # fmt: skip
    assert ckpt.best_theta is not None and ckpt.best_theta.dtype == np.float32
    rest = run("train", "--resume", tmp_path / "ck", "--save", tmp_path / "resumed.npz",
               "--metrics-out", tmp_path / "resumed.jsonl")  # fmt: skip
    assert rest.exit_code == 0, rest.output
    assert "restored the weights of the best epoch, 3" in rest.output
    assert_same_model(tmp_path / "full.npz", tmp_path / "resumed.npz")
    assert (tmp_path / "full.jsonl").read_text().count("\n") == 6
    full_records = [json.loads(x) for x in (tmp_path / "full.jsonl").read_text().splitlines()]
    resumed = [json.loads(x) for x in (tmp_path / "resumed.jsonl").read_text().splitlines()]
    for a, b in zip(full_records, resumed, strict=True):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_accuracy"):
            assert a[key] == b[key], (key, a, b)
    # The run has stopped: its checkpoint cannot be continued.
    again = run("train", "--resume", tmp_path / "ck", "--epochs", "40")
    assert again.exit_code == 2 and "stopped early at epoch 6" in again.output, again.output


def test_cli_checkpoint_without_the_new_options_still_resumes(data, tmp_path):
    """Checkpoints written before --validation-fraction and --patience existed resume with
    their defaults, and the same bits."""
    first = run(*train_args(data, "--epochs", "1", "--checkpoint-dir", tmp_path / "ck",
                            "--checkpoint-every", "3"))  # fmt: skip
    assert first.exit_code == 0, first.output
    full = run(*train_args(data, "--epochs", "2", "--save", tmp_path / "full.npz"))
    assert full.exit_code == 0, full.output

    def old(part):
        for name in ("validation_fraction", "patience"):
            del part["run"]["options"][name]
        for name in ("epoch_correct", "reference_loss"):
            part["trainer"].pop(name, None)

    _rewrite_checkpoint_metadata(tmp_path / "ck" / CHECKPOINT_NAME, old)
    rest = run("train", "--resume", tmp_path / "ck", "--epochs", "2", "--save",
               tmp_path / "resumed.npz")  # fmt: skip
    assert rest.exit_code == 0, rest.output
    assert_same_model(tmp_path / "full.npz", tmp_path / "resumed.npz")
