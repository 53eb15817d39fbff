"""End-to-end runs of the MISP connectors through the engine and the SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stixbridge.atoms import ATOM_TYPES
from stixbridge.config import build_config
from stixbridge.connectors.misp.attributes import source_tag
from stixbridge.engine import Engine
from stixbridge.store.sqlite import SqliteStore
from tests.core.helpers import indicator, write_bundle

from .conftest import NOW
from .fake_misp import FakeMisp

# Local expiry off for every atom type, so data from past years stays live.
NO_LIFETIMES = {atom_type: 0 for atom_type in [*ATOM_TYPES, "default"]}


def _engine(tmp_path: Path, data: dict[str, Any]) -> Engine:
    config = build_config({"engine": {"state": "state.db", "lifetimes": NO_LIFETIMES}, **data}, base_dir=tmp_path)
    return Engine(config, SqliteStore(config.state_path), clock=lambda: NOW)


def test_eset_events_into_store(shared_data: Path, tmp_path: Path) -> None:
    engine = _engine(tmp_path, {"sources": [{"name": "eset", "kind": "misp", "path": str(shared_data / "eset-malware-ioc")}]})

    summary = engine.sync()

    pulled = summary.pulled["eset"]
    # 59 files: 57 events give 1,280 to_ids attributes with a STIX pattern and 57 organisation identities;
    # one file is not valid JSON upstream and one is not a MISP event, so 2 items are quarantined.
    # Pages of all 59 files are joined into transactions of up to 5,000 objects: one here.
    assert pulled["pages"] == 1
    assert pulled["objects"] == 1339
    assert pulled["indicators"] == 1280
    assert pulled["new"] == 1280
    assert pulled["other"] == 57
    assert pulled["quarantined"] == 2
    status = engine.store.status(NOW)
    assert status["atoms"]["total"] == 1235
    assert status["atoms"]["by_type"] == {
        "domain": 321, "email": 1, "ipv4": 47, "md5": 223, "registry-key": 14, "sha1": 376, "sha256": 223, "url": 30,
    }  # fmt: skip
    assert status["quarantine"] == {"not-json": 2}

    again = engine.sync()
    assert again.pulled["eset"]["objects"] == 0  # unchanged files are not read again
    engine.store.close()


def test_composites_split_through_engine(tmp_path: Path) -> None:
    event = {
        "Event": {
            "uuid": "8172e02d-8107-4f28-9132-fa3718de396b", "info": "Composite types", "date": "2024-05-02",
            "timestamp": "1714636800",
            "Attribute": [
                {"uuid": "c12410da-c6de-42dd-9940-bbf001935451", "type": "ip-dst|port", "value": "203.0.113.77|8443",
                 "category": "Network activity", "to_ids": True, "timestamp": "1714636800"},
                {"uuid": "330cf8a9-6de7-48ea-a6dc-bdab09451d6f", "type": "filename|sha256",
                 "value": "invoice_2024.exe|e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                 "category": "Payload delivery", "to_ids": True, "timestamp": "1714636800"},
            ],
        }
    }  # fmt: skip
    folder = tmp_path / "events"
    folder.mkdir()
    (folder / "event.json").write_text(json.dumps(event))
    trust = {"sources": [{"name": "events", "allow": ["documentation", "benign-hashes"]}]}
    engine = _engine(tmp_path, {"sources": [{"name": "events", "kind": "misp", "path": "events"}], "trust": trust})

    engine.sync()

    rows = {row.type: row for row in engine.store.iter_rows()}
    assert sorted(rows) == ["ipv4", "sha256"]
    assert rows["ipv4"].value == "203.0.113.77"
    assert ("dst_port", "8443") in rows["ipv4"].context
    assert rows["sha256"].context == (("name", "invoice_2024.exe"),)
    engine.store.close()


FEED = [
    indicator(1, "[ipv4-addr:value = '198.51.100.1']"),
    indicator(2, "[domain-name:value = 'c2.example.com']"),
    indicator(3, "[url:value = 'http://dl.example.net/a']"),
    indicator(4, "[x509-certificate:serial_number = '0a:1b:2c']"),
]


@pytest.fixture
def sink_engine(tmp_path: Path, fake: FakeMisp, misp_key: str) -> Engine:
    feed = write_bundle(tmp_path / "feed" / "a.json", FEED)
    return _engine(
        tmp_path,
        {
            "sources": [{"name": "feed", "kind": "file", "path": str(feed.parent)}],
            "sinks": [{"name": "misp", "kind": "misp", "url": fake.url, "key": {"env": misp_key}, "retry_backoff": 0}],
            "trust": {"sources": [{"name": "feed", "allow": ["documentation", "benign-hashes"]}]},
        },
    )


def test_sink_through_engine(sink_engine: Engine, fake: FakeMisp) -> None:
    first = sink_engine.sync()

    assert first.exit_code() == 0
    assert first.pushed["misp"]["written"] == 3  # the x509 serial has no MISP attribute type
    values = sorted(a["value"] for a in fake.live_attributes())
    assert values == ["198.51.100.1", "c2.example.com", "http://dl.example.net/a"]
    assert all(source_tag("feed") in [fake.tags[t]["name"] for t in a["tag_ids"]] for a in fake.live_attributes())
    sink_engine.store.close()


def test_sink_no_change_sends_nothing(sink_engine: Engine, fake: FakeMisp) -> None:
    sink_engine.sync()
    fake.reset_log()

    second = sink_engine.sync()

    assert second.pushed["misp"]["written"] == 0
    assert fake.requests == []
    sink_engine.store.close()


def test_sink_revocation_disables(sink_engine: Engine, fake: FakeMisp, tmp_path: Path) -> None:
    sink_engine.sync()
    revoked = indicator(2, "[domain-name:value = 'c2.example.com']", modified="2024-05-03T08:00:00.000Z", revoked=True)
    write_bundle(tmp_path / "feed" / "b.json", [revoked])
    fake.reset_log()

    summary = sink_engine.sync()

    assert summary.pushed["misp"]["deleted"] == 1
    disabled = [a for a in fake.live_attributes() if not a["to_ids"]]
    assert [a["value"] for a in disabled] == ["c2.example.com"]
    assert [s["type"] for s in fake.sightings.values()] == [2]
    assert len(fake.writes()) == 2  # one event edit and one expiration sighting request
    sink_engine.store.close()


def test_ip_src_keeps_direction_through_engine(tmp_path: Path, fake: FakeMisp, misp_key: str) -> None:
    event = {"uuid": "10000000-0000-4000-8000-000000000001", "info": "Sources", "date": "2024-05-02",
             "timestamp": "1714636800", "Attribute": [
                 {"uuid": "00000000-0000-4000-8000-000000000001", "type": "ip-src", "value": "198.51.100.9",
                  "category": "Network activity", "to_ids": True, "timestamp": "1714636800"}]}  # fmt: skip
    fake.seed_event(event, published=True)
    engine = _engine(
        tmp_path,
        {
            "sources": [{"name": "upstream", "kind": "misp", "url": fake.url, "key": {"env": misp_key}}],
            "sinks": [{"name": "misp", "kind": "misp", "url": fake.url, "key": {"env": misp_key}, "uuid_seed": "down"}],
            "trust": {"sources": [{"name": "upstream", "allow": ["documentation"]}]},
        },
    )

    engine.sync()

    rows = list(engine.store.iter_rows())
    assert [(row.type, row.direction) for row in rows] == [("ipv4", "src")]
    written = [a for a in fake.live_attributes() if a["event_id"] != 1]
    assert [(a["type"], a["value"]) for a in written] == [("ip-src", "198.51.100.9")]
    engine.store.close()
