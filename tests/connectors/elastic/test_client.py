"""Building the client, metering its traffic, and translating every client exception."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import elastic_transport
import elasticsearch
import pytest

from stixbridge.connectors.elastic.client import TrafficMeter, build_client, describe_api_error, translate_error
from stixbridge.errors import ConfigError, MissingExtraError, RemoteRejectedError, TransientError

from .conftest import sink_settings
from .fake_elasticsearch import FakeElasticsearch


def api_error(cls: type, status: int, body: Any) -> Exception:
    meta = elastic_transport.ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=elastic_transport.HttpHeaders(),
        duration=0.0,
        node=None,  # type: ignore[arg-type]
    )
    return cls(message="error", meta=meta, body=body)


@pytest.mark.parametrize(
    ("error", "expected", "words"),
    [
        (elastic_transport.ConnectionTimeout("read timed out"), TransientError, "timed out"),
        (elastic_transport.ConnectionError("refused"), TransientError, "cannot reach Elasticsearch"),
        (
            api_error(elasticsearch.ApiError, 503, {"error": {"type": "unavailable_shards_exception", "reason": "r"}}),
            TransientError,
            "HTTP 503: unavailable_shards_exception: r",
        ),
        (api_error(elasticsearch.ApiError, 429, {"error": "busy"}), TransientError, "HTTP 429: busy"),
        (api_error(elasticsearch.AuthenticationException, 401, {}), RemoteRejectedError, "credentials"),
        (api_error(elasticsearch.AuthorizationException, 403, {}), RemoteRejectedError, "privileges"),
        (
            api_error(elasticsearch.BadRequestError, 400, {"error": {"type": "x", "reason": "y"}}),
            RemoteRejectedError,
            "HTTP 400: x: y",
        ),
        (api_error(elasticsearch.UnsupportedProductError, 200, {}), RemoteRejectedError, "does not identify itself"),
        (elastic_transport.SerializationError("bad json"), TransientError, "bad json"),
        (ValueError("other"), TransientError, "other"),
    ],
)
def test_translate_error(error: Exception, expected: type, words: str) -> None:
    translated = translate_error(error, "writing")

    assert type(translated) is expected
    assert words in str(translated)
    assert str(translated).startswith("writing")


def test_missing_client_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "elasticsearch", None)

    with pytest.raises(MissingExtraError, match=r"pip install 'stixbridge\[elastic\]'"):
        build_client(sink_settings(["http://127.0.0.1:9200"]), tmp_path, TrafficMeter())


def test_describe_api_error_without_body() -> None:
    assert describe_api_error(ValueError("plain")) == "plain"


def test_meter_counts_writes_only_for_writes() -> None:
    meter = TrafficMeter()
    meter.record("PUT", "/_bulk", b"abc")
    meter.record("POST", "/x/_search?size=1", b"{}")
    meter.record("POST", "/x/_count", None)
    meter.record("GET", "/_alias/x", None)
    meter.record("POST", "/x/_update_by_query", b"{}")

    assert (meter.requests, meter.bytes_sent, meter.write_requests) == (5, 7, 2)


def test_meter_sees_client_requests(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    meter = TrafficMeter()
    client = build_client(sink_settings([fake_es.url]), tmp_path, meter)

    client.index(index="a", id="1", document={"x": 1})
    client.info()

    assert meter.requests == 2
    assert meter.write_requests == 1
    assert meter.bytes_sent == fake_es.requests[0].body_bytes


def test_missing_ca_bundle_named(tmp_path: Path) -> None:
    settings = sink_settings(["https://127.0.0.1:9200"], ca_bundle="certs/ca.pem")

    with pytest.raises(ConfigError, match="ca.pem"):
        build_client(settings, tmp_path, TrafficMeter())


def test_ca_bundle_resolved_from_base_dir(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not really a certificate\n")
    settings = sink_settings(["https://127.0.0.1:9200"], ca_bundle="ca.pem")

    client = build_client(settings, tmp_path, TrafficMeter())

    assert client.transport.node_pool.get().config.ca_certs == str(tmp_path / "ca.pem")
    client.close()


def test_malformed_cloud_id_is_config_error(tmp_path: Path) -> None:
    settings = sink_settings([], cloud_id="not-a-cloud-id")

    with pytest.raises(ConfigError, match="Cloud ID") as caught:
        build_client(settings, tmp_path, TrafficMeter())

    assert caught.value.key == "cloud_id"


class _NotElasticsearch(BaseHTTPRequestHandler):
    """Returns JSON for every GET, but without the X-Elastic-Product header."""

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        data = json.dumps({"version": {"number": "8.17.0"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def impostor() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotElasticsearch)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_server_without_product_header_rejected(impostor: str, tmp_path: Path) -> None:
    client = build_client(sink_settings([impostor]), tmp_path, TrafficMeter())

    with pytest.raises(elasticsearch.UnsupportedProductError) as caught:
        client.info()

    assert isinstance(translate_error(caught.value, "checking"), RemoteRejectedError)
