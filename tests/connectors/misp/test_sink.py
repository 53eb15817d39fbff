"""Tests of the MISP sink against the fake MISP, through the real PyMISP."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections import Counter

import pytest

from stixbridge.connectors.misp.attributes import attribute_uuid, event_uuid
from stixbridge.connectors.misp.sink import MispSink
from stixbridge.errors import ConfigError, RemoteRejectedError, TransientError
from stixbridge.model import Changes, DeliveredRow
from stixbridge.settings import build_settings
from stixbridge.tlp import Tlp

from .conftest import make_row
from .fake_misp import FakeMisp


def _delivered(row):
    return DeliveredRow(row.key, row.type, row.value, row.digest, row.indicator_id)


def test_push_new_rows_creates_one_event(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()
    rows = [
        make_row(1, "ipv4", "198.51.100.7"),
        make_row(2, "ipv4", "203.0.113.9", direction="src"),
        make_row(3, "domain", "portal.example.com"),
        make_row(4, "url", "http://example.org/download?name=it's"),
        make_row(5, "md5", "d41d8cd98f00b204e9800998ecf8427e"),
        make_row(6, "registry-key", "HKEY_LOCAL_MACHINE\\Software\\ExampleVendor\\Updater"),
        make_row(7, "as-number", "64496"),
        make_row(8, "x509-sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ]

    sink.begin()
    result = sink.push(Changes(upserts=rows))
    sink.finish(True)

    assert sorted(result.written) == sorted(row.key for row in rows)
    assert result.failed == {}
    assert [r.path for r in fake.writes()] == ["/events/add"]
    assert len(fake.events) == 1
    types = {a["value"]: a["type"] for a in fake.live_attributes()}
    assert types == {
        "198.51.100.7": "ip-dst",
        "203.0.113.9": "ip-src",
        "portal.example.com": "domain",
        "http://example.org/download?name=it's": "url",
        "d41d8cd98f00b204e9800998ecf8427e": "md5",
        "HKEY_LOCAL_MACHINE\\Software\\ExampleVendor\\Updater": "regkey",
        "64496": "AS",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709": "x509-fingerprint-sha1",
    }


def test_push_attribute_fields(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()
    row = make_row(1, "ipv4", "198.51.100.7", tlp=int(Tlp.AMBER))

    sink.push(Changes(upserts=[row]))

    stored = fake.attribute(attribute_uuid(sink.namespace, row.key))
    assert stored is not None
    assert stored["to_ids"] is True
    assert stored["comment"].startswith("indicator--00000000-0000-4000-8000-000000000001")
    assert stored["first_seen"] == "2024-05-02T08:00:00.000000+00:00"
    assert stored["last_seen"] == "2024-08-02T08:00:00.000000+00:00"
    assert stored["category"] == "Network activity"
    assert sorted(stored["tags"]) == ['stixbridge:source="alliance"', "tlp:amber"]
    assert stored["distribution"] == 5


def test_push_counts_requests_and_bytes(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()

    result = sink.push(Changes(upserts=[make_row(1)]))

    # PyMISP's three start-up calls, the UUID lookup, the events index and the event creation.
    assert result.requests == 6
    assert result.requests == len(fake.requests)
    assert result.bytes_sent == sum(r.size for r in fake.requests)


def test_push_nothing_sends_no_request(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()

    sink.begin()
    result = sink.push(Changes())
    sink.finish(True)

    assert result.requests == 0
    assert fake.requests == []
    assert not sink.client.connected


def test_push_again_updates_in_place(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()
    rows = [make_row(n, "domain", f"host{n}.example.com") for n in range(1, 6)]
    sink.push(Changes(upserts=rows))
    fake.reset_log()

    changed = [dataclasses.replace(row, name="renamed", digest="new") for row in rows[:2]]
    result = sink.push(Changes(upserts=changed))

    assert sorted(result.written) == sorted(row.key for row in changed)
    assert [r.path for r in fake.writes()] == [f"/events/edit/{next(iter(fake.events.values()))['uuid']}/metadata:1"]
    assert len(fake.live_attributes()) == 5
    stored = fake.attribute(attribute_uuid(sink.namespace, rows[0].key))
    assert stored is not None
    assert stored["comment"].endswith(" renamed")


def test_uuids_stable_across_sinks(fake: FakeMisp, make_sink) -> None:
    first = make_sink()
    second = make_sink()
    row = make_row(1)

    first.push(Changes(upserts=[row]))
    second.push(Changes(upserts=[dataclasses.replace(row, digest="again")]))

    assert len(fake.live_attributes()) == 1
    assert len(fake.events) == 1
    assert first.namespace == second.namespace


def test_uuid_seed_changes_namespace(make_sink) -> None:
    assert make_sink(uuid_seed="member-a").namespace != make_sink(uuid_seed="member-b").namespace


def test_event_uuid_from_source_collection_part(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(max_attributes_per_event=3, chunk_size=2)
    rows = [make_row(n) for n in range(1, 8)]

    result = sink.push(Changes(upserts=rows))

    assert len(result.written) == 7
    expected = {event_uuid(sink.namespace, "alliance", "collection-a", part) for part in range(3)}
    assert {e["uuid"] for e in fake.events.values()} == expected
    counts = sorted(Counter(a["event_id"] for a in fake.live_attributes()).values())
    assert counts == [1, 3, 3]


def test_later_rows_fill_last_event(fake: FakeMisp, make_sink) -> None:
    make_sink(max_attributes_per_event=3).push(Changes(upserts=[make_row(n) for n in range(1, 5)]))
    fake.reset_log()

    make_sink(max_attributes_per_event=3).push(Changes(upserts=[make_row(n) for n in range(5, 8)]))

    counts = sorted(Counter(a["event_id"] for a in fake.live_attributes()).values())
    assert counts == [1, 3, 3]
    paths = [r.path.split("/")[1] + "/" + r.path.split("/")[2] for r in fake.writes()]
    assert paths == ["attributes/add", "events/add"]


def test_events_per_collection(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()
    rows = [make_row(1, collection="c1"), make_row(2, collection="c2"), make_row(3, source="other", collection="c1")]

    sink.push(Changes(upserts=rows))

    infos = sorted(e["info"] for e in fake.events.values())
    assert infos == ["stixbridge: alliance / c1", "stixbridge: alliance / c2", "stixbridge: other / c1"]


def test_chunks_attributes_per_request(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(chunk_size=2)

    sink.push(Changes(upserts=[make_row(n) for n in range(1, 6)]))

    bodies = [r.path.split("/")[1] for r in fake.writes()]
    assert bodies == ["events", "attributes", "attributes"]
    assert len(fake.live_attributes()) == 5


def test_accepts_only_types_and_values_misp_holds(make_sink, caplog: pytest.LogCaptureFixture) -> None:
    sink = make_sink()

    assert sink.accepts(make_row(1, "sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
    assert not sink.accepts(make_row(2, "x509-serial", "0a:1b"))
    assert not sink.accepts(make_row(3, "user-account", "admin"))
    assert not sink.accepts(make_row(4, "md5", "d41d8cd98f00b204"))
    assert not sink.accepts(make_row(5, "ipv4", "198.51.100.300"))

    with caplog.at_level(logging.WARNING):
        sink.finish(True)
    assert "left out rows MISP cannot hold" in caplog.text
    assert "no MISP type for atom type 'x509-serial' (1)" in caplog.text
    assert "md5 values MISP rejects (1)" in caplog.text
    assert "ip-dst values MISP rejects (1)" in caplog.text


def test_push_reports_invalid_rows_as_failed(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()
    good, bad = make_row(1), make_row(2, "md5", "abc")

    result = sink.push(Changes(upserts=[good, bad]))

    assert result.written == [good.key]
    assert "32 hexadecimal characters" in result.failed[bad.key]


def test_push_detects_attributes_misp_dropped(fake: FakeMisp, make_sink, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink()
    monkeypatch.setattr(sink.builder, "problem", lambda row: None)
    good, bad = make_row(1), make_row(2, "md5", "abc")

    result = sink.push(Changes(upserts=[good, bad]))

    assert result.written == [good.key]
    assert result.failed[bad.key].startswith("MISP dropped attribute")
    assert len(fake.dropped) == 1


def test_push_reports_attribute_errors(fake: FakeMisp, make_sink, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink()
    sink.push(Changes(upserts=[make_row(1)]))
    monkeypatch.setattr(sink.builder, "problem", lambda row: None)
    good, bad = make_row(2, "domain", "ok.example.com"), make_row(3, "domain", "no_dot")

    result = sink.push(Changes(upserts=[good, bad]))

    assert result.written == [good.key]
    assert "Domain has an invalid format" in result.failed[bad.key]


def test_push_all_attributes_rejected(fake: FakeMisp, make_sink, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = make_sink()
    sink.push(Changes(upserts=[make_row(1)]))
    monkeypatch.setattr(sink.builder, "problem", lambda row: None)
    bad = [make_row(2, "md5", "abc"), make_row(3, "md5", "def")]

    result = sink.push(Changes(upserts=bad))

    assert result.written == []
    assert sorted(result.failed) == sorted(row.key for row in bad)


def test_expire_disables_and_adds_expiration_sighting(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()
    rows = [make_row(n) for n in range(1, 4)]
    sink.push(Changes(upserts=rows))
    fake.reset_log()

    result = sink.push(Changes(deletes=[_delivered(rows[0]), _delivered(rows[1])]))

    assert sorted(result.deleted) == sorted([rows[0].key, rows[1].key])
    assert [r.path.split("/")[1] for r in fake.writes()] == ["events", "sightings"]
    first = fake.attribute(attribute_uuid(sink.namespace, rows[0].key))
    third = fake.attribute(attribute_uuid(sink.namespace, rows[2].key))
    assert first is not None and third is not None
    assert first["to_ids"] is False
    assert third["to_ids"] is True
    expirations = [s for s in fake.sightings.values() if s["type"] == 2]
    assert sorted(s["attribute_id"] for s in expirations) == sorted(
        fake._by_uuid[attribute_uuid(sink.namespace, r.key)] for r in rows[:2]
    )
    assert {s["source"] for s in expirations} == {"stixbridge"}


def test_expired_row_comes_back(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()
    row = make_row(1)
    sink.push(Changes(upserts=[row]))
    sink.push(Changes(deletes=[_delivered(row)]))

    result = sink.push(Changes(upserts=[dataclasses.replace(row, digest="back")]))

    stored = fake.attribute(attribute_uuid(sink.namespace, row.key))
    assert result.written == [row.key]
    assert stored is not None and stored["to_ids"] is True
    assert len(fake.attributes) == 1


def test_expire_delete_then_readd(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(expiry_action="delete")
    row = make_row(1)
    sink.push(Changes(upserts=[row]))

    result = sink.push(Changes(deletes=[_delivered(row)]))
    stored = fake.attribute(attribute_uuid(sink.namespace, row.key))
    assert result.deleted == [row.key]
    assert stored is not None and stored["deleted"] is True
    assert fake.sightings == {}

    sink.push(Changes(upserts=[dataclasses.replace(row, digest="back")]))
    stored = fake.attribute(attribute_uuid(sink.namespace, row.key))
    assert stored is not None and stored["deleted"] is False
    assert len(fake.attributes) == 1


def test_expire_unknown_row_counts_as_deleted(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()
    row = make_row(1)

    result = sink.push(Changes(deletes=[_delivered(row)]))

    assert result.deleted == [row.key]
    assert fake.writes() == []


def test_tlp_change_replaces_tag_and_distribution(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()
    row = make_row(1, tlp=int(Tlp.GREEN))
    sink.push(Changes(upserts=[row]))

    sink.push(Changes(upserts=[dataclasses.replace(row, tlp=int(Tlp.RED), digest="red")]))

    stored = fake.attribute(attribute_uuid(sink.namespace, row.key))
    assert stored is not None
    assert [t for t in stored["tags"] if t.startswith("tlp:")] == ["tlp:red"]
    assert stored["distribution"] == 0


def test_default_tlp_for_rows_without_one(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(default_tlp="amber")
    row = make_row(1, tlp=None)

    sink.push(Changes(upserts=[row]))

    stored = fake.attribute(attribute_uuid(sink.namespace, row.key))
    assert stored is not None
    assert "tlp:amber" in stored["tags"]


def test_event_distribution_and_sharing_group(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(distribution=4, sharing_group=1, event_tags=["alliance:share"])

    sink.push(Changes(upserts=[make_row(1)]))

    event = next(iter(fake.events.values()))
    assert event["distribution"] == 4
    assert event["sharing_group_id"] == 1
    assert sorted(fake.tags[t]["name"] for t in event["tag_ids"]) == ["alliance:share", 'stixbridge:source="alliance"']


def test_publish_touched_events_at_finish(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(publish=True)
    sink.begin()
    sink.push(Changes(upserts=[make_row(1, collection="c1"), make_row(2, collection="c2")]))
    assert all(not e["published"] for e in fake.events.values())

    sink.finish(True)

    assert all(e["published"] for e in fake.events.values())
    assert sum(1 for r in fake.writes() if r.path.startswith("/events/publish/")) == 2


def test_no_publish_by_default(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()
    sink.begin()
    sink.push(Changes(upserts=[make_row(1)]))
    sink.finish(True)

    assert not any(r.path.startswith("/events/publish/") for r in fake.requests)


def test_publish_rejected_raises_when_complete(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(publish=True)
    sink.begin()
    sink.push(Changes(upserts=[make_row(1)]))
    fake.inject(r"^/events/publish/", status=403)

    with pytest.raises(RemoteRejectedError, match="403"):
        sink.finish(True)


def test_wrong_key_is_rejected(fake: FakeMisp, make_sink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISP_KEY", "not-the-key")
    sink = make_sink()

    with pytest.raises(RemoteRejectedError, match="API key"):
        sink.push(Changes(upserts=[make_row(1)]))


def test_server_error_is_retried(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(max_retries=2)
    fake.inject(r"^/attributes/restSearch$", status=500, times=2)

    result = sink.push(Changes(upserts=[make_row(1)]))

    assert len(result.written) == 1
    assert sum(1 for r in fake.requests if r.path == "/attributes/restSearch") == 3


def test_server_error_after_retries_is_transient(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(max_retries=1)
    fake.inject(r"^/attributes/restSearch$", status=503, times=5)

    with pytest.raises(TransientError, match="server error"):
        sink.push(Changes(upserts=[make_row(1)]))


def test_rate_limit_is_transient(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(max_retries=0)
    fake.inject(r"^/events/add$", status=429, body={"name": "Rate limit exceeded.", "message": "Rate limit exceeded.", "url": "/events/add"})

    with pytest.raises(TransientError, match="429"):
        sink.push(Changes(upserts=[make_row(1)]))


def test_timeout_is_transient(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(timeout=0.3, max_retries=0)
    fake.inject(r"^/attributes/restSearch$", delay=1.0)

    with pytest.raises(TransientError, match="timed out"):
        sink.push(Changes(upserts=[make_row(1)]))


def test_forbidden_connect_is_rejected(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()
    fake.inject(r"^/users/view/me$", status=403)

    with pytest.raises(RemoteRejectedError):
        sink.push(Changes(upserts=[make_row(1)]))


def test_unreachable_server_is_transient(make_sink, misp_key: str, context) -> None:
    settings = build_settings(
        MispSink.settings_class,
        {"url": "http://127.0.0.1:9", "key": {"env": "MISP_KEY"}, "max_retries": 0, "timeout": 2.0},
        "sinks[0]",
    )
    sink = MispSink("down", settings, context)  # type: ignore[arg-type]

    with pytest.raises(TransientError, match="127.0.0.1:9"):
        sink.push(Changes(upserts=[make_row(1)]))


def test_event_of_other_org_fails_rows(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()
    row = make_row(1)
    sink.push(Changes(upserts=[row]))
    event = next(iter(fake.events.values()))
    event["orgc_id"] = 2

    result = sink.push(Changes(upserts=[dataclasses.replace(row, digest="new")]))

    assert result.written == []
    assert "not authorised" in result.failed[row.key]


def test_blocklisted_event_uses_next_part(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(chunk_size=2, max_attributes_per_event=4)
    fake.event_blocklist.add(event_uuid(sink.namespace, "alliance", "collection-a", 0))

    result = sink.push(Changes(upserts=[make_row(n) for n in range(1, 6)]))

    assert len(result.written) == 5
    assert result.failed == {}
    parts = [event_uuid(sink.namespace, "alliance", "collection-a", part) for part in (1, 2)]
    assert [e["uuid"] for e in fake.events.values()] == parts
    assert sorted(Counter(a["event_id"] for a in fake.live_attributes()).values()) == [1, 4]


def test_existing_event_after_lost_response(fake: FakeMisp, make_sink) -> None:
    sink = make_sink(max_attributes_per_event=3)
    target = event_uuid(sink.namespace, "alliance", "collection-a", 0)
    sink.planner.reset()
    slot = sink.planner.slot_for("alliance", "collection-a")
    assert not slot.exists
    fake.seed_event({"info": "made by a request whose response was lost", "uuid": target,
                     "Attribute": [{"type": "domain", "value": "seen.example.com"}]})  # fmt: skip

    result = sink.push(Changes(upserts=[make_row(n) for n in range(1, 4)]))

    assert len(result.written) == 3
    assert sorted(Counter(a["event_id"] for a in fake.live_attributes()).values()) == [1, 3]


def test_api_key_never_logged(fake: FakeMisp, make_sink, caplog: pytest.LogCaptureFixture) -> None:
    sink = make_sink()
    secret = sink.settings.key.reveal()

    with caplog.at_level(logging.DEBUG):
        sink.begin()
        sink.push(Changes(upserts=[make_row(1)]))
        fake.inject(r"^/attributes/restSearch$", status=500)
        sink.push(Changes(upserts=[make_row(2)]))
        sink.finish(True)

    assert "Authorization" in caplog.text  # PyMISP logged its request headers ...
    assert secret not in caplog.text  # ... with the key masked
    assert secret not in repr(sink)
    assert secret not in sink.describe()


def test_verify_tls_off_warns_every_run(fake: FakeMisp, make_sink, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        make_sink(verify_tls=False).push(Changes(upserts=[make_row(1)]))
        make_sink(verify_tls=False).push(Changes(upserts=[make_row(2)]))

    assert caplog.text.count("TLS verification is off") == 2


def test_plain_http_to_remote_host_warns(make_sink, caplog: pytest.LogCaptureFixture) -> None:
    sink = make_sink(url="http://misp.example.org")

    with caplog.at_level(logging.WARNING):
        sink.client._warn_about_transport()

    assert "plain http" in caplog.text


def test_constructor_sends_nothing(fake: FakeMisp, make_sink) -> None:
    sink = make_sink()

    assert "misp-out" in sink.describe()
    assert fake.requests == []


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"url": ""}, "url is required"),
        ({"url": "ftp://misp.example.org"}, "http or https URL"),
        ({"key": None}, "key is required"),
        ({"distribution": 7}, "distribution must be 0"),
        ({"distribution": 4}, "sharing_group is required"),
        ({"distribution_by_tlp": {"amber": 4}}, "sharing_group is required"),
        ({"distribution_by_tlp": {"orange": 0}}, "unknown TLP level 'orange'"),
        ({"chunk_size": 0}, "chunk_size must be from 1"),
        ({"max_attributes_per_event": 0}, "max_attributes_per_event"),
        ({"event_info": "{feed}"}, "not a valid template"),
        ({"timeout": 0}, "timeout must be more than 0"),
        ({"expiry_action": "purge"}, "expected one of 'disable', 'delete'"),
        ({"ca_bundle": "ca.pem", "verify_tls": False}, "remove one of them"),
        ({"tls": True}, "unknown key 'tls'"),
    ],
)
def test_settings_rejected(table: dict, message: str, misp_key: str) -> None:
    base = {"url": "https://misp.example.org", "key": {"env": misp_key}}
    base.update(table)
    if base.get("key") is None:
        del base["key"]

    with pytest.raises(ConfigError, match=message):
        build_settings(MispSink.settings_class, base, "sinks[0]")


def test_attribute_uuid_is_uuid5_of_row_key(make_sink) -> None:
    sink = make_sink()
    row = make_row(1)

    assert attribute_uuid(sink.namespace, row.key) == str(uuid.uuid5(sink.namespace, row.key))
