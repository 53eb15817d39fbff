"""The elastic sightings reader against indicator-match alerts stored in the fake Elasticsearch."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.elastic.ecs import ecs_documents
from stixbridge.connectors.elastic.setup import setup
from stixbridge.connectors.elastic.sightings import ElasticSightingsReader
from stixbridge.connectors.elastic.sink import ElasticSink
from stixbridge.errors import RemoteRejectedError
from stixbridge.model import Changes, SightingRecord
from stixbridge.store.sqlite import SqliteStore

from .conftest import T0, Clock, make_row, sightings_settings, sink_settings
from .fake_elasticsearch import FakeElasticsearch

ALERTS_INDEX = ".internal.alerts-security.alerts-default-000001"
ALERTS_ALIAS = ".alerts-security.alerts-default"
OUR_INDEX = "stixbridge-indicators-000001"

# The part of Kibana's alert mappings the reader queries; like Kibana's, the root is not dynamic.
KEYWORD = {"type": "keyword"}
ALERT_MAPPINGS = {
    "dynamic": False,
    "properties": {
        "@timestamp": {"type": "date"},
        "kibana": {
            "properties": {
                "alert": {
                    "properties": {
                        "uuid": KEYWORD,
                        "original_time": {"type": "date"},
                        "workflow_status": KEYWORD,
                        "workflow_reason": KEYWORD,
                        "building_block_type": KEYWORD,
                        "suppression": {"properties": {"docs_count": {"type": "long"}}},
                        "rule": {"properties": {"type": KEYWORD, "name": KEYWORD, "uuid": KEYWORD}},
                    }
                }
            }
        },
        "threat": {
            "properties": {
                "enrichments": {
                    "type": "nested",
                    "properties": {
                        "matched": {
                            "properties": {
                                "atomic": KEYWORD,
                                "field": KEYWORD,
                                "id": KEYWORD,
                                "index": KEYWORD,
                                "type": KEYWORD,
                            }
                        },
                        "feed": {"properties": {"name": KEYWORD}},
                        "indicator": {"properties": {"name": KEYWORD, "type": KEYWORD, "provider": KEYWORD}},
                    },
                }
            }
        },
        "host": {"properties": {"name": KEYWORD, "ip": {"type": "ip"}}},
        "source": {"properties": {"ip": {"type": "ip"}}},
        "destination": {"properties": {"ip": {"type": "ip"}}},
        "user": {"properties": {"name": KEYWORD}},
    },
}


def create_alerts_index(client: Elasticsearch) -> None:
    client.indices.create(index=ALERTS_INDEX, mappings=ALERT_MAPPINGS, aliases={ALERTS_ALIAS: {"is_write_index": True}})


def enrichment(
    row_value: str,
    atom_type: str = "ipv4",
    *,
    index: str = OUR_INDEX,
    flat: bool = False,
    with_id: bool = True,
    event_field: str = "destination.ip",
    spelling: int = 0,
    drop: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Return an enrichment as Kibana writes it for a match on one of our documents.

    ``spelling`` picks the document of another spelling of a registry key; ``drop`` removes fields from
    the indicator copy, as if Kibana had not copied them.
    """
    row = make_row(row_value, atom_type)
    document_id, document = ecs_documents(row, T0)[spelling]
    indicator = document["threat"]["indicator"]
    for name in drop + (() if with_id else ("id",)):
        del indicator[name]
    matched = {
        "atomic": indicator["name"],
        "field": event_field,
        "id": document_id,
        "index": index,
        "type": "indicator_match_rule",
    }
    if flat:
        return {"indicator": indicator, "feed.name": "stixbridge", **{f"matched.{k}": v for k, v in matched.items()}}
    return {"indicator": indicator, "feed": {"name": "stixbridge"}, "matched": matched}


def alert(
    uuid: str,
    at: datetime,
    enrichments: list[dict[str, Any]],
    *,
    flat: bool = True,
    kibana: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return an alert document; ``flat`` writes kibana fields with dotted keys as Kibana stores them.

    ``kibana`` adds or replaces fields under ``kibana.alert``, named relative to it (``rule.type``).
    """
    fields = {
        "uuid": uuid,
        "original_time": (at - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "rule.type": "threat_match",
        "rule.name": "Threat Intel IP Address Indicator Match",
        "workflow_status": "open",
        **(kibana or {}),
    }
    document: dict[str, Any] = {
        "@timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "host": {"name": "ws-17", "ip": ["192.0.2.10"]},
        "destination": {"ip": "198.51.100.7"},
    }
    if flat:
        document.update({f"kibana.alert.{key}": value for key, value in fields.items()})
        document["threat"] = {"enrichments": enrichments}
    else:
        nested: dict[str, Any] = {}
        for key, value in fields.items():
            node = nested
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        document["kibana"] = {"alert": nested}
        document["threat.enrichments"] = enrichments
    return document


@pytest.fixture
def alerts(fake_es: FakeElasticsearch) -> Elasticsearch:
    client = Elasticsearch(fake_es.url)
    create_alerts_index(client)
    return client


def add(client: Elasticsearch, *documents: dict[str, Any]) -> None:
    for document in documents:
        client.index(
            index=ALERTS_ALIAS,
            id=document.get("kibana.alert.uuid") or document["kibana"]["alert"]["uuid"],
            document=document,
        )


def read_all(reader: ElasticSightingsReader, cursor: str | None = None) -> tuple[list[SightingRecord], str | None]:
    records: list[SightingRecord] = []
    for batch, new_cursor in reader.read(cursor):
        records.extend(batch)
        cursor = new_cursor
    return records, cursor


def make_reader(fake: FakeElasticsearch, context: ConnectorContext, **changes: Any) -> ElasticSightingsReader:
    return ElasticSightingsReader("elastic", sightings_settings([fake.url], **changes), context)


def test_flat_alert_becomes_sighting(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext, clock: Clock
) -> None:
    row = make_row("198.51.100.7")
    add(alerts, alert("a1", T0 - timedelta(hours=1), [enrichment("198.51.100.7")]))

    records, cursor = read_all(make_reader(fake_es, context))

    (record,) = records
    assert record.source == "elastic"
    assert record.value == "198.51.100.7"
    assert record.atom_type == "ipv4"
    assert record.indicator_id == row.indicator_id
    assert record.seen_at == T0 - timedelta(hours=1, minutes=5)
    assert record.kind == "seen"
    assert record.count == 1
    assert record.external_id == f"a1/{row.key}"
    context_map = dict(record.context)
    assert context_map["host.name"] == "ws-17"
    assert context_map["matched.field"] == "destination.ip"
    assert context_map["rule.name"] == "Threat Intel IP Address Indicator Match"
    assert json.loads(cursor or "")[1] == "a1"


def test_nested_alert_with_flat_enrichment(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext
) -> None:
    add(alerts, alert("a2", T0 - timedelta(hours=1), [enrichment("cdn.example.net", "domain", flat=True)], flat=False))

    records, _ = read_all(make_reader(fake_es, context))

    assert [(r.value, r.atom_type, r.external_id.split("/")[0]) for r in records] == [
        ("cdn.example.net", "domain", "a2")
    ]


def test_only_our_enrichments_read(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext
) -> None:
    ours = enrichment("198.51.100.7")
    theirs = enrichment("198.51.100.7", index=".ds-logs-ti_abusech.url-2024.06.01-000001")
    add(
        alerts,
        alert("mixed", T0 - timedelta(hours=2), [theirs, ours]),
        alert("other", T0 - timedelta(hours=1), [theirs]),
    )

    records, _ = read_all(make_reader(fake_es, context))

    assert [r.external_id.split("/")[0] for r in records] == ["mixed"]


def test_alias_name_and_alias_members_count_as_ours(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext, tmp_path: Path
) -> None:
    setup(sink_settings([fake_es.url], index="stixbridge-indicators-000007"), base_dir=tmp_path)
    add(
        alerts,
        alert(
            "by-alias",
            T0 - timedelta(hours=2),
            [enrichment("198.51.100.1", index="logs-ti_stixbridge_latest.indicator")],
        ),
        alert("by-member", T0 - timedelta(hours=1), [enrichment("198.51.100.2", index="stixbridge-indicators-000007")]),
    )

    records, _ = read_all(make_reader(fake_es, context))

    assert [r.value for r in records] == ["198.51.100.1", "198.51.100.2"]


def test_cursor_reads_each_alert_once(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext, clock: Clock
) -> None:
    add(alerts, *[alert(f"u{n}", T0 - timedelta(hours=3), [enrichment(f"198.51.100.{n}")]) for n in range(5)])
    reader = make_reader(fake_es, context, page_size=2)

    batches = list(reader.read(None))
    first_run = [r.external_id.split("/")[0] for batch, _ in batches for r in batch]
    cursor = batches[-1][1]
    add(alerts, alert("late", T0 - timedelta(minutes=30), [enrichment("198.51.100.77")]))
    second, cursor = read_all(reader, cursor)
    third, _ = read_all(reader, cursor)

    assert first_run == ["u0", "u1", "u2", "u3", "u4"]
    assert len(batches) == 3
    assert [r.external_id.split("/")[0] for r in second] == ["late"]
    assert third == []


def test_young_alerts_wait_for_next_run(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext, clock: Clock
) -> None:
    add(alerts, alert("fresh", T0 - timedelta(seconds=30), [enrichment("198.51.100.7")]))
    reader = make_reader(fake_es, context)

    early, cursor = read_all(reader)
    clock.advance(minutes=5)
    later, _ = read_all(reader, cursor)

    assert early == []
    assert [r.external_id.split("/")[0] for r in later] == ["fresh"]


def test_first_run_reads_limited_history(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext
) -> None:
    add(
        alerts,
        alert("ancient", T0 - timedelta(days=40), [enrichment("198.51.100.7")]),
        alert("recent", T0 - timedelta(days=2), [enrichment("198.51.100.8")]),
    )

    records, _ = read_all(make_reader(fake_es, context))

    assert [r.external_id.split("/")[0] for r in records] == ["recent"]


def test_building_blocks_and_other_rules_skipped(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext
) -> None:
    add(
        alerts,
        alert("bb", T0 - timedelta(hours=2), [enrichment("198.51.100.7")], kibana={"building_block_type": "default"}),
        alert("query", T0 - timedelta(hours=1), [enrichment("198.51.100.7")], kibana={"rule.type": "query"}),
    )

    records, _ = read_all(make_reader(fake_es, context))

    assert records == []


def test_false_positive_and_suppressed_alert(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext
) -> None:
    add(
        alerts,
        alert(
            "fp",
            T0 - timedelta(hours=1),
            [enrichment("198.51.100.7")],
            kibana={"workflow_status": "closed", "workflow_reason": "false_positive", "suppression.docs_count": 4},
        ),
    )

    (record,), _ = read_all(make_reader(fake_es, context))

    assert record.kind == "false-positive"
    assert record.count == 5


def test_repeated_enrichment_read_once(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext
) -> None:
    twice = enrichment("198.51.100.7")
    add(alerts, alert("dup", T0 - timedelta(hours=1), [twice, twice, enrichment("198.51.100.8")]))

    records, _ = read_all(make_reader(fake_es, context))

    assert sorted(r.value for r in records) == ["198.51.100.7", "198.51.100.8"]


def test_missing_id_and_type_read_from_our_document(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext, tmp_path: Path
) -> None:
    setup(sink_settings([fake_es.url]), base_dir=tmp_path)
    row = make_row("d41d8cd98f00b204e9800998ecf8427e", "md5")
    with ElasticSink("elastic", sink_settings([fake_es.url]), context) as sink:
        sink.push(Changes(upserts=[row]))
    copy = enrichment(row.value, "md5", with_id=False, drop=("file",))
    add(alerts, alert("md5", T0 - timedelta(hours=1), [copy]))

    (record,), _ = read_all(make_reader(fake_es, context))

    assert record.atom_type == "md5"
    assert record.indicator_id == row.indicator_id


def test_missing_document_leaves_fields_empty(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext
) -> None:
    copy = enrichment("d41d8cd98f00b204e9800998ecf8427e", "md5", with_id=False, drop=("file",))
    add(alerts, alert("gone", T0 - timedelta(hours=1), [copy]))

    (record,), _ = read_all(make_reader(fake_es, context))

    assert record.atom_type is None
    assert record.indicator_id is None


def test_registry_spelling_read_as_canonical_value(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext, tmp_path: Path
) -> None:
    setup(sink_settings([fake_es.url]), base_dir=tmp_path)
    row = make_row("HKEY_LOCAL_MACHINE\\Software\\Run", "registry-key")
    with ElasticSink("elastic", sink_settings([fake_es.url]), context) as sink:
        sink.push(Changes(upserts=[row]))
    add(
        alerts,
        alert(
            "reg",
            T0 - timedelta(hours=1),
            [enrichment(row.value, "registry-key", spelling=1, event_field="registry.path")],
        ),
    )

    (record,), _ = read_all(make_reader(fake_es, context))

    assert record.value == "HKEY_LOCAL_MACHINE\\Software\\Run"
    assert record.atom_type == "registry-key"
    assert ("matched.atomic", "HKLM\\Software\\Run") in record.context
    assert record.external_id == f"reg/{row.key}-1"


def test_no_alerts_index_yet(fake_es: FakeElasticsearch, context: ConnectorContext) -> None:
    records, cursor = read_all(make_reader(fake_es, context))

    assert records == []
    assert cursor is None


def test_bad_cursor_restarts(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext, caplog: pytest.LogCaptureFixture
) -> None:
    add(alerts, alert("a", T0 - timedelta(hours=1), [enrichment("198.51.100.7")]))

    records, _ = read_all(make_reader(fake_es, context), "not json")

    assert len(records) == 1
    assert "unreadable Elastic sightings cursor" in caplog.text


def test_other_space(fake_es: FakeElasticsearch, context: ConnectorContext) -> None:
    client = Elasticsearch(fake_es.url)
    client.indices.create(
        index=".internal.alerts-security.alerts-soc-000001",
        mappings=ALERT_MAPPINGS,
        aliases={".alerts-security.alerts-soc": {}},
    )
    client.index(
        index=".alerts-security.alerts-soc",
        id="s",
        document=alert("s", T0 - timedelta(hours=1), [enrichment("198.51.100.7")]),
    )

    records, _ = read_all(make_reader(fake_es, context, space="soc"))

    assert len(records) == 1


def test_search_refused_raises(fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext) -> None:
    fake_es.fail_next(403, path="_search", error_type="security_exception")

    with pytest.raises(RemoteRejectedError, match="HTTP 403"):
        read_all(make_reader(fake_es, context))


def test_sightings_stored_once(
    fake_es: FakeElasticsearch, alerts: Elasticsearch, context: ConnectorContext, tmp_path: Path
) -> None:
    add(alerts, alert("a", T0 - timedelta(hours=1), [enrichment("198.51.100.7")]))
    reader = make_reader(fake_es, context)
    store = SqliteStore(tmp_path / "state.db")

    for records, cursor in reader.read(store.get_cursor("sightings.elastic")):
        store.add_sightings(records, "sightings.elastic", cursor)
    again = [len(records) for records, _ in reader.read(store.get_cursor("sightings.elastic"))]
    added_twice = store.add_sightings(read_all(reader)[0], "other", None)
    store.close()

    assert again == []
    assert added_twice == 0
