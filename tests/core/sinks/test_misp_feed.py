"""Tests of the MISP feed sink, run on files in a temporary folder and read back with PyMISP."""

from __future__ import annotations

import csv
import hashlib
import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from pymisp import MISPEvent

from stixbridge import plugins
from stixbridge.connector import ConnectorContext
from stixbridge.errors import ConfigError
from stixbridge.model import AtomRow, Changes
from stixbridge.settings import build_settings
from stixbridge.sinks import atomic
from stixbridge.sinks.misp_feed import MispFeedSettings, MispFeedSink
from stixbridge.tlp import Tlp
from tests.core.sinks.filesink_fixtures import Clock, age_files, build_row, delivered, read_mtimes

ORG_UUID = "5f6e7d8c-1a2b-4c3d-9e8f-0a1b2c3d4e5f"


def make_sink(context: ConnectorContext, **settings) -> MispFeedSink:
    values = {"path": "feed", "org_name": "Example Alliance", "org_uuid": ORG_UUID, **settings}
    sink = MispFeedSink("misp-feed", MispFeedSettings(**values), context)
    sink.begin()
    return sink


def load_event(folder: Path, event_uuid: str) -> MISPEvent:
    event = MISPEvent()
    event.load((folder / f"{event_uuid}.json").read_text(encoding="utf-8"))
    return event


def attributes_by_uuid(folder: Path, event_uuid: str) -> dict[str, dict]:
    document = json.loads((folder / f"{event_uuid}.json").read_text(encoding="utf-8"))
    return {a["uuid"]: a for a in document["Event"]["Attribute"]}


def collection_event(sink: MispFeedSink, collection: str = "collection-a") -> str:
    return sink.event_uuid(collection)


def test_feed_loads_with_pymisp(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    rows = [build_row("ipv4"), build_row("domain"), build_row("url"), build_row("sha256")]

    result = sink.push(Changes(upserts=rows))

    assert sorted(result.written) == sorted(r.key for r in rows)
    event = load_event(tmp_path / "feed", collection_event(sink))
    assert event.uuid == collection_event(sink)
    assert event.info == "stixbridge: collection-a"
    assert event.Orgc.name == "Example Alliance"
    assert event.Orgc.uuid == ORG_UUID
    assert sorted(a.value for a in event.attributes) == sorted(r.value for r in rows)
    # PyMISP can write the event back out in feed form, which needs every field a feed event has.
    assert event.to_feed(with_meta=True)["Event"]["uuid"] == event.uuid


@pytest.mark.parametrize(
    ("atom_type", "value", "misp_type", "category", "to_ids"),
    [
        ("ipv4", "198.51.100.7", "ip-dst", "Network activity", True),
        ("ipv6", "2001:db8::5", "ip-dst", "Network activity", True),
        ("ipv4-cidr", "198.51.100.0/24", "ip-dst", "Network activity", True),
        ("ipv6-cidr", "2001:db8:abcd::/48", "ip-dst", "Network activity", True),
        ("domain", "cdn.example.net", "domain", "Network activity", True),
        ("url", "https://login.example.com/reset", "url", "Network activity", True),
        ("email", "billing@example.com", "email-src", "Payload delivery", True),
        ("md5", None, "md5", "Payload delivery", True),
        ("sha1", None, "sha1", "Payload delivery", True),
        ("sha256", None, "sha256", "Payload delivery", True),
        ("sha512", None, "sha512", "Payload delivery", True),
        ("ssdeep", None, "ssdeep", "Payload delivery", True),
        ("file-name", "invoice_2024.exe", "filename", "Payload delivery", True),
        ("registry-key", None, "regkey", "Persistence mechanism", True),
        ("mutex", None, "mutex", "Artifacts dropped", True),
        ("x509-sha1", None, "x509-fingerprint-sha1", "Network activity", True),
        ("as-number", "AS64496", "AS", "Network activity", False),
    ],
)
def test_attribute_type_per_atom(
    context: ConnectorContext,
    tmp_path: Path,
    atom_type: str,
    value: str | None,
    misp_type: str,
    category: str,
    to_ids: bool,
) -> None:
    sink = make_sink(context)
    row = build_row(atom_type, value)

    sink.push(Changes(upserts=[row]))

    (attribute,) = load_event(tmp_path / "feed", collection_event(sink)).attributes
    assert attribute.type == misp_type
    assert attribute.category == category
    assert attribute.to_ids is to_ids
    expected_value = "64496" if atom_type == "as-number" else row.value
    assert attribute.value == expected_value


def test_source_direction_gives_ip_src(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)

    sink.push(Changes(upserts=[build_row("ipv4", direction="src"), build_row("domain", direction="src")]))

    types = {a.value: a.type for a in load_event(tmp_path / "feed", collection_event(sink)).attributes}
    assert types == {"198.51.100.7": "ip-src", "cdn.example.net": "domain"}


def test_attribute_fields(context: ConnectorContext, tmp_path: Path, clock: Clock) -> None:
    sink = make_sink(context)
    row = build_row("ipv4", valid_until=clock.now + timedelta(days=30), tlp=int(Tlp.AMBER), sources=("alliance", "x"))

    sink.push(Changes(upserts=[row]))

    attribute = attributes_by_uuid(tmp_path / "feed", collection_event(sink))[sink.attribute_uuid(row.key)]
    assert attribute["comment"] == f"{row.indicator_id}: Phishing infrastructure"
    assert attribute["timestamp"] == str(int(clock.now.timestamp()))
    assert attribute["first_seen"] == "2024-05-01T08:00:00.000000+00:00"
    assert attribute["last_seen"] == "2024-07-15T12:00:00.000000+00:00"
    assert attribute["deleted"] is False
    assert [t["name"] for t in attribute["Tag"]] == [
        "tlp:amber",
        'stixbridge:source="alliance"',
        'stixbridge:source="x"',
    ]


def test_expiry_before_start_keeps_first_seen_only(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    row = build_row("ipv4", valid_until=build_row().valid_from - timedelta(days=1))

    sink.push(Changes(upserts=[row]))

    attribute = attributes_by_uuid(tmp_path / "feed", collection_event(sink))[sink.attribute_uuid(row.key)]
    assert "last_seen" not in attribute
    assert "first_seen" in attribute


def test_uuids_are_stable_and_derived(context: ConnectorContext, tmp_path: Path) -> None:
    row = build_row("ipv4")
    namespace = uuid.UUID(ORG_UUID)

    make_sink(context).push(Changes(upserts=[row]))

    event_uuid = str(uuid.uuid5(namespace, "collection:collection-a"))
    assert list(attributes_by_uuid(tmp_path / "feed", event_uuid)) == [str(uuid.uuid5(namespace, row.key))]
    other_org = make_sink(context, org_uuid="0f0e0d0c-0b0a-4908-8706-050403020100")
    assert other_org.attribute_uuid(row.key) != str(uuid.uuid5(namespace, row.key))
    assert other_org.event_uuid("collection-a") != event_uuid


def test_manifest_matches_events(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    rows = [
        build_row("ipv4", collections=("collection-a",)),
        build_row("domain", collections=("collection-b",), tlp=int(Tlp.RED)),
        build_row("url", collections=("collection-b",), tlp=int(Tlp.CLEAR)),
    ]

    sink.push(Changes(upserts=rows))

    folder = tmp_path / "feed"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest) == {sink.event_uuid("collection-a"), sink.event_uuid("collection-b")}
    for event_uuid, entry in manifest.items():
        event = json.loads((folder / f"{event_uuid}.json").read_text(encoding="utf-8"))["Event"]
        for field in ("info", "date", "analysis", "threat_level_id", "timestamp", "Orgc", "Tag"):
            assert entry[field] == event[field], field
    b_tags = [t["name"] for t in manifest[sink.event_uuid("collection-b")]["Tag"]]
    assert b_tags == ["tlp:red", 'stixbridge:collection="collection-b"']


def test_hashes_list_live_values(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    rows = [build_row("ipv4"), build_row("url", collections=("collection-b",))]

    sink.push(Changes(upserts=rows))

    with open(tmp_path / "feed" / "hashes.csv", encoding="utf-8", newline="") as stream:
        lines = sorted(tuple(line) for line in csv.reader(stream))
    expected = sorted(
        (hashlib.md5(r.value.encode()).hexdigest(), sink.event_uuid(r.collections[0])) for r in rows
    )
    assert lines == expected


def test_push_without_changes_writes_nothing(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    sink.push(Changes(upserts=[build_row("ipv4")]))
    before = age_files(tmp_path / "feed")

    assert sink.push(Changes()).written == []
    make_sink(context).push(Changes(upserts=[build_row("ipv4")]))

    assert read_mtimes(tmp_path / "feed") == before


def test_change_bumps_event_timestamp(context: ConnectorContext, tmp_path: Path, clock: Clock) -> None:
    sink = make_sink(context)
    sink.push(Changes(upserts=[build_row("ipv4"), build_row("url", collections=("collection-b",))]))
    before = age_files(tmp_path / "feed")
    clock.now += timedelta(hours=1)

    sink.push(Changes(upserts=[build_row("ipv4", weight=99, tlp=int(Tlp.AMBER), digest="digest-2")]))

    after = read_mtimes(tmp_path / "feed")
    changed = {name for name in after if after[name] != before[name]}
    assert changed == {f"{sink.event_uuid('collection-a')}.json", "manifest.json"}
    manifest = json.loads((tmp_path / "feed" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest[sink.event_uuid("collection-a")]["timestamp"] == str(int(clock.now.timestamp()))


def test_same_second_change_still_newer(context: ConnectorContext, tmp_path: Path, clock: Clock) -> None:
    sink = make_sink(context)
    row = build_row("ipv4")
    sink.push(Changes(upserts=[row]))
    event_uuid = sink.event_uuid("collection-a")
    first = json.loads((tmp_path / "feed" / f"{event_uuid}.json").read_text(encoding="utf-8"))["Event"]
    assert first["timestamp"] == str(int(clock.now.timestamp()))

    sink.push(Changes(upserts=[build_row("ipv4", tlp=int(Tlp.AMBER), digest="digest-2")]))

    second = json.loads((tmp_path / "feed" / f"{event_uuid}.json").read_text(encoding="utf-8"))["Event"]
    assert int(second["timestamp"]) == int(first["timestamp"]) + 1
    assert int(second["Attribute"][0]["timestamp"]) == int(first["Attribute"][0]["timestamp"]) + 1
    manifest = json.loads((tmp_path / "feed" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest[event_uuid]["timestamp"] == second["timestamp"]


def test_delete_soft_deletes_attribute(context: ConnectorContext, tmp_path: Path, clock: Clock) -> None:
    sink = make_sink(context)
    keep, drop = build_row("ipv4", "203.0.113.9"), build_row("ipv4", "203.0.113.10")
    sink.push(Changes(upserts=[keep, drop]))
    clock.now += timedelta(hours=1)

    result = make_sink(context).push(Changes(deletes=[delivered(drop)]))

    assert result.deleted == [drop.key]
    folder = tmp_path / "feed"
    attribute = attributes_by_uuid(folder, sink.event_uuid("collection-a"))[sink.attribute_uuid(drop.key)]
    assert attribute["deleted"] is True
    assert attribute["to_ids"] is False
    assert attribute["timestamp"] == str(int(clock.now.timestamp()))
    assert hashlib.md5(drop.value.encode()).hexdigest() not in (folder / "hashes.csv").read_text(encoding="utf-8")
    live = [a for a in load_event(folder, sink.event_uuid("collection-a")).attributes if not a.deleted]
    assert [a.value for a in live] == [keep.value]


def test_soft_deleted_dropped_after_keep_days(context: ConnectorContext, tmp_path: Path, clock: Clock) -> None:
    sink = make_sink(context, keep_deleted_days=30)
    drop, other = build_row("ipv4", "203.0.113.10"), build_row("domain")
    sink.push(Changes(upserts=[drop]))
    sink.push(Changes(deletes=[delivered(drop)]))

    clock.now += timedelta(days=31)
    sink.push(Changes(upserts=[other]))

    attributes = attributes_by_uuid(tmp_path / "feed", sink.event_uuid("collection-a"))
    assert list(attributes) == [sink.attribute_uuid(other.key)]


def test_keep_zero_removes_at_once(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context, keep_deleted_days=0)
    keep, drop = build_row("ipv4", "203.0.113.9"), build_row("ipv4", "203.0.113.10")
    sink.push(Changes(upserts=[keep, drop]))

    sink.push(Changes(deletes=[delivered(drop)]))

    attributes = attributes_by_uuid(tmp_path / "feed", sink.event_uuid("collection-a"))
    assert list(attributes) == [sink.attribute_uuid(keep.key)]


def test_revived_atom_is_undeleted(context: ConnectorContext, tmp_path: Path, clock: Clock) -> None:
    sink = make_sink(context)
    row = build_row("ipv4")
    sink.push(Changes(upserts=[row]))
    sink.push(Changes(deletes=[delivered(row)]))
    clock.now += timedelta(minutes=5)

    sink.push(Changes(upserts=[row]))

    attribute = attributes_by_uuid(tmp_path / "feed", sink.event_uuid("collection-a"))[sink.attribute_uuid(row.key)]
    assert attribute["deleted"] is False
    assert attribute["to_ids"] is True


def test_delete_of_absent_key_counts_as_deleted(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)

    result = sink.push(Changes(deletes=[delivered(build_row("ipv4"))]))

    assert result.deleted == [build_row("ipv4").key]
    assert json.loads((tmp_path / "feed" / "manifest.json").read_text(encoding="utf-8")) == {}


def test_atom_in_two_collections_listed_once(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    first = build_row("ipv4", collections=("collection-a",))
    sink.push(Changes(upserts=[first]))

    sink.push(Changes(upserts=[build_row("ipv4", collections=("collection-b", "collection-a"), digest="d2")]))

    manifest = json.loads((tmp_path / "feed" / "manifest.json").read_text(encoding="utf-8"))
    assert list(manifest) == [sink.event_uuid("collection-a")]


def test_collection_falls_back_to_source(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)

    sink.push(Changes(upserts=[build_row("ipv4", collections=(), sources=("file-drop",))]))

    manifest = json.loads((tmp_path / "feed" / "manifest.json").read_text(encoding="utf-8"))
    assert list(manifest) == [sink.event_uuid("file-drop")]


def test_unsupported_types_skipped_and_counted(context: ConnectorContext) -> None:
    sink = make_sink(context)
    rows = [build_row("x509-serial"), build_row("user-account"), build_row("process-name"), build_row("new", "x")]

    result = sink.push(Changes(upserts=rows))

    assert result.written == []
    assert result.skipped == {
        "atom type x509-serial: MISP has no attribute type for a certificate serial number": 1,
        "atom type user-account: MISP has no attribute type for an account used by an attacker": 1,
        "atom type process-name: MISP has no attribute type for a process name": 1,
        "atom type new: no MISP attribute type for this type": 1,
    }
    assert not any(sink.accepts(r) for r in rows)


def test_failed_write_keeps_old_files(context: ConnectorContext, tmp_path: Path, monkeypatch) -> None:
    sink = make_sink(context)
    first = build_row("ipv4", "203.0.113.9")
    sink.push(Changes(upserts=[first]))
    folder = tmp_path / "feed"
    old = {p.name: p.read_bytes() for p in folder.iterdir()}
    real_replace = atomic.os.replace

    def replace_but_manifest(source: str, target: Path) -> None:
        if Path(target).name == "manifest.json":
            raise OSError(5, "Input/output error")
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", replace_but_manifest)
    second = build_row("ipv4", "203.0.113.10")
    result = sink.push(Changes(upserts=[second]))

    assert list(result.failed) == [second.key]
    assert result.written == []
    assert (folder / "manifest.json").read_bytes() == old["manifest.json"]
    assert not [p for p in folder.iterdir() if p.name.endswith(atomic.TEMP_SUFFIX)]

    # The event file already contains the row, and the retry must still bring the manifest up to date.
    monkeypatch.undo()
    retry = sink.push(Changes(upserts=[second]))
    assert retry.written == [second.key]
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    event = json.loads((folder / f"{sink.event_uuid('collection-a')}.json").read_text(encoding="utf-8"))["Event"]
    assert manifest[event["uuid"]]["timestamp"] == event["timestamp"]
    assert (folder / "hashes.csv").read_text(encoding="utf-8").count("\n") == 2


def test_unreadable_manifest_rejected(context: ConnectorContext, tmp_path: Path) -> None:
    folder = tmp_path / "feed"
    folder.mkdir()
    (folder / "manifest.json").write_text("{not json", encoding="utf-8")

    with pytest.raises(ConfigError, match="cannot read MISP feed file"):
        make_sink(context).push(Changes(upserts=[build_row("ipv4")]))


def test_event_file_missing_fields_rejected(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    sink.push(Changes(upserts=[build_row("ipv4")]))
    path = tmp_path / "feed" / f"{sink.event_uuid('collection-a')}.json"
    path.write_text(json.dumps({"Event": {"uuid": "x", "Attribute": []}}), encoding="utf-8")

    with pytest.raises(ConfigError, match="lacks Orgc, analysis, date"):
        make_sink(context).push(Changes(upserts=[build_row("domain")]))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"org_name": "A", "org_uuid": ORG_UUID}, "path is missing"),
        ({"path": "feed", "org_uuid": ORG_UUID}, "org_name is missing"),
        ({"path": "feed", "org_name": "A", "org_uuid": "not-a-uuid"}, "invalid org_uuid 'not-a-uuid'"),
        ({"path": "feed", "org_name": "A", "org_uuid": ORG_UUID, "keep_deleted_days": -1}, "must be 0 or more"),
    ],
)
def test_settings_validation(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_settings(MispFeedSettings, values, "sinks[2]")


def test_entry_point_names_the_sink() -> None:
    assert plugins.load("sink", "misp-feed") is MispFeedSink


def rows_for_every_tlp() -> list[AtomRow]:
    return [build_row("ipv4", f"203.0.113.{i}", tlp=int(level)) for i, level in enumerate(Tlp, start=1)]


def test_tlp_tags_use_misp_taxonomy(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)

    sink.push(Changes(upserts=rows_for_every_tlp()))

    event = load_event(tmp_path / "feed", sink.event_uuid("collection-a"))
    tlp_tags = sorted(t.name for a in event.attributes for t in a.tags if t.name.startswith("tlp:"))
    assert tlp_tags == ["tlp:amber", "tlp:amber+strict", "tlp:clear", "tlp:green", "tlp:red"]
    assert [t.name for t in event.tags][0] == "tlp:red"


def ip_rows(count: int, **overrides) -> list[AtomRow]:
    return [build_row("ipv4", f"203.0.113.{i}", **overrides) for i in range(1, count + 1)]


def test_full_event_overflows_to_next_part(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context, max_attributes_per_event=2)
    rows = ip_rows(5)

    result = sink.push(Changes(upserts=rows))

    assert sorted(result.written) == sorted(r.key for r in rows)
    folder = tmp_path / "feed"
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    parts = [sink.event_uuid("collection-a", part) for part in range(3)]
    assert parts[0] == sink.event_uuid("collection-a")
    assert sorted(manifest) == sorted(parts)
    assert [len(attributes_by_uuid(folder, p)) for p in parts] == [2, 2, 1]
    assert manifest[parts[0]]["info"] == "stixbridge: collection-a"
    assert manifest[parts[2]]["info"] == "stixbridge: collection-a (part 3)"
    assert 'stixbridge:collection="collection-a"' in [t["name"] for t in manifest[parts[1]]["Tag"]]
    load_event(folder, parts[1])


def test_attribute_stays_in_its_part(context: ConnectorContext, tmp_path: Path, clock: Clock) -> None:
    sink = make_sink(context, max_attributes_per_event=2)
    rows = ip_rows(3)
    sink.push(Changes(upserts=rows))
    folder = tmp_path / "feed"
    first, second = sink.event_uuid("collection-a", 0), sink.event_uuid("collection-a", 1)
    home = first if sink.attribute_uuid(rows[2].key) in attributes_by_uuid(folder, first) else second
    before = age_files(folder)
    clock.now += timedelta(hours=1)

    changed = build_row("ipv4", "203.0.113.3", tlp=int(Tlp.AMBER), digest="digest-2")
    make_sink(context, max_attributes_per_event=2).push(Changes(upserts=[changed]))

    after = read_mtimes(folder)
    assert {name for name in after if after[name] != before[name]} == {f"{home}.json", "manifest.json"}
    assert attributes_by_uuid(folder, home)[sink.attribute_uuid(changed.key)]["timestamp"] == str(
        int(clock.now.timestamp())
    )


def test_delete_in_later_part(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context, max_attributes_per_event=2, keep_deleted_days=0)
    rows = ip_rows(4)
    sink.push(Changes(upserts=rows))

    result = make_sink(context, max_attributes_per_event=2, keep_deleted_days=0).push(
        Changes(deletes=[delivered(r) for r in rows[1:]])
    )

    assert sorted(result.deleted) == sorted(r.key for r in rows[1:])
    folder = tmp_path / "feed"
    left = {u for p in range(2) for u in attributes_by_uuid(folder, sink.event_uuid("collection-a", p))}
    assert left == {sink.attribute_uuid(rows[0].key)}
    lines = (folder / "hashes.csv").read_text(encoding="utf-8").splitlines()
    assert [line.split(",")[0] for line in lines] == [hashlib.md5(rows[0].value.encode()).hexdigest()]


def test_space_freed_by_pruning_is_reused(context: ConnectorContext, tmp_path: Path, clock: Clock) -> None:
    sink = make_sink(context, max_attributes_per_event=2, keep_deleted_days=0)
    first, second, third = ip_rows(3)
    sink.push(Changes(upserts=[first, second]))
    sink.push(Changes(deletes=[delivered(first)]))

    sink.push(Changes(upserts=[third]))

    manifest = json.loads((tmp_path / "feed" / "manifest.json").read_text(encoding="utf-8"))
    assert list(manifest) == [sink.event_uuid("collection-a")]


def test_hashes_match_rebuild_after_many_pushes(context: ConnectorContext, tmp_path: Path, clock: Clock) -> None:
    sink = make_sink(context, max_attributes_per_event=3)
    rows = [build_row("ipv4", f"203.0.113.{i}", collections=(f"c{i % 3}",)) for i in range(1, 21)]
    for start in range(0, 20, 4):
        sink.push(Changes(upserts=rows[start:start + 4]))
        clock.now += timedelta(minutes=1)
    sink.push(Changes(deletes=[delivered(r) for r in rows[::5]]))
    folder = tmp_path / "feed"
    kept = (folder / "hashes.csv").read_text(encoding="utf-8")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))

    expected = sorted(
        f"{hashlib.md5(a['value'].encode()).hexdigest()},{event_uuid}"
        for event_uuid in manifest
        for a in attributes_by_uuid(folder, event_uuid).values()
        if not a["deleted"]
    )
    assert sorted(kept.splitlines()) == expected
    assert len(expected) == 16
    # A fresh run rebuilds hashes.csv from the events and finds nothing to change.
    before = age_files(folder)
    make_sink(context, max_attributes_per_event=3).push(Changes(upserts=[rows[1]]))
    assert read_mtimes(folder) == before


def test_hashes_rebuilt_when_edited(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    row = build_row("ipv4")
    sink.push(Changes(upserts=[row]))
    path = tmp_path / "feed" / "hashes.csv"
    good = path.read_text(encoding="utf-8")
    path.write_text("garbage\n", encoding="utf-8")

    make_sink(context).push(Changes(upserts=[row]))

    assert path.read_text(encoding="utf-8") == good


def test_failed_event_write_reports_rows(context: ConnectorContext, tmp_path: Path, monkeypatch) -> None:
    sink = make_sink(context, max_attributes_per_event=2)
    folder = tmp_path / "feed"
    sink.push(Changes(upserts=ip_rows(2)))
    old = {p.name: p.read_bytes() for p in folder.iterdir()}
    real_replace = atomic.os.replace
    second_part = f"{sink.event_uuid('collection-a', 1)}.json"

    def replace_but_second_part(source: str, target: Path) -> None:
        if Path(target).name == second_part:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", replace_but_second_part)
    rows = ip_rows(4)[2:]
    result = sink.push(Changes(upserts=rows))

    assert sorted(result.failed) == sorted(r.key for r in rows)
    assert "No space left on device" in result.failed[rows[0].key]
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == old

    monkeypatch.undo()
    assert sorted(sink.push(Changes(upserts=rows)).written) == sorted(r.key for r in rows)
    assert second_part in {p.name for p in folder.iterdir()}


def test_max_attributes_validated() -> None:
    values = {"path": "feed", "org_name": "A", "org_uuid": ORG_UUID, "max_attributes_per_event": 0}
    with pytest.raises(ConfigError, match="max_attributes_per_event must be 1 or more, got 0"):
        build_settings(MispFeedSettings, values, "sinks[2]")
    assert MispFeedSettings().max_attributes_per_event == 10_000


def test_event_removed_mid_run_fails_rows(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    first, second = ip_rows(2)
    sink.push(Changes(upserts=[first]))
    (tmp_path / "feed" / f"{sink.event_uuid('collection-a')}.json").unlink()

    result = sink.push(Changes(upserts=[second]))

    assert list(result.failed) == [second.key]
    assert "vanished" in result.failed[second.key]
    retry = sink.push(Changes(upserts=[first, second]))
    assert sorted(retry.written) == sorted([first.key, second.key])
    attributes = attributes_by_uuid(tmp_path / "feed", sink.event_uuid("collection-a"))
    assert sorted(attributes) == sorted(sink.attribute_uuid(r.key) for r in (first, second))
