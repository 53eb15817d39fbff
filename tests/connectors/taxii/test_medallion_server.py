"""The local medallion server helper: loopback only, seeded data, its quirks, and a clean stop."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime

import pytest
import requests

from stixbridge.connectors.taxii.medallion_server import COLLECTION_NAMESPACE, build_data, run_medallion

from .fake_server import TAXII_21, indicator


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10", "example.org", "::"])
def test_non_loopback_host_rejected(host: str) -> None:
    with pytest.raises(ValueError, match="loopback only"), run_medallion({"a": []}, host=host):
        pass


def test_timestamp_medallion_cannot_parse_rejected() -> None:
    bad = {**indicator(1), "modified": "2024-05-02T08:00:00.123456789Z"}

    with pytest.raises(ValueError, match="medallion cannot parse"), run_medallion({"a": [bad]}):
        pass


def test_object_without_id_rejected() -> None:
    with pytest.raises(ValueError, match="object 0 of collection 'a'"), run_medallion({"a": [{"type": "x"}]}):
        pass


def test_server_answers_and_stops() -> None:
    with run_medallion({"alliance-demo": [indicator(1)]}) as server:
        auth = (server.username, server.password)
        discovery = requests.get(server.url, headers={"Accept": TAXII_21}, auth=auth, timeout=5)
        # medallion 3.0.0 rejects an Accept header without the version parameter.
        unversioned = requests.get(server.url, headers={"Accept": "application/taxii+json"}, auth=auth, timeout=5)
        anonymous = requests.get(server.url, headers={"Accept": TAXII_21}, timeout=5)
        listed = requests.get(f"{server.api_root_url}collections/", headers={"Accept": TAXII_21}, auth=auth,
                              timeout=5).json()["collections"]  # fmt: skip
        collection_id = server.collection_ids["alliance-demo"]
        single = requests.get(f"{server.api_root_url}collections/{collection_id}/", headers={"Accept": TAXII_21},
                              auth=auth, timeout=5).json()  # fmt: skip
        url = server.url

    assert discovery.status_code == 200
    assert discovery.json()["api_roots"] == [server.api_root_url]
    assert unversioned.status_code == 406
    assert anonymous.status_code == 401
    assert server.url.startswith("http://127.0.0.1:")
    assert server.collection_ids == {"alliance-demo": str(uuid.uuid5(COLLECTION_NAMESPACE, "alliance-demo"))}
    assert listed == [single]
    assert set(single) == {"id", "title", "description", "can_read", "can_write", "media_types"}
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="this machine has no IPv6 loopback")
def test_ipv6_loopback_served() -> None:
    with run_medallion({"a": [indicator(1)]}, host="::1") as server:
        response = requests.get(server.url, headers={"Accept": TAXII_21}, auth=(server.username, server.password),
                                timeout=5)  # fmt: skip

    assert server.url.startswith("http://[::1]:")
    assert response.status_code == 200


def test_seeded_dates_increase_in_order() -> None:
    address = {"type": "ipv4-addr", "id": "ipv4-addr--00000000-0000-4000-8000-000000000001", "value": "192.0.2.1"}
    seed = {"max_content_length": 1000, "collections": [
        {"id": "c1", "title": "one", "objects": [indicator(1), indicator(2)]},
        {"id": "c2", "title": "two", "objects": [address]},
    ]}  # fmt: skip
    now = datetime(2024, 6, 5, 10, 0, tzinfo=UTC)

    data = build_data(seed, "http://127.0.0.1:5000", now)

    collections = data["stixbridge"]["collections"]
    dates = [entry["date_added"] for c in collections for entry in c["manifest"]]
    assert dates == sorted(dates)
    assert len(set(dates)) == 3
    assert max(dates) < "2024-06-05T10:00:00.000000Z"
    assert collections[1]["objects"][0]["_date_added"] == collections[1]["manifest"][0]["date_added"]
    assert collections[1]["manifest"][0]["media_type"] == "application/stix+json;version=2.1"
    assert data["/discovery"]["api_roots"] == ["http://127.0.0.1:5000/stixbridge/"]


def test_large_collection_warned(caplog: pytest.LogCaptureFixture) -> None:
    objects = [indicator(n) for n in range(1001)]

    with run_medallion({"big": objects}) as server:
        assert server.collection_ids

    assert any("slows down with the square" in r.getMessage() for r in caplog.records)
