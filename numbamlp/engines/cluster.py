"""Data-parallel training over MPI (mpi4py): N ranks, the same θ as one process, bit for bit.

Here: the job (``Cluster``: MPI_COMM_WORLD and the collectives a run needs, each non-blocking
and waited for at most ``timeout`` seconds), how the ranks start, agree and fail together
(``connect``, ``fail``), and the launcher's environment. The training steps are the fused
engine's, with region 1 shared among the ranks: engines/distributed.py (``MPIExchange``), which
``training.Trainer(..., cluster=cluster)`` builds.

A rank that stops answering ends the run with a DistributedError instead of a hang, and the
CLI then aborts every rank (``Cluster.abort``).

Importing this module does not import mpi4py: ``connect`` does, and only ``numbamlp train
--distributed`` (or a run started by mpiexec) calls it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from numbamlp.errors import NumbamlpError

#: Environment variables by which MPI launchers announce the world size (Open MPI's mpiexec;
#: MPICH's and Intel MPI's hydra, and Slurm's srun with --mpi=pmi2). A value above 1 makes
#: ``numbamlp train`` distributed without --distributed.
SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
#: The same launchers' rank variables, read before MPI is initialised (to print an input error
#: once, on rank 0).
RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK")
#: Seconds a rank waits for the others in one collective before it gives up (--mpi-timeout).
#: It must cover the longest time one rank can spend outside the collectives while the others
#: wait: the first run's JIT compilation (longer with ranks sharing cores; docs/performance.md,
#: "Figures moved out of the code"), rank 0's test-set evaluation and checkpoint writes.
DEFAULT_TIMEOUT = 300.0
#: Seconds a rank still waits for the others once a signal has asked the run to stop.
SIGNAL_GRACE = 5.0
#: Bytes of an error message the ranks exchange when one fails before training starts.
AGREE_BYTES = 4096


class DistributedError(NumbamlpError):
    """MPI failed, or another rank stopped answering: the run cannot go on on any rank."""


class StartFailed(NumbamlpError):
    """A rank failed before training started (bad input, usually on every rank alike)."""

    def __init__(self, message: str, rank: int) -> None:
        super().__init__(message)
        self.rank = rank


def launched_size(environ: Mapping[str, str] | None = None) -> int:
    """The world size an MPI launcher announced in the environment, or 1."""
    values = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        try:
            return max(1, int(values[name]))
        except (KeyError, ValueError):
            continue
    return 1


def launched_rank(environ: Mapping[str, str] | None = None) -> int:
    """This process's rank as the launcher announced it, or 0."""
    values = os.environ if environ is None else environ
    for name in RANK_VARIABLES:
        try:
            return int(values[name])
        except (KeyError, ValueError):
            continue
    return 0


class Cluster:
    """The ranks of MPI_COMM_WORLD and the collectives the run needs, each non-blocking and
    waited for at most ``timeout`` seconds. ``interrupted`` (set by the run) is asked while
    waiting: a signal then means the job is being stopped, and waiting on would hang."""

    def __init__(self, comm: Any, mpi: Any, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.comm, self.MPI = comm, mpi
        self.rank, self.size = int(comm.Get_rank()), int(comm.Get_size())
        self.timeout = float(timeout)
        self.interrupted: Callable[[], bool] = lambda: False
        self.seconds_waiting = 0.0  # total time spent in collectives (the benchmark reads it)
        self.phase = "starting"  # then "training" (``start``), or "failed"

    def wait(self, requests: list, what: str) -> None:
        """Complete ``requests`` or raise DistributedError after ``timeout`` seconds. Polls:
        spins for the first 2 ms (longer than a step's exchange usually takes: docs/performance.md,
        "Figures moved out of the code"), then sleeps between tests, so that a rank waiting for a
        slow one gives its core away."""
        started = time.perf_counter()
        deadline, pause, signalled = started + self.timeout, 0.0, None
        try:
            while not self.MPI.Request.Testall(requests):
                now = time.perf_counter()
                if now > deadline and signalled is not None:
                    raise DistributedError(
                        f"rank {self.rank}: stopped by a signal, and the other ranks did not "
                        f"complete {what} within {SIGNAL_GRACE:g} s; has a rank died?"
                    )
                if now > deadline:
                    raise DistributedError(
                        f"rank {self.rank}: the other ranks did not complete {what} within "
                        f"{self.timeout:g} s (`mpi_timeout`); a rank has died or hangs"
                    )
                if signalled is None and self.interrupted():
                    # Ctrl-C/SIGTERM reach every rank: the others finish their step and stop
                    # at the same minibatch, so wait on, but not for long (a dead rank's job
                    # is being torn down by the launcher, which signalled us)
                    signalled = now
                    deadline = min(deadline, now + SIGNAL_GRACE)
                if now - started > 0.002:
                    pause = min(0.01, pause * 2 or 1e-4)
                    time.sleep(pause)
        except self.MPI.Exception as exc:
            raise DistributedError(f"rank {self.rank}: MPI error in {what}: {exc}") from None
        finally:
            self.seconds_waiting += time.perf_counter() - started

    def allgather_in_place(self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """For each (buffer, counts, displacements): rank r's entries buffer[displs[r] :
        displs[r] + counts[r]] become every rank's (MPI_Iallgatherv with MPI_IN_PLACE). All
        started at once, then waited for together."""
        requests = [
            self.comm.Iallgatherv(self.MPI.IN_PLACE, [buffer, counts, displs, None])
            for buffer, counts, displs in parts
        ]
        self.wait(requests, "a step's exchange of gradient shards and losses")

    def agree(self, value: bytes, what: str) -> list[bytes]:
        """Every rank's ``value`` (cut to AGREE_BYTES), in rank order."""
        value = value[:AGREE_BYTES]
        send = np.zeros(AGREE_BYTES + 4, np.uint8)
        send[:4] = np.frombuffer(np.uint32(len(value)).tobytes(), np.uint8)
        send[4 : 4 + len(value)] = np.frombuffer(value, np.uint8)
        received = np.zeros((self.size, AGREE_BYTES + 4), np.uint8)
        self.wait([self.comm.Iallgather(send, received)], what)
        return [bytes(row[4 : 4 + int(row[:4].view(np.uint32)[0])]) for row in received]

    def start(self) -> None:
        """The point every rank reaches before training: raise StartFailed (on every rank) if
        one of them failed before it (``fail`` sent its message here instead)."""
        self._settle(b"")
        self.phase = "training"

    def _settle(self, message: bytes) -> None:
        values = self.agree(message, "the start of training")
        for rank, value in enumerate(values):
            if value:
                self.phase = "failed"
                raise StartFailed(value.decode(errors="replace"), rank)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (so that all ranks stop at the same step)."""
        return any(v != b"0" for v in self.agree(b"1" if flag else b"0", "a stop request"))

    def check_same(self, value: str, what: str, hint: str = "") -> None:
        """Raise NumbamlpError unless every rank has the same ``value`` (e.g. the data's
        fingerprint), naming the first rank that differs from rank 0."""
        values = self.agree(value.encode(), f"the comparison of {what}")
        for rank, other in enumerate(values):
            if other != values[0]:
                raise NumbamlpError(
                    f"rank {rank} has different {what} from rank 0; "
                    + (hint or "every rank must train on the same data with the same options")
                )

    def check_parameters(self, theta: np.ndarray, state: np.ndarray) -> None:
        """Raise NumbamlpError unless θ and the optimizer state are bitwise equal on all ranks
        (they are, unless ranks run on CPUs whose vector code rounds differently)."""
        digest = hashlib.sha256(theta.data.cast("B"))
        digest.update(state.reshape(-1).data.cast("B"))
        self.check_same(
            digest.hexdigest(),
            "parameters",
            "the ranks' CPUs round differently (e.g. AVX-512 on some, not on others); run all "
            "ranks on the same kind of CPU",
        )

    def abort(self, code: int) -> None:
        """End every rank of the job now (MPI_Abort): the others may be inside a collective."""
        self.comm.Abort(code)


def fail(cluster: Cluster, exc: Exception, message: str, echo: Callable[[str], None]) -> bool:
    """Report an error that ends a distributed run; returns True if the process may exit
    normally (with status 2), after MPI_Abort it never returns.

    Before training starts (``Cluster.start``) every rank runs the same checks on the same
    input, so an error is usually every rank's: the failing ranks send their messages to the
    agreement that the others reach in ``start``, rank 0 prints the first one (naming the rank
    if it is not rank 0's own), and every rank exits normally. During training an error on rank
    0 (a checkpoint that cannot be written, divergence) or a DistributedError on any rank is
    printed by the rank that has it, which then aborts the whole job, other ranks being in a
    collective. Other errors of other ranks are rank 0's too (divergence is seen by all ranks at
    the same step): such a rank waits for rank 0's abort, and reports its own error only if that
    does not come within the timeout."""
    if cluster.phase == "starting":
        try:
            cluster._settle(message.encode())
        except StartFailed as first:
            exc = first
        except DistributedError as lost:
            echo(f"error: {message} ({lost})")
            cluster.abort(2)
    if cluster.phase == "failed" or isinstance(exc, StartFailed):
        if cluster.rank == 0:
            rank = getattr(exc, "rank", 0)
            echo(f"error: {'' if rank == 0 else f'rank {rank}: '}{exc}")
        return True
    if cluster.rank != 0 and not isinstance(exc, DistributedError):
        time.sleep(cluster.timeout)  # rank 0 aborts the job meanwhile, unless it hangs
        message = f"rank {cluster.rank}: {message}"
    echo(f"error: {message}")
    sys.stderr.flush()
    cluster.abort(2)
    return False  # not reached


def connect(timeout: float = DEFAULT_TIMEOUT) -> Cluster:
    """Initialise MPI (importing mpi4py) and return MPI_COMM_WORLD as a Cluster."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise NumbamlpError(
            f"distributed training needs mpi4py and an MPI library ({exc}); install them with "
            "pip install 'numbamlp[mpi]'"
        ) from None
    except RuntimeError as exc:  # mpi4py found, the MPI library not
        raise NumbamlpError(f"MPI could not be initialised: {exc}") from None
    return Cluster(MPI.COMM_WORLD, MPI, timeout)
