"""End-to-end runs of the ``splunk`` sink through the engine and the CLI, configured from a TOML file."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stixbridge.cli import main
from stixbridge.config import load_config
from stixbridge.engine import Engine
from stixbridge.store.sqlite import SqliteStore
from tests.core.helpers import indicator, write_bundle

from .conftest import PASSWORD
from .fake_splunk import FakeSplunk

NOW = datetime(2024, 6, 15, tzinfo=UTC)
APP = ("TA-stixbridge", "stixbridge_intel")
ES = "DA-ESS-ThreatIntelligence"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

FEED = [
    indicator(1, "[ipv4-addr:value = '198.51.100.1']", valid_until="2024-06-20T00:00:00.000Z"),
    indicator(2, "[domain-name:value = 'C2.Example.com']"),
    indicator(3, f"[file:hashes.'SHA-256' = '{SHA256.upper()}']"),
    indicator(4, "[mutex:name = 'Global\\\\evil']"),
]


def write_config(folder: Path, feed: Path, url: str) -> Path:
    config = folder / "stixbridge.toml"
    config.write_text(
        f"""
[engine]
state = "state.db"
lifetimes = {{ default = 0, ipv4 = 0, domain = 0, sha256 = 0, mutex = 0 }}

[[sources]]
name = "alliance"
kind = "file"
path = "{feed}"

# The feed uses documentation values and the empty-file hash, which the trust guards hold by default.
[[trust.sources]]
name = "alliance"
allow = ["documentation", "benign-hashes"]

[[sinks]]
name = "splunk"
kind = "splunk"
url = "{url}"
username = "admin"
password = {{ env = "STIXBRIDGE_TEST_FAKE_SPLUNK_PASSWORD" }}
targets = ["app", "es"]
retries = 1

[[sightings]]
name = "splunk-hits"
kind = "splunk"
url = "{url}"
username = "admin"
password = {{ env = "STIXBRIDGE_TEST_FAKE_SPLUNK_PASSWORD" }}
mode = "es"
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def config_path(tmp_path: Path, fake: FakeSplunk, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STIXBRIDGE_TEST_FAKE_SPLUNK_PASSWORD", PASSWORD)
    feed = write_bundle(tmp_path / "feed" / "a.json", FEED)
    return write_config(tmp_path, feed, fake.url)


def test_sync_fills_app_and_es_collections(config_path: Path, fake: FakeSplunk) -> None:
    config = load_config(config_path)
    with SqliteStore(config.state_path) as store:
        summary = Engine(config, store, clock=lambda: NOW).sync()
    config.close()

    assert summary.exit_code() == 0
    assert summary.pushed["splunk"]["written"] == 4
    assert summary.pushed["splunk"]["skipped"] == {"ES: ES has no collection for mutexes": 1}
    # A mutex name keeps its case; the other values are stored in lower case.
    assert {row["value"] for row in fake.rows(*APP).values()} == {
        "198.51.100.1",
        "c2.example.com",
        SHA256,
        "Global\\evil",
    }
    ip_intel = fake.rows(ES, "ip_intel").values()
    assert {r.get("ip") or r.get("domain") for r in ip_intel} == {"198.51.100.1", "c2.example.com"}
    assert [r["file_hash"] for r in fake.rows(ES, "file_intel").values()] == [SHA256]
    assert all(r["threat_key"].startswith("indicator--") for r in ip_intel)


def test_second_sync_writes_nothing(config_path: Path, fake: FakeSplunk) -> None:
    config = load_config(config_path)
    with SqliteStore(config.state_path) as store:
        engine = Engine(config, store, clock=lambda: NOW)
        engine.sync()
        fake.clear_log()

        summary = engine.sync()
    config.close()

    # The sightings reader still searches for hits; the sink sends nothing.
    assert summary.pushed["splunk"]["written"] == 0
    assert fake.write_requests() == []
    assert fake.requests_to(contains="/storage/collections/") == []


def test_expired_atom_leaves_splunk(config_path: Path, fake: FakeSplunk) -> None:
    config = load_config(config_path)
    now = [NOW]
    with SqliteStore(config.state_path) as store:
        engine = Engine(config, store, clock=lambda: now[0])
        engine.sync()
        fake.clear_log()

        now[0] = NOW + timedelta(days=10)
        summary = engine.sync()
    config.close()

    assert summary.expired == 1
    assert summary.pushed["splunk"]["deleted"] == 1
    assert "198.51.100.1" not in {r["value"] for r in fake.rows(*APP).values()}
    assert "198.51.100.1" not in {r.get("ip") for r in fake.rows(ES, "ip_intel").values()}
    assert fake.requests_to(method="POST", contains="batch_save") == []


def test_failed_push_retried_next_sync(config_path: Path, fake: FakeSplunk) -> None:
    config = load_config(config_path)
    with SqliteStore(config.state_path) as store:
        engine = Engine(config, store, clock=lambda: NOW)
        fake.inject(503, match="batch_save", times=2)
        first = engine.sync()

        second = engine.sync()
    config.close()

    assert first.exit_code() != 0
    assert any("sink splunk" in failure for failure in first.failures)
    assert second.exit_code() == 0
    assert len(fake.rows(*APP)) == 4


def test_cli_sync_and_config_check(config_path: Path, fake: FakeSplunk, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(config_path), "config", "check"]) == 0
    checked = capsys.readouterr().out
    assert fake.log == []
    assert "TA-stixbridge/stixbridge_intel" in checked
    assert "splunk sightings 'splunk-hits'" in checked
    assert PASSWORD not in checked

    assert main(["-c", str(config_path), "-q", "sync"]) == 0
    # The CLI runs on the real clock, past the IPv4 indicator's valid_until, so three atoms are live.
    assert len(fake.rows(*APP)) == 3


def test_sync_reads_splunk_sightings(config_path: Path, fake: FakeSplunk) -> None:
    # The reader's context clock is the real one, so the hit is an hour before now.
    seen = time.time() - 3600
    fake.add_events(
        "threat_activity",
        [
            {
                "_time": seen,
                "threat_key": "indicator--00000000-0000-4000-8000-000000000002",
                "threat_collection": "ip_intel",
                "threat_collection_key": "stixbridge-" + "a" * 40,
                "threat_match_field": "query",
                "threat_match_value": "c2.example.com",
                "src": "10.1.2.3",
            }
        ],
    )
    config = load_config(config_path)
    with SqliteStore(config.state_path) as store:
        engine = Engine(config, store, clock=lambda: NOW)
        first = engine.sync()
        second = engine.sync()
    config.close()

    assert first.extra["sightings"]["read"]["splunk-hits"] == {"records": 1, "new": 1}
    assert second.extra["sightings"]["read"]["splunk-hits"] == {"records": 0, "new": 0}
