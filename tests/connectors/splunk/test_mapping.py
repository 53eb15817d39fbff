"""Atom rows to KV store documents: ES collections, the app collection, case and key rules."""

from __future__ import annotations

import pytest

from stixbridge.connectors.splunk.mapping import (
    ES_COLLECTIONS,
    ES_TARGETS,
    app_place,
    describe,
    es_place,
    es_skip_reason,
    is_our_key,
)

from .conftest import make_row

ALL_TYPES = (
    "ipv4 ipv6 ipv4-cidr ipv6-cidr domain url email md5 sha1 sha256 sha512 sha3-256 sha3-512 ssdeep tlsh "
    "file-name x509-serial x509-sha1 x509-sha256 x509-md5 registry-key mutex user-account process-name as-number"
).split()


def test_every_atom_type_has_a_decision() -> None:
    for atom_type in ALL_TYPES:
        placement = es_place(make_row("x", atom_type), "DA-ESS-ThreatIntelligence")
        if placement is None:
            assert es_skip_reason(atom_type)
        else:
            assert placement.collection in ES_COLLECTIONS


def test_es_has_no_domain_intel() -> None:
    assert "domain_intel" not in ES_COLLECTIONS
    assert ES_TARGETS["domain"] == ("ip_intel", "domain")


def test_es_url_keeps_case() -> None:
    placement = es_place(make_row("http://Evil.example.com/Login?ID=A", "url"), "DA-ESS-ThreatIntelligence")

    assert placement is not None
    assert placement.document["url"] == "http://Evil.example.com/Login?ID=A"


def test_app_value_lowercase_for_every_type() -> None:
    placement = app_place(make_row("http://Evil.example.com/Login", "url"), "TA-stixbridge", "stixbridge_intel")

    assert placement.document["value"] == "http://evil.example.com/login"
    assert placement.document["display"] == "http://Evil.example.com/Login"


def test_app_document_has_no_dotted_fields() -> None:
    row = make_row(context=(("dst_port", "443"),), direction="src")

    document = app_place(row, "TA-stixbridge", "stixbridge_intel").document

    assert all("." not in name and not name.startswith("$") for name in document)
    assert document["context"] == ["dst_port=443"]
    assert document["direction"] == "src"


def test_missing_valid_from_uses_modified() -> None:
    row = make_row(valid_from=None, valid_until=None)

    document = app_place(row, "TA-stixbridge", "stixbridge_intel").document

    assert document["time"] == pytest.approx(row.modified.timestamp())
    assert document["valid_until"] is None


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("stixbridge-" + "a" * 40, True),
        ("stixbridge-0123456789abcdef0123456789abcdef01234567", True),
        ("stixbridge-", False),
        ("stixbridge-ABC", False),
        ("stixbridge-abc/def", False),
        ("iblocklist_spyware|198.51.100.7", False),
        ("xstixbridge-abc", False),
        ("", False),
    ],
)
def test_is_our_key(key: str, expected: bool) -> None:
    assert is_our_key(key) is expected


def test_description_joins_and_cuts() -> None:
    assert describe(make_row(name="N", description="D")) == "N: D"
    assert describe(make_row(name="N", description="")) == "N"
    assert describe(make_row(name="", description="D")) == "D"
    assert len(describe(make_row(description="x" * 5000))) == 1024
