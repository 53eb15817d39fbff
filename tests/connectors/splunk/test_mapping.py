"""Atom rows to KV store documents: ES collections, the app collection, case and key rules."""

from __future__ import annotations

import pytest

from stixbridge.connectors.splunk.mapping import (
    ES_COLLECTION_NAMES,
    app_locations,
    app_places,
    describe,
    es_locations,
    es_places,
    es_skip_reason,
    is_our_key,
)
from stixbridge.model import DeliveredRow
from stixbridge.sinks.mapping import ES_UNSUPPORTED

from .conftest import make_row

ALL_TYPES = (
    "ipv4 ipv6 ipv4-cidr ipv6-cidr domain url email md5 sha1 sha256 sha512 sha3-256 sha3-512 ssdeep tlsh "
    "file-name x509-serial x509-sha1 x509-sha256 x509-md5 registry-key mutex user-account process-name as-number"
).split()
ES_APP = "DA-ESS-ThreatIntelligence"


def test_every_atom_type_has_a_decision() -> None:
    for atom_type in ALL_TYPES:
        placements = es_places(make_row("x", atom_type), ES_APP)
        assert placements or atom_type in ES_UNSUPPORTED
        assert all(p.collection in ES_COLLECTION_NAMES for p in placements)
        assert app_places(make_row("x", atom_type), "TA-stixbridge", "stixbridge_intel")


def test_es_has_no_domain_intel() -> None:
    (placement,) = es_places(make_row("Evil.Example.com", "domain"), ES_APP)

    assert "domain_intel" not in ES_COLLECTION_NAMES
    assert placement.collection == "ip_intel"
    assert placement.document["domain"] == "evil.example.com"


def test_url_lowers_only_scheme_and_host() -> None:
    row = make_row("HTTP://Evil.Example.com/Login?ID=A", "url")

    (es,) = es_places(row, ES_APP)
    (app,) = app_places(row, "TA-stixbridge", "stixbridge_intel")

    assert es.document["url"] == "http://evil.example.com/Login?ID=A"
    assert app.document["value"] == "http://evil.example.com/Login?ID=A"
    assert app.document["display"] == "HTTP://Evil.Example.com/Login?ID=A"


def test_es_document_fields() -> None:
    row = make_row()

    (placement,) = es_places(row, ES_APP)

    assert set(placement.document) == {
        "_key",
        "ip",
        "threat_key",
        "time",
        "description",
        "weight",
        "valid_until",
        "stixbridge_digest",
    }
    assert placement.document["stixbridge_digest"] == f"1:{row.digest}"


def test_app_document_has_no_dotted_fields() -> None:
    row = make_row(context=(("dst_port", "443"),), direction="src")

    (placement,) = app_places(row, "TA-stixbridge", "stixbridge_intel")

    assert all("." not in name and not name.startswith("$") for name in placement.document)
    assert placement.document["context"] == ["dst_port=443"]
    assert placement.document["direction"] == "src"
    assert placement.document["type"] == "ipv4"


def test_missing_valid_from_uses_modified() -> None:
    row = make_row(valid_from=None, valid_until=None)

    (placement,) = app_places(row, "TA-stixbridge", "stixbridge_intel")

    assert placement.document["time"] == pytest.approx(row.modified.timestamp())
    assert placement.document["valid_until"] is None


def test_registry_key_one_document_per_spelling() -> None:
    row = make_row("HKEY_LOCAL_MACHINE\\Software\\Run", "registry-key")
    delivered = DeliveredRow(row.key, row.type, row.value, row.digest)

    placements = es_places(row, ES_APP)
    locations = es_locations(delivered, ES_APP)

    assert [p.document["_key"] for p in placements] == [row.key, f"{row.key}-1", f"{row.key}-2"]
    assert [location.key for location in locations] == [p.document["_key"] for p in placements]
    assert all(is_our_key(p.document["_key"]) for p in placements)
    assert [loc.key for loc in app_locations(delivered, "TA-stixbridge", "c")] == [loc.key for loc in locations]


def test_unsupported_type_has_no_es_location() -> None:
    assert es_locations(DeliveredRow("stixbridge-ab", "mutex", "x", "d"), ES_APP) == []
    assert es_skip_reason("mutex") == "ES: ES has no collection for mutexes"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("stixbridge-" + "a" * 40, True),
        ("stixbridge-0123456789abcdef0123456789abcdef01234567-2", True),
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


def test_description_joins_folds_and_cuts() -> None:
    assert describe(make_row(name="N", description="D")) == "N: D"
    assert describe(make_row(name="N", description="")) == "N"
    assert describe(make_row(name="", description="D")) == "D"
    assert describe(make_row(name="", description="two\nlines")) == "two lines"
    assert len(describe(make_row(description="x" * 5000))) == 2000
