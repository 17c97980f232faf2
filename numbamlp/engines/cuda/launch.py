"""Launch configurations: how many blocks of how many threads cover an index range.

A kernel ``k`` is launched as ``k[grid_1d(n, threads)](...)`` or ``k[grid_2d(rows, cols,
threads)](...)``; grids are rounded up to whole blocks and every kernel skips the threads past
its arrays' ends. Small ``threads`` give several blocks even on tiny shapes (the tests use that).
"""

from __future__ import annotations

#: Threads per block: 1-D kernels, and each side of a 2-D block (16 × 16 = 256 threads).
THREADS_1D = 128
THREADS_2D = 16


def _blocks(n: int, threads: int) -> int:
    return max(1, -(-n // threads))


def grid_1d(n: int, threads: int = THREADS_1D) -> tuple[tuple[int], tuple[int]]:
    """(blocks, threads per block) covering indices 0..n−1."""
    return (_blocks(n, threads),), (threads,)


def grid_2d(
    rows: int, cols: int, threads: int = THREADS_2D
) -> tuple[tuple[int, int], tuple[int, int]]:
    """(blocks, threads per block) covering the index pairs (0..rows−1) × (0..cols−1)."""
    return (_blocks(rows, threads), _blocks(cols, threads)), (threads, threads)
