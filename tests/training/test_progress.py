"""The epoch progress bar (progress.py): rate, ETA and running loss, drawn a few times a second,
blanked at the end of the epoch so that its summary line takes its place; drawn by default only
on a terminal and never on an MPI rank other than 0 (fit's ``progress``, ``--progress``)."""

from __future__ import annotations

import io
import re
import sys

import numpy as np
import pytest

from numbamlp.training.progress import EpochBar, format_duration


def _screen(text: str) -> list[str]:
    """What a terminal shows of ``text``: each line's part after its last carriage return."""
    return [line.rsplit("\r", 1)[-1] for line in text.split("\n")]


def test_the_bar_shows_rate_eta_and_the_running_loss():
    stream = io.StringIO()
    with EpochBar(stream, 4, "epoch 1/3", redraw_seconds=0) as bar:
        for loss in (1.0, 0.5, 0.25, 0.25):
            bar.update(loss)
            if bar.pos == 2:
                middle = bar.line()
    assert re.search(
        r"^epoch 1/3  \[#+-+\]   50%  \S+ batches/s  ETA \d+:\d\d  loss 0\.7500$", middle
    )
    text = stream.getvalue()
    assert "100%" in text and "loss 0.5000" in text
    assert _screen(text) == [""]  # blanked at the end: the epoch line comes in its place


def test_redraws_are_throttled():
    stream = io.StringIO()
    with EpochBar(stream, 1000, "epoch 1/1", redraw_seconds=3600) as bar:
        for _ in range(1000):
            bar.update(0.1)
    assert stream.getvalue().count("\r") == 1 + 1 + 2  # on entry, the last batch, the blanking


def test_a_resumed_epoch_starts_where_it_stopped():
    stream = io.StringIO()
    with EpochBar(stream, 10, "epoch 2/2", redraw_seconds=0) as bar:
        bar.skip(6, 6 * 0.3)
        assert " 60%" in bar.line() and "loss 0.3000" in bar.line()
        assert "batches/s" not in bar.line()  # no rate before a minibatch ran in this process
        bar.update(0.7)
        assert "loss 0.3571" in bar.line() and "batches/s" in bar.line()


def test_format_duration():
    assert [format_duration(s) for s in (0, 7.4, 754, 3723)] == ["0:00", "0:07", "12:34", "1:02:03"]


# --- when fit draws the bar: fit(progress=None | True | False), numbamlp train --progress ------


class FakeTerminal(io.StringIO):
    """Standard output as a terminal would be, recorded."""

    def isatty(self) -> bool:
        return True


class Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("progress") / "train.npz"
    np.savez(path, X=rng.normal(size=(64, 4)), y=rng.integers(0, 3, 64))
    return str(path)


def _stdout_of_fit(stream: io.StringIO, tiny: str, **options) -> str:
    from numbamlp.training.fit import fit

    saved = sys.stdout
    sys.stdout = stream
    try:
        fit(train_file=tiny, hidden=4, batch_size=16, epochs=2, threads=1, **options)
    finally:
        sys.stdout = saved
    return stream.getvalue()


def _has_bar(text: str) -> bool:
    return "\r" in text and re.search(r"epoch \d/2  \[[#-]+\]", text) is not None


@pytest.fixture
def rank0(monkeypatch):
    """A process that no launcher started (whatever the environment running the tests)."""
    for name in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_auto_draws_the_bar_on_a_terminal(rank0, tiny):
    text = _stdout_of_fit(FakeTerminal(), tiny)
    assert _has_bar(text), text
    assert len(re.findall(r"^(?:\r[^\n]*\r)?epoch +\d  train_loss", text, flags=re.M)) == 2


def test_auto_draws_nothing_into_a_file_or_pipe(rank0, tiny):
    text = _stdout_of_fit(Pipe(), tiny)
    assert "\r" not in text and "epoch   1  train_loss" in text


def test_false_never_draws(rank0, tiny):
    text = _stdout_of_fit(FakeTerminal(), tiny, progress=False)
    assert "\r" not in text and "epoch   1  train_loss" in text


def test_true_draws_even_into_a_pipe(rank0, tiny):
    assert _has_bar(_stdout_of_fit(Pipe(), tiny, progress=True))


def test_auto_draws_nothing_on_an_mpi_rank_other_than_0(rank0, tiny):
    """Open MPI gives each rank a terminal: the bar of rank 1 would fill its redirected log."""
    rank0.setenv("OMPI_COMM_WORLD_RANK", "1")
    text = _stdout_of_fit(FakeTerminal(), tiny)
    assert "\r" not in text, text


def test_auto_draws_nothing_under_a_launcher_even_on_rank_0(rank0, tiny):
    """mpiexec gives rank 0 a terminal too, whether or not its own output is one: the log it
    redirects must not fill with frames. --progress still draws there."""
    rank0.setenv("OMPI_COMM_WORLD_RANK", "0")
    assert "\r" not in _stdout_of_fit(FakeTerminal(), tiny)
    rank0.setenv("PMI_RANK", "0")
    assert _has_bar(_stdout_of_fit(FakeTerminal(), tiny, progress=True))


def test_auto_draws_nothing_at_verbose_0(rank0, tiny):
    assert _stdout_of_fit(FakeTerminal(), tiny, verbose=0) == ""


def test_the_command_line_s_progress_option(rank0, tiny):
    from click.testing import CliRunner

    from numbamlp.cli.commands import main

    args = ["train", "--train-file", tiny, "--hidden", "4", "--epochs", "2", "--threads", "1"]
    drawn = CliRunner().invoke(main, [*args, "--progress"])
    plain = CliRunner().invoke(main, args)  # CliRunner's output is no terminal
    assert drawn.exit_code == 0 and plain.exit_code == 0, (drawn.output, plain.output)
    assert _has_bar(drawn.stdout) and "\r" not in plain.stdout
