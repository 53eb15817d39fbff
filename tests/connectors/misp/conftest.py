"""Fixtures of the MISP connector tests: a started fake MISP, connector builders and row builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.misp.sightings import MispSightingsReader
from stixbridge.connectors.misp.sink import MispSink
from stixbridge.connectors.misp.source import MispSource
from stixbridge.model import AtomRow, row_key
from stixbridge.settings import build_settings

from .fake_misp import API_KEY, FakeMisp

IDENTITY = "identity--b1f1a4a4-6f0e-4d7c-9c39-3f0b9e7f5a10"
NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[FakeMisp]:
    """A fake MISP listening on 127.0.0.1, its clock at the tests' fixed now."""
    server = FakeMisp(clock=lambda: NOW.timestamp())
    with server:
        yield server


@pytest.fixture
def misp_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Put the fake's API key in the environment variable the settings name."""
    monkeypatch.setenv("MISP_KEY", API_KEY)
    return "MISP_KEY"


@pytest.fixture
def context(tmp_path: Path) -> ConnectorContext:
    return ConnectorContext(base_dir=tmp_path, clock=lambda: NOW, identity_id=IDENTITY, identity_name="Us")


def _table(fake: FakeMisp | None, overrides: dict[str, Any]) -> dict[str, Any]:
    table: dict[str, Any] = {"retry_backoff": 0.0, "timeout": 5.0}
    if fake is not None:
        table.update({"url": fake.url, "key": {"env": "MISP_KEY"}})
    table.update(overrides)
    return table


@pytest.fixture
def make_sink(fake: FakeMisp, misp_key: str, context: ConnectorContext) -> Callable[..., MispSink]:
    def build(**overrides: Any) -> MispSink:
        settings = build_settings(MispSink.settings_class, _table(fake, overrides), "sinks[0]")
        return MispSink("misp-out", settings, context)  # type: ignore[arg-type]

    return build


@pytest.fixture
def make_source(fake: FakeMisp, misp_key: str, context: ConnectorContext) -> Callable[..., MispSource]:
    def build(**overrides: Any) -> MispSource:
        server = None if "path" in overrides else fake
        settings = build_settings(MispSource.settings_class, _table(server, overrides), "sources[0]")
        return MispSource("misp-in", settings, context)  # type: ignore[arg-type]

    return build


@pytest.fixture
def make_reader(fake: FakeMisp, misp_key: str, context: ConnectorContext) -> Callable[..., MispSightingsReader]:
    def build(**overrides: Any) -> MispSightingsReader:
        settings = build_settings(MispSightingsReader.settings_class, _table(fake, overrides), "sightings[0]")
        return MispSightingsReader("misp-sightings", settings, context)  # type: ignore[arg-type]

    return build


def make_row(
    n: int,
    atom_type: str = "ipv4",
    value: str | None = None,
    *,
    source: str = "alliance",
    collection: str = "collection-a",
    **fields: Any,
) -> AtomRow:
    """Build a live row the way the store does, with a deterministic key and digest."""
    indicator_id = f"indicator--00000000-0000-4000-8000-{n:012d}"
    value = value if value is not None else f"198.51.100.{n % 250 + 1}" if atom_type == "ipv4" else f"v{n}"
    values: dict[str, Any] = {
        "key": row_key(indicator_id, atom_type, value),
        "type": atom_type,
        "value": value,
        "display": value,
        "indicator_id": indicator_id,
        "indicator_ids": (indicator_id,),
        "name": f"Indicator {n}",
        "description": "",
        "valid_from": datetime(2024, 5, 2, 8, 0, tzinfo=UTC),
        "valid_until": datetime(2024, 8, 2, 8, 0, tzinfo=UTC),
        "modified": datetime(2024, 5, 2, 8, 0, tzinfo=UTC),
        "confidence": 80,
        "weight": 80,
        "tlp": 1,
        "labels": (),
        "sources": (source,),
        "collections": (collection,),
        "created_by": (),
        "digest": f"digest-{n}",
    }
    values.update(fields)
    return AtomRow(**values)
