"""Error translation and retry rules of the Splunk client."""

from __future__ import annotations

import io
import ssl
from typing import Any

import pytest
from splunklib import binding

from stixbridge.connectors.splunk.client import (
    SplunkClient,
    SplunkTransientError,
    error_text,
    parse_retry_after,
    translate_error,
)
from stixbridge.connectors.splunk.settings import SplunkConnectionSettings
from stixbridge.errors import RemoteRejectedError, TransientError
from stixbridge.secrets import Secret


def http_error(status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> binding.HTTPError:
    response = binding.record(
        {"status": status, "reason": "Reason", "headers": headers or [], "body": io.BytesIO(body)}
    )
    return binding.HTTPError(response)


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (401, RemoteRejectedError, "check username and password"),
        (403, RemoteRejectedError, "lacks a capability"),
        (404, RemoteRejectedError, "HTTP 404"),
        (400, RemoteRejectedError, "HTTP 400"),
        (429, TransientError, "busy or unavailable"),
        (500, TransientError, "busy or unavailable"),
        (502, TransientError, "busy or unavailable"),
        (503, TransientError, "busy or unavailable"),
        (504, TransientError, "busy or unavailable"),
    ],
)
def test_http_status_translated(status: int, kind: type[Exception], words: str) -> None:
    error = translate_error(http_error(status), operation="saving rows", url="https://splunk.example.org:8089/x")

    assert isinstance(error, kind)
    assert words in str(error)
    assert "while saving rows" in str(error)
    assert getattr(error, "status", None) == status


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (OSError("network is unreachable"), TransientError),
        (TimeoutError("timed out"), TransientError),
        (ConnectionRefusedError(111, "refused"), TransientError),
        (ConnectionResetError(104, "reset"), TransientError),
        (ValueError("bad xml"), RemoteRejectedError),
        (KeyError("x"), RemoteRejectedError),
    ],
)
def test_socket_errors_translated(exc: Exception, kind: type[Exception]) -> None:
    assert isinstance(translate_error(exc, operation="reading", url="https://h:8089/x"), kind)


def test_tls_failure_names_ca_bundle() -> None:
    exc = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc.verify_message = "self-signed certificate"

    error = translate_error(exc, operation="reading", url="https://h:8089/x")

    assert isinstance(error, RemoteRejectedError)
    assert "set ca_bundle" in str(error)


def test_error_text_reads_json_and_xml() -> None:
    json_body = b'{"messages":[{"type":"ERROR","text":"Request exceeds API limits"}]}'
    xml_body = b'<response><messages><msg type="ERROR">Could not find object id=x</msg></messages></response>'

    assert error_text(json_body) == "Request exceeds API limits"
    assert error_text(xml_body) == "Could not find object id=x"
    assert error_text(b"plain words") == "plain words"
    assert error_text(b"") == ""


def test_retry_after_seconds_and_date() -> None:
    assert parse_retry_after("30", None) == 30.0
    assert parse_retry_after("Wed, 05 Jun 2024 10:01:00 GMT", "Wed, 05 Jun 2024 10:00:31 GMT") == 29.0
    assert parse_retry_after("Wed, 05 Jun 2024 10:00:00 GMT", "Wed, 05 Jun 2024 10:00:31 GMT") == 0.0
    assert parse_retry_after("soon", None) is None
    assert parse_retry_after(None, None) is None


def test_503_carries_retry_after() -> None:
    exc = http_error(
        503, headers=[("Retry-After", "Wed, 05 Jun 2024 10:01:00 GMT"), ("Date", "Wed, 05 Jun 2024 10:00:31 GMT")]
    )

    error = translate_error(exc, operation="saving", url="u")

    assert isinstance(error, SplunkTransientError)
    assert error.retry_after == 29.0


def make_client(retries: int = 3) -> tuple[SplunkClient, list[float]]:
    settings = SplunkConnectionSettings(url="https://splunk.example.org:8089", token=Secret("t"), retries=retries)
    waits: list[float] = []
    return SplunkClient(settings, sleep=waits.append), waits


def test_retries_are_bounded() -> None:
    client, waits = make_client(retries=3)
    calls: list[int] = []

    def failing() -> Any:
        calls.append(1)
        raise http_error(503)

    with pytest.raises(TransientError):
        client.call("saving", "path", failing)

    assert len(calls) == 4
    assert len(waits) == 3
    assert all(0 <= w <= 60 for w in waits)
    assert client.requests == 4


def test_retry_after_wait_is_capped() -> None:
    client, waits = make_client(retries=1)
    answers = [http_error(503, headers=[("Retry-After", "3600")])]

    def flaky() -> str:
        if answers:
            raise answers.pop()
        return "ok"

    assert client.call("saving", "path", flaky) == "ok"
    assert waits == [120.0]


def test_rejection_not_retried() -> None:
    client, waits = make_client(retries=3)

    def refused() -> Any:
        raise http_error(403)

    with pytest.raises(RemoteRejectedError):
        client.call("saving", "path", refused)

    assert waits == []
    assert client.requests == 1


def test_building_client_touches_no_network() -> None:
    client, _ = make_client()

    assert client.requests == 0
    assert client._service is None


def test_tls_off_warns(caplog: pytest.LogCaptureFixture) -> None:
    settings = SplunkConnectionSettings(url="https://splunk.example.org:8089", token=Secret("t"), verify_tls=False)

    SplunkClient(settings).service  # noqa: B018 - building the service logs the warning

    assert "TLS certificate verification is off" in caplog.text
