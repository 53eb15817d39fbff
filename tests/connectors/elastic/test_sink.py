"""The elastic sink against the fake Elasticsearch: per-item outcomes, retries, chunking and refresh."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.elastic.ecs import ecs_document
from stixbridge.connectors.elastic.setup import setup
from stixbridge.connectors.elastic.sink import ElasticSink, _Batch
from stixbridge.errors import ConfigError, RemoteRejectedError, TransientError
from stixbridge.model import Changes, PushResult
from stixbridge.secrets import Secret

from .conftest import Clock, delivered, make_row, sink_settings
from .fake_elasticsearch import FakeElasticsearch

ALIAS = "logs-ti_stixbridge_latest.indicator"


@pytest.fixture
def ready_es(fake_es: FakeElasticsearch, tmp_path: Path) -> FakeElasticsearch:
    setup(sink_settings([fake_es.url]), base_dir=tmp_path)
    fake_es.clear_requests()
    return fake_es


@pytest.fixture
def sink(ready_es: FakeElasticsearch, context: ConnectorContext) -> Iterator[ElasticSink]:
    with ElasticSink("elastic", sink_settings([ready_es.url]), context) as sink:
        sink.begin()
        yield sink


def bulk_requests(fake: FakeElasticsearch) -> list[int]:
    return [record.body_bytes for record in fake.requests if record.endpoint == "bulk"]


def test_documents_are_ecs_documents(sink: ElasticSink, ready_es: FakeElasticsearch, clock: Clock) -> None:
    row = make_row("https://login.example.com/reset", "url")

    result = sink.push(Changes(upserts=[row]))

    assert result.written == [row.key]
    assert ready_es.documents(ALIAS)[row.key] == ecs_document(row, clock.now)
    assert result.requests == 1
    assert result.bytes_sent == bulk_requests(ready_es)[0]


def test_empty_push_sends_nothing(sink: ElasticSink, ready_es: FakeElasticsearch) -> None:
    ready_es.clear_requests()

    result = sink.push(Changes())

    assert result == PushResult()
    assert ready_es.requests == []


def test_changed_row_replaces_document(sink: ElasticSink, ready_es: FakeElasticsearch) -> None:
    sink.push(Changes(upserts=[make_row(confidence=10)]))

    sink.push(Changes(upserts=[make_row(confidence=90)]))

    (document,) = ready_es.documents(ALIAS).values()
    assert document["threat"]["indicator"]["confidence"] == "High"


def test_delete_of_missing_document_succeeds(sink: ElasticSink) -> None:
    gone = make_row("203.0.113.5")

    result = sink.push(Changes(deletes=[delivered(gone)]))

    assert result.deleted == [gone.key]
    assert result.failed == {}


def test_rejected_document_reported_others_written(sink: ElasticSink, ready_es: FakeElasticsearch) -> None:
    good = make_row("198.51.100.1")
    bad = make_row("not-an-address", "ipv4")

    result = sink.push(Changes(upserts=[good, bad]))

    assert result.written == [good.key]
    assert list(result.failed) == [bad.key]
    assert f"document {bad.key}: HTTP 400 on index: document_parsing_exception" in result.failed[bad.key]
    assert "threat.indicator.ip" in result.failed[bad.key]


def test_unsupported_row_skipped_without_request(sink: ElasticSink, ready_es: FakeElasticsearch) -> None:
    row = make_row("ab" * 32, "sha3-256")

    result = sink.push(Changes(upserts=[row]))

    assert not sink.accepts(row)
    assert result.skipped == {"atom type sha3-256: ECS file.hash has no SHA3 field": 1}
    assert result.written == result.deleted == []
    assert result.failed == {}
    assert bulk_requests(ready_es) == []


def test_registry_key_written_once_per_spelling(sink: ElasticSink, ready_es: FakeElasticsearch) -> None:
    row = make_row("HKEY_LOCAL_MACHINE\\Software\\Run", "registry-key")

    written = sink.push(Changes(upserts=[row]))
    stored = ready_es.documents(ALIAS)
    deleted = sink.push(Changes(deletes=[delivered(row)]))

    assert written.written == [row.key]
    assert len(stored) > 1
    assert {doc["threat"]["indicator"]["registry"]["path"] for doc in stored.values()} >= {
        "HKEY_LOCAL_MACHINE\\Software\\Run",
        "HKLM\\Software\\Run",
    }
    assert deleted.deleted == [row.key]
    assert ready_es.documents(ALIAS) == {}


def test_row_fails_when_one_spelling_fails(sink: ElasticSink, ready_es: FakeElasticsearch) -> None:
    row = make_row("HKEY_LOCAL_MACHINE\\Software\\Run", "registry-key")
    ready_es.reject_items(500, times=1, ids={f"{row.key}-1"})

    result = sink.push(Changes(upserts=[row]))

    assert result.written == []
    assert result.failed[row.key].startswith(f"document {row.key}-1: HTTP 500 on index")


def test_items_rejected_with_429_are_retried(sink: ElasticSink, ready_es: FakeElasticsearch) -> None:
    rows = [make_row(f"198.51.100.{n}") for n in range(10)]
    ready_es.reject_items(429, times=3)

    result = sink.push(Changes(upserts=rows))

    assert sorted(result.written) == sorted(row.key for row in rows)
    assert result.failed == {}
    assert len(bulk_requests(ready_es)) == 2
    assert bulk_requests(ready_es)[1] < bulk_requests(ready_es)[0]


def test_items_still_rejected_after_retries_fail(ready_es: FakeElasticsearch, context: ConnectorContext) -> None:
    row = make_row()
    ready_es.reject_items(429, times=100, ids={row.key})
    with ElasticSink("elastic", sink_settings([ready_es.url], max_retries=2), context) as sink:
        result = sink.push(Changes(upserts=[row, make_row("198.51.100.9")]))

    assert "HTTP 429 on index: es_rejected_execution_exception" in result.failed[row.key]
    assert result.written == [make_row("198.51.100.9").key]
    assert len(bulk_requests(ready_es)) == 3


def test_other_item_errors_not_retried(sink: ElasticSink, ready_es: FakeElasticsearch) -> None:
    row = make_row()
    ready_es.reject_items(500, times=1, ids={row.key})

    result = sink.push(Changes(upserts=[row]))

    assert "HTTP 500" in result.failed[row.key]
    assert len(bulk_requests(ready_es)) == 1


def test_transient_503_retried_by_transport(sink: ElasticSink, ready_es: FakeElasticsearch) -> None:
    ready_es.fail_next(503, path="/_bulk", times=2)

    result = sink.push(Changes(upserts=[make_row()]))

    assert len(result.written) == 1
    assert len(bulk_requests(ready_es)) == 3


def test_lasting_503_raises_transient(sink: ElasticSink, ready_es: FakeElasticsearch) -> None:
    ready_es.fail_next(503, path="/_bulk", times=10)

    with pytest.raises(TransientError, match="HTTP 503") as caught:
        sink.push(Changes(upserts=[make_row()]))

    assert caught.value.status == 503


def test_whole_request_429_retried_with_backoff(sink: ElasticSink, ready_es: FakeElasticsearch) -> None:
    # The transport tries 4 times; streaming_bulk then backs off and sends the chunk again.
    ready_es.fail_next(429, path="/_bulk", times=5)

    result = sink.push(Changes(upserts=[make_row()]))

    assert len(result.written) == 1
    assert len(bulk_requests(ready_es)) == 6


def test_timeout_retried_then_raised(ready_es: FakeElasticsearch, context: ConnectorContext) -> None:
    with ElasticSink("elastic", sink_settings([ready_es.url], timeout=0.3), context) as sink:
        ready_es.delay_next(0.6, path="/_bulk", times=1)
        first = sink.push(Changes(upserts=[make_row()]))

        ready_es.delay_next(0.6, path="/_bulk", times=10)
        with pytest.raises(TransientError, match="timed out"):
            sink.push(Changes(upserts=[make_row("198.51.100.8")]))

    assert len(first.written) == 1


def test_unauthorized_raises_rejected(tmp_path: Path, context: ConnectorContext) -> None:
    with FakeElasticsearch(api_key="right") as fake:
        with ElasticSink("elastic", sink_settings([fake.url], api_key=Secret("wrong")), context) as sink:
            with pytest.raises(RemoteRejectedError, match="HTTP 401.*credentials"):
                sink.push(Changes(upserts=[make_row()]))


def test_chunks_stay_under_byte_limit(ready_es: FakeElasticsearch, context: ConnectorContext) -> None:
    rows = [make_row(f"198.51.100.{n}", description="x" * 200) for n in range(60)]
    with ElasticSink("elastic", sink_settings([ready_es.url], chunk_bytes=8192), context) as sink:
        result = sink.push(Changes(upserts=rows))

    sizes = bulk_requests(ready_es)
    assert len(result.written) == 60
    assert len(sizes) > 3
    assert max(sizes) <= 8192
    assert result.requests == len(sizes)


def test_chunks_stay_under_document_limit(ready_es: FakeElasticsearch, context: ConnectorContext) -> None:
    rows = [make_row(f"198.51.100.{n}") for n in range(25)]
    with ElasticSink("elastic", sink_settings([ready_es.url], chunk_docs=10), context) as sink:
        sink.push(Changes(upserts=rows))

    assert len(bulk_requests(ready_es)) == 3


def test_begin_without_setup_names_the_fix(fake_es: FakeElasticsearch, context: ConnectorContext) -> None:
    with ElasticSink("elastic", sink_settings([fake_es.url]), context) as sink:
        with pytest.raises(ConfigError, match="run 'stixbridge elastic setup'"):
            sink.begin()


def test_begin_unreachable_is_transient(context: ConnectorContext) -> None:
    with ElasticSink("elastic", sink_settings(["http://127.0.0.1:9"], timeout=1.0), context) as sink:
        with pytest.raises(TransientError):
            sink.begin()


def test_missing_alias_never_creates_index(fake_es: FakeElasticsearch, context: ConnectorContext) -> None:
    # Without require_alias the first write would auto-create an index with dynamic text mappings.
    with ElasticSink("elastic", sink_settings([fake_es.url]), context) as sink:
        result = sink.push(Changes(upserts=[make_row()]))

    assert "index_not_found_exception" in next(iter(result.failed.values()))
    assert fake_es.indices == {}


def test_alias_without_write_index_reported(ready_es: FakeElasticsearch, context: ConnectorContext) -> None:
    client = Elasticsearch(ready_es.url)
    client.indices.create(index="stixbridge-indicators-000002")
    client.indices.update_aliases(
        actions=[
            {"add": {"index": "stixbridge-indicators-000001", "alias": ALIAS, "is_write_index": False}},
            {"add": {"index": "stixbridge-indicators-000002", "alias": ALIAS}},
        ]
    )
    with ElasticSink("elastic", sink_settings([ready_es.url]), context) as sink:
        result = sink.push(Changes(upserts=[make_row()]))

    assert "no write index is defined" in next(iter(result.failed.values()))


def test_failures_logged_briefly(sink: ElasticSink, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    rows = [make_row(f"bad-{n}", "ipv4") for n in range(8)]

    result = sink.push(Changes(upserts=rows))

    assert len(result.failed) == 8
    assert caplog.text.count("could not write document") == 5
    assert "3 more documents failed" in caplog.text
    assert "wrote 0 and deleted 0 documents in 1 requests" in caplog.text


@pytest.mark.parametrize(
    ("action", "item", "outcome"),
    [
        (
            "write",
            {"create": {"_id": "a", "status": 409, "error": {"type": "version_conflict_engine_exception"}}},
            "written",
        ),
        ("delete", {"delete": {"_id": "a", "status": 404, "result": "not_found"}}, "deleted"),
        ("delete", {"delete": {"_id": "a", "status": 200}}, "deleted"),
        ("write", {"index": {"_id": "a", "status": 201}}, "written"),
        (
            "write",
            {"index": {"_id": "a", "status": 409, "error": {"type": "version_conflict_engine_exception"}}},
            "failed",
        ),
        ("delete", {"delete": {"_id": "a", "status": 500, "error": "boom"}}, "failed"),
    ],
)
def test_batch_outcomes(action: str, item: dict, outcome: str) -> None:
    batch = _Batch()
    batch.expect("a", "a", action)
    result = PushResult()

    batch.record(200 <= next(iter(item.values()))["status"] < 300, item)
    batch.settle(result)

    assert {"written": result.written, "deleted": result.deleted, "failed": list(result.failed)}[outcome] == ["a"]


def test_batch_document_without_outcome_fails() -> None:
    batch = _Batch()
    batch.expect("a", "a", "write")
    result = PushResult()

    batch.settle(result)

    assert result.failed == {"a": "Elasticsearch returned no outcome for a document of this row"}


# -- @timestamp refresh ---------------------------------------------------------------------------------


def test_refresh_skips_when_nothing_due(sink: ElasticSink, ready_es: FakeElasticsearch, clock: Clock) -> None:
    sink.push(Changes(upserts=[make_row()]))
    clock.advance(days=6)
    ready_es.clear_requests()

    assert sink.refresh_timestamps() == 0
    assert [record.endpoint for record in ready_es.requests] == ["count"]


def test_refresh_stamps_due_documents(sink: ElasticSink, ready_es: FakeElasticsearch, clock: Clock) -> None:
    old = make_row("198.51.100.1")
    sink.push(Changes(upserts=[old]))
    clock.advance(days=5)
    recent = make_row("198.51.100.2")
    sink.push(Changes(upserts=[recent]))
    clock.advance(days=3)

    stamped = sink.refresh_timestamps()

    stored = ready_es.documents(ALIAS)
    assert stamped == 1
    assert stored[old.key]["@timestamp"] == clock.now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert stored[recent.key]["@timestamp"] == (clock.now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_refresh_leaves_expired_documents(sink: ElasticSink, ready_es: FakeElasticsearch, clock: Clock) -> None:
    expired = make_row(valid_until=clock.now + timedelta(days=1))
    sink.push(Changes(upserts=[expired]))
    clock.advance(days=10)

    assert sink.refresh_timestamps() == 0


def test_refresh_runs_only_after_complete_push(sink: ElasticSink, ready_es: FakeElasticsearch, clock: Clock) -> None:
    sink.push(Changes(upserts=[make_row()]))
    clock.advance(days=10)
    ready_es.clear_requests()

    sink.finish(False)

    assert ready_es.requests == []


def test_refresh_failure_only_logged(
    sink: ElasticSink, ready_es: FakeElasticsearch, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    sink.push(Changes(upserts=[make_row()]))
    clock.advance(days=10)
    ready_es.fail_next(400, path="_update_by_query", error_type="script_exception")

    sink.finish(True)

    assert "could not refresh @timestamp" in caplog.text
