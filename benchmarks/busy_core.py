"""Another process that keeps one core busy, for the benchmarks of the default thread count
(test_contention.py, governor_cost.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# The loop ends by itself once the process that started it is gone: a benchmark stopped by a
# signal does not reach its clean-up, and a loop left running spoils what runs next.
BUSY_LOOP = """
import os, sys
while os.getppid() == int(sys.argv[1]):  # the starter's pid, given: it may be gone already
    for _ in range(1_000_000):
        pass
"""


@contextmanager
def one_core_busy() -> Iterator[None]:
    """A busy-looping process for the duration of the block."""
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(os.getpid())])
    try:
        yield
    finally:
        busy.kill()
        busy.wait()
