"""A fake publish target and an engine wired to a feed, a sightings file and that target."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stixbridge.config import ConnectorEntry, build_config
from stixbridge.connector import Connector, ConnectorContext
from stixbridge.connectors.taxii.publish import PublishOutcome, PublishResult
from stixbridge.engine import Engine
from stixbridge.errors import TransientError
from stixbridge.settings import Settings
from stixbridge.sightings.settings import build_sharing_settings
from stixbridge.store.sqlite import SqliteStore
from stixbridge.tlp import TLP2_MARKING_IDS, Tlp
from tests.core.helpers import indicator, write_bundle

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


class FakePublisher(Connector):
    """A TAXII-like target that stores what it accepts and can fail on purpose.

    Like a TAXII server, it treats an object whose id and version it already stores as a success.
    """

    kind = "fake"

    def __init__(self, name: str = "alliance-taxii") -> None:
        super().__init__(name, Settings(), ConnectorContext(base_dir=Path(".")))
        self.calls: list[list[dict[str, Any]]] = []
        self.held: dict[tuple[str, str], dict[str, Any]] = {}
        self.reject_ids: set[str] = set()
        self.raise_before: Exception | None = None
        self.raise_after_store: BaseException | None = None

    def publish(self, objects: list[dict[str, Any]]) -> PublishResult:
        self.calls.append(objects)
        if self.raise_before is not None:
            raise self.raise_before
        result = PublishResult()
        for obj in objects:
            version = obj.get("modified", obj.get("created"))
            if obj["id"] in self.reject_ids:
                result.outcomes.append(PublishOutcome(obj["id"], version, "failure", "rejected by the fake"))
                continue
            self.held[(obj["id"], version)] = obj
            result.outcomes.append(PublishOutcome(obj["id"], version, "success"))
        if self.raise_after_store is not None:
            raise self.raise_after_store
        return result

    def sent(self) -> list[dict[str, Any]]:
        return [obj for call in self.calls for obj in call]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.held.values() if obj["type"] == kind]


class ReadableFakePublisher(FakePublisher):
    """A fake target that can also be read back, as a TAXII collection with ``can_read`` can."""

    def __init__(self, name: str = "alliance-taxii") -> None:
        super().__init__(name)
        self.reads: list[list[str]] = []
        self.read_error: Exception | None = None

    def stored_versions(self, object_ids: list[str]) -> dict[str, set[str]]:
        self.reads.append(list(object_ids))
        if self.read_error is not None:
            raise self.read_error
        stored: dict[str, set[str]] = {}
        for object_id, version in self.held:
            if object_id in object_ids:
                stored.setdefault(object_id, set()).add(version)
        return stored


class Killed(BaseException):
    """Stands for the process dying: nothing in stixbridge catches it for good."""


def feed_objects() -> list[dict[str, Any]]:
    """Indicators at every TLP, plus one without a marking."""
    objects = [
        indicator(1, "[domain-name:value = 'c2.example.com']", object_marking_refs=[TLP2_MARKING_IDS[Tlp.CLEAR]]),
        indicator(2, "[ipv4-addr:value = '198.51.100.7']", object_marking_refs=[TLP2_MARKING_IDS[Tlp.GREEN]]),
        indicator(3, "[domain-name:value = 'amber.example.com']", object_marking_refs=[TLP2_MARKING_IDS[Tlp.AMBER]]),
        indicator(4, "[domain-name:value = 'strict.example.com']",
                  object_marking_refs=[TLP2_MARKING_IDS[Tlp.AMBER_STRICT]]),
        indicator(5, "[domain-name:value = 'red.example.com']", object_marking_refs=[TLP2_MARKING_IDS[Tlp.RED]]),
        indicator(6, "[url:value = 'http://dl.example.net/a.bin']"),
        indicator(7, "[ipv4-addr:value = '203.0.113.0/24']", object_marking_refs=[TLP2_MARKING_IDS[Tlp.GREEN]]),
    ]  # fmt: skip
    return objects


def write_sightings(path: Path, rows: list[dict[str, Any]], mode: str = "w") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode, encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def make_loop(
    tmp_path: Path,
    *,
    sharing: dict[str, Any] | None = None,
    publishers: list[Any] | None = None,
    objects: list[dict[str, Any]] | None = None,
    lifetimes: dict[str, float] | None = None,
    clock: Any = None,
) -> tuple[Engine, list[FakePublisher]]:
    feed = write_bundle(tmp_path / "feed" / "alliance.json", objects if objects is not None else feed_objects())
    config = build_config(
        {
            "engine": {"state": "state.db", "lifetimes": lifetimes or {"default": 0, "ipv4": 0, "domain": 0, "url": 0,
                                                                       "ipv4-cidr": 0}},
            "identity": {"name": "Test SOC"},
            "sources": [{"name": "alliance", "kind": "file", "path": str(feed)}],
            "sightings": [{"name": "local", "kind": "file", "path": "sightings"}],
            "trust": {"sources": [{"name": "alliance", "allow": ["documentation"]}]},
        },
        base_dir=tmp_path,
    )  # fmt: skip
    publishers = publishers if publishers is not None else [FakePublisher()]
    for publisher in publishers:
        config.publish.append(ConnectorEntry("publish", publisher.name, "fake", True, publisher))
    config.sharing = build_sharing_settings(sharing or {}, [p.name for p in publishers])
    (tmp_path / "sightings").mkdir(exist_ok=True)
    engine = Engine(config, SqliteStore(config.state_path), clock=clock or (lambda: NOW))
    return engine, publishers


__all__ = [
    "NOW",
    "FakePublisher",
    "Killed",
    "ReadableFakePublisher",
    "TransientError",
    "feed_objects",
    "make_loop",
    "write_sightings",
]
