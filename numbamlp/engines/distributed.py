"""Distributed training: the fused engine with region 1 shared among the ranks of an MPI job.

This is the fused engine's ``RegionExchange`` hook (engines/fused/plan.py), nothing more: the
steps are the fused engine's own — region 1, then ``finish_step`` (the minibatch loss, region 2)
— and between them ``MPIExchange.complete`` makes every rank hold what one process would.

Every rank holds the whole run: θ, the optimizer state, the sampler and its generator, the
step sizes — identical on every rank, because every rank starts from the same seed and makes
the same updates. What is split is the work of region 1: a minibatch's blocks of samples
(``FusedPlan.sample_block``; they follow from the batch size only) are cut into N contiguous
ranges, one per rank, and each rank runs ``forward_backward`` on its range only. It writes its
samples' rows of the batch buffers (h^k, z^k, δ^k, ℓ_s, the spans) and its blocks' gradient
shards at exactly the places where one process would write them — its region-1 layout table is
the plan's with the starts shifted by its first sample and first block — so that one in-place
Allgatherv per buffer then gives every rank what one process would hold after region 1:

* for a layer with gradient shards (narrow layers, layout.SHARD_BYTES): the shards of every
  block, which region 2 adds in block order;
* for a layer without (wide layers): δ^m and h^{m−1} of every sample, which region 2 sums in
  sample order (and, for m = 1, the inputs' spans);
* the per-sample losses ℓ_s and correct counts, which every rank adds in sample order.

Every rank then runs region 2 on the whole batch, as one process does. Each number is therefore
computed by the same operations on the same operands as in one process with the same plan — the
rows even sit at the same offsets from the same cache-line alignment — so θ, the optimizer state
and every reported loss are bitwise those of one process, for any number of ranks and threads
per rank. (No reduction tree is involved: MPI only moves bytes; the additions keep the fused
engine's fixed order.)

Communication per step: each rank receives the other ranks' shards or rows, about (N − 1)/N of
one process's shard buffer plus the rows of the wide layers (benchmarks/test_distributed.py
measures it). The collectives are ``Cluster``'s (numbamlp/engines/cluster.py): non-blocking,
polled against a deadline. Importing this module does not import mpi4py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from numbamlp.engines.fused.layout import H_AT, ROW_TILE, SHARD_AT, SHARD_WIDTH, SIZE, Z_AT
from numbamlp.engines.fused.plan import FusedPlan, Share

if TYPE_CHECKING:
    from numbamlp.engines.cluster import Cluster


def block_ranges(n_blocks: int, size: int) -> np.ndarray:
    """The first block of each rank's contiguous range, and n_blocks at the end: rank r gets
    blocks ⌊r·n/N⌋ ≤ b < ⌊(r+1)·n/N⌋ (with more ranks than blocks some ranks get none)."""
    return np.array([r * n_blocks // size for r in range(size + 1)], dtype=np.int64)


@dataclass
class RankShare(Share):
    """This rank's share of a minibatch of B samples, and the exchange that completes it."""

    exchange: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    bytes_received: int = 0


class MPIExchange:
    """The fused engine's ``RegionExchange`` over the ranks of ``cluster``."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._shares: dict[int, RankShare] = {}
        self.bytes_received = 0  # over the run (the benchmark reads it)

    def share(self, plan: FusedPlan, B: int) -> RankShare:
        """This rank's share of a batch of B samples, built once per batch size (a run has at
        most two: the full batch and a shorter last one)."""
        if B not in self._shares:
            self._shares[B] = self._build(plan, B)
        return self._shares[B]

    def complete(self, share: Share) -> None:
        """One in-place Allgatherv per buffer: every rank's rows, shards, ℓ_s and counts."""
        assert isinstance(share, RankShare)
        self.cluster.allgather_in_place(share.exchange)
        self.bytes_received += share.bytes_received

    def _build(self, plan: FusedPlan, B: int) -> RankShare:
        rank, size = self.cluster.rank, self.cluster.size
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
                shifted[SHARD_AT, k] += int(first_block[rank]) * shard_size(plan, k)

        def rows(buffer: np.ndarray, start: int, width: int) -> tuple:
            # every sample's `width` entries from `start` on; rank r's are its samples' rows
            part = buffer[start : start + B * width]
            return part, (samples * width).astype(np.int32), (first_sample[:-1] * width)

        exchange = [rows(plan.losses, 0, 1), rows(plan.correct, 0, 1)]
        for m in range(1, L + 1):
            if layout[SHARD_AT, m] >= 0:
                n = shard_size(plan, m)
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
        return RankShare(
            s_lo,
            s_hi,
            shifted,
            plan.f[s_lo:],
            plan.losses[s_lo:],
            plan.log_totals[s_lo:],
            plan.spans[s_lo:],
            plan.correct[s_lo:],
            exchange,
            received,
        )


def shard_size(plan: FusedPlan, m: int) -> int:
    """Entries of one block's gradient shard of layer m."""
    rows = -(-int(plan.layout[SIZE, m]) // ROW_TILE) * ROW_TILE
    return rows * int(plan.layout[SHARD_WIDTH, m])
