"""Sink scenarios run on the fake Elasticsearch and, with ``-m live`` and STIXBRIDGE_TEST_ES_URL, on a real one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.elastic.setup import setup
from stixbridge.connectors.elastic.sink import ElasticSink
from stixbridge.model import Changes

from .conftest import Clock, Cluster, delivered, make_row


def client_for(cluster: Cluster) -> Elasticsearch:
    settings = cluster.settings()
    options: dict[str, Any] = {"hosts": cluster.hosts}
    if settings.api_key is not None:
        options["api_key"] = settings.api_key.reveal()
    elif settings.password is not None:
        options["basic_auth"] = (settings.username, settings.password.reveal())
    if settings.ca_bundle:
        options["ca_certs"] = settings.ca_bundle
    return Elasticsearch(**options)


def documents(cluster: Cluster) -> dict[str, dict[str, Any]]:
    client = client_for(cluster)
    client.indices.refresh(index=cluster.alias)
    hits = client.search(index=cluster.alias, size=1000, query={"match_all": {}})["hits"]["hits"]
    client.close()
    return {hit["_id"]: hit["_source"] for hit in hits}


def make_sink(cluster: Cluster, context: ConnectorContext, **changes: Any) -> ElasticSink:
    setup(cluster.settings(), base_dir=context.base_dir)
    sink = ElasticSink("elastic", cluster.settings(**changes), context)
    sink.begin()
    return sink


def test_setup_twice_changes_nothing(cluster: Cluster, tmp_path: Path) -> None:
    first = setup(cluster.settings(), base_dir=tmp_path)
    second = setup(cluster.settings(), base_dir=tmp_path)

    assert len(first) == 2
    assert second == []


def test_push_writes_and_deletes(cluster: Cluster, context: ConnectorContext) -> None:
    rows = [make_row(f"198.51.100.{n}") for n in range(1, 6)] + [make_row("bad.example.com", "domain")]
    sink = make_sink(cluster, context)

    written = sink.push(Changes(upserts=rows))
    deleted = sink.push(Changes(deletes=[delivered(rows[0]), delivered(make_row("203.0.113.99"))]))
    sink.finish(True)
    sink.close()

    assert sorted(written.written) == sorted(row.key for row in rows)
    assert written.failed == {}
    assert sorted(deleted.deleted) == sorted([rows[0].key, make_row("203.0.113.99").key])
    stored = documents(cluster)
    assert set(stored) == {row.key for row in rows[1:]}
    assert stored[rows[1].key]["threat"]["indicator"]["ip"] == "198.51.100.2"


def test_cidr_searchable_by_address(cluster: Cluster, context: ConnectorContext) -> None:
    row = make_row("198.51.100.0/24", "ipv4-cidr")
    sink = make_sink(cluster, context)

    result = sink.push(Changes(upserts=[row]))
    sink.close()
    client = client_for(cluster)
    client.indices.refresh(index=cluster.alias)
    hits = client.search(index=cluster.alias, query={"term": {"stixbridge.ip_range": "198.51.100.77"}})["hits"]["hits"]
    client.close()

    assert result.written == [row.key]
    assert [hit["_id"] for hit in hits] == [row.key]


def test_unchanged_sync_sends_no_write(cluster: Cluster, context: ConnectorContext) -> None:
    sink = make_sink(cluster, context)
    sink.push(Changes(upserts=[make_row()]))
    writes_before = sink.meter.write_requests

    sink.push(Changes())
    sink.finish(True)
    sink.close()

    assert sink.meter.write_requests == writes_before


def test_old_documents_stamped_again(cluster: Cluster, context: ConnectorContext, clock: Clock) -> None:
    clock.now = datetime.now(tz=UTC)
    valid = make_row("198.51.100.1")
    expiring = make_row("198.51.100.2", valid_until=clock.now.replace(microsecond=0))
    sink = make_sink(cluster, context)
    sink.push(Changes(upserts=[valid, expiring]))
    written_at = documents(cluster)[valid.key]["@timestamp"]

    clock.advance(days=8)
    sink.finish(True)
    sink.close()
    stored = documents(cluster)

    assert stored[valid.key]["@timestamp"] != written_at
    assert stored[valid.key]["@timestamp"].startswith(clock.now.strftime("%Y-%m-%dT%H:%M"))
    assert stored[expiring.key]["@timestamp"] == written_at
