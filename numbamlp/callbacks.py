"""Callbacks for the training loop: Flux's ``throttle`` (MMiDS §7.3 ``throttle(evalcb, 2)``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Throttle:
    """Call ``fn`` at most once every ``seconds``; the first call always goes through."""

    def __init__(
        self, fn: Callable[..., Any], seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.fn = fn
        self.seconds = seconds
        self.clock = clock
        self._last: float | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        now = self.clock()
        if self._last is None or now - self._last >= self.seconds:
            self._last = now
            return self.fn(*args, **kwargs)
        return None
