"""The TAXII source against a real TAXII 2.1 server: medallion with seeded collections on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from stixbridge.connectors.taxii.medallion_server import MedallionServer, run_medallion
from stixbridge.errors import RemoteRejectedError
from stixbridge.model import Provenance
from stixbridge.secrets import Secret

from .conftest import make_source, medallion_auth, seeded_objects
from .fake_server import indicator
from .test_paging import object_ids, run_pull


def latest_versions() -> dict[str, str]:
    latest: dict[str, str] = {}
    for obj in seeded_objects():
        latest[obj["id"]] = max(latest.get(obj["id"], ""), obj["modified"])
    return latest


def test_pull_reads_every_object_in_small_pages(medallion: MedallionServer) -> None:
    source = make_source(medallion.url, limit=50, min_limit=10, collections=["indicators"], **medallion_auth(medallion))

    pages, error = run_pull(source)

    pulled = {item.obj["id"]: item.obj["modified"] for page in pages for item in page.items if item.obj}
    result = source.passes[0][1]
    assert error is None
    assert pulled == latest_versions()
    assert result.pages == 3
    assert result.complete
    assert max(len(page.items) for page in pages) == 50
    assert list(json.loads(pages[-1].cursor or "")) == [medallion.collection_ids["indicators"]]


def test_second_pull_reads_nothing_new(medallion: MedallionServer) -> None:
    source = make_source(medallion.url, collections=["indicators"], **medallion_auth(medallion))
    first, _ = run_pull(source)

    second, error = run_pull(source, first[-1].cursor)

    assert error is None
    assert object_ids(second) == []
    assert second[-1].cursor == first[-1].cursor
    assert second[-1].complete


def test_collection_by_id_or_title_same(medallion: MedallionServer) -> None:
    by_title = make_source(medallion.url, collections=["indicators"], **medallion_auth(medallion))
    collection_id = medallion.collection_ids["indicators"]
    by_id = make_source(medallion.url, collections=[collection_id], **medallion_auth(medallion))

    title_pages, _ = run_pull(by_title)
    id_pages, _ = run_pull(by_id)

    assert sorted(object_ids(title_pages)) == sorted(object_ids(id_pages))
    assert len(object_ids(id_pages)) == 120


def test_all_readable_collections_when_none_named(medallion: MedallionServer) -> None:
    source = make_source(medallion.url, **medallion_auth(medallion))

    pages, error = run_pull(source)

    assert error is None
    assert {c.title for c, _ in source.passes} == {"indicators", "empty"}
    assert len(object_ids(pages)) == 120
    assert json.loads(pages[-1].cursor or "").keys() == {medallion.collection_ids["indicators"]}


def test_api_root_url_works_as_url(medallion: MedallionServer) -> None:
    source = make_source(medallion.api_root_url, collections=["indicators"], **medallion_auth(medallion))

    pages, error = run_pull(source)

    assert error is None
    assert len(object_ids(pages)) == 120


def test_unknown_collection_lists_offered(medallion: MedallionServer) -> None:
    source = make_source(medallion.url, collections=["nope"], **medallion_auth(medallion))

    _, error = run_pull(source)

    assert isinstance(error, RemoteRejectedError)
    assert "no collection with id or title 'nope'" in str(error)
    assert "'indicators'" in str(error)


def test_wrong_password_is_clear_error(medallion: MedallionServer) -> None:
    source = make_source(medallion.url, username=medallion.username, password=Secret("wrong"))

    _, error = run_pull(source)

    assert isinstance(error, RemoteRejectedError)
    assert error.status == 401
    assert "did not accept the credentials" in str(error)


def test_fetch_by_id_returns_every_version(medallion: MedallionServer) -> None:
    source = make_source(medallion.url, collections=["indicators"], **medallion_auth(medallion))
    provenance = Provenance("alliance", medallion.collection_ids["indicators"])

    items = source.fetch_by_id(indicator(0)["id"], provenance)

    assert sorted(item.obj["modified"] for item in items if item.obj) == [
        "2024-05-02T08:00:00.000Z", "2024-05-02T08:01:00.000Z", "2024-05-02T08:02:00.000Z",
    ]  # fmt: skip
    assert {item.provenance.collection for item in items} == {medallion.collection_ids["indicators"]}


def test_fetch_by_id_unknown_object_empty(medallion: MedallionServer) -> None:
    source = make_source(medallion.url, **medallion_auth(medallion))

    items = source.fetch_by_id("indicator--00000000-0000-4000-8000-999999999999", Provenance("alliance", "indicators"))

    assert items == []


def test_fetch_by_id_without_collection_searches_all(medallion: MedallionServer) -> None:
    source = make_source(medallion.url, **medallion_auth(medallion))

    items = source.fetch_by_id(indicator(5)["id"], Provenance("alliance"))

    assert [item.obj["id"] for item in items if item.obj] == [indicator(5)["id"]]


def test_server_page_cap_below_limit() -> None:
    objects = [indicator(n) for n in range(45)]
    with run_medallion({"small-pages": objects}, max_page_size=20) as server:
        source = make_source(server.url, limit=500, **medallion_auth(server))

        pages, error = run_pull(source)

    assert error is None
    assert len(object_ids(pages)) == 45
    assert source.passes[0][1].pages == 3


@pytest.mark.parametrize("limit", [1, 7])
def test_tiny_limits_read_everything(medallion: MedallionServer, limit: int) -> None:
    source = make_source(medallion.url, limit=limit, min_limit=1, collections=["indicators"],
                         **medallion_auth(medallion))  # fmt: skip

    pages, error = run_pull(source)

    assert error is None
    assert len(set(object_ids(pages))) == 120
    assert len(object_ids(pages)) == 120
