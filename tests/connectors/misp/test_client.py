"""Tests of the MISP client: lazy connection, error translation, retries and request counting."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from stixbridge.connectors.misp.client import MispClient
from stixbridge.connectors.misp.settings import MispConnectionSettings
from stixbridge.errors import ConfigError, MissingExtraError, RemoteRejectedError, TransientError
from stixbridge.secrets import Secret

from .fake_misp import API_KEY, FakeMisp


def _client(url: str, **fields: object) -> tuple[MispClient, list[float]]:
    waits: list[float] = []
    values = {"url": url, "key": Secret(API_KEY, env="MISP_KEY"), "timeout": 5.0, "retry_backoff": 0.5, **fields}
    settings = MispConnectionSettings(**values)  # type: ignore[arg-type]
    return MispClient(settings, Path("."), "test client", sleep=waits.append), waits


def test_connects_on_first_request(fake: FakeMisp) -> None:
    client, _ = _client(fake.url)
    assert not client.connected

    answer = client.call("events/index", {})

    assert client.connected
    assert answer.status == 200
    assert [r.path for r in fake.requests] == [
        "/servers/getVersion", "/users/view/me", "/attributes/describeTypes.json", "/events/index",
    ]  # fmt: skip


def test_counts_requests_writes_and_bytes(fake: FakeMisp) -> None:
    client, _ = _client(fake.url)

    client.call("events/add", {"Event": {"info": "x"}})
    client.call("attributes/restSearch", {"returnFormat": "json"})

    assert client.stats.requests == 5
    assert client.stats.writes == 1
    assert client.stats.bytes_sent == sum(r.size for r in fake.requests)


def test_types_from_server(fake: FakeMisp) -> None:
    client, _ = _client(fake.url)

    assert "ip-dst" in client.types()["types"]


def test_retries_with_doubling_backoff(fake: FakeMisp) -> None:
    client, waits = _client(fake.url, max_retries=3)
    client.misp()
    fake.inject(r"^/events/index$", status=503, times=3)

    answer = client.call("events/index", {})

    assert answer.status == 200
    assert waits == [0.5, 1.0, 2.0]


def test_connect_failure_retried(fake: FakeMisp) -> None:
    client, waits = _client(fake.url, max_retries=1)
    fake.inject(r"^/servers/getVersion$", status=500)

    client.misp()

    assert waits == [0.5]


def test_not_json_rejected(fake: FakeMisp) -> None:
    client, _ = _client(fake.url)
    client.misp()
    fake.inject(r"^/events/index$", status=200, text="<html><body>Login</body></html>")

    with pytest.raises(RemoteRejectedError, match="not JSON"):
        client.call("events/index", {})


def test_html_error_page_rejected(fake: FakeMisp) -> None:
    client, _ = _client(fake.url)
    client.misp()
    fake.inject(r"^/events/index$", status=403, text="<html>Forbidden by the proxy</html>")

    with pytest.raises(RemoteRejectedError, match="403"):
        client.call("events/index", {})


def test_unknown_endpoint_rejected(fake: FakeMisp) -> None:
    client, _ = _client(fake.url)

    with pytest.raises(RemoteRejectedError, match="404.*check url"):
        client.call("nothing/here", {})


def test_accepted_status_returned(fake: FakeMisp) -> None:
    client, _ = _client(fake.url)

    answer = client.call("events/edit/404", {"Event": {}}, accept=(404,))

    assert answer.status == 404
    assert answer.body["message"] == "Invalid event"


def test_tls_to_plain_http_rejected(fake: FakeMisp) -> None:
    client, waits = _client(fake.url.replace("http://", "https://"))

    with pytest.raises(RemoteRejectedError, match="TLS verification"):
        client.misp()
    assert waits == []


def test_ca_bundle_missing_file_rejected(fake: FakeMisp, tmp_path: Path) -> None:
    client, _ = _client(fake.url.replace("http://", "https://"), ca_bundle=str(tmp_path / "absent.pem"))

    with pytest.raises(ConfigError, match="absent.pem of test client is not a file"):
        client.misp()
    assert fake.requests == []


def test_ca_bundle_relative_to_config(fake: FakeMisp, tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate")
    settings = MispConnectionSettings(url=fake.url.replace("http://", "https://"), key=Secret(API_KEY), ca_bundle="ca.pem",
                                      max_retries=0)  # fmt: skip
    client = MispClient(settings, tmp_path, "test client")

    with pytest.raises((RemoteRejectedError, TransientError)):
        client.misp()


def test_missing_pymisp_names_extra(fake: FakeMisp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymisp", None)
    client, _ = _client(fake.url)

    with pytest.raises(MissingExtraError, match=r"pip install 'stixbridge\[misp\]'"):
        client.misp()


def test_repr_hides_key(fake: FakeMisp) -> None:
    client, _ = _client(fake.url)
    client.misp()

    assert API_KEY not in repr(client)
    assert API_KEY not in repr(client.settings)


def test_url_with_path_kept(fake: FakeMisp) -> None:
    client, _ = _client(fake.url + "/misp")

    with pytest.raises(RemoteRejectedError):
        client.misp()

    assert fake.requests[0].path == "/misp/servers/getVersion"
