"""Shared fixture for the data-layer tests: a tiny, synthetic stand-in for Fashion-MNIST."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

import numpy as np
import pytest

STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass
class FakeIdxSet:
    arrays: dict[str, np.ndarray]  # stem -> array
    raw: dict[str, bytes]  # stem -> uncompressed IDX bytes
    sha256: dict[str, str]  # stem -> sha256 of raw, the shape of FASHION_MNIST_SHA256


def _idx_ubyte(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(np.uint8).tobytes()


@pytest.fixture
def fake_fashion() -> FakeIdxSet:
    """Four small IDX files (12 train / 5 test images of 3×4 pixels, labels 0..9)."""
    rng = np.random.default_rng(1234)
    arrays = {
        STEMS[0]: rng.integers(0, 256, size=(12, 3, 4), dtype=np.uint8),
        STEMS[1]: rng.integers(0, 10, size=12, dtype=np.uint8),
        STEMS[2]: rng.integers(0, 256, size=(5, 3, 4), dtype=np.uint8),
        STEMS[3]: rng.integers(0, 10, size=5, dtype=np.uint8),
    }
    raw = {s: _idx_ubyte(a) for s, a in arrays.items()}
    return FakeIdxSet(arrays, raw, {s: hashlib.sha256(b).hexdigest() for s, b in raw.items()})
