"""Fixtures of the TAXII tests: recorded retry waits, sources and publishers, a seeded medallion."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.taxii.http import TaxiiHttp
from stixbridge.connectors.taxii.medallion_server import MedallionServer, run_medallion
from stixbridge.connectors.taxii.publish import TaxiiPublisher
from stixbridge.connectors.taxii.settings import TaxiiPublishSettings, TaxiiSettings
from stixbridge.connectors.taxii.source import TaxiiSource
from stixbridge.secrets import Secret

from .fake_server import indicator

SHARED = Path(__file__).parents[3] / ".." / "shared"


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the pauses between retries and status polls instead of sleeping."""
    recorded: list[float] = []
    monkeypatch.setattr(TaxiiHttp, "sleep", staticmethod(recorded.append))
    return recorded


def make_source(url: str, tmp_path: Path | None = None, name: str = "alliance", **options: Any) -> TaxiiSource:
    """Build a validated TAXII source as the configuration would."""
    settings = TaxiiSettings(url=url, **options)
    settings.validate(f"sources ({name})")
    return TaxiiSource(name, settings, ConnectorContext(base_dir=tmp_path or Path.cwd()))


def make_publisher(url: str, name: str = "share", **options: Any) -> TaxiiPublisher:
    """Build a validated TAXII publisher, enabled unless ``enabled`` is given."""
    options.setdefault("enabled", True)
    settings = TaxiiPublishSettings(url=url, **options)
    settings.validate(f"publish ({name})")
    return TaxiiPublisher(name, settings, ConnectorContext(base_dir=Path.cwd()))


def medallion_auth(server: MedallionServer) -> dict[str, Any]:
    return {"username": server.username, "password": Secret(server.password)}


def seeded_objects() -> list[dict[str, Any]]:
    """Return 120 indicators, the first with two later versions (122 objects, 120 distinct ids)."""
    objects = [indicator(number) for number in range(120)]
    for minute in (1, 2):
        newer = dict(objects[0])
        newer["modified"] = f"2024-05-02T08:0{minute}:00.000Z"
        objects.append(newer)
    return objects


@pytest.fixture(scope="session")
def medallion() -> Iterator[MedallionServer]:
    """A medallion serving ``indicators`` (120 ids, 122 versions) and ``empty``."""
    with run_medallion({"indicators": seeded_objects(), "empty": []}) as server:
        yield server
