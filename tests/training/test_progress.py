"""The epoch progress bar (progress.py): rate, ETA and running loss, drawn a few times a second,
blanked at the end of the epoch so that its summary line takes its place."""

from __future__ import annotations

import io
import re

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
