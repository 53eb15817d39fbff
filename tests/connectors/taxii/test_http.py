"""The TAXII HTTP layer against a scripted server: media types, HTML pages, rate limits, retries, auth.

The exchanges rebuild what servers in the field were seen to send: TAXII resources labelled with the STIX
or plain JSON media type, a sign-in page with status 200, 429 and 503 with Retry-After in both forms.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from pathlib import Path

import pytest

from stixbridge.connectors.taxii.http import warn_about_transport
from stixbridge.connectors.taxii.settings import TaxiiSettings
from stixbridge.errors import RemoteRejectedError, TransientError
from stixbridge.secrets import Secret

from .conftest import make_source
from .fake_server import TAXII_21, Recorded, Reply, fake_taxii_server, indicator, taxii21_layout
from .test_paging import COLLECTION, OBJECTS, object_ids, run_pull

SENTINEL = "SENTINEL-secret-7f3a9c"


# -- media types and HTML -----------------------------------------------------------------------------------


def label_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "labels its responses" in r.getMessage()]


def test_stix_label_read_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    stix_label = "application/stix+json; charset=utf-8; version=2.1"
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [])
        fake.route("/api1/collections/", Reply(body={"collections": [{
            "id": COLLECTION, "title": "Example indicators", "can_read": True, "can_write": False,
            "media_types": ["application/stix+json;version=2.1"]}]}, content_type=stix_label))  # fmt: skip
        fake.route(OBJECTS, Reply(body={"objects": [indicator(0)]}, content_type=stix_label))
        source = make_source(f"{fake.base}/taxii2/")

        first, first_error = run_pull(source)
        second, second_error = run_pull(source)

    assert first_error is None
    assert second_error is None
    assert len(object_ids(first)) == 1
    assert len(object_ids(second)) == 1
    assert len(label_warnings(caplog)) == 1


def test_plain_json_label_read_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, Reply(body={"objects": [indicator(0)]}, content_type="application/json"))
        source = make_source(f"{fake.base}/taxii2/")

        pages, error = run_pull(source)

    assert error is None
    assert len(object_ids(pages)) == 1
    assert len(label_warnings(caplog)) == 1


def test_case_and_whitespace_in_media_type_accepted_silently(caplog: pytest.LogCaptureFixture) -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route("/api1/", Reply(body={"title": "API root", "versions": [TAXII_21], "max_content_length": 104857600},
                                   content_type="Application/TAXII+JSON ; Version=2.1"))  # fmt: skip
        fake.route(OBJECTS, Reply(body={}))
        source = make_source(f"{fake.base}/taxii2/")

        _, error = run_pull(source)

    assert error is None
    assert label_warnings(caplog) == []


def test_error_with_json_media_type_keeps_server_title() -> None:
    missing = "/api1/collections/00000000-0000-4000-8000-000000000000/"
    with fake_taxii_server() as fake:
        fake.route(missing, Reply(404, {"title": "Collection not found", "http_status": "404"},
                                  content_type="application/json; charset=utf-8"))  # fmt: skip
        source = make_source(f"{fake.base}/taxii2/")

        with pytest.raises(RemoteRejectedError) as caught:
            source.http.get(f"{fake.base}{missing}", accept=TAXII_21)

    assert caught.value.status == 404
    assert "Collection not found" in str(caught.value)
    assert "check url, api_root and the collection id or title" in str(caught.value)


def test_html_page_with_status_200_rejected() -> None:
    page = "<html><head><title>Sign in</title></head><body>Please log in</body></html>"
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, Reply(200, page, content_type="text/html; charset=utf-8"))
        source = make_source(f"{fake.base}/taxii2/")

        pages, error = run_pull(source)

    assert isinstance(error, RemoteRejectedError)
    assert error.status == 200
    assert OBJECTS in str(error)
    assert "HTML page (HTTP 200" in str(error)
    assert "Sign in" in str(error)
    assert pages == []


def test_html_without_label_rejected() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, Reply(200, "<!DOCTYPE html><html>proxy</html>", content_type=None))
        source = make_source(f"{fake.base}/taxii2/")

        _, error = run_pull(source)

    assert isinstance(error, RemoteRejectedError)
    assert "HTML page" in str(error)


def test_body_that_is_not_json_rejected() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, Reply(200, "objects: none", content_type="text/plain"))
        source = make_source(f"{fake.base}/taxii2/")

        _, error = run_pull(source)

    assert isinstance(error, RemoteRejectedError)
    assert "not JSON" in str(error)
    assert "objects: none" in str(error)


def test_envelope_that_is_a_list_rejected() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, Reply(body=[indicator(0)]))
        source = make_source(f"{fake.base}/taxii2/")

        _, error = run_pull(source)

    assert isinstance(error, RemoteRejectedError)
    assert "not a TAXII envelope" in str(error)


def test_utf16_body_decoded() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        body = json.dumps({"objects": [indicator(0, name="ü")]}).encode("utf-16")
        fake.route(OBJECTS, Reply(body=body))
        source = make_source(f"{fake.base}/taxii2/")

        pages, error = run_pull(source)

    assert error is None
    assert pages[0].items[0].obj == indicator(0, name="ü")
    # Landing cannot keep a UTF-16 text as it is, so the engine encodes the decoded objects instead.
    assert pages[0].bodies == ()


def test_utf8_body_kept_for_landing() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        body = json.dumps({"objects": [indicator(0, name="ü"), indicator(1)]}, ensure_ascii=False).encode()
        fake.route(OBJECTS, Reply(body=body))
        source = make_source(f"{fake.base}/taxii2/")

        pages, error = run_pull(source)

    assert error is None
    assert pages[0].bodies == (body,)
    assert [item.obj for item in pages[0].items] == [indicator(0, name="ü"), indicator(1)]


# -- rate limits and retries --------------------------------------------------------------------------------


def test_rate_limited_request_repeated_after_retry_after(waits: list[float]) -> None:
    filters = {"added_after": "2024-06-05T00:00:00.000Z", "limit": "100"}
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.expect(OBJECTS, Reply(body={"more": True, "next": "n1", "objects": [indicator(1)]},
                                   headers={"Date": "Wed, 05 Jun 2024 10:00:00 GMT",
                                            "X-TAXII-Date-Added-Last": "2024-06-05T09:59:00.000Z"}),
                    filters)  # fmt: skip
        fake.expect(OBJECTS, Reply(429, {"title": "Too Many Requests"},
                                   headers={"Date": "Wed, 05 Jun 2024 10:00:01 GMT", "Retry-After": "30"}),
                    {**filters, "next": "n1"})  # fmt: skip
        fake.expect(OBJECTS, Reply(503, "Service Unavailable", content_type="text/plain",
                                   headers={"Date": "Wed, 05 Jun 2024 10:00:31 GMT",
                                            "Retry-After": "Wed, 05 Jun 2024 10:01:00 GMT"}),
                    {**filters, "next": "n1"})  # fmt: skip
        fake.expect(OBJECTS, Reply(body={"more": False, "objects": [indicator(2)]},
                                   headers={"Date": "Wed, 05 Jun 2024 10:01:00 GMT",
                                            "X-TAXII-Date-Added-Last": "2024-06-05T09:59:30.000Z"}),
                    {**filters, "next": "n1"})  # fmt: skip
        source = make_source(f"{fake.base}/taxii2/", limit=100, added_after="2024-06-05T00:00:00.000Z")

        pages, error = run_pull(source)

    assert error is None
    assert fake.mismatches == []
    assert fake.script == []
    assert waits == [30.0, 29.0]
    assert len(object_ids(pages)) == 2
    assert [page.cursor for page in pages[:-1]] == [None] * (len(pages) - 1)
    assert json.loads(pages[-1].cursor or "") == {COLLECTION: "2024-06-05T09:59:30.000Z"}
    assert source.http.stats.retries == 2


def test_retry_after_beyond_budget_gives_up_at_once(waits: list[float]) -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, Reply(429, {"title": "Too Many Requests"}, headers={"Retry-After": "3600"}))
        source = make_source(f"{fake.base}/taxii2/", max_retry_seconds=60)

        _, error = run_pull(source)

    assert isinstance(error, TransientError)
    assert error.status == 429
    assert "Retry-After" in str(error)
    assert "max_retry_seconds = 60" in str(error)
    assert waits == []
    assert len(fake.requests_to(OBJECTS)) == 1


def test_server_errors_retried_with_backoff(waits: list[float], caplog: pytest.LogCaptureFixture) -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, Reply(503, "busy", content_type="text/plain"))
        source = make_source(f"{fake.base}/taxii2/", retries=3)

        _, error = run_pull(source)

    assert isinstance(error, TransientError)
    assert "failed after 4 attempts: HTTP 503" in str(error)
    assert len(fake.requests_to(OBJECTS)) == 4
    assert len(waits) == 3
    assert all(0 < wait <= 61 for wait in waits)
    assert len([r for r in caplog.records if "retry" in r.getMessage()]) == 3


def test_retries_bounded_by_total_wait(waits: list[float]) -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, Reply(503, {"title": "busy"}, headers={"Retry-After": "40"}))
        source = make_source(f"{fake.base}/taxii2/", retries=10, max_retry_seconds=100)

        _, error = run_pull(source)

    assert isinstance(error, TransientError)
    assert waits == [40.0, 40.0]
    assert len(fake.requests_to(OBJECTS)) == 3


def test_client_errors_not_retried(waits: list[float]) -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, Reply(422, {"title": "Unprocessable", "description": "bad filter"}))
        source = make_source(f"{fake.base}/taxii2/")

        _, error = run_pull(source)

    assert isinstance(error, RemoteRejectedError)
    assert error.status == 422
    assert "Unprocessable: bad filter" in str(error)
    assert waits == []


def test_refused_connection_retried_then_transient(waits: list[float]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = make_source(f"http://127.0.0.1:{port}/taxii2/", retries=2)

    _, error = run_pull(source)

    assert isinstance(error, TransientError)
    assert "failed after 3 attempts: connection failed" in str(error)
    assert len(waits) == 2


def test_slow_server_times_out(waits: list[float]) -> None:
    def slow(request: Recorded) -> Reply:
        time.sleep(1.0)
        return Reply(body={})

    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, slow)
        source = make_source(f"{fake.base}/taxii2/", timeout=[1.0, 0.2], retries=1)

        _, error = run_pull(source)

    assert isinstance(error, TransientError)
    assert "timed out after 0.2 s" in str(error)
    assert len(waits) == 1


# -- authentication -----------------------------------------------------------------------------------------


def test_basic_auth_and_api_key_sent_together() -> None:
    expected = "Basic " + base64.b64encode(b"member:pass word").decode()
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.expect(OBJECTS, Reply(body={}), headers={"Authorization": expected, "X-Api-Key": "k-123"})
        source = make_source(f"{fake.base}/taxii2/", username="member", password=Secret("pass word"),
                             api_key_header="X-Api-Key", api_key=Secret("k-123"))  # fmt: skip

        _, error = run_pull(source)

    assert error is None
    assert fake.mismatches == []
    assert all(r.headers.get("authorization") == expected for r in fake.requests)


def test_bearer_token_sent() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.expect(OBJECTS, Reply(body={}), headers={"Authorization": "Bearer tok-1"})
        source = make_source(f"{fake.base}/taxii2/", token=Secret("tok-1"))

        _, error = run_pull(source)

    assert error is None
    assert fake.mismatches == []


@pytest.mark.parametrize(
    ("status", "advice"),
    [
        (401, "check username and password, token, or api_key_header and api_key"),
        (403, "check the collection's permissions"),
        (404, "check url, api_root and the collection id or title"),
    ],
)
def test_rejections_fail_at_once_with_advice(status: int, advice: str, waits: list[float]) -> None:
    with fake_taxii_server() as fake:
        fake.route("/taxii2/", Reply(status, "<html><title>Denied</title></html>", content_type="text/html"))
        source = make_source(f"{fake.base}/taxii2/", username="member", password=Secret(SENTINEL))

        _, error = run_pull(source)

    assert isinstance(error, RemoteRejectedError)
    assert error.status == status
    assert advice in str(error)
    assert "Denied" in str(error)
    assert len(fake.requests) == 1
    assert waits == []


def test_secret_never_logged_or_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with fake_taxii_server() as fake:
        fake.route("/taxii2/", Reply(401, {"title": "Unauthorized"}))
        source = make_source(f"{fake.base}/taxii2/", token=Secret(SENTINEL), api_key_header="X-Key",
                             api_key=Secret(SENTINEL))  # fmt: skip

        _, error = run_pull(source)

    assert fake.requests[0].headers["x-key"] == SENTINEL
    assert SENTINEL not in caplog.text
    assert SENTINEL not in str(error)
    assert SENTINEL not in repr(source)
    assert SENTINEL not in source.describe()
    assert SENTINEL not in repr(source.http.session.auth.__dict__)


def test_same_host_redirect_followed() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route("/old/", Reply(308, "", headers={"Location": "/taxii2/"}, content_type=None))
        fake.route(OBJECTS, Reply(body={}))
        source = make_source(f"{fake.base}/old/")

        _, error = run_pull(source)

    assert error is None
    assert [r.path for r in fake.requests[:2]] == ["/old/", "/taxii2/"]


def test_redirect_to_other_host_rejected() -> None:
    with fake_taxii_server() as fake:
        # Never requested: the connector refuses before sending anything there.
        fake.route("/taxii2/", Reply(302, "", headers={"Location": "http://localhost:9/taxii2/"}, content_type=None))
        source = make_source(f"{fake.base}/taxii2/", username="member", password=Secret("x"))

        _, error = run_pull(source)

    assert isinstance(error, RemoteRejectedError)
    assert "redirected to another host" in str(error)
    assert len(fake.requests) == 1


# -- TLS and transport warnings -------------------------------------------------------------------------------


def test_disabled_verification_warned_every_run(caplog: pytest.LogCaptureFixture) -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "A"}])
        fake.route(OBJECTS, Reply(body={}))
        source = make_source(f"{fake.base}/taxii2/", verify_tls=False)

        run_pull(source)
        run_pull(source)

    warnings = [r for r in caplog.records if "verification is off" in r.getMessage()]
    assert len(warnings) == 2
    assert all(r.levelno == logging.WARNING for r in warnings)


def test_plain_http_credentials_warned(caplog: pytest.LogCaptureFixture) -> None:
    remote = TaxiiSettings(url="http://taxii.example.org/taxii2/", token=Secret("x"))
    local = TaxiiSettings(url="http://127.0.0.1:5000/taxii2/", token=Secret("x"))

    warn_about_transport(remote, "TAXII source 'a'")
    warn_about_transport(local, "TAXII source 'b'")

    messages = [r.getMessage() for r in caplog.records]
    assert any("'a'" in m and "without encryption" in m for m in messages)
    assert not any("'b'" in m for m in messages)


def test_ca_bundle_used_for_verification(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")

    source = make_source("https://127.0.0.1:9/taxii2/", tmp_path, ca_bundle="ca.pem")

    assert source.http.session.verify == str(bundle)
