"""The Splunk sightings reader against the fake splunkd, through the real splunk-sdk."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stixbridge.connectors.splunk.sightings import (
    APP_MATCH_SEARCH,
    ReadCursor,
    SplunkSightingsReader,
    hit_id,
    parse_splunk_time,
)
from stixbridge.errors import RemoteRejectedError
from stixbridge.model import SightingRecord
from stixbridge.plugins import load
from stixbridge.store.sqlite import SqliteStore

from .conftest import INDICATOR, NOW, Clock, make_row
from .fake_splunk import FakeSplunk

OUR_KEY = make_row().key


def hit(seconds_ago: float, value: str = "198.51.100.7", **fields: object) -> dict[str, object]:
    """An ES threat-activity event for a stixbridge row, ``seconds_ago`` before NOW."""
    event: dict[str, object] = {
        "_time": NOW.timestamp() - seconds_ago,
        "threat_key": INDICATOR,
        "threat_collection": "ip_intel",
        "threat_collection_key": OUR_KEY,
        "threat_match_field": "dest",
        "threat_match_value": value,
        "src": "10.1.2.3",
        "dest": value,
        "orig_sourcetype": "pan:traffic",
    }
    event.update(fields)
    return event


def read_all(reader: SplunkSightingsReader, cursor: str | None) -> tuple[list[SightingRecord], str | None]:
    records: list[SightingRecord] = []
    last = cursor
    for batch, next_cursor in reader.read(cursor):
        records.extend(batch)
        last = next_cursor
    return records, last


def test_entry_point_names_reader() -> None:
    assert load("sightings", "splunk") is SplunkSightingsReader


@pytest.mark.parametrize("search_mode", ["job", "export"])
def test_reads_es_threat_activity(
    fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader], search_mode: str
) -> None:
    fake.add_events("threat_activity", [hit(3600)])

    records, _ = read_all(make_reader(search_mode=search_mode), None)

    assert len(records) == 1
    record = records[0]
    assert record.source == "splunk-hits"
    assert record.value == "198.51.100.7"
    assert record.indicator_id == INDICATOR
    assert record.seen_at == NOW - timedelta(hours=1)
    assert record.context == (("src", "10.1.2.3"), ("dest", "198.51.100.7"))
    assert record.external_id.startswith("threat_activity~0~FAKE-GUID:")


def test_skips_matches_of_other_sources(fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader]) -> None:
    fake.add_events(
        "threat_activity",
        [hit(3600), hit(3500, threat_collection_key="iblocklist_spyware|198.51.100.7", threat_key="iblocklist")],
    )

    records, _ = read_all(make_reader(), None)

    assert [r.value for r in records] == ["198.51.100.7"]


def test_non_stix_threat_key_gives_no_indicator(
    fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader]
) -> None:
    fake.add_events("threat_activity", [hit(1000, threat_key="otx:12345")])

    records, _ = read_all(make_reader(), None)

    assert records[0].indicator_id is None


@pytest.mark.parametrize("search_mode", ["job", "export"])
def test_each_hit_read_once(
    fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader], search_mode: str, clock: Clock
) -> None:
    reader = make_reader(search_mode=search_mode, page_size=2)
    fake.add_events("threat_activity", [hit(900 + i) for i in range(5)])
    first, cursor = read_all(reader, None)
    fake.add_events("threat_activity", [hit(100), hit(-200)])
    clock.now = NOW + timedelta(minutes=10)

    second, cursor = read_all(reader, cursor)
    third, _ = read_all(reader, cursor)

    assert len(first) == 5
    assert len(second) == 2
    assert third == []
    ids = [r.external_id for r in first + second]
    assert len(set(ids)) == 7


def test_ties_at_cursor_time_not_repeated(fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader]) -> None:
    reader = make_reader(page_size=2)
    fake.add_events("threat_activity", [hit(600, value=f"198.51.100.{i}") for i in range(3)])
    batches = list(reader.read(None))
    middle_cursor = batches[0][1]

    # A run that stopped after the first batch resumes at the shared timestamp without repeating it.
    resumed, _ = read_all(reader, middle_cursor)

    assert [r.value for r in batches[0][0]] == ["198.51.100.0", "198.51.100.1"]
    assert [r.value for r in resumed] == ["198.51.100.2"]


def test_recent_hits_wait_for_lag(fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader]) -> None:
    fake.add_events("threat_activity", [hit(30), hit(600)])

    records, cursor = read_all(make_reader(lag_seconds=120), None)

    assert len(records) == 1
    assert ReadCursor.parse(cursor) == ReadCursor(int((NOW.timestamp() - 120) * 1000))


def test_lookback_bounds_first_read(fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader]) -> None:
    fake.add_events("threat_activity", [hit(10 * 86400), hit(86400)])

    records, _ = read_all(make_reader(lookback_days=7), None)

    assert [r.seen_at for r in records] == [NOW - timedelta(days=1)]


def test_search_sends_time_bounds(fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader]) -> None:
    read_all(make_reader(lookback_days=2, lag_seconds=60), None)

    (create,) = fake.requests_to(method="POST", contains="/search/v2/jobs")[:1]
    assert float(create.params["earliest_time"]) == pytest.approx(NOW.timestamp() - 2 * 86400 - 60)
    assert float(create.params["latest_time"]) == pytest.approx(NOW.timestamp() - 60)
    assert create.params["search"].startswith('search index="threat_activity"')


def test_job_results_read_in_pages(fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader]) -> None:
    fake.add_events("threat_activity", [hit(1000 + i) for i in range(7)])

    batches = list(make_reader(page_size=3, lag_seconds=60).read(None))

    assert [len(b) for b, _ in batches] == [3, 3, 1]
    assert batches[-1][1] == ReadCursor(int(NOW.timestamp() * 1000) - 60_000).dump()
    pages = fake.requests_to(method="POST", contains="/results")
    assert [p.params["count"] for p in pages] == ["3", "3", "3"]
    assert [p.params["offset"] for p in pages] == ["0", "3", "6"]
    assert fake.requests_to(method="POST", contains="/control")


def test_hits_sorted_oldest_first(fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader]) -> None:
    fake.add_events("threat_activity", [hit(100), hit(3000), hit(2000)])

    records, _ = read_all(make_reader(), None)

    assert [r.seen_at for r in records] == sorted(r.seen_at for r in records)


def test_app_mode_reads_summary_hits(fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader]) -> None:
    fake.add_events(
        "summary",
        [
            hit(500, source=APP_MATCH_SEARCH, threat_collection="stixbridge_intel", threat_type="ipv4"),
            hit(400, source="another saved search"),
        ],
    )

    records, _ = read_all(make_reader(mode="app"), None)

    assert len(records) == 1
    assert records[0].atom_type == "ipv4"


def test_search_error_rejected(fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader]) -> None:
    fake.inject(400, match="/search/")

    with pytest.raises(RemoteRejectedError, match="HTTP 400"):
        read_all(make_reader(), None)


def test_bad_cursor_rejected(make_reader: Callable[..., SplunkSightingsReader]) -> None:
    with pytest.raises(RemoteRejectedError, match="invalid Splunk sightings cursor"):
        read_all(make_reader(), "not json")


def test_nothing_to_read_when_cursor_recent(
    fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader]
) -> None:
    cursor = ReadCursor(int(NOW.timestamp() * 1000)).dump()

    assert list(make_reader().read(cursor)) == []
    assert fake.log == []


def test_store_keeps_hits_once(
    fake: FakeSplunk, make_reader: Callable[..., SplunkSightingsReader], tmp_path: Path
) -> None:
    fake.add_events("threat_activity", [hit(700), hit(600)])
    reader = make_reader()
    store = SqliteStore(tmp_path / "state.db")
    try:
        added = 0
        for _ in range(2):
            cursor = store.get_cursor("sightings:splunk-hits")
            for batch, next_cursor in reader.read(cursor):
                added += store.add_sightings(batch, "sightings:splunk-hits", next_cursor)
    finally:
        store.close()

    assert added == 2


def test_cursor_round_trip() -> None:
    cursor = ReadCursor(1714636800123, {"b:2", "a:1"})

    text = cursor.dump()

    assert json.loads(text) == {"t": 1714636800123, "ids": ["a:1", "b:2"]}
    assert ReadCursor.parse(text) == cursor
    assert ReadCursor.parse(None) is None


def test_hit_id_prefers_bucket_and_offset() -> None:
    assert hit_id({"_bkt": "threat_activity~12~GUID", "_cd": "12:345"}) == "threat_activity~12~GUID:12:345"
    assert hit_id({"a": "1"}) == hit_id({"a": "1"})
    assert hit_id({"a": "1"}).startswith("sha256:")
    assert hit_id({"a": "1"}) != hit_id({"a": "2"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-02T08:00:00.250+00:00", datetime(2024, 5, 2, 8, 0, 0, 250000, tzinfo=UTC)),
        ("2024-05-02T10:00:00.000+02:00", datetime(2024, 5, 2, 8, 0, tzinfo=UTC)),
        ("1714636800.5", datetime(2024, 5, 2, 8, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_parse_splunk_time(text: str, expected: datetime) -> None:
    assert parse_splunk_time(text) == expected


def test_parse_splunk_time_needs_offset() -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_splunk_time("2024-05-02T08:00:00")


def test_search_text_for_each_mode(make_reader: Callable[..., SplunkSightingsReader]) -> None:
    es = make_reader().search_text()
    app = make_reader(mode="app", index="stixbridge_hits").search_text()

    assert es.startswith('search index="threat_activity" threat_collection_key="stixbridge-*"')
    assert app.startswith(f'search index="stixbridge_hits" source="{APP_MATCH_SEARCH}"')
    assert es.endswith("| sort 0 _time")
