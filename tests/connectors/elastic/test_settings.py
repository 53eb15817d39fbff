"""Settings of the Elasticsearch connector: defaults, cross-field rules, secrets."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.elastic.settings import (
    DEFAULT_ALIAS,
    DEFAULT_INDEX,
    ElasticSightingsSettings,
    ElasticSinkSettings,
)
from stixbridge.connectors.elastic.sightings import ElasticSightingsReader
from stixbridge.connectors.elastic.sink import ElasticSink
from stixbridge.errors import ConfigError
from stixbridge.settings import LineFinder, build_settings

SENTINEL = "sentinel-secret-8c1f0e"


def build(data: dict[str, Any], cls: type = ElasticSinkSettings) -> Any:
    return build_settings(cls, data, "sinks[0]", LineFinder(""))


def test_defaults() -> None:
    settings = build({"hosts": ["https://127.0.0.1:9200"]})

    assert settings.index == DEFAULT_INDEX == "stixbridge-indicators-000001"
    assert settings.alias == DEFAULT_ALIAS == "logs-ti_stixbridge_latest.indicator"
    assert settings.verify_tls is True
    assert settings.refresh_days == 7
    assert settings.chunk_bytes == 10_000_000
    assert settings.space == "default"


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        ({}, "hosts", "exactly one of 'hosts' and 'cloud_id'"),
        ({"hosts": ["http://127.0.0.1:9200"], "cloud_id": "c:abc"}, "hosts", "exactly one"),
        ({"hosts": ["127.0.0.1:9200"]}, "hosts[0]", "'127.0.0.1:9200'"),
        ({"hosts": ["ftp://127.0.0.1"]}, "hosts[0]", "http(s)"),
        ({"alias": "stixbridge-latest"}, "alias", "logs-ti_*"),
        ({"alias": "Logs-ti_x"}, "alias", "lower case"),
        ({"index": "a*b"}, "index", "'a*b'"),
        ({"index": "_x"}, "index", "must not start"),
        ({"index": "logs-ti_x", "alias": "logs-ti_x"}, "alias", "must differ"),
        ({"refresh_days": 30}, "refresh_days", "30 days"),
        ({"refresh_days": 0}, "refresh_days", "between 1 and 29"),
        ({"chunk_bytes": 100 * 1024 * 1024}, "chunk_bytes", "100 MB"),
        ({"chunk_bytes": 10}, "chunk_bytes", "between 1024"),
        ({"chunk_docs": 0}, "chunk_docs", "at least 1"),
        ({"max_retries": 21}, "max_retries", "between 0 and 20"),
        ({"retry_backoff": -1.0}, "retry_backoff", "negative"),
        ({"space": "My Space"}, "space", "'My Space'"),
        ({"kibana_url": "kibana:5601"}, "kibana_url", "'kibana:5601'"),
        ({"timeout": 0}, "timeout", "positive"),
        ({"username": "elastic"}, "password", "without 'password'"),
        ({"ca_bundle": "ca.pem"}, "ca_bundle", "https"),
    ],
)
def test_invalid_sink_settings(data: dict[str, Any], key: str, words: str) -> None:
    data = {"hosts": ["http://127.0.0.1:9200"], **data} if "hosts" not in data and data else data
    with pytest.raises(ConfigError) as caught:
        build(data)

    assert caught.value.key == f"sinks[0].{key}"
    assert words in str(caught.value)


def test_password_without_username(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ES_PASSWORD", SENTINEL)
    with pytest.raises(ConfigError, match="without 'username'"):
        build({"hosts": ["http://127.0.0.1:9200"], "password": {"env": "ES_PASSWORD"}})


def test_two_auth_kinds_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ES_KEY", SENTINEL)
    monkeypatch.setenv("ES_TOKEN", SENTINEL)
    with pytest.raises(ConfigError, match="api_key and bearer_token") as caught:
        build({"hosts": ["http://127.0.0.1:9200"], "api_key": {"env": "ES_KEY"}, "bearer_token": {"env": "ES_TOKEN"}})

    assert SENTINEL not in str(caught.value)


def test_secret_written_inline_rejected() -> None:
    with pytest.raises(ConfigError, match="environment variable"):
        build({"hosts": ["http://127.0.0.1:9200"], "api_key": SENTINEL})


def test_unknown_key_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown key 'host'"):
        build({"host": "http://127.0.0.1:9200"})


def test_cloud_id_accepted() -> None:
    settings = build({"cloud_id": "deployment:Y2xvdWQuZXhhbXBsZSRhYmMkZGVm"})

    assert settings.hosts == []


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 10_001}, "page_size"),
        ({"settle_seconds": -1}, "settle_seconds"),
        ({"first_run_days": 0}, "first_run_days"),
        ({"space": "a b"}, "space"),
        ({"alias": "A"}, "alias"),
    ],
)
def test_invalid_sightings_settings(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        build({"hosts": ["http://127.0.0.1:9200"], **data}, ElasticSightingsSettings)

    assert caught.value.key == f"sinks[0].{key}"


def test_connectors_built_without_network(monkeypatch: pytest.MonkeyPatch, context: ConnectorContext) -> None:
    # The port is closed: a request would fail, so building must not send one.
    monkeypatch.setenv("ES_KEY", SENTINEL)
    settings = build({"hosts": ["http://127.0.0.1:9"], "api_key": {"env": "ES_KEY"}})
    sink = ElasticSink("es", settings, context)
    reader = ElasticSightingsReader("es", build({"hosts": ["http://127.0.0.1:9"]}, ElasticSightingsSettings), context)

    assert "logs-ti_stixbridge_latest.indicator" in sink.describe()
    assert ".alerts-security.alerts-default" in reader.describe()
    assert sink.meter.requests == 0


def test_secret_never_shown(
    monkeypatch: pytest.MonkeyPatch, context: ConnectorContext, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("ES_KEY", SENTINEL)
    caplog.set_level(logging.DEBUG)
    settings = build({"hosts": ["http://127.0.0.1:9"], "api_key": {"env": "ES_KEY"}, "verify_tls": False})
    sink = ElasticSink("es", settings, context)
    sink._connect()

    assert SENTINEL not in repr(sink)
    assert SENTINEL not in repr(settings)
    assert SENTINEL not in sink.describe()
    assert SENTINEL not in caplog.text
    assert "verify_tls = false" in caplog.text
    sink.close()
