"""End-to-end runs through the engine with ``[[sinks]] kind = "elastic"`` in a TOML file, against the fake."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stixbridge.config import load_config
from stixbridge.connectors.elastic.setup import setup
from stixbridge.connectors.elastic.sink import ElasticSink
from stixbridge.engine import Engine
from stixbridge.store.sqlite import SqliteStore
from tests.core.helpers import indicator, write_bundle

from .fake_elasticsearch import FakeElasticsearch

NOW = datetime(2024, 6, 15, tzinfo=UTC)
ALIAS = "logs-ti_alliance_latest.indicator"

FEED = [
    indicator(1, "[ipv4-addr:value = '198.51.100.1']"),
    indicator(2, "[ipv4-addr:value = '198.51.100.0/24']"),
    indicator(3, "[domain-name:value = 'C2.Example.com']"),
    indicator(4, "[url:value = 'https://login.example.com/reset']", valid_until="2024-06-20T00:00:00.000Z"),
    indicator(5, "[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\Software\\\\Run']"),
    indicator(6, "[file:hashes.'SHA3-256' = '" + "ab" * 32 + "']"),
]


def write_config(folder: Path, feed: Path, url: str) -> Path:
    config = folder / "stixbridge.toml"
    config.write_text(
        f"""
[engine]
state = "state.db"
lifetimes = {{ default = 0, ipv4 = 0, ipv4-cidr = 0, domain = 0, url = 0, sha3-256 = 0 }}

[[sources]]
name = "alliance"
kind = "file"
path = "{feed}"

# The feed uses documentation addresses, which the trust guards hold back by default.
[[trust.sources]]
name = "alliance"
allow = ["documentation"]

[[sinks]]
name = "siem"
kind = "elastic"
hosts = ["{url}"]
alias = "{ALIAS}"
index = "alliance-indicators-000001"
feed_name = "alliance"
timeout = 5.0

[[sinks]]
name = "bulk"
kind = "ecs-ndjson"
path = "out/bulk"
index = "{ALIAS}"
feed_name = "alliance"
""",
        encoding="utf-8",
    )
    return config


class Run:
    """A configuration, its engine, a movable clock and the fake cluster."""

    def __init__(self, folder: Path, fake: FakeElasticsearch) -> None:
        self.folder = folder
        self.fake = fake
        self.feed = write_bundle(folder / "feed" / "a.json", FEED)
        self.config = load_config(write_config(folder, self.feed, fake.url))
        self.now = NOW
        self.store = SqliteStore(self.config.state_path)
        self.engine = Engine(self.config, self.store, clock=lambda: self.now)
        for entry in self.config.sinks:
            entry.connector.context.clock = lambda: self.now

    def sink(self) -> ElasticSink:
        connector = self.config.sinks[0].connector
        assert isinstance(connector, ElasticSink)
        return connector

    def sync(self) -> dict[str, Any]:
        summary = self.engine.sync()
        assert summary.failures == []
        return summary.pushed

    def close(self) -> None:
        self.config.close()
        self.store.close()


@pytest.fixture
def run(tmp_path: Path, fake_es: FakeElasticsearch) -> Any:
    run = Run(tmp_path, fake_es)
    setup(run.sink().settings, base_dir=tmp_path)
    fake_es.clear_requests()
    yield run
    run.close()


def names(fake: FakeElasticsearch) -> set[str]:
    return {doc["threat"]["indicator"]["name"] for doc in fake.documents(ALIAS).values()}


def test_sync_writes_supported_atoms(run: Run) -> None:
    pushed = run.sync()

    assert names(run.fake) == {
        "198.51.100.1",
        "198.51.100.0/24",
        "c2.example.com",
        "https://login.example.com/reset",
        "HKEY_LOCAL_MACHINE\\Software\\Run",
        "HKLM\\Software\\Run",
        "\\REGISTRY\\MACHINE\\Software\\Run",
    }
    assert pushed["siem"]["written"] == 5
    assert pushed["siem"]["failed"] == 0
    assert run.fake.data_streams == {}


def test_documents_equal_the_bulk_files(run: Run) -> None:
    run.sync()

    in_elastic = run.fake.documents(ALIAS)
    in_files: dict[str, dict[str, Any]] = {}
    for path in sorted((run.folder / "out" / "bulk").glob("bulk-*.ndjson")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for action, document in zip(lines[::2], lines[1::2], strict=True):
            in_files[json.loads(action)["index"]["_id"]] = json.loads(document)

    assert in_elastic == in_files


def test_second_sync_sends_no_write(run: Run) -> None:
    run.sync()
    run.fake.clear_requests()

    pushed = run.sync()

    assert run.fake.write_requests() == []
    assert pushed["siem"]["written"] == 0


def test_revoked_and_expired_atoms_deleted(run: Run) -> None:
    run.sync()
    revoked = {**FEED[2], "revoked": True, "modified": "2024-06-16T00:00:00.000Z"}
    write_bundle(run.feed, [revoked if obj["id"] == revoked["id"] else obj for obj in FEED])
    run.now = NOW + timedelta(days=6)

    pushed = run.sync()

    assert "c2.example.com" not in names(run.fake)
    assert "https://login.example.com/reset" not in names(run.fake)
    assert pushed["siem"]["deleted"] == 2


def test_push_refreshes_old_documents(run: Run) -> None:
    run.sync()
    stamped_before = {doc["@timestamp"] for doc in run.fake.documents(ALIAS).values()}
    write_bundle(run.feed, [*FEED, indicator(7, "[ipv4-addr:value = '203.0.113.9']")])
    run.now = NOW + timedelta(days=8)

    run.sync()

    stamps = {doc["@timestamp"] for doc in run.fake.documents(ALIAS).values()}
    assert stamped_before == {"2024-06-15T00:00:00.000Z"}
    assert stamps == {"2024-06-23T00:00:00.000Z"}


def test_rejected_document_retried_next_run(run: Run) -> None:
    run.fake.reject_items(500, times=1)

    first = run.engine.sync()
    second = run.sync()

    assert first.pushed["siem"]["failed"] == 1
    assert second["siem"]["written"] == 1
    assert len(names(run.fake)) == 7
