"""Tests of the MISP source: attributes from the fake MISP through PyMISP, and MISP event files."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from stixbridge.connectors.misp.source import MispSource
from stixbridge.errors import ConfigError, RemoteRejectedError
from stixbridge.settings import build_settings
from stixbridge.timeutil import parse_timestamp
from stixbridge.tlp import TLP2_MARKING_IDS, Tlp

from .conftest import NOW
from .fake_misp import DecayModel, FakeMisp

T0 = 1714636800  # 2024-05-02T08:00:00Z
SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def escaping_event(published: bool = True) -> dict[str, Any]:
    """A MISP event whose values need escaping in STIX patterns."""
    return {
        "uuid": "45ff42fe-2faf-4828-8625-e628037773a3",
        "info": "Values needing pattern escaping",
        "date": "2024-05-02",
        "timestamp": str(T0),
        "published": published,
        "Orgc": {"name": "Example Sharing Community", "uuid": "6513270e-269e-4d37-b2a7-4de452e6b438"},
        "Attribute": [
            {"uuid": "30d2499f-48c9-4308-9d0d-19d30ee4d758", "type": "filename", "category": "Payload delivery",
             "to_ids": True, "value": "quarterly report's draft.docx", "timestamp": str(T0), "comment": ""},
            {"uuid": "76e09d99-a49d-4ea8-8fce-443f8817bd44", "type": "regkey", "category": "Persistence mechanism",
             "to_ids": True, "value": "HKLM\\Software\\ExampleVendor\\Updater", "timestamp": str(T0), "comment": ""},
            {"uuid": "0d21b588-6ac3-46cb-ad3f-dd447a5210f8", "type": "url", "category": "Network activity",
             "to_ids": True, "value": "http://example.org/download?name=it's", "timestamp": str(T0), "comment": ""},
            {"uuid": "b8edb344-b27c-4397-aa1c-104ae7122e52", "type": "filename|sha256", "category": "Payload delivery",
             "to_ids": True, "value": f"o'neil.exe|{SHA256_EMPTY}", "timestamp": str(T0), "comment": ""},
        ],
    }  # fmt: skip


EXPECTED_PATTERNS = {
    "indicator--30d2499f-48c9-4308-9d0d-19d30ee4d758": "[file:name = 'quarterly report\\'s draft.docx']",
    "indicator--76e09d99-a49d-4ea8-8fce-443f8817bd44": "[windows-registry-key:key = 'HKLM\\\\Software\\\\ExampleVendor\\\\Updater']",
    "indicator--0d21b588-6ac3-46cb-ad3f-dd447a5210f8": "[url:value = 'http://example.org/download?name=it\\'s']",
    "indicator--b8edb344-b27c-4397-aa1c-104ae7122e52": f"[file:name = 'o\\'neil.exe' AND file:hashes.'SHA-256' = '{SHA256_EMPTY}']",
}


def composite_event() -> dict[str, Any]:
    """A MISP event with composite attribute types."""
    attributes = [
        ("75cec8c1-20e2-42eb-b94c-3b4414c874b3", "domain|ip", "portal.example.com|198.51.100.14"),
        ("c12410da-c6de-42dd-9940-bbf001935451", "ip-dst|port", "203.0.113.77|8443"),
        ("560dc29f-7532-4019-8386-693f073b8fc6", "ip-src|port", "2001:db8::7|53"),
        ("330cf8a9-6de7-48ea-a6dc-bdab09451d6f", "filename|sha256", f"invoice_2024.exe|{SHA256_EMPTY}"),
        ("2a476f7b-2a26-4937-8404-31dc133dbee6", "malware-sample", "sample.zip|d41d8cd98f00b204e9800998ecf8427e"),
    ]
    return {
        "uuid": "8172e02d-8107-4f28-9132-fa3718de396b",
        "info": "Composite attribute types",
        "date": "2024-05-02",
        "timestamp": str(T0),
        "published": True,
        "Attribute": [
            {"uuid": u, "type": t, "category": "Network activity" if "ip" in t else "Payload delivery", "value": v,
             "to_ids": True, "timestamp": str(T0), "comment": ""}
            for u, t, v in attributes
        ],
    }  # fmt: skip


def _pull(source: MispSource, cursor: str | None = None) -> tuple[list[dict[str, Any]], list[Any]]:
    pages = list(source.pull(cursor))
    items = [item for page in pages for item in page.items]
    indicators = [i.obj for i in items if i.obj is not None and i.obj["type"] == "indicator"]
    return indicators, pages


def _attribute(n: int, timestamp: int, **fields: Any) -> dict[str, Any]:
    return {"uuid": f"00000000-0000-4000-8000-{n:012d}", "type": "domain", "category": "Network activity",
            "value": f"host{n}.example.com", "to_ids": True, "timestamp": str(timestamp), **fields}  # fmt: skip


def _event(n: int, attributes: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {"uuid": f"10000000-0000-4000-8000-{n:012d}", "info": f"Event {n}", "date": "2024-05-02",
            "timestamp": str(T0), "Attribute": attributes, **fields}  # fmt: skip


def test_server_patterns_escaped(fake: FakeMisp, make_source) -> None:
    fake.seed_event(escaping_event())

    indicators, _ = _pull(make_source())

    assert {i["id"]: i["pattern"] for i in indicators} == EXPECTED_PATTERNS


def test_server_indicator_fields(fake: FakeMisp, make_source) -> None:
    fake.seed_event(escaping_event())
    source = make_source()

    pages = list(source.pull(None))

    items = [item for page in pages for item in page.items]
    identity = next(i.obj for i in items if i.obj and i.obj["type"] == "identity")
    indicator = next(i for i in items if i.obj and i.obj["id"].endswith("30d2499f-48c9-4308-9d0d-19d30ee4d758"))
    assert identity["id"] == "identity--6513270e-269e-4d37-b2a7-4de452e6b438"
    assert identity["name"] == "Example Sharing Community"
    assert indicator.provenance.source == "misp-in"
    assert indicator.provenance.collection == "45ff42fe-2faf-4828-8625-e628037773a3"
    assert indicator.provenance.created_by == identity["id"]
    obj = indicator.obj
    assert obj["spec_version"] == "2.1"
    assert obj["created_by_ref"] == identity["id"]
    assert obj["modified"] == "2024-05-02T08:00:00.000Z"
    assert obj["created"] == "2024-05-02T00:00:00.000Z"
    assert obj["valid_from"] == "2024-05-02T00:00:00.000Z"
    assert obj["name"] == "Values needing pattern escaping"
    assert obj["x_misp_attribute_type"] == "filename"
    assert "valid_until" not in obj


def test_server_composites_split(fake: FakeMisp, make_source) -> None:
    fake.seed_event(composite_event())

    indicators, _ = _pull(make_source())

    patterns = {i["id"].removeprefix("indicator--"): i["pattern"] for i in indicators}
    assert patterns["c12410da-c6de-42dd-9940-bbf001935451"] == (
        "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '203.0.113.77' AND "
        "network-traffic:dst_port = 8443]"
    )
    assert patterns["560dc29f-7532-4019-8386-693f073b8fc6"] == (
        "[network-traffic:src_ref.type = 'ipv6-addr' AND network-traffic:src_ref.value = '2001:db8::7' AND "
        "network-traffic:src_port = 53]"
    )
    assert len(patterns) == 5


def test_server_query_filters(fake: FakeMisp, make_source) -> None:
    fake.keep_bodies = True
    fake.seed_event(escaping_event())

    _pull(make_source(page_size=50))

    query = next(r.body for r in fake.requests if r.path == "/attributes/restSearch")
    assert query["to_ids"] == 1
    assert query["published"] == 1
    assert query["includeDecayScore"] == 1
    assert query["includeFullModel"] == 1
    assert query["includeWarninglistHits"] == 1
    assert query["limit"] == 50
    assert query["order"] == "Attribute.timestamp asc,Attribute.id asc"
    assert query["deleted"] == 0


def test_server_skips_unpublished_and_not_to_ids(fake: FakeMisp, make_source) -> None:
    fake.seed_event(escaping_event(published=False))
    fake.seed_event(_event(2, [_attribute(1, T0, to_ids=False), _attribute(2, T0)]), published=True)

    indicators, _ = _pull(make_source())

    assert [i["id"] for i in indicators] == ["indicator--00000000-0000-4000-8000-000000000002"]


def test_server_pages_through_shared_timestamps(fake: FakeMisp, make_source) -> None:
    attributes = [_attribute(n, T0) for n in range(1, 6)] + [_attribute(n, T0 + 60) for n in range(6, 8)]
    fake.seed_event(_event(1, attributes), published=True)

    indicators, pages = _pull(make_source(page_size=2))

    ids = [i["id"] for i in indicators]
    assert len(ids) == 7
    assert len(set(ids)) == 7
    assert json.loads(pages[-1].cursor) == {"timestamp": T0 + 60}
    assert pages[-1].complete
    assert not any(page.complete for page in pages[:-1])


def test_server_cursor_reads_changes(fake: FakeMisp, make_source) -> None:
    fake.seed_event(_event(1, [_attribute(n, T0 + n) for n in range(1, 4)]), published=True)
    source = make_source(page_size=10)
    _, pages = _pull(source)
    cursor = pages[-1].cursor
    assert json.loads(cursor) == {"timestamp": T0 + 3}

    fake.seed_event(_event(2, [_attribute(9, T0 + 100)]), published=True)
    changed = fake.attributes[fake._by_uuid["00000000-0000-4000-8000-000000000001"]]
    changed.update(value="changed.example.com", timestamp=T0 + 200)
    indicators, pages = _pull(source, cursor)

    ids = sorted(i["id"][-2:] for i in indicators)
    assert ids == ["01", "03", "09"]  # 03 sits at the cursor's own second and is read again
    assert json.loads(pages[-1].cursor) == {"timestamp": T0 + 200}


def test_server_first_pull_since(fake: FakeMisp, make_source) -> None:
    fake.seed_event(_event(1, [_attribute(1, T0), _attribute(2, T0 + 3600)]), published=True)

    indicators, _ = _pull(make_source(since="2024-05-02T08:30:00Z"))

    assert [i["id"][-2:] for i in indicators] == ["02"]


def test_server_deleted_attribute_revoked(fake: FakeMisp, make_source) -> None:
    fake.seed_event(_event(1, [_attribute(1, T0), _attribute(2, T0)]), published=True)
    source = make_source()
    _, pages = _pull(source)

    stored = fake.attributes[fake._by_uuid["00000000-0000-4000-8000-000000000002"]]
    stored.update(deleted=True, timestamp=T0 + 10)
    indicators, _ = _pull(source, pages[-1].cursor)

    revoked = [i for i in indicators if i.get("revoked")]
    assert [i["id"][-2:] for i in revoked] == ["02"]


def test_server_decay_sets_score_expiry(fake: FakeMisp, make_source) -> None:
    fake.decay_model = DecayModel()
    recent = int((NOW - timedelta(days=10)).timestamp())
    old = int((NOW - timedelta(days=100)).timestamp())
    md5 = {"type": "md5", "category": "Payload delivery", "value": "d41d8cd98f00b204e9800998ecf8427e"}
    fake.seed_event(_event(1, [_attribute(1, recent), _attribute(2, old), _attribute(3, old, **md5)]), published=True)
    source = make_source()

    indicators, _ = _pull(source)

    by_id = {i["id"][-2:]: i for i in indicators}
    assert sorted(by_id) == ["01", "03"]
    # NIDS model: score 80 falls below 30 after 120 days * (1 - 30/80) ** 2 = 46.875 days.
    expected = NOW - timedelta(days=10) + timedelta(days=46.875)
    assert abs(parse_timestamp(by_id["01"]["x_stixbridge_score_expiry"]) - expected) < timedelta(seconds=2)
    assert "valid_until" not in by_id["01"]
    assert "x_stixbridge_score_expiry" not in by_id["03"]
    assert source.counts["decayed"] == 1


def test_server_warninglist_hits_flagged(fake: FakeMisp, make_source) -> None:
    fake.warninglists = {"List of known public DNS resolvers": {"host1.example.com"}}
    fake.seed_event(_event(1, [_attribute(1, T0), _attribute(2, T0)]), published=True)

    indicators, _ = _pull(make_source())

    flagged = {i["id"][-2:]: i.get("x_stixbridge_warninglist") for i in indicators}
    assert flagged == {"01": ["List of known public DNS resolvers"], "02": None}


def test_server_tags_to_tlp_and_labels(fake: FakeMisp, make_source) -> None:
    event = _event(1, [_attribute(1, T0, Tag=[{"name": "tlp:red"}]), _attribute(2, T0)],
                   Tag=[{"name": "tlp:amber"}, {"name": 'misp-galaxy:threat-actor="Example Group"'}])  # fmt: skip
    fake.seed_event(event, published=True)

    indicators, _ = _pull(make_source())

    by_id = {i["id"][-2:]: i for i in indicators}
    assert by_id["01"]["object_marking_refs"] == [TLP2_MARKING_IDS[Tlp.RED]]
    assert by_id["02"]["object_marking_refs"] == [TLP2_MARKING_IDS[Tlp.AMBER]]
    assert by_id["02"]["labels"] == ['misp-galaxy:threat-actor="Example Group"']


def test_server_bad_attribute_quarantined(fake: FakeMisp, make_source) -> None:
    fake.seed_event(_event(1, [_attribute(1, T0), _attribute(2, T0, type="ip-dst|port", value="203.0.113.7|80")]),
                    published=True)  # fmt: skip
    fake.attributes[fake._by_uuid["00000000-0000-4000-8000-000000000002"]]["value"] = "203.0.113.7|http"
    source = make_source()

    pages = list(source.pull(None))

    errors = [i for p in pages for i in p.items if i.error]
    assert len(errors) == 1
    assert "not a number from 1 to 65535" in errors[0].error
    assert "203.0.113.7|http" in errors[0].raw_text
    assert source.counts["indicators"] == 1


def test_server_same_page_again_is_rejected(fake: FakeMisp, make_source) -> None:
    page = {"response": {"Attribute": [{**_attribute(n, T0), "Event": {"uuid": "x", "published": True}}
                                       for n in (1, 2)]}}  # fmt: skip
    fake.inject(r"^/attributes/restSearch$", status=200, body=page, times=5)

    with pytest.raises(RemoteRejectedError, match="already read"):
        _pull(make_source(page_size=2))


def test_server_page_limit_guard(fake: FakeMisp, make_source) -> None:
    fake.seed_event(_event(1, [_attribute(n, T0 + n) for n in range(1, 6)]), published=True)

    with pytest.raises(RemoteRejectedError, match="max_pages"):
        _pull(make_source(page_size=1, max_pages=2))


def test_server_forbidden(fake: FakeMisp, make_source) -> None:
    fake.inject(r"^/attributes/restSearch$", status=403)

    with pytest.raises(RemoteRejectedError, match="403"):
        _pull(make_source())


def test_fetch_by_id(fake: FakeMisp, make_source) -> None:
    fake.seed_event(escaping_event())
    source = make_source()

    items = source.fetch_by_id("indicator--0d21b588-6ac3-46cb-ad3f-dd447a5210f8", None)  # type: ignore[arg-type]

    indicators = [i.obj for i in items if i.obj and i.obj["type"] == "indicator"]
    assert [i["pattern"] for i in indicators] == ["[url:value = 'http://example.org/download?name=it\\'s']"]


def test_files_both_envelopes(tmp_path: Path, make_source) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"Event": escaping_event(published=False)}))
    (tmp_path / "b.json").write_text(json.dumps({"response": [{"Event": composite_event()}]}))

    indicators, pages = _pull(make_source(path=str(tmp_path)))

    assert len(indicators) == 9
    assert {i["id"]: i["pattern"] for i in indicators if i["id"] in EXPECTED_PATTERNS} == EXPECTED_PATTERNS
    assert pages[-1].complete


def test_files_bad_files_quarantined(tmp_path: Path, make_source) -> None:
    (tmp_path / "good.json").write_text(json.dumps({"Event": composite_event()}))
    (tmp_path / "broken.json").write_text('{"Event": {"uuid": "x",}')
    (tmp_path / "other.json").write_text(json.dumps({"duvelDetails": []}))
    source = make_source(path=str(tmp_path))

    pages = list(source.pull(None))

    items = [i for p in pages for i in p.items]
    errors = sorted(i.error for i in items if i.error)
    assert len(errors) == 2
    assert "broken.json is not JSON" in errors[0]
    assert "other.json is not a MISP event" in errors[1]
    assert sum(1 for i in items if i.obj and i.obj["type"] == "indicator") == 5


def test_files_unchanged_not_read_again(tmp_path: Path, make_source) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"Event": composite_event()}))
    source = make_source(path=str(tmp_path))
    _, pages = _pull(source)

    again, _ = _pull(source, pages[-1].cursor)
    assert again == []

    event = composite_event()
    event["Attribute"] = event["Attribute"][:1]
    path.write_text(json.dumps({"Event": event}))
    changed, _ = _pull(source, pages[-1].cursor)
    assert len(changed) == 1


def test_files_object_attributes_read(tmp_path: Path, make_source) -> None:
    event = _event(1, [], Object=[{"name": "file", "Attribute": [
        {**_attribute(1, T0), "type": "sha1", "value": "da39a3ee5e6b4b0d3255bfef95601890afd80709", "object_relation": "sha1"},
        {**_attribute(2, T0), "type": "filename", "value": "a.exe", "to_ids": False, "object_relation": "filename"},
    ]}])  # fmt: skip
    (tmp_path / "a.json").write_text(json.dumps({"Event": event}))

    indicators, _ = _pull(make_source(path=str(tmp_path)))

    assert [(i["pattern"], i["x_misp_object_name"]) for i in indicators] == [
        ("[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']", "file")
    ]


def test_files_missing_path(tmp_path: Path, make_source) -> None:
    with pytest.raises(FileNotFoundError, match="fix 'path'"):
        _pull(make_source(path=str(tmp_path / "absent")))


def test_eset_events_load(shared_data: Path, make_source) -> None:
    # 59 JSON files: 57 MISP events (both envelopes), one file that is not valid JSON upstream (a trailing
    # comma) and one JSON file that is not a MISP event.
    source = make_source(path=str(shared_data / "eset-malware-ioc"))

    pages = list(source.pull(None))

    items = [i for p in pages for i in p.items]
    kinds = Counter("error" if i.error else i.obj["type"] for i in items)
    assert len(pages) == 59
    assert kinds == {"indicator": 1280, "identity": 57, "error": 2}
    assert source.counts["attributes"] == 4194
    assert len({i.obj["id"] for i in items if i.obj and i.obj["type"] == "indicator"}) == 1280


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "exactly one of 'url'"),
        ({"url": "https://misp.example.org", "path": "events", "key": {"env": "MISP_KEY"}}, "exactly one of 'url'"),
        ({"url": "https://misp.example.org"}, "key is required"),
        ({"path": "events", "since": "yesterday"}, "invalid timestamp"),
        ({"path": "events", "page_size": 0}, "page_size must be from 1"),
    ],
)
def test_settings_rejected(table: dict, message: str, misp_key: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_settings(MispSource.settings_class, table, "sources[0]")


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 50])
def test_server_paging_reads_every_attribute(fake: FakeMisp, make_source, page_size: int) -> None:
    # Timestamps with long and short runs of ties, in a fixed pseudo-random order.
    timestamps = [T0 + (n * 7919) % 5 for n in range(1, 24)]
    fake.seed_event(_event(1, [_attribute(n, ts) for n, ts in enumerate(timestamps, start=1)]), published=True)

    indicators, _ = _pull(make_source(page_size=page_size))

    assert sorted(int(i["id"][-12:]) for i in indicators) == list(range(1, 24))


def test_server_edit_during_pull_not_lost(fake: FakeMisp, make_source, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.seed_event(_event(1, [_attribute(n, T0 + n) for n in range(1, 9)]), published=True)
    search = fake._attributes_search
    calls = []

    def edit_after_first_page(filters: dict, path: str):
        answer = search(filters, path)
        calls.append(filters)
        if len(calls) == 1:
            # An analyst edits one attribute already read and one not yet read.
            for n in (1, 6):
                fake.attributes[fake._by_uuid[f"00000000-0000-4000-8000-{n:012d}"]]["timestamp"] = T0 + 100 + n
        return answer

    monkeypatch.setattr(fake, "_attributes_search", edit_after_first_page)

    indicators, _ = _pull(make_source(page_size=3))

    read = Counter(int(i["id"][-12:]) for i in indicators)
    assert set(read) == set(range(1, 9))
    assert read[1] == 2  # read before and after the edit
