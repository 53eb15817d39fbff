"""Tests of the MISP sightings reader against the fake MISP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stixbridge.connectors.misp.attributes import attribute_uuid
from stixbridge.connectors.misp.sightings import MispSightingsReader
from stixbridge.errors import ConfigError, RemoteRejectedError
from stixbridge.model import Changes, SightingRecord
from stixbridge.settings import build_settings
from stixbridge.store.sqlite import SqliteStore

from .conftest import NOW, make_row
from .fake_misp import FakeMisp

ATTRIBUTE = "bbef13d3-087a-4f3b-abe7-49d8549b5ef0"
INDICATOR = "indicator--37396a2d-2945-4fc7-807d-860a1b378b60"
SOC_IDENTITY = "identity--7f09444b-2404-426e-a06d-a1102df4156d"  # the fake's second organisation, "Example SOC"
AT_10 = 1717581600  # 2024-06-05T10:00:00Z


def _our_attribute(fake: FakeMisp, **fields: Any) -> None:
    attribute = {"uuid": ATTRIBUTE, "type": "ip-dst", "category": "Network activity", "value": "198.51.100.23",
                 "to_ids": True, "timestamp": str(AT_10 - 86400), "comment": f"{INDICATOR} Example indicator",
                 "Tag": [{"name": 'stixbridge:source="alliance"'}, {"name": "tlp:green"}], **fields}  # fmt: skip
    fake.seed_event({"uuid": "c0ffee00-0000-4000-8000-000000000001", "info": "stixbridge: alliance / c",
                     "Attribute": [attribute]})  # fmt: skip


def _soc_sightings(fake: FakeMisp) -> None:
    """Two sightings, a false positive and an expiration by Example SOC, an hour apart."""
    fake.seed_sighting(ATTRIBUTE, type_=0, source="edr-sensor-7", when=AT_10)
    fake.seed_sighting(ATTRIBUTE, type_=0, source="edr-sensor-7", when=AT_10 + 3600)
    fake.seed_sighting(ATTRIBUTE, type_=1, source="analyst", when=AT_10 + 7200)
    fake.seed_sighting(ATTRIBUTE, type_=2, source="", when=AT_10 + 10800)


def _read(reader, cursor: str | None = None) -> tuple[list[SightingRecord], str | None]:
    records: list[SightingRecord] = []
    latest = cursor
    for batch, new_cursor in reader.read(cursor):
        records.extend(batch)
        latest = new_cursor
    return records, latest


def _aggregate(records: list[SightingRecord]) -> dict[str, dict[str, Any]]:
    """Aggregate records per kind the way a STIX Sighting carries them: count, first and last seen."""
    kinds: dict[str, dict[str, Any]] = {}
    for record in records:
        entry = kinds.setdefault(record.kind, {"count": 0, "first_seen": record.seen_at, "last_seen": record.seen_at,
                                               "where": set(), "indicators": set()})  # fmt: skip
        entry["count"] += record.count
        entry["first_seen"] = min(entry["first_seen"], record.seen_at)
        entry["last_seen"] = max(entry["last_seen"], record.seen_at)
        entry["where"].add(dict(record.context)["misp_org_identity"])
        entry["indicators"].add(record.indicator_id)
    return kinds


def test_kinds_aggregate_per_type(fake: FakeMisp, make_reader) -> None:
    _our_attribute(fake)
    _soc_sightings(fake)

    records, _ = _read(make_reader())

    kinds = _aggregate(records)
    assert sorted(kinds) == ["false-positive", "seen"]
    seen = kinds["seen"]
    assert seen["count"] == 2
    assert seen["first_seen"] == datetime(2024, 6, 5, 10, 0, tzinfo=UTC)
    assert seen["last_seen"] == datetime(2024, 6, 5, 11, 0, tzinfo=UTC)
    assert seen["where"] == {SOC_IDENTITY}
    assert seen["indicators"] == {INDICATOR}
    assert kinds["false-positive"]["count"] == 1


def test_record_fields(fake: FakeMisp, make_reader) -> None:
    _our_attribute(fake)
    fake.seed_sighting(ATTRIBUTE, type_=0, source="edr-sensor-7", when=AT_10)

    records, _ = _read(make_reader())

    assert len(records) == 1
    record = records[0]
    assert record.source == "misp-sightings"
    assert record.value == "198.51.100.23"
    assert record.atom_type == "ipv4"
    assert record.kind == "seen"
    assert record.seen_at == datetime(2024, 6, 5, 10, 0, tzinfo=UTC)
    assert dict(record.context) == {
        "misp_org": "Example SOC",
        "misp_org_identity": SOC_IDENTITY,
        "misp_sighting_source": "edr-sensor-7",
        "misp_attribute_uuid": ATTRIBUTE,
        "misp_event_uuid": "c0ffee00-0000-4000-8000-000000000001",
    }


def test_repeated_sighting_with_new_uuid_counts_once(fake: FakeMisp, make_reader) -> None:
    _our_attribute(fake)
    first = fake.seed_sighting(ATTRIBUTE, type_=0, source="edr-sensor-7", when=AT_10)
    second = fake.seed_sighting(ATTRIBUTE, type_=0, source="edr-sensor-7", when=AT_10)
    assert first["uuid"] != second["uuid"]

    records, _ = _read(make_reader())

    assert len(records) == 1


def test_store_keeps_each_sighting_once(fake: FakeMisp, make_reader, tmp_path: Path) -> None:
    _our_attribute(fake)
    recent = int(NOW.timestamp()) - 7200
    for offset, type_ in ((0, 0), (600, 0), (1200, 1), (1800, 2)):
        fake.seed_sighting(ATTRIBUTE, type_=type_, source="edr-sensor-7", when=recent + offset)
    reader = make_reader()
    store = SqliteStore(tmp_path / "state.db")

    records, cursor = _read(reader)
    assert store.add_sightings(records, "sightings:misp", cursor) == 3

    again, _ = _read(reader, cursor)
    assert len(again) == 3  # the lookback window reads them again ...
    assert store.add_sightings(again, "sightings:misp", cursor) == 0  # ... and the store drops the repeats
    store.close()


def test_sighting_on_window_boundary_read_once(fake: FakeMisp, make_reader) -> None:
    _our_attribute(fake)
    boundary = int(NOW.timestamp()) - 24 * 3600  # windows of 24 hours end at the fixed now's hour
    fake.seed_sighting(ATTRIBUTE, type_=0, source="edr", when=boundary)

    records, _ = _read(make_reader(window_hours=24))

    assert len(records) == 1


def test_other_attributes_ignored(fake: FakeMisp, make_reader) -> None:
    _our_attribute(fake, Tag=[{"name": "tlp:green"}])
    fake.seed_sighting(ATTRIBUTE, type_=0, source="edr", when=AT_10)

    records, _ = _read(make_reader())

    assert records == []


def test_sink_attribute_maps_back_to_row(fake: FakeMisp, make_sink, make_reader) -> None:
    sink = make_sink()
    row = make_row(7, "domain", "c2.example.com")
    sink.push(Changes(upserts=[row]))
    fake.seed_sighting(attribute_uuid(sink.namespace, row.key), type_=0, source="proxy", when=AT_10)

    records, _ = _read(make_reader())

    assert [(r.indicator_id, r.atom_type, r.value) for r in records] == [(row.indicator_id, "domain", "c2.example.com")]


def test_windows_and_cursor(fake: FakeMisp, make_reader) -> None:
    fake.keep_bodies = True
    _our_attribute(fake)
    fake.seed_sighting(ATTRIBUTE, type_=0, source="edr", when=AT_10)
    reader = make_reader(window_hours=72, initial_days=30)

    batches = list(reader.read(None))

    searches = [r.body for r in fake.requests if r.path == "/sightings/restSearch"]
    assert len(batches) == len(searches) == 10
    assert all(b["to"] - b["from"] <= 72 * 3600 for b in searches)
    assert json.loads(batches[-1][1]) == {"until": int(datetime(2024, 6, 15, 12, 0, tzinfo=UTC).timestamp())}


def test_backdated_sighting_within_lookback(fake: FakeMisp, make_reader) -> None:
    _our_attribute(fake)
    reader = make_reader(lookback_seconds=86400)
    _, cursor = _read(reader)

    fake.seed_sighting(ATTRIBUTE, type_=0, source="late", when=int(datetime(2024, 6, 15, 1, 0, tzinfo=UTC).timestamp()))
    records, _ = _read(reader, cursor)

    assert [r.context[2][1] for r in records] == ["late"]


def test_unreadable_cursor_starts_over(fake: FakeMisp, make_reader, caplog: pytest.LogCaptureFixture) -> None:
    _our_attribute(fake)
    fake.seed_sighting(ATTRIBUTE, type_=0, source="edr", when=AT_10)

    records, _ = _read(make_reader(), "not json")

    assert len(records) == 1
    assert "unreadable cursor" in caplog.text


def test_forbidden(fake: FakeMisp, make_reader) -> None:
    fake.inject(r"^/sightings/restSearch$", status=403)

    with pytest.raises(RemoteRejectedError, match="403"):
        _read(make_reader())


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"initial_days": 0}, "initial_days must be from 1"),
        ({"lookback_seconds": -1}, "lookback_seconds must be from 0"),
        ({"window_hours": 0}, "window_hours must be from 1"),
    ],
)
def test_settings_rejected(table: dict, message: str, misp_key: str) -> None:
    base = {"url": "https://misp.example.org", "key": {"env": misp_key}, **table}

    with pytest.raises(ConfigError, match=message):
        build_settings(MispSightingsReader.settings_class, base, "sightings[0]")
