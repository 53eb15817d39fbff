"""Retention of sightings: old windows, their hits and settled outbox rows are deleted, late hits dropped."""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from stixbridge.cli import main
from stixbridge.engine import EXIT_OK, RunSummary
from stixbridge.errors import ConfigError
from stixbridge.model import SightingRecord
from stixbridge.sightings.loop import outbox_of
from stixbridge.sightings.retention import prune, retention_start
from stixbridge.sightings.settings import SharingSettings, build_sharing_settings
from tests.core.helpers import indicator
from tests.core.sightings.loop_fixtures import NOW, make_loop, write_sightings

TARGET = "alliance-taxii"
C2 = "indicator--00000000-0000-4000-8000-000000000001"


def hit(value, minutes_ago, **extra):
    return {"value": value, "time": (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"), **extra}


def count(engine, table):
    return engine.store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def outbox_types(engine):
    return sorted(row[0] for row in engine.store.db.execute("SELECT object_type FROM outbox"))


def published_loop(tmp_path, **options):
    """Return an engine on a movable clock, its target, and the clock, after one sync of one hit."""
    clock = [NOW]
    engine, (target,) = make_loop(tmp_path, clock=lambda: clock[0], **options)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10, host="ws-001")])
    assert engine.sync().exit_code() == EXIT_OK
    assert count(engine, "sighting_windows") == 1
    return engine, target, clock


def set_status(engine, object_type, status, attempts=0):
    engine.store.db.execute(
        "UPDATE outbox SET status = ?, attempts = ? WHERE object_type = ?", (status, attempts, object_type)
    )


# -- settings -----------------------------------------------------------------------------------------------


def test_keep_days_defaults_to_ninety():
    assert build_sharing_settings({}, []).keep_days == 90


@pytest.mark.parametrize("value", [0, -5])
def test_keep_days_below_one_rejected(value):
    with pytest.raises(ConfigError, match=f"sharing.keep_days must be at least 1 \\(days\\), got {value}"):
        build_sharing_settings({"keep_days": value}, [])


def test_keep_days_of_wrong_type_rejected():
    with pytest.raises(ConfigError, match="keep_days"):
        build_sharing_settings({"keep_days": "90"}, [])


def test_retention_start_is_window_aligned():
    settings = SharingSettings(window_minutes=60, keep_days=1)
    now = NOW + timedelta(minutes=30)
    assert retention_start(settings, now) == (NOW - timedelta(days=1)).timestamp()


# -- pruning -------------------------------------------------------------------------------------------------


def test_old_published_window_pruned(tmp_path, caplog):
    engine, _, clock = published_loop(tmp_path)
    clock[0] = NOW + timedelta(days=91)
    summary = RunSummary()

    with caplog.at_level(logging.INFO, logger="stixbridge.sightings.retention"):
        engine.publish(summary)

    assert count(engine, "sighting_windows") == 0
    assert count(engine, "sightings") == 0
    # Our identity and the TLP marking are shared by every window and stay.
    assert outbox_types(engine) == ["identity", "marking-definition"]
    assert summary.extra["pruned"] == {"windows": 1, "records": 1, "outbox_rows": 1, "kept_unsettled": 0}
    assert "deleted 1 windows, 1 hits and 1 outbox rows" in caplog.text


def test_window_inside_retention_kept(tmp_path):
    engine, _, clock = published_loop(tmp_path)
    clock[0] = NOW + timedelta(days=89)
    summary = RunSummary()

    engine.publish(summary)

    assert count(engine, "sighting_windows") == 1
    assert count(engine, "sightings") == 1
    assert summary.extra["pruned"]["windows"] == 0


def test_shorter_keep_days_prunes_sooner(tmp_path):
    engine, _, clock = published_loop(tmp_path, sharing={"keep_days": 7})
    clock[0] = NOW + timedelta(days=8)

    engine.publish(RunSummary())

    assert count(engine, "sighting_windows") == 0


@pytest.mark.parametrize(("status", "attempts"), [("pending", 0), ("sending", 0), ("failed", 1)])
def test_unsettled_row_keeps_window(tmp_path, status, attempts):
    engine, _, _ = published_loop(tmp_path)
    set_status(engine, "sighting", status, attempts)

    counts = prune(engine.store, engine.config.sharing, NOW + timedelta(days=91))

    assert counts.windows == 0
    assert counts.kept_unsettled == 1
    assert count(engine, "sighting_windows") == 1
    assert count(engine, "sightings") == 1
    assert "sighting" in outbox_types(engine)


@pytest.mark.parametrize(("status", "attempts"), [("refused", 0), ("failed", 5)])
def test_settled_row_pruned(tmp_path, status, attempts):
    engine, _, _ = published_loop(tmp_path)
    set_status(engine, "sighting", status, attempts)

    counts = prune(engine.store, engine.config.sharing, NOW + timedelta(days=91))

    assert counts.windows == 1
    assert count(engine, "sighting_windows") == 0
    assert "sighting" not in outbox_types(engine)


def test_window_kept_while_another_target_waits(tmp_path):
    clock = [NOW]
    engine, (target,) = make_loop(tmp_path, clock=lambda: clock[0])
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
    engine.sync()
    # A second target that has not received the sighting yet.
    engine.store.db.execute(
        "INSERT INTO outbox (target, object_id, object_type, modified, tlp, payload, status, attempts, updated) "
        "SELECT 'second', object_id, object_type, modified, tlp, payload, 'pending', 0, updated FROM outbox "
        "WHERE object_type = 'sighting'"
    )

    counts = prune(engine.store, engine.config.sharing, NOW + timedelta(days=91))

    assert counts.windows == 0
    assert count(engine, "outbox WHERE object_type = 'sighting'") == 2


def test_observed_data_rows_pruned_with_window(tmp_path):
    sharing = {"targets": [{"name": TARGET, "observed_fields": ["host"]}]}
    engine, _, _ = published_loop(tmp_path, sharing=sharing)
    assert "observed-data" in outbox_types(engine)

    counts = prune(engine.store, engine.config.sharing, NOW + timedelta(days=91))

    assert counts.outbox_rows == 2
    assert "observed-data" not in outbox_types(engine)
    assert "sighting" not in outbox_types(engine)


def test_pending_observed_data_keeps_window(tmp_path):
    sharing = {"targets": [{"name": TARGET, "observed_fields": ["host"]}]}
    engine, _, _ = published_loop(tmp_path, sharing=sharing)
    set_status(engine, "observed-data", "pending")

    counts = prune(engine.store, engine.config.sharing, NOW + timedelta(days=91))

    assert counts.windows == 0
    assert counts.kept_unsettled == 1
    assert "sighting" in outbox_types(engine)


def test_pending_record_never_pruned(tmp_path):
    engine, _, _ = published_loop(tmp_path)
    old = SightingRecord("other", "c2.example.com", NOW - timedelta(days=1))
    engine.store.add_sightings([old], "sightings:other", None)

    prune(engine.store, engine.config.sharing, NOW + timedelta(days=91))

    assert engine.store.db.execute("SELECT source, status FROM sightings").fetchall() == [("other", "pending")]


# -- late hits -----------------------------------------------------------------------------------------------


def test_pruned_window_not_republished(tmp_path, caplog):
    engine, target, clock = published_loop(tmp_path)
    first = target.of_type("sighting")
    clock[0] = NOW + timedelta(days=91)
    engine.publish(RunSummary())
    sent = len(target.sent())

    # A late hit in the pruned window, plus the same line read again after a lost cursor.
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 5)], mode="a")
    engine.store.db.execute("DELETE FROM cursors WHERE name = 'sightings:local'")
    with caplog.at_level(logging.WARNING, logger="stixbridge.sightings.loop"):
        summary = engine.sync()

    assert summary.exit_code() == EXIT_OK
    assert len(target.sent()) == sent
    assert target.of_type("sighting") == first
    assert count(engine, "sighting_windows") == 0
    assert count(engine, "sightings") == 0
    assert summary.extra["sightings"]["read"]["local"] == {"records": 2, "new": 0, "too_old": 2}
    assert "dropped 2 records seen in windows older than keep_days = 90" in caplog.text


def test_old_record_stored_directly_is_not_counted(tmp_path):
    engine, target, clock = published_loop(tmp_path)
    clock[0] = NOW + timedelta(days=91)
    engine.publish(RunSummary())
    late = SightingRecord("misp", "c2.example.com", NOW - timedelta(minutes=5), indicator_id=C2)
    engine.store.add_sightings([late], "sightings:misp", None)
    sent = len(target.sent())

    summary = RunSummary()
    engine.read_sightings(summary)
    engine.publish(summary)

    assert len(target.sent()) == sent
    assert count(engine, "sighting_windows") == 0
    assert summary.extra["sightings"]["reasons"] == {"older than retention": 1}
    # The unmatched record is itself old, so the same pass deletes it.
    assert summary.extra["pruned"]["records"] == 1


def test_recent_hits_still_published_after_pruning(tmp_path):
    engine, target, clock = published_loop(tmp_path)
    clock[0] = NOW + timedelta(days=91)
    fresh = (clock[0] - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [{"value": "c2.example.com", "time": fresh}], mode="a")

    summary = engine.sync()

    assert summary.exit_code() == EXIT_OK
    assert summary.extra["sightings"]["read"]["local"] == {"records": 1, "new": 1}
    sightings = target.of_type("sighting")
    assert len(sightings) == 2
    assert len({s["id"] for s in sightings}) == 2
    assert count(engine, "sighting_windows") == 1


def test_status_and_list_after_pruning(tmp_path):
    engine, _, clock = published_loop(tmp_path)
    clock[0] = NOW + timedelta(days=91)
    engine.publish(RunSummary())

    summary = outbox_of(engine).summary()
    rows = outbox_of(engine).rows()

    assert summary["records"] == {}
    assert summary["aggregates"] == {}
    assert summary["outbox"] == {TARGET: {"published": 2}}
    assert {row["type"] for row in rows} == {"identity", "marking-definition"}
    assert engine.store.status(clock[0])["sightings"] == {}


def test_cli_sync_drops_hits_older_than_keep_days(tmp_path, capsys):
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps({"type": "bundle", "id": "bundle--1", "objects": [
        indicator(1, "[domain-name:value = 'c2.example.com']")]}), encoding="utf-8")  # fmt: skip
    # The CLI runs on the wall clock: one hit from today, one from three days ago.
    now = datetime.now(UTC)
    write_sightings(tmp_path / "sightings.jsonl", [
        {"value": "c2.example.com", "time": (now - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")},
        {"value": "c2.example.com", "time": (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")},
    ])  # fmt: skip
    config = tmp_path / "stixbridge.toml"
    config.write_text(
        f'[engine]\nstate = "s.db"\nlifetimes = {{ default = 0, domain = 0 }}\n'
        f'[[sources]]\nname = "alliance"\nkind = "file"\npath = "{feed}"\n'
        '[[sightings]]\nname = "local"\nkind = "file"\npath = "sightings.jsonl"\n'
        '[sharing]\nkeep_days = 1\n'
        '[[trust.sources]]\nname = "alliance"\nallow = ["documentation"]\n',
        encoding="utf-8",
    )

    assert main(["--config", str(config), "--json", "sync"]) == EXIT_OK
    out = json.loads(capsys.readouterr().out)

    assert out["sightings"]["read"]["local"] == {"records": 2, "new": 1, "too_old": 1}
    assert out["sightings"]["matched"] == 1
    assert main(["--config", str(config), "--json", "status"]) == EXIT_OK
    status = json.loads(capsys.readouterr().out)
    assert status["sightings"]["aggregates"] == {"sighting": 1}


def test_cli_rejects_keep_days_of_zero(tmp_path, capsys):
    config = tmp_path / "stixbridge.toml"
    config.write_text('[engine]\nstate = "s.db"\n[sharing]\nkeep_days = 0\n', encoding="utf-8")

    assert main(["--config", str(config), "config", "check"]) != EXIT_OK
    assert "sharing.keep_days must be at least 1 (days), got 0" in capsys.readouterr().err
