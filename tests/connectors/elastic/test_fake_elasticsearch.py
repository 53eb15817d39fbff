"""The fake Elasticsearch rejects what a real cluster rejects, so the connector tests can fail for real."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from elasticsearch import ApiError, BadRequestError, Elasticsearch, NotFoundError, helpers

from .fake_elasticsearch import FakeElasticsearch


@pytest.fixture
def client(fake_es: FakeElasticsearch) -> Elasticsearch:
    return Elasticsearch(fake_es.url)


def raw(fake: FakeElasticsearch, method: str, path: str, body: Any = None, **headers: str) -> requests.Response:
    data = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
    headers.setdefault("Content-Type", "application/json")
    return requests.request(method, fake.url + path, data=data, headers=headers, timeout=5)


def error_type(response: requests.Response) -> str:
    return str(response.json()["error"]["type"])


def test_info_reports_version_and_product(fake_es: FakeElasticsearch) -> None:
    response = raw(fake_es, "GET", "/")

    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    assert response.json()["version"]["number"].startswith("8.")


def test_compatibility_with_9_refused_by_8(fake_es: FakeElasticsearch) -> None:
    response = raw(fake_es, "GET", "/", Accept="application/vnd.elasticsearch+json; compatible-with=9")

    assert response.status_code == 400
    assert error_type(response) == "media_type_header_exception"


def test_unknown_parameter_refused(fake_es: FakeElasticsearch) -> None:
    response = raw(fake_es, "POST", "/_bulk?refresh_now=true", "{}\n", **{"Content-Type": "application/x-ndjson"})

    assert response.status_code == 400
    assert "unrecognized parameter: [refresh_now]" in response.json()["error"]["reason"]


def test_unimplemented_parameter_refused(fake_es: FakeElasticsearch) -> None:
    response = raw(fake_es, "POST", "/_bulk?pipeline=p", "{}\n", **{"Content-Type": "application/x-ndjson"})

    assert response.status_code == 400
    assert "does not implement parameter [pipeline]" in response.json()["error"]["reason"]


def test_bulk_needs_final_newline(fake_es: FakeElasticsearch) -> None:
    body = '{"index":{"_index":"a","_id":"1"}}\n{"x":1}'
    response = raw(fake_es, "POST", "/_bulk", body, **{"Content-Type": "application/x-ndjson"})

    assert response.status_code == 400
    assert "terminated by a newline" in response.json()["error"]["reason"]


def test_bulk_unknown_action_refused(fake_es: FakeElasticsearch) -> None:
    response = raw(
        fake_es, "POST", "/_bulk", '{"upsert":{"_index":"a"}}\n{}\n', **{"Content-Type": "application/x-ndjson"}
    )

    assert response.status_code == 400
    assert "expected one of [create, delete, index, update]" in response.json()["error"]["reason"]


def test_data_stream_accepts_only_create(client: Elasticsearch, fake_es: FakeElasticsearch) -> None:
    actions: list[dict[str, Any]] = [
        {"_op_type": "create", "_index": "logs-ti_a-b", "_source": {"@timestamp": "2024-01-01T00:00:00Z"}},
        {"_op_type": "index", "_index": "logs-ti_a-b", "_id": "1", "_source": {"@timestamp": "2024-01-01T00:00:00Z"}},
        {"_op_type": "delete", "_index": "logs-ti_a-b", "_id": "1"},
    ]

    results = list(helpers.streaming_bulk(client, actions, raise_on_error=False))

    assert [ok for ok, _ in results] == [True, False, False]
    for _, item in results[1:]:
        assert "only write ops with an op_type of create" in next(iter(item.values()))["error"]["reason"]
    assert list(fake_es.data_streams) == ["logs-ti_a-b"]


def test_data_stream_needs_timestamp(client: Elasticsearch) -> None:
    ((ok, item),) = helpers.streaming_bulk(
        client, [{"_op_type": "create", "_index": "logs-x-y", "_source": {}}], raise_on_error=False
    )

    assert not ok
    assert "@timestamp" in item["create"]["error"]["reason"]


def test_higher_priority_template_wins(client: Elasticsearch, fake_es: FakeElasticsearch) -> None:
    client.indices.put_index_template(
        name="low",
        index_patterns=["app-*"],
        priority=1,
        template={"mappings": {"properties": {"a": {"type": "keyword"}}}},
    )
    client.indices.put_index_template(
        name="high", index_patterns=["app-x*"], priority=2, template={"mappings": {"properties": {"a": {"type": "ip"}}}}
    )

    client.indices.create(index="app-x1")
    client.indices.create(index="app-y1")

    assert fake_es.indices["app-x1"].mapping.type_of("a") == "ip"
    assert fake_es.indices["app-y1"].mapping.type_of("a") == "keyword"


def test_same_priority_overlap_refused(client: Elasticsearch) -> None:
    client.indices.put_index_template(name="one", index_patterns=["app-*"], priority=5)

    with pytest.raises(BadRequestError, match="same priority"):
        client.indices.put_index_template(name="two", index_patterns=["app-x*"], priority=5)


def test_creating_index_under_data_stream_template_refused(client: Elasticsearch) -> None:
    with pytest.raises(BadRequestError, match="creates data streams only"):
        client.indices.create(index="logs-ti_a-b")


def test_ip_field_refuses_cidr(client: Elasticsearch) -> None:
    client.indices.create(index="ips", mappings={"properties": {"ip": {"type": "ip"}, "r": {"type": "ip_range"}}})

    ((ok, item),) = helpers.streaming_bulk(
        client, [{"_index": "ips", "_id": "1", "_source": {"ip": "192.0.2.0/24"}}], raise_on_error=False
    )
    client.index(index="ips", id="2", document={"r": "192.0.2.0/24"})

    assert not ok
    assert item["index"]["error"]["type"] == "document_parsing_exception"
    assert client.count(index="ips", query={"term": {"r": "192.0.2.9"}})["count"] == 1


def test_strict_mapping_refuses_new_field(client: Elasticsearch) -> None:
    client.indices.create(index="strict", mappings={"dynamic": "strict", "properties": {"a": {"type": "keyword"}}})

    with pytest.raises(BadRequestError, match="strict_dynamic_mapping_exception"):
        client.index(index="strict", id="1", document={"b": "x"})


def test_dynamic_string_becomes_text_with_keyword(client: Elasticsearch, fake_es: FakeElasticsearch) -> None:
    client.index(index="dyn", id="1", document={"name": "x", "when": "2024-01-01T00:00:00Z", "n": 1})

    mapping = fake_es.indices["dyn"].mapping
    assert mapping.type_of("name") == "text"
    assert mapping.type_of("name.keyword") == "keyword"
    assert mapping.type_of("when") == "date"
    assert mapping.type_of("n") == "long"


def test_nested_query_needs_nested_mapping(client: Elasticsearch) -> None:
    client.indices.create(index="flat", mappings={"properties": {"e": {"properties": {"x": {"type": "keyword"}}}}})

    with pytest.raises(BadRequestError, match="is not of nested type"):
        client.search(index="flat", query={"nested": {"path": "e", "query": {"match_all": {}}}})


def test_nested_fields_hidden_outside_nested_query(client: Elasticsearch) -> None:
    client.indices.create(
        index="nest",
        mappings={
            "properties": {"e": {"type": "nested", "properties": {"x": {"type": "keyword"}, "y": {"type": "keyword"}}}}
        },
    )
    client.index(index="nest", id="1", document={"e": [{"x": "a", "y": "1"}, {"x": "b", "y": "2"}]})

    outside = client.count(index="nest", query={"term": {"e.x": "a"}})["count"]
    inside = client.count(index="nest", query={"nested": {"path": "e", "query": {"term": {"e.x": "a"}}}})["count"]
    same_object = client.count(
        index="nest",
        query={
            "nested": {"path": "e", "query": {"bool": {"filter": [{"term": {"e.x": "a"}}, {"term": {"e.y": "2"}}]}}}
        },
    )["count"]

    assert (outside, inside, same_object) == (0, 1, 0)


@pytest.mark.parametrize(
    ("sort", "words"),
    [
        (["_id"], "Fielddata access on the _id field is disallowed"),
        (["t"], "Text fields are not optimised"),
        (["missing"], "No mapping found for [missing]"),
    ],
)
def test_sort_refusals(client: Elasticsearch, sort: list[str], words: str) -> None:
    client.index(index="s", id="1", document={"t": "some text"})

    with pytest.raises(BadRequestError, match=words.replace("[", "\\[").replace("]", "\\]")):
        client.search(index="s", sort=sort)


def test_search_after_pages(client: Elasticsearch) -> None:
    client.indices.create(index="p", mappings={"properties": {"at": {"type": "date"}, "k": {"type": "keyword"}}})
    for n in range(5):
        client.index(index="p", id=str(n), document={"at": f"2024-01-0{1 + n % 2}T00:00:00Z", "k": f"k{n}"})

    seen: list[str] = []
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {"size": 2, "sort": [{"at": "asc"}, {"k": "asc"}]}
        if after:
            body["search_after"] = after
        hits = client.search(index="p", **body)["hits"]["hits"]
        if not hits:
            break
        seen.extend(hit["_id"] for hit in hits)
        after = hits[-1]["sort"]

    assert seen == ["0", "2", "4", "1", "3"]


def test_range_with_date_math(client: Elasticsearch, fake_es: FakeElasticsearch) -> None:
    client.index(index="d", id="1", document={"@timestamp": "2000-01-01T00:00:00Z"})

    assert client.count(index="d", query={"range": {"@timestamp": {"gte": "now-30d/d"}}})["count"] == 0
    assert client.count(index="d", query={"range": {"@timestamp": {"lt": "now-1y"}}})["count"] == 1


def test_unknown_query_refused(client: Elasticsearch) -> None:
    client.index(index="q", id="1", document={"a": 1})

    with pytest.raises(BadRequestError, match="unknown query \\[fuzzy\\]"):
        client.search(index="q", query={"fuzzy": {"a": "x"}})


def test_update_by_query_runs_only_assignments(client: Elasticsearch) -> None:
    client.index(index="u", id="1", document={"a": "x"})

    with pytest.raises(BadRequestError, match="compile error"):
        client.update_by_query(index="u", script={"source": "ctx._source.a += 1"})
    client.update_by_query(index="u", script={"source": "ctx._source['b'] = params.v", "params": {"v": "y"}})

    assert client.get(index="u", id="1")["_source"] == {"a": "x", "b": "y"}


def test_missing_index_and_alias(client: Elasticsearch) -> None:
    with pytest.raises(NotFoundError):
        client.search(index="absent")
    with pytest.raises(NotFoundError):
        client.indices.get_alias(name="absent")

    assert client.search(index="absent", ignore_unavailable=True)["hits"]["hits"] == []


def test_alias_name_clash_refused(client: Elasticsearch) -> None:
    client.indices.create(index="taken")

    with pytest.raises(BadRequestError, match="invalid_alias_name_exception"):
        client.indices.create(index="other", aliases={"taken": {}})


def test_invalid_index_name_refused(client: Elasticsearch) -> None:
    with pytest.raises(BadRequestError, match="invalid_index_name_exception"):
        client.indices.create(index="Upper")


def test_injected_status_and_retry_after(fake_es: FakeElasticsearch) -> None:
    fake_es.fail_next(429, path="^/$", retry_after="30")

    first = raw(fake_es, "GET", "/")
    second = raw(fake_es, "GET", "/")

    assert (first.status_code, first.headers["Retry-After"]) == (429, "30")
    assert second.status_code == 200


def test_authentication_required_when_configured() -> None:
    with FakeElasticsearch(basic_auth=("u", "p")) as fake:
        with pytest.raises(ApiError) as caught:
            Elasticsearch(fake.url).info()
        info = Elasticsearch(fake.url, basic_auth=("u", "p")).info()

    assert caught.value.meta.status == 401
    assert info["tagline"] == "You Know, for Search"


def test_requests_recorded(client: Elasticsearch, fake_es: FakeElasticsearch) -> None:
    client.index(index="r", id="1", document={"a": 1})
    client.search(index="r")

    assert [(r.method, r.endpoint, r.is_write) for r in fake_es.requests] == [
        ("PUT", "index", True),
        ("POST", "search", False),
    ]
