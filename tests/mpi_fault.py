"""``numbamlp`` with one rank of an MPI job failing at a step (tests/engines/test_distributed.py).

Run as ``mpiexec -n N python tests/mpi_fault.py train …``: the rank numbered FAULT_RANK leaves
the process as if it crashed (os._exit(1)) — or, with FAULT=hang, stops answering (sleeps) —
at the exchange of step FAULT_STEP of the run (counted from its start), the others then wait
for it in that exchange. The fault is injected here, by wrapping the Cluster's step exchange
before the CLI runs; nothing in numbamlp knows of it.
"""

from __future__ import annotations

import os
import sys
import time

from numbamlp.engines.cluster import Cluster

RANK = int(os.environ["FAULT_RANK"])
STEP = int(os.environ["FAULT_STEP"])
HANG = os.environ.get("FAULT") == "hang"

exchange = Cluster.allgather_in_place
steps = 0


def failing_exchange(self: Cluster, parts: list) -> None:
    """The step's exchange, except on rank RANK at step STEP."""
    global steps
    steps += 1
    if self.rank == RANK and steps == STEP:
        if HANG:
            time.sleep(3600)
        os._exit(1)
    exchange(self, parts)


Cluster.allgather_in_place = failing_exchange  # type: ignore[method-assign]

if __name__ == "__main__":
    from numbamlp.cli.commands import main

    sys.exit(main())
