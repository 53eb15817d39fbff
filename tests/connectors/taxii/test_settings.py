"""Settings of the TAXII source and publisher: types, cross-field rules and files, before any network call."""

from __future__ import annotations

from pathlib import Path

import pytest

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.taxii.publish import TaxiiPublisher
from stixbridge.connectors.taxii.settings import TaxiiPublishSettings, TaxiiSettings
from stixbridge.connectors.taxii.source import TaxiiSource
from stixbridge.errors import ConfigError
from stixbridge.settings import build_settings

URL = "https://taxii.example.org/taxii2/"


def build(**table: object) -> TaxiiSettings:
    return build_settings(TaxiiSettings, {"url": URL, **table}, "sources[0] (alliance)")


def test_defaults_are_safe() -> None:
    settings = build()

    assert settings.verify_tls is True
    assert settings.version == "auto"
    assert settings.limit == 500
    assert settings.min_limit is None
    assert settings.floor_limit == 50
    assert settings.timeouts() == (60.0, 60.0)
    assert settings.retries == 5


def test_secrets_come_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAXII_PASSWORD", "s3cret-value")

    settings = build(username="member", password={"env": "TAXII_PASSWORD"})

    assert settings.password is not None
    assert settings.password.reveal() == "s3cret-value"
    assert "s3cret-value" not in repr(settings)


def test_secret_written_in_file_rejected() -> None:
    with pytest.raises(ConfigError, match="environment variable"):
        build(username="member", password="plain-text")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"url": ""}, "url is required"),
        ({"url": "ftp://taxii.example.org/"}, "http:// or https://"),
        ({"url": "https:///taxii2/"}, "with a host"),
        ({"username": "member"}, "not password"),
        ({"api_key_header": "X-Api-Key"}, "not api_key"),
        ({"client_key": "key.pem"}, "needs client_cert"),
        ({"verify_tls": False, "ca_bundle": "ca.pem"}, "verify_tls = false"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": [5.0, 10.0, 20.0]}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"max_retry_seconds": -5}, "max_retry_seconds"),
        ({"limit": 0}, "limit must be at least 1"),
        ({"limit": 40, "min_limit": 50}, "min_limit must be between 1 and limit"),
        ({"max_pages": 0}, "max_pages"),
        ({"collections": [" "]}, "empty name"),
        ({"added_after": "yesterday"}, "'yesterday' is not an RFC 3339 timestamp"),
        ({"version": "1.1"}, "expected one of"),
        ({"api_root": "  "}, "api_root must not be empty"),
        ({"colections": ["a"]}, "unknown key 'colections'"),
    ],
)
def test_invalid_setting_rejected(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(**table)


def test_credentials_in_url_rejected_unquoted() -> None:
    with pytest.raises(ConfigError, match="url contains credentials") as caught:
        build(url="https://member:s3cret@taxii.example.org/taxii2/")

    assert "s3cret" not in str(caught.value)


def test_basic_and_bearer_exclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P", "x")
    monkeypatch.setenv("T", "y")

    with pytest.raises(ConfigError, match="both use the Authorization header"):
        build(username="member", password={"env": "P"}, token={"env": "T"})


def test_api_key_header_name_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "x")

    with pytest.raises(ConfigError, match="not a valid HTTP header name"):
        build(api_key_header="X Api Key", api_key={"env": "K"})


def test_auth_methods_combine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T", "token")
    monkeypatch.setenv("K", "key")

    settings = build(token={"env": "T"}, api_key_header="Ocp-Apim-Subscription-Key", api_key={"env": "K"},
                     client_cert="cert.pem")  # fmt: skip

    assert settings.api_key_header == "Ocp-Apim-Subscription-Key"


def test_timeout_pair_is_connect_then_read() -> None:
    assert build(timeout=[3, 90]).timeouts() == (3.0, 90.0)


def test_missing_certificate_file_rejected_at_build(tmp_path: Path) -> None:
    settings = build(client_cert="missing.pem")

    with pytest.raises(ConfigError, match="client_cert names 'missing.pem'"):
        TaxiiSource("alliance", settings, ConnectorContext(base_dir=tmp_path))


def test_certificate_path_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "cert.pem").write_text("not read until a request", encoding="utf-8")
    settings = build(client_cert="cert.pem", ca_bundle="cert.pem")

    source = TaxiiSource("alliance", settings, ConnectorContext(base_dir=tmp_path))

    assert source.http.session.cert == str(tmp_path / "cert.pem")
    assert source.http.session.verify == str(tmp_path / "cert.pem")


def test_constructor_sends_nothing(tmp_path: Path) -> None:
    # Nothing listens on port 9 (discard); the check is that no connection is even opened.
    settings = build(url="https://127.0.0.1:9/taxii2/")

    source = TaxiiSource("alliance", settings, ConnectorContext(base_dir=tmp_path))

    assert source._http is None
    assert "127.0.0.1:9" in source.describe()


def test_publisher_off_by_default() -> None:
    settings = build_settings(TaxiiPublishSettings, {"url": URL, "collection": "sightings"}, "publish[0]")

    assert settings.enabled is False


def test_publisher_needs_collection() -> None:
    with pytest.raises(ConfigError, match="collection is required"):
        build_settings(TaxiiPublishSettings, {"url": URL}, "publish[0]")



def test_connectors_registered_under_entry_points() -> None:
    from stixbridge.plugins import load

    assert load("source", "taxii") is TaxiiSource
    assert load("publish", "taxii") is TaxiiPublisher


def test_configuration_builds_source_and_publisher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stixbridge.config import load_config

    monkeypatch.setenv("ALLIANCE_TAXII_PASSWORD", "pw")
    config_path = tmp_path / "stixbridge.toml"
    config_path.write_text(
        f"""
[[sources]]
name = "alliance"
kind = "taxii"
url = "{URL}"
collections = ["indicators", "91a7b528-80eb-42ed-a74d-c6fbd5a26116"]
username = "member"
password = {{ env = "ALLIANCE_TAXII_PASSWORD" }}
timeout = [5, 120]

[[publish]]
name = "alliance-share"
kind = "taxii"
enabled = true
url = "{URL}"
collection = "sightings"
token = {{ env = "ALLIANCE_TAXII_PASSWORD" }}
""",
        encoding="utf-8",
    )

    config = load_config(config_path)

    source = config.sources[0].connector
    publisher = config.publish[0].connector
    assert isinstance(source, TaxiiSource)
    assert isinstance(publisher, TaxiiPublisher)
    assert source.settings.timeouts() == (5.0, 120.0)
    assert publisher.settings.enabled is True
    assert "pw" not in repr(source) + repr(publisher) + source.describe() + publisher.describe()


def test_configuration_error_names_key_and_line(tmp_path: Path) -> None:
    from stixbridge.config import load_config

    config_path = tmp_path / "stixbridge.toml"
    config_path.write_text(f'[[sources]]\nkind = "taxii"\nurl = "{URL}"\nlimit = "many"\n', encoding="utf-8")

    with pytest.raises(ConfigError, match="limit must be a whole number \\(for example 500, without quotes\\), got 'many'") as caught:
        load_config(config_path)

    assert caught.value.line == 4


def test_small_limit_lowers_default_floor():
    settings = TaxiiSettings(url="https://taxii.example.org/taxii2/", limit=5)
    settings.validate("sources[0]")

    assert settings.floor_limit == 5


def test_explicit_floor_kept():
    settings = TaxiiSettings(url="https://taxii.example.org/taxii2/", limit=500, min_limit=20)
    settings.validate("sources[0]")

    assert settings.floor_limit == 20
