"""Stopping a training run cleanly on Ctrl-C (SIGINT) or SIGTERM.

The first signal only sets a flag: the trainer finishes the engine call it is in (at most
engines.base.FUSED_CHUNK minibatches, a short wait), the run writes a checkpoint and exits. A
second signal raises KeyboardInterrupt at once; every file write is atomic (atomic.py), so
stopping in the middle of one leaves the previous checkpoint intact.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """While active (``with StopRequest() as stop:``), ``stop.signal`` is the number of the first
    SIGINT/SIGTERM received, else None; ``bool(stop)`` tells whether one was."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __bool__(self) -> bool:
        return self.signal is not None

    def requested(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt  # the second signal: stop now
        self.signal = signum

    def __enter__(self) -> StopRequest:
        # Signal handlers can only be set from the main thread (tests may run us elsewhere).
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        self._previous.clear()
