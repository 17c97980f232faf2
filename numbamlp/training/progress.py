"""The progress bar of an epoch on a terminal: bar, rate, ETA and the running training loss.

``epoch 3/20  [#########---------]  48%  2140 batches/s  ETA 0:00  loss 0.2987`` redrawn in place
(carriage return, no cursor escapes) at most every ``REDRAW_SECONDS`` and at the last minibatch;
when the epoch ends the line is blanked, so the epoch's summary line takes its place and the
terminal keeps one line per epoch. The trainer's callback reports each minibatch with its loss;
updating costs a clock read and two additions, drawing happens a few times a second.
"""

from __future__ import annotations

import shutil
import time
from types import TracebackType
from typing import TextIO

REDRAW_SECONDS = 0.1
BAR_WIDTH = 30
TAIL_ROOM = 52


def format_duration(seconds: float) -> str:
    """0:07, 12:34, 1:02:03."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class EpochBar:
    """A context manager drawing one epoch's progress on ``stream`` (a terminal)."""

    def __init__(
        self, stream: TextIO, length: int, label: str, redraw_seconds: float = REDRAW_SECONDS
    ) -> None:
        self.stream, self.length, self.label = stream, max(length, 1), label
        self.redraw_seconds = redraw_seconds
        self.pos = 0  # minibatches done in the epoch
        self.loss_sum = 0.0  # of their losses
        self._first = 0  # minibatches already done when the bar started (a resumed epoch)
        self._started = self._drawn_at = time.perf_counter()
        self._width = 0  # of the line on screen

    def __enter__(self) -> EpochBar:
        self._started = time.perf_counter()
        self.draw()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stream.write("\r" + " " * self._width + "\r")
        self.stream.flush()

    def skip(self, done: int, loss_sum: float) -> None:
        """Start from ``done`` minibatches (with losses summing to ``loss_sum``) already run."""
        self.pos = self._first = done
        self.loss_sum = loss_sum
        self.draw()

    def update(self, loss: float) -> None:
        """One more minibatch, of loss ``loss``."""
        self.pos += 1
        self.loss_sum += loss
        now = time.perf_counter()
        if now - self._drawn_at >= self.redraw_seconds or self.pos >= self.length:
            self.draw(now)

    def line(self, now: float | None = None) -> str:
        """The text of the bar as it stands."""
        now = time.perf_counter() if now is None else now
        fraction = min(self.pos / self.length, 1.0)
        parts = [f"{fraction:4.0%}"]
        elapsed = now - self._started
        done = self.pos - self._first
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            parts.append(f"{rate:.0f} batches/s" if rate >= 10 else f"{rate:.2g} batches/s")
            parts.append(f"ETA {format_duration((self.length - self.pos) / rate)}")
        if self.pos > 0:
            parts.append(f"loss {self.loss_sum / self.pos:.4f}")
        tail = "  ".join(parts)
        columns = shutil.get_terminal_size((80, 24)).columns
        # room for the longest tail ("100%  12345 batches/s  ETA 1:02:03  loss 0.1234"), so
        # the bar keeps its width while the numbers change
        width = max(min(BAR_WIDTH, columns - len(self.label) - TAIL_ROOM), 5)
        filled = int(fraction * width)
        text = f"{self.label}  [{'#' * filled}{'-' * (width - filled)}]  {tail}"
        return text[: max(columns - 1, 20)]

    def draw(self, now: float | None = None) -> None:
        now = time.perf_counter() if now is None else now
        text = self.line(now)
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width, self._drawn_at = len(text), now
