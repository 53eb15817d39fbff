"""Fixtures of the file-sink tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from stixbridge.connector import ConnectorContext
from tests.core.sinks.filesink_fixtures import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def context(tmp_path: Path, clock: Clock) -> ConnectorContext:
    return ConnectorContext(base_dir=tmp_path, clock=clock)
