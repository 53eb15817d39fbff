"""Fixtures of the Splunk connector tests: a running fake splunkd and atom rows to push into it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.splunk.settings import SplunkSightingsSettings, SplunkSinkSettings
from stixbridge.connectors.splunk.sightings import SplunkSightingsReader
from stixbridge.connectors.splunk.sink import SplunkSink
from stixbridge.model import AtomRow, row_key
from stixbridge.secrets import Secret

from .fake_splunk import FakeSplunk

NOW = datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
INDICATOR = "indicator--4e5d0daf-60fb-4f23-ade8-be9703fa278e"
PASSWORD = "fake-password"


@pytest.fixture
def fake() -> Iterator[FakeSplunk]:
    """A fake splunkd on 127.0.0.1 with Enterprise Security's collections installed."""
    with FakeSplunk(password=PASSWORD) as server:
        server.install_es()
        yield server


def make_row(
    value: str = "198.51.100.7",
    atom_type: str = "ipv4",
    *,
    indicator_id: str = INDICATOR,
    digest: str = "",
    **fields: Any,
) -> AtomRow:
    """Build an atom row as the store would, with a deterministic key."""
    values: dict[str, Any] = {
        "key": row_key(indicator_id, atom_type, value),
        "type": atom_type,
        "value": value,
        "display": value,
        "indicator_id": indicator_id,
        "indicator_ids": (indicator_id,),
        "name": "Example C2",
        "description": "Command and control server",
        "valid_from": NOW - timedelta(days=1),
        "valid_until": NOW + timedelta(days=30),
        "modified": NOW,
        "confidence": 80,
        "weight": 75,
        "tlp": 1,
        "labels": ("malicious-activity",),
        "sources": ("alliance",),
        "collections": ("main",),
        "created_by": ("identity--8b3f6a7e-0b49-4bb3-a1c5-0a6fbb4d2c4f",),
        "digest": digest or f"digest-of-{atom_type}-{value}",
    }
    values.update(fields)
    return AtomRow(**values)


def many_rows(count: int, *, atom_type: str = "ipv4", tag: str = "") -> list[AtomRow]:
    """Build ``count`` distinct rows of one type."""
    rows = []
    for number in range(count):
        if atom_type == "ipv4":
            value = f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"
        else:
            value = f"host{number}.example.com"
        rows.append(make_row(value, atom_type, digest=f"{tag}{number}"))
    return rows


class Clock:
    """A clock fixed at one time until a test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    """The clock of the connector context, at NOW."""
    return Clock(NOW)


@pytest.fixture
def context(clock: Clock) -> ConnectorContext:
    """A connector context whose clock is fixed at NOW until a test moves it."""
    return ConnectorContext(base_dir=Path("."), clock=clock)


@pytest.fixture
def make_sink(fake: FakeSplunk, context: ConnectorContext) -> Callable[..., SplunkSink]:
    """Return a factory of sinks pointed at the fake; keyword arguments override settings."""

    def build(**overrides: Any) -> SplunkSink:
        values: dict[str, Any] = {"url": fake.url, "username": "admin", "password": Secret(PASSWORD), "retries": 2}
        values.update(overrides)
        settings = SplunkSinkSettings(**values)
        settings.validate("sinks[0]")
        sink = SplunkSink("splunk-test", settings, context)
        sink.client.sleep = lambda seconds: None
        return sink

    return build


@pytest.fixture
def make_reader(fake: FakeSplunk, context: ConnectorContext) -> Callable[..., SplunkSightingsReader]:
    """Return a factory of sightings readers pointed at the fake; keyword arguments override settings."""

    def build(**overrides: Any) -> SplunkSightingsReader:
        values: dict[str, Any] = {"url": fake.url, "username": "admin", "password": Secret(PASSWORD), "retries": 1}
        values.update(overrides)
        settings = SplunkSightingsSettings(**values)
        settings.validate("sightings[0]")
        reader = SplunkSightingsReader("splunk-hits", settings, context)
        reader.client.sleep = lambda seconds: None
        return reader

    return build
