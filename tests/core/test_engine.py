import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stixbridge.config import ConnectorEntry, build_config
from stixbridge.connector import ConnectorContext
from stixbridge.engine import EXIT_QUARANTINED, Engine, RunSummary
from stixbridge.model import Changes, PushResult
from stixbridge.settings import Settings
from stixbridge.sinks.base import Sink
from stixbridge.store.sqlite import SqliteStore
from tests.core.helpers import indicator, write_bundle

NOW = datetime(2024, 6, 15, tzinfo=UTC)


class RecordingSink(Sink):
    """A sink that keeps rows in a dict and records every call, optionally failing some keys."""

    kind = "recording"

    def __init__(self, fail_values=()):
        super().__init__("recording", Settings(), ConnectorContext(base_dir=Path(".")))
        self.rows = {}
        self.calls = []
        self.fail_values = set(fail_values)

    def push(self, changes: Changes) -> PushResult:
        self.calls.append(changes)
        result = PushResult()
        for row in changes.upserts:
            if row.value in self.fail_values:
                result.failed[row.key] = "rejected by the test"
                continue
            self.rows[row.key] = row
            result.written.append(row.key)
        for held in changes.deletes:
            self.rows.pop(held.key, None)
            result.deleted.append(held.key)
        return result


def make_engine(tmp_path, feed, sink, clock=lambda: NOW):
    config = build_config(
        {
            "engine": {"state": "state.db", "lifetimes": {"default": 0, "ipv4": 0, "domain": 0, "url": 0}},
            "sources": [{"name": "feed", "kind": "file", "path": str(feed)}],
            # The feeds use documentation values, which the trust guards hold by default.
            "trust": {"sources": [{"name": "feed", "allow": ["documentation", "benign-hashes"]}]},
        },
        base_dir=tmp_path,
    )
    config.sinks.append(ConnectorEntry("sink", "recording", "recording", True, sink))
    store = SqliteStore(config.state_path)
    return Engine(config, store, clock=clock)


FEED = [
    indicator(1, "[ipv4-addr:value = '198.51.100.1']"),
    indicator(2, "[domain-name:value = 'c2.example.com']"),
    indicator(3, "[url:value = 'HTTP://Dl.Example.NET:80/a/B?x=1']"),
    indicator(4, "[ipv4-addr:value = '198.51.100.1']", created_by_ref="identity--b"),
]


def test_engine_sync_pushes_only_changes(tmp_path):
    feed = write_bundle(tmp_path / "feed" / "a.json", FEED)
    sink = RecordingSink()
    engine = make_engine(tmp_path, feed, sink)

    first = engine.sync()
    assert first.exit_code() == 0
    assert {r.value for r in sink.rows.values()} == {"198.51.100.1", "c2.example.com", "http://dl.example.net/a/B?x=1"}

    calls = len(sink.calls)
    second = engine.sync()
    assert second.pushed["recording"]["written"] == 0
    assert len(sink.calls) == calls


def test_engine_expired_atom_deleted_from_sink(tmp_path):
    objects = [indicator(1, "[ipv4-addr:value = '198.51.100.1']", valid_until="2024-06-20T00:00:00.000Z")]
    feed = write_bundle(tmp_path / "feed" / "a.json", objects)
    sink = RecordingSink()
    now = [NOW]
    engine = make_engine(tmp_path, feed, sink, clock=lambda: now[0])
    engine.sync()
    assert len(sink.rows) == 1

    now[0] = NOW + timedelta(days=10)
    summary = engine.sync()
    assert summary.expired == 1
    assert sink.rows == {}
    assert engine.store.expired_entry(objects[0]["id"]) is not None


def test_engine_failed_rows_retried_next_run(tmp_path):
    feed = write_bundle(tmp_path / "feed" / "a.json", FEED)
    sink = RecordingSink(fail_values={"c2.example.com"})
    engine = make_engine(tmp_path, feed, sink)
    summary = engine.sync()
    assert summary.failures
    assert "c2.example.com" not in {r.value for r in sink.rows.values()}

    sink.fail_values.clear()
    engine.sync()
    assert "c2.example.com" in {r.value for r in sink.rows.values()}


def test_engine_bad_objects_quarantined_rest_arrive(tmp_path):
    good = [indicator(n, f"[ipv4-addr:value = '198.51.100.{n}']") for n in range(1, 6)]
    bad = [
        indicator(10, "[ipv4-addr:value = '198.51.100.10'"),
        indicator(11, "[ipv4-addr:value = '198.51.100.11']", valid_from="not a time"),
        {"type": "indicator", "id": "indicator--00000000-0000-4000-8000-000000000012"},
        indicator(13, "[file:hashes.MD5 = 'abc']"),
        indicator(14, "[ipv4-addr:value = '198.51.100.14']", description="x" * 3000),
        {"type": "indicator", "pattern": "[ipv4-addr:value = '198.51.100.15']"},
    ]
    folder = tmp_path / "feed"
    write_bundle(folder / "a.json", good[:3] + bad)
    write_bundle(folder / "b.json", good[3:])
    (folder / "c.json").write_text("this is not json", encoding="utf-8")
    (folder / "d.json").write_text('{"type": "bundle", "objects": [' + json.dumps(good[0]) + ", {oops", encoding="utf-8")

    sink = RecordingSink()
    engine = make_engine(tmp_path, folder, sink)
    engine.config.engine.max_object_bytes = 2000
    summary = engine.sync()

    assert summary.exit_code() == EXIT_QUARANTINED
    assert {r.value for r in sink.rows.values()} == {f"198.51.100.{n}" for n in range(1, 6)}
    codes = sorted(row["reason_code"] for row in engine.store.quarantine_rows())
    assert codes == ["invalid-id", "not-json", "not-json", "pattern", "pattern", "timestamp", "timestamp", "too-large"]


def test_engine_pull_twice_reads_unchanged_file_once(tmp_path):
    feed = write_bundle(tmp_path / "feed" / "a.json", FEED)
    engine = make_engine(tmp_path, feed, RecordingSink())
    summary = RunSummary()
    engine.pull(summary)
    assert summary.pulled["feed"]["indicators"] == 4
    again = RunSummary()
    engine.pull(again)
    assert again.pulled["feed"]["objects"] == 0


def test_engine_pull_killed_midway_loses_nothing(tmp_path):
    objects = [indicator(n, f"[domain-name:value = 'd{n}.example.com']") for n in range(1, 3001)]
    for part in range(3):
        write_bundle(tmp_path / "feed" / f"part{part}.json", objects[part * 1000 : (part + 1) * 1000])
    config = tmp_path / "stixbridge.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [engine]
            state = "state.db"
            transaction_objects = 50
            [[sources]]
            name = "feed"
            kind = "file"
            path = "{tmp_path / 'feed'}"
            page_size = 50
            [[trust.sources]]
            name = "feed"
            allow = ["documentation"]
            """
        ),
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "stixbridge", "--config", str(config), "-q", "pull"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = datetime.now() + timedelta(seconds=30)
    state = tmp_path / "state.db"
    while datetime.now() < deadline and process.poll() is None:
        if state.exists() and _count(state) > 200:
            break
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()

    subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _count(state) == 3000
    with SqliteStore(state) as store:
        assert store.count("versions") == 3000


def _count(path: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(path, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM indicators").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sourcez": []}, "unknown top-level key 'sourcez'"),
        ({"sources": [{"kind": "nope"}]}, "unknown source kind 'nope'"),
        ({"sources": [{"kind": "file"}]}, "path is required"),
        ({"sources": [{"kind": "file", "path": "x", "page_sise": 3}]}, "unknown key 'page_sise'"),
        ({"engine": {"lifetimes": {"ipv4": -1}}}, "must be 0 or more days"),
        ({"sources": [{"kind": "file", "path": "a"}, {"kind": "file", "path": "b"}]}, "named 'file'"),
    ],
)
def test_config_rejects_with_key(tmp_path, data, message):
    from stixbridge.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        build_config(data, base_dir=tmp_path)


def test_coalesce_pages_keeps_last_cursor_and_completion():
    from stixbridge.engine import coalesce_pages
    from stixbridge.model import Page, Provenance, RawItem

    item = RawItem({"id": "x"}, Provenance("s"))
    pages = [Page([item] * 3, cursor="a"), Page([item] * 3), Page([item] * 3, cursor="b", complete=True), Page([item])]
    joined = list(coalesce_pages(iter(pages), 5))
    assert [len(p.items) for p in joined] == [6, 3, 1]
    assert [p.cursor for p in joined] == ["a", "b", None]
    assert [p.complete for p in joined] == [False, True, False]
