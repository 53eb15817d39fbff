"""End-to-end runs of the three file sinks through the engine, configured from a TOML file."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pymisp import MISPEvent

from stixbridge.cli import main
from stixbridge.config import load_config
from stixbridge.engine import Engine
from stixbridge.store.sqlite import SqliteStore
from tests.core.helpers import indicator, write_bundle
from tests.core.sinks.filesink_fixtures import age_files, read_mtimes

NOW = datetime(2024, 6, 15, tzinfo=UTC)
ORG_UUID = "5f6e7d8c-1a2b-4c3d-9e8f-0a1b2c3d4e5f"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

FEED = [
    indicator(1, "[ipv4-addr:value = '198.51.100.1']", valid_until="2024-06-20T00:00:00.000Z"),
    indicator(2, "[domain-name:value = 'C2.Example.com']"),
    indicator(3, f"[file:hashes.'SHA-256' = '{SHA256.upper()}']"),
    indicator(4, "[mutex:name = 'Global\\\\evil']"),
]


def write_config(folder: Path, feed: Path) -> Path:
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
name = "lookups"
kind = "splunk-csv"
path = "out/splunk"

[[sinks]]
name = "bulk"
kind = "ecs-ndjson"
path = "out/elastic"
index = "logs-ti_alliance_latest.indicator"

[[sinks]]
name = "feed"
kind = "misp-feed"
path = "out/misp"
org_name = "Example Alliance"
org_uuid = "{ORG_UUID}"
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Engine, list[datetime]]:
    feed = write_bundle(tmp_path / "feed" / "a.json", FEED)
    config = load_config(write_config(tmp_path, feed))
    now = [NOW]
    engine = Engine(config, SqliteStore(config.state_path), clock=lambda: now[0])
    return tmp_path / "out", engine, now


def lookup(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def bulk_actions(path: Path) -> list[tuple[str, str]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [(next(iter(line)), line[next(iter(line))]["_id"]) for line in lines if set(line) <= {"index", "delete"}]


def misp_event(folder: Path) -> MISPEvent:
    (event_uuid,) = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    event = MISPEvent()
    event.load((folder / f"{event_uuid}.json").read_text(encoding="utf-8"))
    return event


def test_sync_fills_every_file_sink(setup: tuple[Path, Engine, list[datetime]]) -> None:
    out, engine, _ = setup

    summary = engine.sync()

    assert summary.exit_code() == 0
    assert {r["ip"] or r["domain"] for r in lookup(out / "splunk" / "ip_intel.csv")} == {
        "198.51.100.1",
        "c2.example.com",
    }
    assert [r["file_hash"] for r in lookup(out / "splunk" / "file_intel.csv")] == [SHA256]
    assert summary.pushed["lookups"]["written"] == 3

    actions = bulk_actions(out / "elastic" / "bulk-000001.ndjson")
    assert [a for a, _ in actions] == ["index"] * 4
    assert summary.pushed["bulk"]["written"] == 4

    event = misp_event(out / "misp")
    assert sorted(a.type for a in event.attributes) == ["domain", "ip-dst", "mutex", "sha256"]


def test_second_sync_without_changes_writes_nothing(setup: tuple[Path, Engine, list[datetime]]) -> None:
    out, engine, _ = setup
    engine.sync()
    before = age_files(out)

    summary = engine.sync()

    assert read_mtimes(out) == before
    assert all(counts["written"] == 0 for counts in summary.pushed.values())


def test_expired_atom_leaves_every_sink(setup: tuple[Path, Engine, list[datetime]]) -> None:
    out, engine, now = setup
    engine.sync()
    ip_key = next(r["_key"] for r in lookup(out / "splunk" / "ip_intel.csv") if r["ip"])

    now[0] = NOW + timedelta(days=10)
    summary = engine.sync()

    assert summary.expired == 1
    assert [r["domain"] for r in lookup(out / "splunk" / "ip_intel.csv")] == ["c2.example.com"]
    assert bulk_actions(out / "elastic" / "bulk-000002.ndjson") == [("delete", ip_key)]
    attributes = {a.value: a for a in misp_event(out / "misp").attributes}
    assert attributes["198.51.100.1"].deleted is True
    assert attributes["198.51.100.1"].to_ids is False
    assert "198.51.100.1" not in (out / "misp" / "hashes.csv").read_text(encoding="utf-8")


def test_config_check_describes_file_sinks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    feed = write_bundle(tmp_path / "feed" / "a.json", FEED)
    config = write_config(tmp_path, feed)

    assert main(["--config", str(config), "config", "check"]) == 0

    output = capsys.readouterr().out
    assert f"Splunk ES threat-intelligence lookups in {tmp_path / 'out' / 'splunk'}" in output
    assert "logs-ti_alliance_latest.indicator" in output
    assert "created by 'Example Alliance'" in output
    assert not (tmp_path / "out").exists()
