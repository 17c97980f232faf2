"""Fixtures the training tests share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_checkpoint import blobs


@pytest.fixture
def data(tmp_path) -> tuple[Path, Path]:
    """A small training set and test set of three blobs, as .npz files."""
    X, y = blobs(300, 1, d=4)
    Xt, yt = blobs(60, 2, d=4)
    np.savez(tmp_path / "train.npz", X=X, y=y)
    np.savez(tmp_path / "test.npz", X=Xt, y=yt)
    return tmp_path / "train.npz", tmp_path / "test.npz"
