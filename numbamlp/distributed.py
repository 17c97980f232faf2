"""Data-parallel training over MPI (mpi4py): N ranks, the same θ as one process, bit for bit.

Every rank holds the whole run: θ, the optimizer state, the sampler and its generator, the
step sizes — identical on every rank, because every rank starts from the same seed and makes
the same updates. What is split is the work of region 1 (fused.py): a minibatch's blocks of
samples (``FusedPlan.sample_block``; they follow from the batch size only) are cut into N
contiguous ranges, one per rank, and each rank runs ``forward_backward`` on its range only.
It writes its samples' rows of the batch buffers (h^k, z^k, δ^k, ℓ_s, the spans) and its
blocks' gradient shards at exactly the places where one process would write them — its
region-1 layout table is the plan's with the starts shifted by its first sample and first
block — so that one in-place Allgatherv per buffer then gives every rank what one process
would hold after region 1:

* for a layer with gradient shards (narrow layers, fused.SHARD_BYTES): the shards of every
  block, which region 2 adds in block order;
* for a layer without (wide layers): δ^m and h^{m−1} of every sample, which region 2 sums in
  sample order (and, for m = 1, the inputs' spans);
* the per-sample losses ℓ_s, which every rank adds in sample order into the minibatch loss.

Every rank then runs region 2 (``gradient_update``: the ordered sums and the optimizer's
update) on the whole batch, as one process does. Each number is therefore computed by the same
operations on the same operands as in one process with the same plan — the rows even sit at
the same offsets from the same cache-line alignment — so θ, the optimizer state and every
reported loss are bitwise those of ``numbamlp train`` without MPI, for any number of ranks and
threads per rank. (No reduction tree is involved: MPI only moves bytes; the additions stay in
fused.py's fixed order.)

Communication per step: each rank receives the other ranks' shards or rows, about
(N − 1)/N of one process's shard buffer plus the rows of the wide layers (the benchmark in
benchmarks/test_distributed.py measures it). Collectives are non-blocking and polled against a
deadline (``timeout``): a rank that stops answering ends the run with a DistributedError
instead of a hang, and the CLI then aborts every rank (``Cluster.abort``).

Importing this module does not import mpi4py: ``connect`` does, and only ``numbamlp train
--distributed`` (or a run started by mpiexec) calls it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from numbamlp._jit import serial
from numbamlp.errors import NumbamlpError
from numbamlp.fused import (
    H_AT,
    ROW_TILE,
    SHARD_AT,
    SHARD_WIDTH,
    SIZE,
    Z_AT,
    FusedPlan,
    forward_backward,
    gradient_update,
    step_coefficients,
)

#: Environment variables by which MPI launchers announce the world size (Open MPI's mpiexec;
#: MPICH's and Intel MPI's hydra, and Slurm's srun with --mpi=pmi2). A value above 1 makes
#: ``numbamlp train`` distributed without --distributed.
SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
#: The same launchers' rank variables, read before MPI is initialised (to print an input error
#: once, on rank 0).
RANK_VARIABLES = ("OMPI_COMM_WORLD_RANK", "PMI_RANK")
#: Seconds a rank waits for the others in one collective before it gives up (--mpi-timeout).
#: It must cover the longest time one rank can spend outside the collectives while the others
#: wait: the first run's JIT compilation (~20 s per process, longer with ranks sharing cores),
#: rank 0's test-set evaluation and checkpoint writes.
DEFAULT_TIMEOUT = 300.0
#: Seconds a rank still waits for the others once a signal has asked the run to stop.
SIGNAL_GRACE = 5.0
#: Test hook: the rank whose number is NUMBAMLP_TEST_FAULT_RANK fails just before the step
#: NUMBAMLP_TEST_FAULT_STEP: it leaves the process as if it crashed (os._exit(1)), or with
#: NUMBAMLP_TEST_FAULT=hang stops answering (sleeps) (tests/test_distributed.py).
TEST_FAULT_RANK = "NUMBAMLP_TEST_FAULT_RANK"
TEST_FAULT_STEP = "NUMBAMLP_TEST_FAULT_STEP"
TEST_FAULT = "NUMBAMLP_TEST_FAULT"


#: Bytes of an error message the ranks exchange when one fails before training starts.
AGREE_BYTES = 4096


class DistributedError(NumbamlpError):
    """MPI failed, or another rank stopped answering: the run cannot go on on any rank."""


class StartFailed(NumbamlpError):
    """A rank failed before training started (bad input, usually on every rank alike)."""

    def __init__(self, message: str, rank: int) -> None:
        super().__init__(message)
        self.rank = rank


def launched_size(environ: dict[str, str] | None = None) -> int:
    """The world size an MPI launcher announced in the environment, or 1."""
    environ = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        try:
            return max(1, int(environ[name]))
        except (KeyError, ValueError):
            continue
    return 1


def launched_rank(environ: dict[str, str] | None = None) -> int:
    """This process's rank as the launcher announced it, or 0."""
    environ = os.environ if environ is None else environ
    for name in RANK_VARIABLES:
        try:
            return int(environ[name])
        except (KeyError, ValueError):
            continue
    return 0


class Cluster:
    """The ranks of MPI_COMM_WORLD and the collectives the run needs, each non-blocking and
    waited for at most ``timeout`` seconds. ``interrupted`` (set by the CLI) is asked while
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
        spins for the first 2 ms (a step's exchange usually completes within that), then
        sleeps between tests, so that a rank waiting for a slow one gives its core away."""
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
        digest = hashlib.sha256(memoryview(theta).cast("B"))
        digest.update(memoryview(state.reshape(-1)).cast("B"))
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


@serial
def minibatch_loss(losses, B):
    """(S.1) ℓ = (1/B) Σ_s ℓ_s, summed in sample order: run_steps' own loop, so that the loss
    (and with it the divergence check) is bitwise one process's."""
    total = 0.0
    for s in range(B):
        total += losses[s]
    return total / B


@serial
def minibatch_correct(correct, B):
    """(P.1) how many of the minibatch's B samples are classified right: run_steps' own count."""
    right = 0
    for s in range(B):
        right += correct[s]
    return right


@dataclass
class _Part:
    """This rank's share of a minibatch of B samples, and the exchange that completes it."""

    s_lo: int  # its samples s_lo ≤ s < s_hi (whole blocks)
    s_hi: int
    layout: np.ndarray  # the plan's layout, starts shifted to its first sample and block
    losses: np.ndarray  # views of the plan's per-sample buffers from s_lo on
    correct: np.ndarray
    f: np.ndarray
    log_totals: np.ndarray
    spans: np.ndarray
    exchange: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    bytes_received: int


def block_ranges(n_blocks: int, size: int) -> np.ndarray:
    """The first block of each rank's contiguous range, and n_blocks at the end: rank r gets
    blocks ⌊r·n/N⌋ ≤ b < ⌊(r+1)·n/N⌋ (with more ranks than blocks some ranks get none)."""
    return np.array([r * n_blocks // size for r in range(size + 1)], dtype=np.int64)


class DistributedPlan:
    """A FusedPlan whose region 1 is shared among the ranks of ``cluster``; ``run`` has the
    plan's signature and results (``FusedPlan.run``), so the Trainer uses it unchanged.
    One Python-level iteration per step: region 1 on this rank's blocks, the exchange, the
    loss, region 2."""

    def __init__(self, plan: FusedPlan, cluster: Cluster) -> None:
        self.plan, self.cluster = plan, cluster
        self._parts: dict[int, _Part] = {}
        self.bytes_received = 0  # over the run, the benchmark reads it
        self._fault_step = -1
        if os.environ.get(TEST_FAULT_RANK, "") == str(cluster.rank):
            self._fault_step = int(os.environ.get(TEST_FAULT_STEP, "1"))

    def __getattr__(self, name: str) -> Any:  # the plan's other attributes (layout, dtype, …)
        return getattr(self.plan, name)

    def _part(self, B: int) -> _Part:
        """This rank's share of a batch of B samples, built once per batch size (a run has at
        most two: the full batch and a shorter last one)."""
        if B in self._parts:
            return self._parts[B]
        plan, rank, size = self.plan, self.cluster.rank, self.cluster.size
        sb, layout, L = plan.sample_block, plan.layout, plan.architecture.L
        sizes = [int(d) for d in layout[SIZE]]
        n_blocks = -(-B // sb)
        first_block = block_ranges(n_blocks, size)
        first_sample = np.minimum(first_block * sb, B)
        samples = np.diff(first_sample)
        s_lo, s_hi = int(first_sample[rank]), int(first_sample[rank + 1])
        shifted = layout.copy()
        for k in range(L):
            shifted[H_AT, k] += s_lo * sizes[k]
        for k in range(1, L + 1):
            shifted[Z_AT, k] += s_lo * sizes[k]
            if layout[SHARD_AT, k] >= 0:
                shifted[SHARD_AT, k] += int(first_block[rank]) * self._shard_size(k)

        def rows(buffer: np.ndarray, start: int, width: int) -> tuple:
            # every sample's `width` entries from `start` on; rank r's are its samples' rows
            part = buffer[start : start + B * width]
            return part, (samples * width).astype(np.int32), (first_sample[:-1] * width)

        exchange = [rows(plan.losses, 0, 1), rows(plan.correct, 0, 1)]
        for m in range(1, L + 1):
            if layout[SHARD_AT, m] >= 0:
                n = self._shard_size(m)
                start = int(layout[SHARD_AT, m])
                blocks = np.diff(first_block)
                part = plan.shards[start : start + n_blocks * n]
                exchange.append((part, (blocks * n).astype(np.int32), first_block[:-1] * n))
            else:
                exchange.append(rows(plan.delta, int(layout[Z_AT, m]), sizes[m]))
                exchange.append(rows(plan.h, int(layout[H_AT, m - 1]), sizes[m - 1]))
                if m == 1:
                    exchange.append(rows(plan.spans.reshape(-1), 0, 2))
        exchange = [(buf, counts, displs.astype(np.int32)) for buf, counts, displs in exchange]
        received = sum(
            (int(counts.sum()) - int(counts[rank])) * buf.itemsize for buf, counts, _ in exchange
        )
        part = _Part(
            s_lo,
            s_hi,
            shifted,
            plan.losses[s_lo:],
            plan.correct[s_lo:],
            plan.f[s_lo:],
            plan.log_totals[s_lo:],
            plan.spans[s_lo:],
            exchange,
            received,
        )
        self._parts[B] = part
        return part

    def _shard_size(self, m: int) -> int:
        layout = self.plan.layout
        rows = -(-int(layout[SIZE, m]) // ROW_TILE) * ROW_TILE
        return rows * int(layout[SHARD_WIDTH, m])

    def run(
        self,
        theta: np.ndarray,
        state: np.ndarray,
        X: np.ndarray,
        scale: float,
        y: np.ndarray,
        index_matrix: np.ndarray,
        batch_sizes: np.ndarray,
        lrs: np.ndarray,
        first_step_count: int,
        first: int,
        count: int,
        batch_losses: np.ndarray,
        batch_correct: np.ndarray | None = None,
    ) -> int:
        """``FusedPlan.run``, with region 1 shared among the ranks: the same arguments (every
        rank passes the same ones) and the same results on every rank."""
        plan, cluster = self.plan, self.cluster
        plan._check(theta, state, X, y, index_matrix, batch_sizes, lrs, first, count, batch_losses)
        batch_correct = plan._correct_counts(batch_correct, batch_losses.shape[0])
        X_spans = plan._spans_of(X)
        scale = plan.dtype.type(scale)
        for t in range(count):
            step = first_step_count + t + 1
            if step == self._fault_step:  # the test hook
                if os.environ.get(TEST_FAULT) == "hang":
                    time.sleep(3600)
                os._exit(1)
            row = first + t
            B = int(batch_sizes[row])
            part = self._part(B)
            next_row = row + 1 if t + 1 < count else row
            next_B = int(batch_sizes[next_row])
            if part.s_hi > part.s_lo:
                forward_backward(
                    plan.h, plan.z, plan.delta, part.f, part.losses, part.log_totals,
                    plan.shards, part.spans, theta, X, X_spans, scale, y,
                    index_matrix[row, part.s_lo : part.s_hi],
                    index_matrix[next_row, min(part.s_lo, next_B) : min(part.s_hi, next_B)],
                    part.layout, plan.codes, plan.head, plan.sample_block,
                    plan.flush_subnormals, part.correct,
                )  # fmt: skip
            cluster.allgather_in_place(part.exchange)
            self.bytes_received += part.bytes_received
            loss = minibatch_loss(plan.losses, B)
            batch_losses[row] = loss
            batch_correct[row] = minibatch_correct(plan.correct, B)
            if not np.isfinite(loss):
                return t
            step_coefficients(plan.coef, lrs[row], B, plan.optimizer_code, plan.hyper, step)
            gradient_update(
                theta, state, plan.G, plan.shards, plan.h, plan.delta, plan.spans, plan.layout,
                plan.cuts, B, plan.sample_block, plan.optimizer_code, plan.coef,
                plan.flush_subnormals,
            )  # fmt: skip
        return count


def distribute(trainer: Any, cluster: Cluster) -> DistributedPlan:
    """Make ``trainer`` (a CPU Trainer with the fused engine) share its steps among the ranks
    of ``cluster``; returns the DistributedPlan that replaces its plan."""
    if getattr(trainer, "plan", None) is None or not isinstance(trainer.plan, FusedPlan):
        raise NumbamlpError("distributed training needs the fused engine on the CPU")
    plan = DistributedPlan(trainer.plan, cluster)
    trainer.plan = plan
    return plan
