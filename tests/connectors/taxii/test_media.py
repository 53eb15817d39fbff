"""Content-Type parsing, Content-Range parsing and Retry-After arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stixbridge.connectors.taxii.http import retry_after_seconds
from stixbridge.connectors.taxii.media import is_json_type, parse_media_type
from stixbridge.connectors.taxii.paging import parse_content_range


@pytest.mark.parametrize(
    ("header", "media", "version"),
    [
        ("application/taxii+json;version=2.1", "application/taxii+json", "2.1"),
        ("Application/TAXII+JSON ; Version=2.1", "application/taxii+json", "2.1"),
        ("application/stix+json; charset=utf-8; version=2.1", "application/stix+json", "2.1"),
        ("application/vnd.oasis.taxii+json; version=2.0", "application/vnd.oasis.taxii+json", "2.0"),
        ('application/taxii+json; version="2.1"', "application/taxii+json", "2.1"),
        ("text/html; charset=utf-8", "text/html", None),
    ],
)
def test_media_type_parsed(header: str, media: str, version: str | None) -> None:
    parsed_media, params = parse_media_type(header)

    assert parsed_media == media
    assert params.get("version") == version


def test_missing_media_type_is_empty() -> None:
    assert parse_media_type(None) == ("", {})
    assert parse_media_type("  ") == ("", {})


def test_json_types_recognised() -> None:
    assert is_json_type("application/json")
    assert is_json_type("application/stix+json")
    assert not is_json_type("text/html")
    assert not is_json_type("")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("items 0-49/1000", (0, 49, 1000)),
        ("items 0-1/*", (0, 1, None)),
        ("items */3", (None, None, 3)),
        ("Items 2 - 2 / 3", (2, 2, 3)),
        (None, (None, None, None)),
        ("bytes 0-10/20", (None, None, None)),
    ],
)
def test_content_range_parsed(header: str | None, expected: tuple[int | None, ...]) -> None:
    assert parse_content_range(header) == expected


def test_retry_after_seconds_form() -> None:
    assert retry_after_seconds("30", None) == 30.0


def test_retry_after_date_measured_from_response_date() -> None:
    # The local clock is an hour off; the server's own Date header decides.
    local_now = datetime(2024, 6, 5, 11, 0, 31, tzinfo=UTC)

    waited = retry_after_seconds("Wed, 05 Jun 2024 10:01:00 GMT", "Wed, 05 Jun 2024 10:00:31 GMT", local_now)

    assert waited == 29.0


def test_retry_after_date_without_date_header_uses_clock() -> None:
    now = datetime(2024, 6, 5, 10, 0, 50, tzinfo=UTC)

    assert retry_after_seconds("Wed, 05 Jun 2024 10:01:00 GMT", None, now) == 10.0
    assert retry_after_seconds("Wed, 05 Jun 2024 09:00:00 GMT", None, now) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5"])
def test_retry_after_unusable_gives_none(value: str | None) -> None:
    assert retry_after_seconds(value, None) is None
