import json
from datetime import UTC, datetime, timedelta

import pytest

from stixbridge.cli import main
from stixbridge.engine import EXIT_FAILED, EXIT_OK, RunSummary
from stixbridge.model import Provenance, RawItem, SightingRecord
from stixbridge.sightings.loop import outbox_of
from stixbridge.sources.base import Source
from stixbridge.timeutil import parse_timestamp
from stixbridge.tlp import TLP2_MARKING_IDS, Tlp
from tests.core.helpers import indicator
from tests.core.sightings.loop_fixtures import NOW, FakePublisher, TransientError, make_loop, write_sightings

C2 = "indicator--00000000-0000-4000-8000-000000000001"
GREEN_IP = "indicator--00000000-0000-4000-8000-000000000002"


def hit(value, minutes_ago, **extra):
    return {"value": value, "time": (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"), **extra}


def test_sightings_aggregate_per_indicator_and_hour(tmp_path):
    engine, (target,) = make_loop(tmp_path, sharing={"targets": [{"name": "alliance-taxii", "max_tlp": "amber"}]})
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [
        hit("C2.Example.COM", 10, host="ws-001"), hit("hxxp://c2.example[.]com", 200),
        hit("c2.example.com", 20, host="ws-002"), hit("198.51.100.7", 5), hit("unknown.example.org", 5),
    ])  # fmt: skip
    summary = engine.sync()
    assert summary.exit_code() == EXIT_OK

    sightings = target.of_type("sighting")
    by_ref = {}
    for s in sightings:
        by_ref.setdefault(s["sighting_of_ref"], []).append(s)
    assert len(by_ref[C2]) == 1
    c2 = by_ref[C2][0]
    assert c2["count"] == 2
    assert parse_timestamp(c2["first_seen"]) == NOW - timedelta(minutes=20)
    assert parse_timestamp(c2["last_seen"]) == NOW - timedelta(minutes=10)
    assert c2["where_sighted_refs"] == [engine.config.identity.id]
    assert c2["created_by_ref"] == engine.config.identity.id
    assert by_ref[GREEN_IP][0]["count"] == 1
    assert summary.extra["sightings"]["unmatched"] == 2


def test_sightings_publish_identity_and_markings_once(tmp_path):
    engine, (target,) = make_loop(tmp_path)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
    engine.sync()
    identities = target.of_type("identity")
    assert [i["id"] for i in identities] == [engine.config.identity.id]
    assert {m["id"] for m in target.of_type("marking-definition")} == {TLP2_MARKING_IDS[Tlp.GREEN]}
    assert target.of_type("sighting")[0]["object_marking_refs"] == [TLP2_MARKING_IDS[Tlp.GREEN]]


def test_sightings_publishing_again_sends_nothing(tmp_path):
    engine, (target,) = make_loop(tmp_path)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
    engine.sync()
    sent = len(target.sent())
    assert engine.sync().exit_code() == EXIT_OK
    assert len(target.sent()) == sent


def test_sightings_new_hit_in_window_is_new_version(tmp_path):
    clock = [NOW]
    engine, (target,) = make_loop(tmp_path, clock=lambda: clock[0])
    path = tmp_path / "sightings" / "hits.jsonl"
    write_sightings(path, [hit("c2.example.com", 30)])
    engine.sync()
    first = target.of_type("sighting")[0]

    clock[0] = NOW + timedelta(minutes=5)
    write_sightings(path, [hit("c2.example.com", 25)], mode="a")
    engine.sync()
    versions = sorted((s for s in target.of_type("sighting")), key=lambda s: s["modified"])
    assert [v["id"] for v in versions] == [first["id"], first["id"]]
    assert versions[1]["count"] == 2
    assert versions[1]["modified"] > versions[0]["modified"]
    assert versions[1]["created"] == versions[0]["created"]


def test_sighting_ids_are_deterministic(tmp_path):
    ids = []
    for run in ("a", "b"):
        engine, (target,) = make_loop(tmp_path / run)
        write_sightings(tmp_path / run / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
        engine.sync()
        ids.append(target.of_type("sighting")[0]["id"])
    assert ids[0] == ids[1]


def test_false_positive_becomes_opinion(tmp_path):
    engine, (target,) = make_loop(tmp_path)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10, kind="false-positive")])
    engine.sync()
    assert target.of_type("sighting") == []
    (opinion,) = target.of_type("opinion")
    assert opinion["opinion"] == "disagree"
    assert opinion["object_refs"] == [C2]
    assert opinion["created_by_ref"] == engine.config.identity.id


def test_other_kinds_are_not_published(tmp_path):
    engine, (target,) = make_loop(tmp_path)
    engine.pull(RunSummary())
    record = SightingRecord("misp", "c2.example.com", NOW - timedelta(minutes=5), kind="expiration")
    engine.store.add_sightings([record], "sightings:misp", None)
    summary = RunSummary()
    engine.read_sightings(summary)
    engine.publish(summary)
    assert target.sent() == []
    reason = engine.store.db.execute("SELECT reason FROM sightings").fetchone()[0]
    assert reason == "kind 'expiration' is not published; only seen and false-positive are"


def test_address_in_network_indicator_is_sighted(tmp_path):
    engine, (target,) = make_loop(tmp_path)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("203.0.113.77", 10)])
    engine.sync()
    assert target.of_type("sighting")[0]["sighting_of_ref"] == "indicator--00000000-0000-4000-8000-000000000007"


def test_email_in_lookup_case_is_sighted(tmp_path):
    phish = indicator(8, "[email-addr:value = 'Phish@Bad-Mailer.example']")
    engine, (target,) = make_loop(tmp_path, objects=[phish])
    # A Splunk lookup stores e-mail addresses in lower case, so its matches report them in lower case.
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("phish@bad-mailer.example", 10),
                                                          hit("Phish@Bad-Mailer.example", 5)])  # fmt: skip

    summary = engine.sync()

    assert summary.extra["sightings"]["unmatched"] == 0
    (sighting,) = target.of_type("sighting")
    assert sighting["sighting_of_ref"] == phish["id"]
    assert sighting["count"] == 2


def test_hit_from_the_future_not_counted(tmp_path):
    engine, (target,) = make_loop(tmp_path)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", -2 * 60), hit("c2.example.com", 10)])

    summary = engine.sync()

    (sighting,) = target.of_type("sighting")
    assert sighting["count"] == 1
    assert summary.extra["sightings"]["reasons"] == {"seen in the future": 1}
    reason = engine.store.db.execute("SELECT reason FROM sightings WHERE status = 'unmatched'").fetchone()[0]
    assert "more than 60 minutes after now" in reason


def test_new_destination_gets_everything_again(tmp_path):
    from types import SimpleNamespace

    engine, (target,) = make_loop(tmp_path)
    target.settings = SimpleNamespace(url="https://127.0.0.1:9/taxii2/", api_root=None, collection="old")
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
    engine.sync()
    first = {obj["id"] for call in target.calls for obj in call}
    assert target.of_type("identity")

    # The partner moved its sightings collection, and the new one is still empty.
    target.settings = SimpleNamespace(url="https://127.0.0.1:9/taxii2/", api_root=None, collection="new")
    target.held.clear()
    target.calls.clear()
    engine.sync()

    assert {obj["id"] for call in target.calls for obj in call} == first
    assert target.of_type("identity")
    assert target.of_type("marking-definition")
    assert target.of_type("sighting")

    target.calls.clear()
    engine.sync()
    assert target.calls == []


def test_context_stays_private_by_default(tmp_path):
    engine, (target,) = make_loop(tmp_path)
    write_sightings(tmp_path / "sightings" / "hits.jsonl",
                    [hit("c2.example.com", 10, host="ws-secret-01", user="alice", src="10.9.8.7")])  # fmt: skip
    engine.sync()
    text = json.dumps(target.sent())
    for private in ("ws-secret-01", "alice", "10.9.8.7"):
        assert private not in text
    assert target.of_type("observed-data") == []


def test_observed_fields_share_only_configured_context(tmp_path):
    sharing = {"targets": [{"name": "alliance-taxii", "observed_fields": ["src"]}]}
    engine, (target,) = make_loop(tmp_path, sharing=sharing)
    write_sightings(tmp_path / "sightings" / "hits.jsonl",
                    [hit("c2.example.com", 10, host="ws-secret-01", user="alice", src="10.9.8.7")])  # fmt: skip
    engine.sync()
    (observed,) = target.of_type("observed-data")
    (address,) = target.of_type("ipv4-addr")
    assert address["value"] == "10.9.8.7"
    assert observed["object_refs"] == [address["id"]]
    assert target.of_type("sighting")[0]["observed_data_refs"] == [observed["id"]]
    text = json.dumps(target.sent())
    assert "ws-secret-01" not in text
    assert "alice" not in text


SIGHTED = {
    Tlp.CLEAR: "c2.example.com",
    Tlp.GREEN: "198.51.100.7",
    Tlp.AMBER: "amber.example.com",
    Tlp.AMBER_STRICT: "strict.example.com",
    Tlp.RED: "red.example.com",
}


@pytest.mark.parametrize("target_max", ["clear", "green", "amber"])
@pytest.mark.parametrize("level", list(Tlp))
def test_each_tlp_to_each_kind_of_target(tmp_path, level, target_max):
    sharing = {"tlp": "clear", "targets": [{"name": "alliance-taxii", "max_tlp": target_max}]}
    engine, (target,) = make_loop(tmp_path, sharing=sharing)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit(SIGHTED[level], 10)])
    engine.sync()

    allowed = level not in (Tlp.AMBER_STRICT, Tlp.RED) and level <= Tlp.parse(target_max)
    assert len(target.of_type("sighting")) == (1 if allowed else 0)
    (row,) = [r for r in outbox_of(engine).rows() if r["type"] == "sighting"]
    assert row["tlp"] == level.label
    if allowed:
        assert row["status"] == "published"
        assert target.of_type("sighting")[0]["object_marking_refs"] == [TLP2_MARKING_IDS[level]]
    else:
        assert row["status"] == "refused"
        assert ("never leaves" if level >= Tlp.AMBER_STRICT else "above TLP:") in row["reason"]
    assert all(m["id"] != TLP2_MARKING_IDS[Tlp.RED] for m in target.of_type("marking-definition"))


def test_sighting_takes_policy_tlp_when_higher(tmp_path):
    sharing = {"tlp": "amber", "targets": [{"name": "alliance-taxii", "max_tlp": "amber"}]}
    engine, (target,) = make_loop(tmp_path, sharing=sharing)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
    engine.sync()
    assert target.of_type("sighting")[0]["object_marking_refs"] == [TLP2_MARKING_IDS[Tlp.AMBER]]


def test_targets_with_different_ceilings_get_different_objects(tmp_path):
    public, partners = FakePublisher("public"), FakePublisher("partners")
    sharing = {"tlp": "clear", "targets": [{"name": "public", "max_tlp": "clear"},
                                           {"name": "partners", "max_tlp": "amber"}]}  # fmt: skip
    engine, _ = make_loop(tmp_path, sharing=sharing, publishers=[public, partners])
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit(v, 10) for v in SIGHTED.values()])
    engine.sync()
    assert {s["sighting_of_ref"][-1] for s in public.of_type("sighting")} == {"1"}
    assert {s["sighting_of_ref"][-1] for s in partners.of_type("sighting")} == {"1", "2", "3"}


def test_raised_target_ceiling_sends_refused_rows(tmp_path):
    engine, (target,) = make_loop(tmp_path, sharing={"targets": [{"name": "alliance-taxii", "max_tlp": "green"}]})
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("amber.example.com", 10)])
    engine.sync()
    assert target.of_type("sighting") == []
    engine.config.sharing = type(engine.config.sharing)(targets=[type(engine.config.sharing.targets[0])(
        name="alliance-taxii", max_tlp="amber")])  # fmt: skip
    engine.publish(RunSummary())
    assert len(target.of_type("sighting")) == 1


def test_crash_between_outbox_and_publish_sends_each_once(tmp_path):
    engine, (target,) = make_loop(tmp_path)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10), hit("198.51.100.7", 10)])
    engine.pull(RunSummary())
    engine.read_sightings(RunSummary())
    outbox = outbox_of(engine)
    # Two sightings, our identity and the TLP:GREEN marking both carry.
    assert outbox.enqueue("alliance-taxii", NOW) == 4
    # The process dies here: rows are built and committed, nothing was sent.
    engine.store.close()

    engine, (target,) = make_loop(tmp_path, publishers=[target])
    engine.sync()
    ids = [obj["id"] for obj in target.sent()]
    assert len(ids) == len(set(ids)) == 4
    engine.sync()
    assert len(target.sent()) == 4


def test_server_error_retry_sends_once(tmp_path):
    engine, (target,) = make_loop(tmp_path)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
    target.raise_before = TransientError("HTTP 503 from the TAXII server")
    summary = engine.sync()
    assert summary.exit_code() == EXIT_FAILED
    # A 503 does not prove the server stored nothing, so the rows wait to be read back.
    assert {r["status"] for r in outbox_of(engine).rows()} == {"sending"}
    assert "HTTP 503" in outbox_of(engine).rows()[0]["reason"]
    assert target.held == {}

    target.raise_before = None
    assert engine.sync().exit_code() == EXIT_OK
    assert {r["status"] for r in outbox_of(engine).rows()} == {"published"}
    engine.sync()
    assert len(target.held) == 3
    assert len(target.calls) == 2


def test_crash_after_server_stored_repeats_identical_version_only(tmp_path):
    engine, (target,) = make_loop(tmp_path)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
    target.raise_after_store = ConnectionResetError("connection reset before the status arrived")
    engine.sync()
    stored = dict(target.held)

    target.raise_after_store = None
    engine.sync()
    # The server got the same (id, version) again and stores nothing new or changed.
    assert target.held == stored
    assert {r["status"] for r in outbox_of(engine).rows()} == {"published"}
    engine.sync()
    assert len(target.calls) == 2


def test_rejected_object_is_retried_then_stays_failed(tmp_path):
    engine, (target,) = make_loop(tmp_path, sharing={"max_attempts": 2})
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
    engine.pull(RunSummary())
    engine.read_sightings(RunSummary())
    sighting_id = engine.store.db.execute("SELECT object_id FROM sighting_windows").fetchone()[0]
    target.reject_ids.add(sighting_id)
    assert engine.sync().exit_code() == EXIT_FAILED
    engine.sync()
    engine.sync()
    sent = [obj["id"] for obj in target.sent()]
    assert sent.count(sighting_id) == 2
    (row,) = [r for r in outbox_of(engine).rows() if r["object_id"] == sighting_id]
    assert row["status"] == "failed"
    assert row["reason"] == "rejected by the fake"


def test_sighting_extends_lifetime_expiry(tmp_path):
    lifetimes = {"default": 0, "domain": 10, "ipv4": 0, "url": 0, "ipv4-cidr": 0}
    engine, _ = make_loop(tmp_path, lifetimes=lifetimes, sharing={"extend_days": 30})
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
    engine.pull(RunSummary())
    before = engine.store.indicator_state(C2)["expires_at"]
    summary = RunSummary()
    engine.read_sightings(summary)
    state = engine.store.indicator_state(C2)
    assert summary.extra["sightings"]["extended"] == 1
    assert state["basis"] == "sighting"
    assert state["expires_at"] > before
    assert state["expires_at"] >= NOW + timedelta(days=29)


def test_sighting_keeps_producer_valid_until(tmp_path):
    objects = [indicator(1, "[domain-name:value = 'c2.example.com']", valid_until="2024-06-20T00:00:00.000Z")]
    engine, _ = make_loop(tmp_path, objects=objects)
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
    engine.sync()
    assert engine.store.indicator_state(C2)["basis"] == "valid_until"


class RenewingSource(Source):
    """A feed that, asked again by id, has a newer version of its indicator."""

    kind = "renewing"

    def __init__(self, newer):
        from pathlib import Path

        from stixbridge.connector import ConnectorContext
        from stixbridge.settings import Settings

        super().__init__("alliance", Settings(), ConnectorContext(base_dir=Path(".")))
        self.newer = newer
        self.asked = []

    def pull(self, cursor):
        return iter(())

    def fetch_by_id(self, object_id, provenance):
        self.asked.append(object_id)
        return [RawItem(self.newer, Provenance("alliance", "renewed"))]


def test_expired_hit_fetches_indicator_again(tmp_path):
    old = indicator(1, "[domain-name:value = 'c2.example.com']", valid_until="2024-06-01T00:00:00.000Z")
    engine, (target,) = make_loop(tmp_path, objects=[old])
    engine.pull(RunSummary())
    engine.expire(RunSummary())
    assert engine.store.indicator_state(C2)["state"] == "expired"

    newer = dict(old, modified="2024-06-10T00:00:00.000Z", valid_until="2024-12-01T00:00:00.000Z")
    source = RenewingSource(newer)
    engine.config.sources[0].connector = source
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
    summary = RunSummary()
    engine.read_sightings(summary)
    engine.publish(summary)
    assert source.asked == [C2]
    assert engine.store.indicator_state(C2)["state"] == "live"
    assert target.of_type("sighting")[0]["sighting_of_ref"] == C2


def test_expired_hit_unmatched_with_reason(tmp_path):
    old = indicator(1, "[domain-name:value = 'c2.example.com']", valid_until="2024-06-01T00:00:00.000Z")
    engine, (target,) = make_loop(tmp_path, objects=[old])
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [hit("c2.example.com", 10)])
    engine.sync()
    assert target.of_type("sighting") == []
    reason = engine.store.db.execute("SELECT reason FROM sightings").fetchone()[0]
    assert "matches only expired indicators" in reason
    assert "cannot fetch objects by id" in reason


def test_cli_sightings_list_and_status(tmp_path, capsys):
    feed = tmp_path / "feed.json"
    feed.write_text(json.dumps({"type": "bundle", "id": "bundle--1", "objects": [
        indicator(1, "[domain-name:value = 'c2.example.com']")]}), encoding="utf-8")  # fmt: skip
    # The CLI runs on the wall clock, and hits older than keep_days (90 by default) are dropped.
    recent = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_sightings(tmp_path / "sightings.jsonl", [{"value": "c2.example.com", "time": recent},
                                                   {"value": "nothing.example.org", "time": recent}])  # fmt: skip
    config = tmp_path / "stixbridge.toml"
    config.write_text(
        f'[engine]\nstate = "s.db"\nlifetimes = {{ default = 0, domain = 0 }}\n[[sources]]\nname = "alliance"\nkind = "file"\npath = "{feed}"\n'
        '[[sightings]]\nname = "local"\nkind = "file"\npath = "sightings.jsonl"\n'
        '[[publish]]\nname = "alliance-taxii"\nkind = "taxii"\nurl = "http://127.0.0.1:9/taxii2/"\n'
        'collection = "sightings"\n'
        '[[trust.sources]]\nname = "alliance"\nallow = ["documentation"]\n',
        encoding="utf-8",
    )
    assert main(["--config", str(config), "--json", "sync"]) == EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert out["published"]["alliance-taxii"]["off"].startswith("set enabled = true")
    assert out["sightings"]["matched"] == 1

    assert main(["--config", str(config), "sightings", "list"]) == EXIT_OK
    text = capsys.readouterr().out
    assert "unmatched local" in text
    assert "matches no live indicator" in text
    assert main(["--config", str(config), "sightings", "list", "--status", "refused"]) == EXIT_OK
    assert "nothing.example.org" not in capsys.readouterr().out
    assert main(["--config", str(config), "sightings", "list", "--status", "unmatched"]) == EXIT_OK
    only_unmatched = capsys.readouterr().out
    assert "nothing.example.org" in only_unmatched
    assert "0 outbox rows and 1 unmatched records shown" in only_unmatched
    assert main(["--config", str(config), "--json", "status"]) == EXIT_OK
    status = json.loads(capsys.readouterr().out)
    assert status["sightings"]["records"] == {"matched": 1, "unmatched": 1}
    assert status["sightings"]["aggregates"] == {"sighting": 1}


def test_misp_sightings_aggregate_as_stix_expects(tmp_path):
    # MISP sightings of one attribute: two of type 0 an hour apart, one false positive, one expiration.
    indicator_id = "indicator--37396a2d-2945-4fc7-807d-860a1b378b60"
    objects = [dict(indicator(1, "[ipv4-addr:value = '198.51.100.23']"), id=indicator_id)]
    engine, (target,) = make_loop(tmp_path, objects=objects, sharing={"window_minutes": 1440})
    engine.config.identity.id = "identity--7f09444b-2404-426e-a06d-a1102df4156d"
    engine.config.identity.name = "Example SOC"
    engine.pull(RunSummary())
    records = [
        SightingRecord("misp", "198.51.100.23", parse_timestamp("2024-06-05T10:00:00Z"), indicator_id=indicator_id,
                       external_id="101", context=(("source", "edr-sensor-7"),)),
        SightingRecord("misp", "198.51.100.23", parse_timestamp("2024-06-05T11:00:00Z"), indicator_id=indicator_id,
                       external_id="102", context=(("source", "edr-sensor-7"),)),
        SightingRecord("misp", "198.51.100.23", parse_timestamp("2024-06-05T12:00:00Z"), indicator_id=indicator_id,
                       external_id="103", kind="false-positive"),
        SightingRecord("misp", "198.51.100.23", parse_timestamp("2024-06-05T13:00:00Z"), indicator_id=indicator_id,
                       external_id="104", kind="expiration"),
    ]  # fmt: skip
    engine.store.add_sightings(records, "sightings:misp", None)
    summary = RunSummary()
    engine.read_sightings(summary)
    engine.publish(summary)

    (sighting,) = target.of_type("sighting")
    assert sighting["spec_version"] == "2.1"
    assert sighting["sighting_of_ref"] == indicator_id
    assert sighting["count"] == 2
    assert parse_timestamp(sighting["first_seen"]) == parse_timestamp("2024-06-05T10:00:00.000Z")
    assert parse_timestamp(sighting["last_seen"]) == parse_timestamp("2024-06-05T11:00:00.000Z")
    assert sighting["where_sighted_refs"] == ["identity--7f09444b-2404-426e-a06d-a1102df4156d"]
    assert sighting["created"].endswith("Z") and len(sighting["created"]) == len("2024-06-05T10:00:00.000Z")
    (identity,) = target.of_type("identity")
    assert identity["name"] == "Example SOC"
    assert identity["id"] == "identity--7f09444b-2404-426e-a06d-a1102df4156d"
    (opinion,) = target.of_type("opinion")
    assert opinion["object_refs"] == [indicator_id]
    # The expiration is neither a Sighting nor an Opinion.
    assert len(target.of_type("sighting")) + len(target.of_type("opinion")) == 2


def test_version_two_state_file_gains_window_columns(tmp_path):
    import sqlite3

    from stixbridge.store.schema import MIGRATIONS
    from stixbridge.store.sqlite import SqliteStore

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        for number in range(2):
            db.executescript(MIGRATIONS[number])
        db.execute("PRAGMA user_version = 2")
    with SqliteStore(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        columns = {row[1] for row in store.db.execute("PRAGMA table_info(sighting_windows)")}
        assert {"tlp", "created_ms", "modified_ms"} <= columns
