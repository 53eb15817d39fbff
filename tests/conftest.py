"""Fixtures shared by the whole suite."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"
FIXED_NOW = datetime(2024, 6, 15, tzinfo=UTC)


@pytest.fixture
def shared_data() -> Path:
    """The folder of real public feeds beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent; the end-to-end tests on real feeds need it")
    return SHARED_DATA


@pytest.fixture
def clock():
    """A fixed clock at 2024-06-15T00:00:00Z."""
    return lambda: FIXED_NOW
