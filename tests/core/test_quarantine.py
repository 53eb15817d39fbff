"""Quarantine rows from re-read files, and releasing rows of invalid objects."""

import json

from stixbridge.engine import EXIT_QUARANTINED
from stixbridge.quarantine import release
from tests.core.helpers import indicator
from tests.core.trust.test_engine_trust import make_engine

BROKEN = [
    indicator(1, "[ipv4-addr:value = '45.9.148.3']"),
    {k: v for k, v in indicator(2, "").items() if k != "pattern"},
    indicator(3, "[ipv4-addr:value = "),
    indicator(4, "[domain-name:value = 'c2-panel.ru']", created="yesterday"),
    42,
]


def _write(path, objects, tail=""):
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--1", "objects": objects}) + tail, encoding="utf-8")


def _rows(engine):
    return engine.store.db.execute(
        "SELECT qid, object_id, reason_code, status FROM quarantine ORDER BY qid"
    ).fetchall()


def test_changed_file_adds_no_duplicate_rows(tmp_path):
    feed = tmp_path / "feed.json"
    _write(feed, BROKEN)
    engine = make_engine(tmp_path, {"alliance": feed})
    assert engine.sync().exit_code() == EXIT_QUARANTINED
    first = _rows(engine)
    assert sorted(row[2] for row in first) == ["not-json", "pattern", "pattern", "timestamp"]

    _write(feed, BROKEN, tail="\n")
    summary = engine.sync()

    assert summary.pulled["alliance"]["objects"] == len(BROKEN)
    assert _rows(engine) == first


def test_released_invalid_row_comes_back_held(tmp_path):
    feed = tmp_path / "feed.json"
    _write(feed, BROKEN)
    engine = make_engine(tmp_path, {"alliance": feed})
    engine.sync()
    qid = next(row[0] for row in _rows(engine) if row[2] == "timestamp")

    message = release(engine, qid)
    _write(feed, BROKEN, tail="\n")
    engine.sync()

    assert "invalid (reason code 'timestamp')" in message
    assert "stays out of the store" in message
    assert "was timestamp" not in message
    timestamp_rows = [(row[0], row[3]) for row in _rows(engine) if row[2] == "timestamp"]
    assert timestamp_rows[0] == (qid, "released")
    assert [status for _, status in timestamp_rows[1:]] == ["held"]


def test_truncated_file_reason_reads_once(tmp_path):
    feed = tmp_path / "feed.json"
    text = json.dumps({"type": "bundle", "objects": [indicator(1, "[ipv4-addr:value = '45.9.148.3']")]})
    feed.write_text(text[:-40], encoding="utf-8")
    engine = make_engine(tmp_path, {"alliance": feed})
    engine.sync()

    reasons = [row["reason"] for row in engine.store.quarantine_rows()]
    assert len(reasons) == 1
    assert "Unterminated string starting at character" in reasons[0]
    assert "at at" not in reasons[0]
