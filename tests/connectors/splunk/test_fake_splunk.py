"""The fake splunkd keeps the rules of the real one that the connectors depend on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from splunklib import binding, client, results

from .conftest import PASSWORD
from .fake_splunk import FakeSplunk


@pytest.fixture
def service(fake: FakeSplunk) -> Iterator[Any]:
    port = int(fake.url.rsplit(":", 1)[1])
    yield client.Service(
        host="127.0.0.1",
        port=port,
        scheme="http",
        username="admin",
        password=PASSWORD,
        autologin=True,
        owner="nobody",
        app="TA-stixbridge",
    )


def data_path(name: str) -> str:
    return f"storage/collections/data/{name}"


def test_answers_xml_or_json_by_output_mode(service: Any) -> None:
    xml = service.get("configs/conf-limits/kvstore").body.read()
    answer = json.loads(service.get("configs/conf-limits/kvstore", output_mode="json").body.read())

    assert xml.startswith(b"<?xml")
    assert answer["entry"][0]["content"]["max_documents_per_batch_save"] == "1000"


def test_errors_follow_output_mode(service: Any) -> None:
    with pytest.raises(binding.HTTPError) as as_xml:
        service.get("storage/collections/config/nothing")
    with pytest.raises(binding.HTTPError) as as_json:
        service.get("storage/collections/config/nothing", output_mode="json")

    assert as_xml.value.status == 404
    assert b'<msg type="ERROR">' in as_xml.value.body
    assert json.loads(as_json.value.body)["messages"][0]["type"] == "ERROR"


def test_server_info_read_by_sdk(service: Any) -> None:
    assert service.splunk_version == (9, 3, 1)
    assert service.disable_v2_api is False


def test_unknown_collection_is_404(service: Any) -> None:
    with pytest.raises(binding.HTTPError) as caught:
        service.get(data_path("nothing"), output_mode="json")

    assert caught.value.status == 404


def test_batch_save_over_limit_is_400(fake: FakeSplunk, service: Any) -> None:
    fake.add_collection("TA-stixbridge", "c")
    fake.limits["max_documents_per_batch_save"] = 2
    documents = json.dumps([{"_key": str(i)} for i in range(3)])

    with pytest.raises(binding.HTTPError) as caught:
        service.post(data_path("c") + "/batch_save", headers=[("Content-Type", "application/json")], body=documents)

    assert caught.value.status == 400
    assert b"max_documents_per_batch_save=2" in caught.value.body
    assert fake.rows("TA-stixbridge", "c") == {}


def test_reads_cut_silently_at_row_cap(fake: FakeSplunk, service: Any) -> None:
    fake.add_collection("TA-stixbridge", "c")
    fake.rows("TA-stixbridge", "c").update({f"k{i:03}": {"_key": f"k{i:03}"} for i in range(30)})
    fake.limits["max_rows_per_query"] = 10

    rows = json.loads(service.get(data_path("c"), output_mode="json", limit=0).body.read())

    assert len(rows) == 10


def test_sdk_kvstore_api_works(fake: FakeSplunk, service: Any) -> None:
    fake.add_collection("TA-stixbridge", "c")
    data = client.KVStoreCollectionData(service.kvstore["c"])

    data.batch_save({"_key": "a", "v": 1}, {"_key": "b", "v": 2})
    data.delete(json.dumps({"v": {"$gt": 1}}))

    assert data.query() == [{"_key": "a", "v": 1, "_user": "nobody"}]


def test_undocumented_operator_rejected(fake: FakeSplunk, service: Any) -> None:
    fake.add_collection("TA-stixbridge", "c")

    with pytest.raises(binding.HTTPError) as caught:
        service.delete(data_path("c"), query=json.dumps({"_key": {"$in": ["a"]}}))

    assert caught.value.status == 400


def test_unknown_search_command_rejected(service: Any) -> None:
    with pytest.raises(binding.HTTPError) as caught:
        service.jobs.export("search index=main | stats count", output_mode="json")

    assert caught.value.status == 400
    assert b"Unknown search command 'stats'" in caught.value.body


def test_search_without_search_command_rejected(service: Any) -> None:
    with pytest.raises(binding.HTTPError):
        service.jobs.export("index=main", output_mode="json")


def test_sort_without_count_keeps_ten_thousand(fake: FakeSplunk, service: Any) -> None:
    fake.add_events("main", [{"_time": i, "n": i} for i in range(10005)])

    rows = [
        r
        for r in results.JSONResultsReader(service.jobs.export("search index=main | sort _time", output_mode="json"))
        if isinstance(r, dict)
    ]

    assert len(rows) == 10000


def test_job_results_default_to_100(fake: FakeSplunk, service: Any) -> None:
    fake.add_events("main", [{"_time": i} for i in range(150)])
    job = service.jobs.create("search index=main", exec_mode="blocking", output_mode="json")

    rows = [r for r in results.JSONResultsReader(job.results(output_mode="json")) if isinstance(r, dict)]

    assert job.is_done()
    assert len(rows) == 100


def test_unauthenticated_call_is_401(fake: FakeSplunk) -> None:
    port = int(fake.url.rsplit(":", 1)[1])
    anonymous = binding.Context(host="127.0.0.1", port=port, scheme="http")

    with pytest.raises(binding.HTTPError) as caught:
        anonymous.get("/services/storage/collections/config")

    assert caught.value.status == 401


def test_storage_passwords_listed(fake: FakeSplunk, service: Any) -> None:
    service.storage_passwords.create("s3cret-fake", "STIXBRIDGE_TAXII_PASSWORD", "TA-stixbridge")

    stored = {p.username: p.clear_password for p in service.storage_passwords.list()}

    assert stored == {"STIXBRIDGE_TAXII_PASSWORD": "s3cret-fake"}
