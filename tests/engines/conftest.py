"""Fixtures shared by the engine tests."""

from __future__ import annotations

import numba
import pytest


@pytest.fixture
def restore_threads():
    """Numba's thread count as it was before the test (the tests set it to compare counts)."""
    before = numba.get_num_threads()
    yield
    numba.set_num_threads(before)
