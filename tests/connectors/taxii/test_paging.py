"""Paging replayed against a scripted server: TAXII 2.1 next/more, TAXII 2.0 Range, 413 and loop guards.

The exchanges rebuild what TAXII servers in the field were seen to send: next tokens, more without next,
a server repeating its page and token, Range ignored or Content-Range missing, and 413 for large pages.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from stixbridge.errors import RemoteRejectedError, StixbridgeError, TransientError
from stixbridge.model import Page

from .conftest import make_source
from .fake_server import (
    STIX_20,
    TAXII_21,
    Recorded,
    Reply,
    fake_taxii_server,
    indicator,
    taxii20_layout,
    taxii21_layout,
)

COLLECTION = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
OBJECTS = f"/api1/collections/{COLLECTION}/objects/"
COLLECTION_20 = "64993447-4d7e-4f70-b94d-d7f33742ee63"
OBJECTS_20 = f"/api1/collections/{COLLECTION_20}/objects/"


def run_pull(source: Any, cursor: str | None = None) -> tuple[list[Page], StixbridgeError | None]:
    pages: list[Page] = []
    try:
        for page in source.pull(cursor):
            pages.append(page)
    except StixbridgeError as exc:
        return pages, exc
    return pages, None


def object_ids(pages: list[Page]) -> list[str]:
    return [item.obj["id"] for page in pages for item in page.items if item.obj is not None]


def dated(first: str, last: str) -> dict[str, str]:
    return {"X-TAXII-Date-Added-First": first, "X-TAXII-Date-Added-Last": last}


# -- TAXII 2.1 -------------------------------------------------------------------------------------------------


def test_next_token_paging_repeats_same_filters() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        filters = {"added_after": "2024-05-01T00:00:00.000Z", "limit": "2"}
        fake.expect(OBJECTS, Reply(body={"more": True, "next": "a1b2c3", "objects": [indicator(0), indicator(1)]},
                                   headers=dated("2024-05-02T08:00:00.000000+00:00",
                                                 "2024-05-02T08:00:01.000000+00:00")),
                    filters, headers={"Accept": TAXII_21})  # fmt: skip
        fake.expect(OBJECTS, Reply(body={"more": True, "next": "d4e5f6", "objects": [indicator(2), indicator(3)]},
                                   headers=dated("2024-05-02T08:00:02.000000+00:00",
                                                 "2024-05-02T08:00:03.000000+00:00")),
                    {**filters, "next": "a1b2c3"}, headers={"Accept": TAXII_21})  # fmt: skip
        fake.expect(OBJECTS, Reply(body={"more": False, "objects": [indicator(4)]},
                                   headers=dated("2024-05-02T08:00:04.000000+00:00",
                                                 "2024-05-02T08:00:04.000000+00:00")),
                    {**filters, "next": "d4e5f6"})  # fmt: skip
        source = make_source(f"{fake.base}/taxii2/", limit=2, min_limit=1, added_after="2024-05-01T00:00:00.000Z",
                             collections=[COLLECTION])  # fmt: skip

        pages, error = run_pull(source)

    assert error is None
    assert fake.mismatches == []
    assert fake.script == []
    assert len(fake.requests_to(OBJECTS)) == 3
    assert len(object_ids(pages)) == 5
    assert [page.cursor for page in pages[:-1]] == [None] * (len(pages) - 1)
    assert json.loads(pages[-1].cursor or "") == {COLLECTION: "2024-05-02T08:00:04.000000Z"}
    assert pages[-1].complete


def test_more_without_next_continues_from_date() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.expect(OBJECTS, Reply(body={"more": True, "objects": [indicator(10), indicator(11)]},
                                   headers=dated("2024-05-03T09:00:00.000Z", "2024-05-03T09:00:01.000Z")),
                    {"added_after": "2024-05-03T00:00:00.000Z", "limit": "2"})  # fmt: skip
        fake.expect(OBJECTS, Reply(body={"more": False, "objects": [indicator(12)]},
                                   headers=dated("2024-05-03T09:00:02.000Z", "2024-05-03T09:00:02.000Z")),
                    {"added_after": "2024-05-03T09:00:01.000Z", "limit": "2"})  # fmt: skip
        source = make_source(f"{fake.base}/taxii2/", limit=2, min_limit=1, added_after="2024-05-03T00:00:00.000Z")

        pages, error = run_pull(source)

    assert error is None
    assert fake.mismatches == []
    assert fake.script == []
    assert len(object_ids(pages)) == 3
    assert json.loads(pages[-1].cursor or "") == {COLLECTION: "2024-05-03T09:00:02.000Z"}


def test_repeated_page_and_token_stops(caplog: pytest.LogCaptureFixture) -> None:
    page = Reply(body={"more": True, "next": "zz9", "objects": [indicator(0), indicator(1)]},
                 headers=dated("2024-05-04T00:00:00.000Z", "2024-05-04T00:00:01.000Z"))  # fmt: skip
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.expect(OBJECTS, page, {"limit": "2"})
        fake.expect(OBJECTS, page, {"limit": "2", "next": "zz9"})
        source = make_source(f"{fake.base}/taxii2/", limit=2, min_limit=1)

        pages, error = run_pull(source)

    assert isinstance(error, TransientError)
    assert "same page again" in str(error)
    assert len(fake.requests_to(OBJECTS)) == 2
    assert object_ids(pages) == [indicator(0)["id"], indicator(1)["id"]]
    assert all(page.cursor is None for page in pages)
    assert any(r.levelno == logging.ERROR and "same page again" in r.getMessage() for r in caplog.records)


def test_more_without_next_or_date_stops() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.expect(OBJECTS, Reply(body={"more": True, "objects": [indicator(0)]}))
        source = make_source(f"{fake.base}/taxii2/")

        pages, error = run_pull(source)

    assert isinstance(error, TransientError)
    assert "without a usable X-TAXII-Date-Added-Last" in str(error)
    assert len(object_ids(pages)) == 1
    assert len(fake.requests_to(OBJECTS)) == 1


def test_more_without_next_and_stuck_date_stops() -> None:
    stuck = Reply(body={"more": True, "objects": [indicator(0)]},
                  headers=dated("2024-05-03T09:00:01.000Z", "2024-05-03T09:00:01.000Z"))  # fmt: skip
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.expect(OBJECTS, stuck, {"limit": "500"})
        fake.expect(OBJECTS, Reply(body={"more": True, "objects": [indicator(1)]},
                                   headers=dated("2024-05-03T09:00:01.000Z", "2024-05-03T09:00:01.000Z")),
                    {"limit": "500", "added_after": "2024-05-03T09:00:01.000Z"})  # fmt: skip
        source = make_source(f"{fake.base}/taxii2/")

        pages, error = run_pull(source)

    assert isinstance(error, TransientError)
    assert "did not advance" in str(error)
    assert len(fake.requests_to(OBJECTS)) == 2


def test_expired_next_token_resumes_from_checkpoint() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.expect(OBJECTS, Reply(body={"more": True, "next": "t1", "objects": [indicator(0)]},
                                   headers=dated("2024-05-03T09:00:00Z", "2024-05-03T09:00:00Z")),
                    {"limit": "1"})  # fmt: skip
        fake.expect(OBJECTS, Reply(400, {"title": "ProcessingError", "description": "'next' not valid"}),
                    {"limit": "1", "next": "t1"})  # fmt: skip
        fake.expect(OBJECTS, Reply(body={"more": False, "objects": [indicator(1)]},
                                   headers=dated("2024-05-03T09:00:05Z", "2024-05-03T09:00:05Z")),
                    {"limit": "1", "added_after": "2024-05-03T09:00:00Z"})  # fmt: skip
        source = make_source(f"{fake.base}/taxii2/", limit=1, min_limit=1)

        pages, error = run_pull(source)

    assert error is None
    assert fake.mismatches == []
    assert object_ids(pages) == [indicator(0)["id"], indicator(1)["id"]]
    assert json.loads(pages[-1].cursor or "") == {COLLECTION: "2024-05-03T09:00:05Z"}


def test_max_pages_stops_pass() -> None:
    def endless(request: Recorded) -> Reply:
        number = int(request.query.get("next", "0"))
        return Reply(body={"more": True, "next": str(number + 1), "objects": [indicator(number)]},
                     headers=dated("2024-05-03T09:00:00Z", f"2024-05-03T09:00:{number % 60:02d}Z"))  # fmt: skip

    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.route(OBJECTS, endless)
        source = make_source(f"{fake.base}/taxii2/", max_pages=4)

        pages, error = run_pull(source)

    assert isinstance(error, TransientError)
    assert "max_pages = 4" in str(error)
    assert len(fake.requests_to(OBJECTS)) == 4
    assert len(object_ids(pages)) == 4
    assert all(page.cursor is None for page in pages)


def test_empty_envelope_keeps_checkpoint() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.expect(OBJECTS, Reply(body={}), {"limit": "500", "added_after": "2024-05-03T09:00:00Z"})
        source = make_source(f"{fake.base}/taxii2/")

        pages, error = run_pull(source, json.dumps({COLLECTION: "2024-05-03T09:00:00Z"}))

    assert error is None
    assert fake.mismatches == []
    assert len(pages) == 1
    assert pages[0].items == []
    assert json.loads(pages[0].cursor or "") == {COLLECTION: "2024-05-03T09:00:00Z"}
    assert pages[0].complete


def test_server_sends_more_than_limit() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.expect(OBJECTS, Reply(body={"more": False, "objects": [indicator(n) for n in range(5)]},
                                   headers=dated("2024-05-03T09:00:00Z", "2024-05-03T09:00:04Z")),
                    {"limit": "2"})  # fmt: skip
        source = make_source(f"{fake.base}/taxii2/", limit=2, min_limit=1)

        pages, error = run_pull(source)

    assert error is None
    assert len(object_ids(pages)) == 5


def test_entries_that_are_not_objects_become_errors() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.expect(OBJECTS, Reply(body={"objects": [indicator(0), "oops", [1, 2]]}))
        source = make_source(f"{fake.base}/taxii2/")

        pages, error = run_pull(source)

    items = pages[0].items
    assert error is None
    assert items[0].obj == indicator(0)
    assert items[1].obj is None
    assert "is a JSON str, not an object" in (items[1].error or "")
    assert items[1].raw_text == '"oops"'
    assert items[2].raw_text == "[1, 2]"


def test_provenance_names_collection_and_author() -> None:
    authored = {**indicator(0), "created_by_ref": "identity--00000000-0000-4000-8000-00000000000a"}
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.expect(OBJECTS, Reply(body={"objects": [authored, indicator(1)]}))
        source = make_source(f"{fake.base}/taxii2/")

        pages, _ = run_pull(source)

    first, second = pages[0].items
    assert first.provenance.source == "alliance"
    assert first.provenance.collection == COLLECTION
    assert first.provenance.created_by == "identity--00000000-0000-4000-8000-00000000000a"
    assert second.provenance.created_by == ""


def test_pages_stream_one_behind() -> None:
    def pages(request: Recorded) -> Reply:
        number = int(request.query.get("next", "0"))
        return Reply(body={"more": number < 2, "next": str(number + 1), "objects": [indicator(number)]},
                     headers=dated("2024-05-03T09:00:00Z", f"2024-05-03T09:00:0{number}Z"))  # fmt: skip

    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.route(OBJECTS, pages)
        source = make_source(f"{fake.base}/taxii2/", limit=1, min_limit=1)

        stream = source.pull(None)
        first = next(stream)
        requests_after_first = len(fake.requests_to(OBJECTS))
        rest = list(stream)

    assert [item.obj["id"] for item in first.items if item.obj] == [indicator(0)["id"]]
    assert requests_after_first == 2
    assert len(rest) == 2


def test_manifest_gives_checkpoint_without_headers() -> None:
    manifest = f"/api1/collections/{COLLECTION}/manifest/"
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.expect(OBJECTS, Reply(body={"more": False, "objects": [indicator(0), indicator(1)]},
                                   headers={"X-TAXII-Date-Added-Last": "undefined"}))  # fmt: skip
        fake.expect(manifest, Reply(body={"objects": [
            {"id": indicator(1)["id"], "date_added": "2024-05-05T10:00:00+00:00", "version": "x"},
            {"id": indicator(1)["id"], "date_added": "2024-05-05T11:00:00+00:00", "version": "y"},
        ]}), {"match[id]": indicator(1)["id"], "match[version]": "all"})  # fmt: skip
        source = make_source(f"{fake.base}/taxii2/")

        pages, error = run_pull(source)

    assert error is None
    assert fake.mismatches == []
    assert json.loads(pages[-1].cursor or "") == {COLLECTION: "2024-05-05T11:00:00Z"}


def test_failed_manifest_keeps_old_checkpoint(caplog: pytest.LogCaptureFixture) -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "Example indicators"}])
        fake.expect(OBJECTS, Reply(body={"objects": [indicator(0)]}))
        fake.expect(f"/api1/collections/{COLLECTION}/manifest/", Reply(404, {"title": "no manifest"}))
        source = make_source(f"{fake.base}/taxii2/")

        pages, error = run_pull(source, json.dumps({COLLECTION: "2024-01-01T00:00:00Z"}))

    assert error is None
    assert json.loads(pages[-1].cursor or "") == {COLLECTION: "2024-01-01T00:00:00Z"}
    assert any("no checkpoint" in r.getMessage() for r in caplog.records)


def test_cursor_per_collection() -> None:
    other = "11111111-2222-4333-8444-555555555555"
    other_objects = f"/api1/collections/{other}/objects/"
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}, {"id": other, "title": "B"}])
        fake.expect(OBJECTS, Reply(body={"objects": [indicator(0)]}, headers=dated("x", "2024-05-03T09:00:00Z")),
                    {"limit": "500", "added_after": "2024-05-01T00:00:00Z"})  # fmt: skip
        fake.expect(other_objects, Reply(body={"objects": [indicator(1)]},
                                         headers=dated("x", "2024-06-01T00:00:00Z")),
                    {"limit": "500", "added_after": "2024-05-20T00:00:00Z"})  # fmt: skip
        source = make_source(f"{fake.base}/taxii2/", added_after="2024-05-01T00:00:00Z")

        pages, error = run_pull(source, json.dumps({other: "2024-05-20T00:00:00Z", "gone": "2023-01-01T00:00:00Z"}))

    assert error is None
    assert fake.mismatches == []
    assert [json.loads(p.cursor) if p.cursor else None for p in pages] == [
        {COLLECTION: "2024-05-03T09:00:00Z", other: "2024-05-20T00:00:00Z", "gone": "2023-01-01T00:00:00Z"},
        {COLLECTION: "2024-05-03T09:00:00Z", other: "2024-06-01T00:00:00Z", "gone": "2023-01-01T00:00:00Z"},
    ]
    assert [p.complete for p in pages] == [False, True]


def test_stopped_collection_does_not_block_others() -> None:
    other = "11111111-2222-4333-8444-555555555555"
    stuck = Reply(body={"more": True, "next": "same", "objects": [indicator(0)]})
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}, {"id": other, "title": "B"}])
        fake.route(OBJECTS, stuck)
        fake.expect(f"/api1/collections/{other}/objects/",
                    Reply(body={"objects": [indicator(1)]}, headers=dated("x", "2024-06-01T00:00:00Z")))  # fmt: skip
        source = make_source(f"{fake.base}/taxii2/")

        pages, error = run_pull(source)

    assert isinstance(error, TransientError)
    assert "collection 'A'" in str(error)
    assert json.loads(pages[-1].cursor or "") == {other: "2024-06-01T00:00:00Z"}
    assert not pages[-1].complete


def test_checkpoint_is_later_of_cursor_and_setting() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.expect(OBJECTS, Reply(body={}), {"limit": "500", "added_after": "2024-09-01T00:00:00Z"})
        source = make_source(f"{fake.base}/taxii2/", added_after="2024-09-01T00:00:00Z")

        _, error = run_pull(source, json.dumps({COLLECTION: "2024-05-03T09:00:00Z"}))

    assert error is None
    assert fake.mismatches == []


@pytest.mark.parametrize("cursor", ["2024-05-03T09:00:00Z", "[1, 2]", json.dumps({COLLECTION: "undefined"})])
def test_unreadable_cursor_restarts(cursor: str, caplog: pytest.LogCaptureFixture) -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.expect(OBJECTS, Reply(body={}), {"limit": "500", "added_after": "2024-01-01T00:00:00Z"})
        source = make_source(f"{fake.base}/taxii2/", added_after="2024-01-01T00:00:00Z")

        _, error = run_pull(source, cursor)

    assert error is None
    assert fake.mismatches == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("cursor" in message or "checkpoint" in message for message in warnings)


# -- 413 Payload Too Large -------------------------------------------------------------------------------------


def test_payload_too_large_halves_limit() -> None:
    def limited(request: Recorded) -> Reply:
        if int(request.query["limit"]) > 1000:
            return Reply(413, {"title": "Payload Too Large"})
        if "next" not in request.query:
            return Reply(body={"more": True, "next": "page-2", "objects": [indicator(1), indicator(2)]},
                         headers=dated("2024-01-01T00:00:01.000Z", "2024-01-03T12:00:00.000Z"))  # fmt: skip
        return Reply(body={"more": False, "objects": [indicator(3)]},
                     headers=dated("2024-01-04T00:00:00.000Z", "2024-01-04T00:00:00.000Z"))  # fmt: skip

    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, limited)
        source = make_source(f"{fake.base}/taxii2/", limit=4000, added_after="2024-01-01T00:00:00.000Z")

        pages, error = run_pull(source)

    requests = fake.requests_to(OBJECTS)
    assert error is None
    assert [r.query["limit"] for r in requests] == ["4000", "2000", "1000", "1000"]
    assert {r.query["added_after"] for r in requests} == {"2024-01-01T00:00:00.000Z"}
    assert len(object_ids(pages)) == 3
    assert source.passes[0][1].limits == [4000, 2000, 1000]


def test_payload_too_large_at_floor_reports() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, Reply(413, {"title": "Payload Too Large"}))
        source = make_source(f"{fake.base}/taxii2/")

        pages, error = run_pull(source)

    assert isinstance(error, RemoteRejectedError)
    assert error.status == 413
    assert "min_limit" in str(error)
    assert [r.query["limit"] for r in fake.requests_to(OBJECTS)] == ["500", "250", "125", "62", "50"]
    assert pages == []


# -- TAXII 2.0 ------------------------------------------------------------------------------------------------


def bundle(*objects: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "bundle", "id": "bundle--5d5689b5-4248-4498-861b-d87faa82fb85",
                            "spec_version": "2.0"}  # fmt: skip
    if objects:
        body["objects"] = list(objects)
    return body


def indicator20(number: int) -> dict[str, Any]:
    obj = indicator(number)
    del obj["spec_version"]
    obj["labels"] = obj.pop("indicator_types")
    return obj


def source20(fake: Any, **options: Any) -> Any:
    taxii20_layout(fake, [{"id": COLLECTION_20, "title": "Example 2.0"}])
    return make_source(f"{fake.base}/taxii/", version="2.0", **options)


def test_range_ignored_means_complete() -> None:
    with fake_taxii_server() as fake:
        source = source20(fake, limit=50, added_after="2024-05-01T00:00:00Z")
        everything = bundle(indicator20(0), indicator20(1), indicator20(2))
        fake.expect(OBJECTS_20, Reply(body=everything, content_type=STIX_20), {"added_after": "2024-05-01T00:00:00Z"},
                    headers={"Accept": STIX_20, "Range": "items 0-49"})  # fmt: skip

        pages, error = run_pull(source)

    assert error is None
    assert fake.mismatches == []
    assert len(fake.requests_to(OBJECTS_20)) == 1
    assert len(object_ids(pages)) == 3
    assert pages[-1].complete


def test_range_paging_without_content_range() -> None:
    with fake_taxii_server() as fake:
        source = source20(fake, limit=2, min_limit=1)
        fake.expect(OBJECTS_20, Reply(206, bundle(indicator20(0), indicator20(1)), {"Content-Range": "items 0-1/*"},
                                      STIX_20), {}, headers={"Range": "items 0-1"})  # fmt: skip
        fake.expect(OBJECTS_20, Reply(206, bundle(indicator20(2)), {"Content-Range": "items 2-2/*"}, STIX_20), {},
                    headers={"Range": "items 2-3"})  # fmt: skip
        # The next item after "items 2-2" is item 3; the empty bundle has no objects key and no Content-Range.
        fake.expect(OBJECTS_20, Reply(206, bundle(), content_type=STIX_20), {}, headers={"Range": "items 3-4"})

        pages, error = run_pull(source)

    ranges = [r.headers["range"] for r in fake.requests_to(OBJECTS_20)]
    assert error is None
    assert fake.mismatches == []
    assert len(object_ids(pages)) == 3
    assert ranges == ["items 0-1", "items 2-3", "items 3-4"]
    assert len(set(ranges)) == len(ranges)


def test_range_total_ends_paging() -> None:
    with fake_taxii_server() as fake:
        source = source20(fake, limit=2, min_limit=1)
        fake.expect(OBJECTS_20, Reply(206, bundle(indicator20(0), indicator20(1)), {"Content-Range": "items 0-1/3"},
                                      STIX_20), headers={"Range": "items 0-1"})  # fmt: skip
        fake.expect(OBJECTS_20, Reply(206, bundle(indicator20(2)), {"Content-Range": "items 2-2/3"}, STIX_20),
                    headers={"Range": "items 2-3"})  # fmt: skip

        pages, error = run_pull(source)

    assert error is None
    assert fake.script == []
    assert len(object_ids(pages)) == 3
    assert object_ids(pages[:1]) == [indicator20(0)["id"], indicator20(1)["id"]]


def test_range_syntax_switches_once_and_sticks() -> None:
    with fake_taxii_server() as fake:
        source = source20(fake, limit=2, min_limit=1)
        fake.expect(OBJECTS_20, Reply(400, {"title": "Bad Range header"}, content_type=STIX_20),
                    headers={"Range": "items 0-1"})  # fmt: skip
        fake.expect(OBJECTS_20, Reply(206, bundle(indicator20(0), indicator20(1)), {"Content-Range": "items 0-1/3"},
                                      STIX_20), headers={"Range": "items=0-1"})  # fmt: skip
        fake.expect(OBJECTS_20, Reply(206, bundle(indicator20(2)), {"Content-Range": "items 2-2/3"}, STIX_20),
                    headers={"Range": "items=2-3"})  # fmt: skip
        # The next pull starts with the form that worked.
        fake.expect(OBJECTS_20, Reply(206, bundle(), content_type=STIX_20), headers={"Range": "items=0-1"})

        pages, error = run_pull(source)
        _, second_error = run_pull(source)

    assert error is None
    assert second_error is None
    assert fake.mismatches == []
    assert fake.script == []
    assert len(object_ids(pages)) == 3


def test_range_past_end_is_complete() -> None:
    with fake_taxii_server() as fake:
        source = source20(fake, limit=2, min_limit=1)
        fake.expect(OBJECTS_20, Reply(206, bundle(indicator20(0), indicator20(1)), {"Content-Range": "items 0-1/*"},
                                      STIX_20))  # fmt: skip
        fake.expect(OBJECTS_20, Reply(416, {"title": "Range Not Satisfiable"}, content_type=STIX_20))

        pages, error = run_pull(source)

    assert error is None
    assert len(object_ids(pages)) == 2
    assert pages[-1].complete


def test_range_repeated_page_stops() -> None:
    with fake_taxii_server() as fake:
        source = source20(fake, limit=2, min_limit=1)
        fake.route(OBJECTS_20, Reply(206, bundle(indicator20(0), indicator20(1)), {"Content-Range": "items 0-1/*"},
                                     STIX_20))  # fmt: skip

        pages, error = run_pull(source)

    assert isinstance(error, TransientError)
    assert len(fake.requests_to(OBJECTS_20)) == 2
    assert len(object_ids(pages)) == 2


def test_auto_version_falls_back_to_20() -> None:
    with fake_taxii_server() as fake:
        taxii20_layout(fake, [{"id": COLLECTION_20, "title": "Example 2.0"}])
        fake.require_accept = "application/vnd.oasis"
        fake.expect(OBJECTS_20, Reply(body=bundle(indicator20(0)), content_type=STIX_20))
        source = make_source(f"{fake.base}/taxii/", version="auto")

        pages, error = run_pull(source)

    assert error is None
    assert source.api_root().version == "2.0"
    assert len(object_ids(pages)) == 1
    assert fake.requests[0].headers["accept"] == TAXII_21


def test_auto_version_reads_api_root_versions() -> None:
    with fake_taxii_server() as fake:
        taxii20_layout(fake, [{"id": COLLECTION_20, "title": "Example 2.0"}])
        fake.expect(OBJECTS_20, Reply(body=bundle(indicator20(0)), content_type=STIX_20))
        source = make_source(f"{fake.base}/taxii/")

        pages, error = run_pull(source)

    assert error is None
    assert source.api_root().version == "2.0"
    assert fake.requests_to(OBJECTS_20)[0].headers["accept"] == STIX_20
