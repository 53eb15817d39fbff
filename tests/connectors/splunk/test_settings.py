"""Settings of the Splunk connectors: built from TOML tables, checked before any network call."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from stixbridge.connectors.splunk.settings import SplunkSightingsSettings, SplunkSinkSettings, is_loopback
from stixbridge.errors import ConfigError
from stixbridge.settings import build_settings


def sink_table(**overrides: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "url": "https://splunk.example.org:8089",
        "username": "stixbridge",
        "password": {"env": "TEST_SPLUNK_PASSWORD"},
    }
    table.update(overrides)
    return table


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SPLUNK_PASSWORD", "fake-password")
    monkeypatch.setenv("TEST_SPLUNK_TOKEN", "fake-token")


def test_sink_settings_from_toml() -> None:
    text = """
    url = "https://splunk.example.org:8089"
    token = { env = "TEST_SPLUNK_TOKEN" }
    targets = ["es", "app"]
    max_batch_docs = 500
    """

    settings = build_settings(SplunkSinkSettings, tomllib.loads(text), "sinks[0]")

    assert settings.token is not None
    assert settings.token.reveal() == "fake-token"
    assert settings.targets == ["es", "app"]
    assert settings.max_batch_docs == 500
    assert settings.verify_tls is True
    assert settings.app == "TA-stixbridge"
    assert settings.owner == "nobody"


def test_sink_defaults() -> None:
    settings = build_settings(SplunkSinkSettings, sink_table(), "sinks[0]")

    assert settings.targets == ["app"]
    assert settings.max_batch_docs == 1000
    assert settings.max_batch_bytes == 50 * 1024 * 1024
    assert settings.read_page < 50000


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"url": "ftp://splunk.example.org"}, "invalid URL 'ftp://splunk.example.org'"),
        ({"url": ""}, "url is required"),
        ({"url": "https://splunk.example.org:8089/services"}, "give only scheme, host and port"),
        ({"url": "http://splunk.example.org:8089"}, "plain http to 'splunk.example.org'"),
        ({"url": "https://admin:pw@splunk.example.org:8089"}, "must not carry credentials"),
        ({"password": None, "username": ""}, "exactly one way to authenticate"),
        ({"token": {"env": "TEST_SPLUNK_TOKEN"}}, "exactly one way to authenticate"),
        ({"username": ""}, "sets only one of username and password"),
        ({"targets": []}, "targets is empty"),
        ({"targets": ["es", "cloud"]}, "unknown target 'cloud'"),
        ({"targets": ["es", "es"]}, "lists a target twice"),
        ({"read_page": 50000}, "below Splunk's default max_rows_per_query"),
        ({"max_batch_docs": 0}, "max_batch_docs must be at least 1"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"retries": 50}, "retries must be between 0 and 10"),
        ({"verify_tls": False, "ca_bundle": "/etc/ca.pem"}, "ca_bundle but verify_tls = false"),
        ({"collection": "a/b"}, "invalid collection name 'a/b'"),
        ({"colection": "x"}, "unknown key 'colection'"),
        ({"password": "in-the-file"}, "must name an environment variable"),
    ],
)
def test_sink_settings_rejected(overrides: dict[str, Any], message: str) -> None:
    table = sink_table(**overrides)
    table = {k: v for k, v in table.items() if v is not None}

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_settings(SplunkSinkSettings, table, "sinks[0]")


def test_plain_http_allowed_to_loopback() -> None:
    settings = build_settings(SplunkSinkSettings, sink_table(url="http://127.0.0.1:8089"), "sinks[0]")

    assert settings.url == "http://127.0.0.1:8089"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("localhost", True),
        ("10.0.0.1", False),
        ("splunk.example.org", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mode": "cloud"}, "expected one of 'es', 'app'"),
        ({"search_mode": "stream"}, "expected one of 'export', 'job'"),
        ({"page_size": 0}, "page_size must be between 1"),
        ({"page_size": 50000}, "page_size must be between 1"),
        ({"lookback_days": 0}, "lookback_days must be at least 1"),
        ({"lag_seconds": -1}, "lag_seconds must not be negative"),
        ({"index": 'main" OR index="*'}, "quotes, backslashes"),
        ({"source": "a | delete"}, "quotes, backslashes"),
    ],
)
def test_sightings_settings_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_settings(SplunkSightingsSettings, sink_table(**overrides), "sightings[0]")


def test_sightings_defaults() -> None:
    settings = build_settings(SplunkSightingsSettings, sink_table(), "sightings[0]")

    assert settings.mode == "es"
    assert settings.search_mode == "job"
    assert settings.lag_seconds == 120
