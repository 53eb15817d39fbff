"""Tests for refanging network indicators."""

from __future__ import annotations

import pytest

from stixbridge.refang import refang


@pytest.mark.parametrize(
    ("defanged", "expected"),
    [
        ("hxxps://login.example[.]com/reset", "https://login.example.com/reset"),
        ("hxxp://example.net/a", "http://example.net/a"),
        ("HXXPS://example.net/", "https://example.net/"),
        ("hXXp://example.net/", "http://example.net/"),
        ("h[tt]p://example.net/a", "http://example.net/a"),
        ("h[tt]ps://example.net/a", "https://example.net/a"),
        ("fxp://files.example.org/x", "ftp://files.example.org/x"),
        ("cdn[.]example[.]net", "cdn.example.net"),
        ("update[dot]example[dot]org", "update.example.org"),
        ("update[DOT]example[Dot]org", "update.example.org"),
        ("billing[@]example.com", "billing@example.com"),
        ("billing[at]example.com", "billing@example.com"),
        ("198.51.100[.]23", "198.51.100.23"),
        ("example(.)com", "example.com"),
        ("example{.}com", "example.com"),
        ("example(dot)com", "example.com"),
        ("example{dot}com", "example.com"),
        ("billing(at)example.com", "billing@example.com"),
        ("billing(@)example.com", "billing@example.com"),
        ("http[:]//example.com/", "http://example.com/"),
        ("hxxp[:]//example.com/", "http://example.com/"),
        ("hxxp[://]example.com/", "http://example.com/"),
        ("http[://]example.com/", "http://example.com/"),
    ],
)
def test_refang_replaces_marker(defanged: str, expected: str) -> None:
    assert refang(defanged) == (expected, True)


@pytest.mark.parametrize(
    "value",
    [
        "https://login.example.com/reset",
        "example.com",
        "198.51.100.23",
        "hxxpexample.com",
        "hxxp.example.com",
        "http://[2001:db8::1]/",
        "http://[::]/",
        "example\\.com",
        "",
    ],
)
def test_refang_leaves_live_value_unchanged(value: str) -> None:
    assert refang(value) == (value, False)


def test_refang_keeps_parentheses_in_url_path() -> None:
    # A URL path may contain '(' and ')' literally, so only the host part is refanged for them.
    assert refang("hxxp://example(.)com/a(.)b?q=(dot)") == ("http://example.com/a(.)b?q=(dot)", True)


def test_refang_replaces_brackets_in_url_path() -> None:
    # '[' and ']' are not allowed in a URL path, so a bracket marker there is always defanging.
    assert refang("http://example.com/file[.]php") == ("http://example.com/file.php", True)


def test_refang_schemeless_value_host_only() -> None:
    assert refang("example(.)com/a(.)b") == ("example.com/a(.)b", True)


def test_refang_defanged_scheme_only_at_start() -> None:
    assert refang("http://example.com/hxxp://x") == ("http://example.com/hxxp://x", False)
