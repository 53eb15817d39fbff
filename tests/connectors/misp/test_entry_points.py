"""Tests that the MISP connectors are registered under the stixbridge.connectors entry points."""

from __future__ import annotations

import pytest

from stixbridge import plugins
from stixbridge.connectors.misp.sightings import MispSightingsReader
from stixbridge.connectors.misp.sink import MispSink
from stixbridge.connectors.misp.source import MispSource


@pytest.mark.parametrize(
    ("role", "cls"), [("source", MispSource), ("sink", MispSink), ("sightings", MispSightingsReader)]
)
def test_misp_entry_point_loads(role: str, cls: type) -> None:
    assert plugins.load(role, "misp") is cls
    assert cls.kind == "misp"
