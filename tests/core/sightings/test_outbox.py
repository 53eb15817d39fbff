"""The outbox after interrupted sends: rows of unknown fate are read back before anything is posted again."""

import logging
from datetime import timedelta

import pytest

from stixbridge.engine import EXIT_FAILED, EXIT_OK, RunSummary
from stixbridge.errors import ConfigError, RemoteRejectedError
from stixbridge.sightings.loop import outbox_of
from stixbridge.sightings.outbox import CONFIRMED_REASON, PublishCounts
from tests.core.sightings.loop_fixtures import (
    NOW,
    FakePublisher,
    Killed,
    ReadableFakePublisher,
    TransientError,
    make_loop,
    write_sightings,
)

TARGET = "alliance-taxii"


def hit(value, minutes_ago):
    return {"value": value, "time": (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")}


def statuses(engine):
    return {row["object_id"]: row["status"] for row in outbox_of(engine).rows(limit=1000)}


def posted_ids(target):
    return [obj["id"] for obj in target.sent()]


def build_rows(tmp_path, publisher):
    """Pull the feed, read two hits and build the outbox; return the engine."""
    engine, _ = make_loop(tmp_path, publishers=[publisher])
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10), hit("198.51.100.7", 10)])
    engine.pull(RunSummary())
    engine.read_sightings(RunSummary())
    assert outbox_of(engine).enqueue(TARGET, NOW) == 4
    return engine


def crash_after_store(engine, publisher):
    """Send once with a publisher that stores everything and then dies before the outcome is committed."""
    publisher.raise_after_store = Killed()
    with pytest.raises(Killed):
        outbox_of(engine).send(publisher, NOW)
    publisher.raise_after_store = None


def test_crash_after_store_is_confirmed_not_resent(tmp_path, caplog):
    target = ReadableFakePublisher()
    engine = build_rows(tmp_path, target)
    crash_after_store(engine, target)
    assert set(statuses(engine).values()) == {"sending"}
    assert all("may have reached the target (Killed)" in row["reason"] for row in outbox_of(engine).rows())
    assert len(target.held) == 4

    with caplog.at_level(logging.INFO, logger="stixbridge.sightings.outbox"):
        counts = outbox_of(engine).send(target, NOW)

    assert len(target.calls) == 1
    assert len(posted_ids(target)) == 4
    assert counts.confirmed == 4
    assert counts.resent == 0
    assert counts.queued == 0
    assert set(statuses(engine).values()) == {"published"}
    assert {row["reason"] for row in outbox_of(engine).rows()} == {CONFIRMED_REASON}
    assert "4 already stored" in caplog.text
    assert "0 sent again" in caplog.text


def test_reconcile_sends_only_versions_not_stored(tmp_path, caplog):
    target = ReadableFakePublisher()
    engine = build_rows(tmp_path, target)
    crash_after_store(engine, target)
    # The server lost one object, say a sighting; only that one may be posted again.
    lost = next(key for key in target.held if key[0].startswith("sighting--"))
    del target.held[lost]

    with caplog.at_level(logging.INFO, logger="stixbridge.sightings.outbox"):
        counts = outbox_of(engine).send(target, NOW)

    assert counts.confirmed == 3
    assert counts.resent == 1
    assert [obj["id"] for obj in target.calls[-1]] == [lost[0]]
    assert set(statuses(engine).values()) == {"published"}
    assert "3 already stored" in caplog.text
    assert "1 sent again" in caplog.text


def test_reconcile_resends_older_version(tmp_path):
    target = ReadableFakePublisher()
    engine = build_rows(tmp_path, target)
    crash_after_store(engine, target)
    # The server stores the sighting only at an earlier version: ours is not there yet.
    key = next(key for key in target.held if key[0].startswith("sighting--"))
    target.held[(key[0], "2024-06-15T11:00:00.000Z")] = target.held.pop(key)

    counts = outbox_of(engine).send(target, NOW)

    assert counts.resent == 1
    assert [obj["id"] for obj in target.calls[-1]] == [key[0]]


def test_reconcile_matches_versions_as_instants(tmp_path):
    target = ReadableFakePublisher()
    engine = build_rows(tmp_path, target)
    crash_after_store(engine, target)
    # A server may return "...00Z" for "...00.000Z": the same instant, so the same version.
    for object_id, version in list(target.held):
        if version and version.endswith(".000Z"):
            target.held[(object_id, version.replace(".000Z", "Z"))] = target.held.pop((object_id, version))

    counts = outbox_of(engine).send(target, NOW)

    assert counts.confirmed == 4
    assert len(target.calls) == 1


def test_publisher_without_read_back_resends_with_warning(tmp_path, caplog):
    target = FakePublisher()
    engine = build_rows(tmp_path, target)
    crash_after_store(engine, target)
    stored = dict(target.held)

    with caplog.at_level(logging.WARNING, logger="stixbridge.sightings.outbox"):
        counts = outbox_of(engine).send(target, NOW)

    assert counts.resent == 4
    assert counts.published == 4
    assert sorted(obj["id"] for obj in target.calls[1]) == sorted(obj["id"] for obj in target.calls[0])
    assert target.held == stored
    assert set(statuses(engine).values()) == {"published"}
    assert "cannot read its target back; sending them again" in caplog.text
    assert "4 objects of an interrupted send" in caplog.text


def test_failed_read_back_resends_and_loses_nothing(tmp_path, caplog):
    target = ReadableFakePublisher()
    engine = build_rows(tmp_path, target)
    crash_after_store(engine, target)
    target.held.clear()
    target.read_error = TransientError("HTTP 503 while reading the collection")

    with caplog.at_level(logging.WARNING, logger="stixbridge.sightings.outbox"):
        counts = outbox_of(engine).send(target, NOW)

    assert counts.resent == 4
    assert counts.published == 4
    assert len(target.held) == 4
    assert set(statuses(engine).values()) == {"published"}
    assert "reading back 4 objects of an interrupted send failed: HTTP 503" in caplog.text


def test_unexpected_read_back_error_keeps_rows_sending(tmp_path):
    target = ReadableFakePublisher()
    engine = build_rows(tmp_path, target)
    crash_after_store(engine, target)
    target.read_error = ValueError("bug in the publisher")

    with pytest.raises(ValueError, match="bug in the publisher"):
        outbox_of(engine).send(target, NOW)

    assert len(target.calls) == 1
    assert set(statuses(engine).values()) == {"sending"}


def test_transport_error_leaves_rows_for_read_back(tmp_path):
    target = ReadableFakePublisher()
    engine = build_rows(tmp_path, target)
    target.raise_after_store = ConnectionResetError("connection reset before the status arrived")
    with pytest.raises(ConnectionResetError):
        outbox_of(engine).send(target, NOW)
    rows = outbox_of(engine).rows()
    assert {row["status"] for row in rows} == {"sending"}
    assert all("connection reset" in row["reason"] for row in rows)
    assert all("may have reached the target" in row["reason"] for row in rows)

    target.raise_after_store = None
    counts = outbox_of(engine).send(target, NOW)

    assert len(target.calls) == 1
    assert counts.confirmed == 4
    assert set(statuses(engine).values()) == {"published"}


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("publishing is off", key="enabled"),
        RemoteRejectedError("HTTP 401: bad credentials", status=401),
        RemoteRejectedError("HTTP 403: no write access", status=403),
        RemoteRejectedError("HTTP 404: no such collection", status=404),
    ],
)
def test_errors_proving_nothing_stored_go_back_pending(tmp_path, error):
    target = ReadableFakePublisher()
    engine = build_rows(tmp_path, target)
    target.raise_before = error
    with pytest.raises(type(error)):
        outbox_of(engine).send(target, NOW)
    rows = outbox_of(engine).rows()
    assert {row["status"] for row in rows} == {"pending"}
    assert all(row["reason"] == f"not sent: {error}" for row in rows)

    target.raise_before = None
    counts = outbox_of(engine).send(target, NOW)

    assert target.reads == []
    assert counts.published == 4


def test_server_error_status_is_not_proof(tmp_path):
    target = ReadableFakePublisher()
    engine = build_rows(tmp_path, target)
    target.raise_before = RemoteRejectedError("HTTP 500 after the body was read", status=500)
    with pytest.raises(RemoteRejectedError):
        outbox_of(engine).send(target, NOW)
    assert set(statuses(engine).values()) == {"sending"}

    target.raise_before = None
    outbox_of(engine).send(target, NOW)

    assert len(target.reads) == 1
    assert set(statuses(engine).values()) == {"published"}


class UnknownFatePublisher(ReadableFakePublisher):
    """Stores everything but reports the fate of the sightings as unknown, as after a dropped connection."""

    def publish(self, objects):
        result = super().publish(objects)
        for index, outcome in enumerate(result.outcomes):
            if outcome.object_id.startswith("sighting--"):
                result.outcomes[index] = type(outcome)(outcome.object_id, outcome.version, "unknown",
                                                       "the POST failed and may have reached the server")  # fmt: skip
        return result


def test_unknown_outcome_is_read_back_next_run(tmp_path):
    target = UnknownFatePublisher()
    engine, _ = make_loop(tmp_path, publishers=[target])
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])

    summary = engine.sync()

    assert summary.exit_code() == EXIT_FAILED
    assert any("may not have reached the target" in failure for failure in summary.failures)
    assert summary.extra["published"][TARGET]["unknown"] == 1
    sending = [row for row in outbox_of(engine).rows() if row["status"] == "sending"]
    assert len(sending) == 1
    assert "may have reached the server" in sending[0]["reason"]

    second = engine.sync()

    assert second.exit_code() == EXIT_OK
    assert second.extra["published"][TARGET]["confirmed"] == 1
    assert len(target.calls) == 1
    assert set(statuses(engine).values()) == {"published"}


def test_send_without_sending_rows_reads_nothing(tmp_path):
    target = ReadableFakePublisher()
    engine = build_rows(tmp_path, target)

    counts = outbox_of(engine).send(target, NOW)

    assert target.reads == []
    assert counts == PublishCounts(queued=4, published=4, by_type=counts.by_type)


def test_rejected_object_sent_once_per_call(tmp_path):
    target = ReadableFakePublisher()
    engine = build_rows(tmp_path, target)
    rejected = next(object_id for object_id in statuses(engine) if object_id.startswith("sighting--"))
    target.reject_ids.add(rejected)

    counts = outbox_of(engine).send(target, NOW)

    assert posted_ids(target).count(rejected) == 1
    assert counts.failed == 1
    (row,) = [row for row in outbox_of(engine).rows() if row["object_id"] == rejected]
    assert row["status"] == "failed"
    assert row["attempts"] == 1


# Indicators stored before ids were checked: the normaliser's check is switched off while they are pulled.
NCS_ID = "indicator--00000000-0000-0000-0000-00000000000e"
NOT_UUID_ID = "indicator--not-a-uuid"


def store_with_bad_ids(tmp_path, monkeypatch, publisher):
    """Pull a feed with two invalid indicator ids and two good ones, bypassing the id check."""
    from tests.core.helpers import indicator

    objects = [
        indicator(1, "[domain-name:value = 'c2.example.com']"),
        indicator(2, "[ipv4-addr:value = '198.51.100.7']"),
        dict(indicator(3, "[ipv4-addr:value = '77.88.99.11']"), id=NCS_ID),
        dict(indicator(4, "[ipv4-addr:value = '66.66.66.66']"), id=NOT_UUID_ID),
    ]
    engine, _ = make_loop(tmp_path, publishers=[publisher], objects=objects)
    with monkeypatch.context() as patch:
        patch.setattr("stixbridge.normalise.is_valid_id_of", lambda value, object_type: True)
        engine.pull(RunSummary())
    assert engine.store.indicator_state(NCS_ID)["state"] == "live"
    hits = [
        hit("c2.example.com", 10),
        dict(hit("198.51.100.7", 10), kind="false-positive"),
        dict(hit("77.88.99.11", 10), kind="false-positive"),
        hit("66.66.66.66", 10),
    ]
    write_sightings(tmp_path / "sightings" / "hits.jsonl", hits)
    return engine


def test_unbuildable_window_refused_others_published(tmp_path, monkeypatch, caplog):
    target = FakePublisher()
    engine = store_with_bad_ids(tmp_path, monkeypatch, target)

    with caplog.at_level(logging.WARNING, logger="stixbridge.sightings.outbox"):
        summary = engine.sync()

    assert summary.exit_code() == EXIT_OK
    assert [obj["sighting_of_ref"] for obj in target.of_type("sighting")] == [
        "indicator--00000000-0000-4000-8000-000000000001"
    ]
    assert [obj["object_refs"] for obj in target.of_type("opinion")] == [
        ["indicator--00000000-0000-4000-8000-000000000002"]
    ]
    assert len(target.of_type("identity")) == 1

    refused = outbox_of(engine).rows("refused")
    assert len(refused) == 2
    for row in refused:
        assert row["reason"].startswith("cannot be built as STIX 2.1, so it is never sent:")
        assert "not a valid STIX identifier" in row["reason"]
    assert {row["type"] for row in refused} == {"sighting", "opinion"}

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any(NCS_ID in message and "cannot build the opinion" in message for message in warnings)
    assert any(NOT_UUID_ID in message and "cannot build the sighting" in message for message in warnings)


def test_unbuildable_window_not_rebuilt_or_sent_later(tmp_path, monkeypatch, caplog):
    target = FakePublisher()
    engine = store_with_bad_ids(tmp_path, monkeypatch, target)
    engine.sync()
    calls = len(target.calls)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="stixbridge.sightings.outbox"):
        assert outbox_of(engine).enqueue(TARGET, NOW) == 0
        engine.publish(RunSummary())

    assert len(target.calls) == calls
    assert caplog.records == []


def test_unbuildable_window_stays_refused_when_policy_changes(tmp_path, monkeypatch):
    target = FakePublisher()
    engine = store_with_bad_ids(tmp_path, monkeypatch, target)
    engine.sync()

    sharing = engine.config.sharing
    engine.config.sharing = type(sharing)(targets=[type(sharing.target(TARGET))(name=TARGET, max_tlp="amber")])
    outbox_of(engine).enqueue(TARGET, NOW)
    fingerprint = engine.store.db.execute("SELECT value FROM meta WHERE key = ?", (f"sharing_target:{TARGET}",))
    assert fingerprint.fetchone()[0] == "amber"
    counts = outbox_of(engine).send(target, NOW)

    assert counts.queued == 0
    assert len(outbox_of(engine).rows("refused")) == 2


def test_only_unbuildable_windows_queue_nothing(tmp_path, monkeypatch):
    target = FakePublisher()
    engine = store_with_bad_ids(tmp_path, monkeypatch, target)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("77.88.99.11", 10)])
    engine.read_sightings(RunSummary())

    assert outbox_of(engine).enqueue(TARGET, NOW) == 0
    assert [row["status"] for row in outbox_of(engine).rows()] == ["refused"]
