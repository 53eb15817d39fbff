"""ECS documents built from atom rows, and atom types read back from alert enrichments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stixbridge.connectors.elastic.ecs import (
    INDICATOR_TYPES,
    as_number,
    atom_type_of,
    confidence_label,
    ecs_document,
    first,
    is_supported,
    lookup,
)

from .conftest import T0, make_row

SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def indicator_of(row_value: str, atom_type: str, **changes: object) -> dict:
    return ecs_document(make_row(row_value, atom_type, **changes), T0)["threat"]["indicator"]


def test_ipv4_document_fields() -> None:
    row = make_row("198.51.100.7", "ipv4")
    document = ecs_document(row, T0)

    assert document["@timestamp"] == "2024-06-05T10:00:00.000Z"
    assert document["event"] == {
        "kind": "enrichment",
        "category": ["threat"],
        "type": ["indicator"],
        "module": "ti_stixbridge",
        "dataset": "ti_stixbridge.indicator",
    }
    indicator = document["threat"]["indicator"]
    assert indicator["type"] == "ipv4-addr"
    assert indicator["ip"] == "198.51.100.7"
    assert indicator["name"] == "198.51.100.7"
    assert indicator["id"] == ["indicator--4e5d0daf-60fb-4f23-ade8-be9703fa278e"]
    assert indicator["first_seen"] == "2024-05-02T08:00:00.000Z"
    assert indicator["last_seen"] == "2024-05-02T08:00:00.000Z"
    assert indicator["modified_at"] == "2024-05-02T08:00:00.000Z"
    assert indicator["confidence"] == "High"
    assert indicator["marking"] == {"tlp": "GREEN", "tlp_version": "2.0"}
    assert indicator["provider"] == "alliance-taxii"
    assert document["threat"]["feed"] == {"name": "stixbridge"}
    assert document["tags"] == ["malicious-activity"]
    assert document["stixbridge"]["atom_type"] == "ipv4"


def test_ipv6_typed_as_ipv6_addr() -> None:
    # An IPv6 value must never be labelled ipv4-addr, even when a producer typed it so.
    indicator = indicator_of("2001:db8::5", "ipv6")

    assert indicator["type"] == "ipv6-addr"
    assert indicator["ip"] == "2001:db8::5"


@pytest.mark.parametrize(
    ("value", "atom_type", "ecs_type"),
    [("198.51.100.0/24", "ipv4-cidr", "ipv4-addr"), ("2001:db8:abcd::/48", "ipv6-cidr", "ipv6-addr")],
)
def test_cidr_goes_to_ip_range_not_ip(value: str, atom_type: str, ecs_type: str) -> None:
    document = ecs_document(make_row(value, atom_type), T0)

    assert "ip" not in document["threat"]["indicator"]
    assert document["threat"]["indicator"]["type"] == ecs_type
    assert document["stixbridge"]["ip_range"] == value


def test_url_fields() -> None:
    indicator = indicator_of("https://login.example.com/reset", "url")

    assert indicator["type"] == "url"
    assert indicator["url"] == {
        "full": "https://login.example.com/reset",
        "original": "https://login.example.com/reset",
        "domain": "login.example.com",
    }


def test_url_with_ipv6_host() -> None:
    indicator = indicator_of("http://[2001:db8::1]:8080/a", "url")

    assert indicator["url"]["domain"] == "2001:db8::1"


def test_domain_goes_to_url_domain() -> None:
    indicator = indicator_of("cdn.example.net", "domain")

    assert indicator["type"] == "domain-name"
    assert indicator["url"] == {"domain": "cdn.example.net"}


@pytest.mark.parametrize(
    ("atom_type", "value", "path"),
    [
        ("md5", "d41d8cd98f00b204e9800998ecf8427e", ("file", "hash", "md5")),
        ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709", ("file", "hash", "sha1")),
        ("sha256", SHA256, ("file", "hash", "sha256")),
        ("sha512", "cf83" + "0" * 124, ("file", "hash", "sha512")),
        ("ssdeep", "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C", ("file", "hash", "ssdeep")),
        ("tlsh", "T1" + "A" * 70, ("file", "hash", "tlsh")),
        ("file-name", "o'brien_invoice.pdf", ("file", "name")),
        ("email", "billing@example.com", ("email", "address")),
        ("x509-serial", "0a:1b:2c", ("x509", "serial_number")),
    ],
)
def test_value_lands_in_its_ecs_field(atom_type: str, value: str, path: tuple[str, ...]) -> None:
    node: object = indicator_of(value, atom_type)
    for part in path:
        assert isinstance(node, dict)
        node = node[part]

    assert node == value


@pytest.mark.parametrize("atom_type", ["sha3-256", "sha3-512", "x509-sha256", "mutex", "user-account", "process-name"])
def test_types_without_ecs_field_keep_value_in_name(atom_type: str) -> None:
    indicator = indicator_of("value-" + atom_type, atom_type)

    assert indicator["name"] == "value-" + atom_type
    assert (
        set(indicator)
        - {"type", "name", "id", "confidence", "modified_at", "last_seen", "first_seen", "marking", "provider"}
        == set()
    )


def test_registry_key_splits_hive() -> None:
    indicator = indicator_of("HKEY_LOCAL_MACHINE\\Software\\ExampleVendor\\Updater", "registry-key")

    assert indicator["type"] == "windows-registry-key"
    assert indicator["registry"] == {
        "path": "HKEY_LOCAL_MACHINE\\Software\\ExampleVendor\\Updater",
        "hive": "HKLM",
        "key": "Software\\ExampleVendor\\Updater",
    }


def test_registry_key_without_known_hive() -> None:
    indicator = indicator_of("Software\\ExampleVendor", "registry-key")

    assert indicator["registry"] == {"path": "Software\\ExampleVendor", "key": "Software\\ExampleVendor"}


def test_as_number_is_numeric() -> None:
    indicator = indicator_of("AS64496", "as-number")

    assert indicator["type"] == "autonomous-system"
    assert indicator["as"] == {"number": 64496}


@pytest.mark.parametrize(
    ("text", "number"),
    [("AS64496", 64496), ("as1", 1), ("64496", 64496), ("AS", None), ("ASx1", None), ("4294967296", None)],
)
def test_as_number_parsing(text: str, number: int | None) -> None:
    assert as_number(text) == number


@pytest.mark.parametrize(
    ("confidence", "label"),
    [
        (None, "Not Specified"),
        (0, "None"),
        (1, "Low"),
        (29, "Low"),
        (30, "Medium"),
        (69, "Medium"),
        (70, "High"),
        (100, "High"),
    ],
)
def test_confidence_label_scale(confidence: int | None, label: str) -> None:
    assert confidence_label(confidence) == label


@pytest.mark.parametrize(("tlp", "label"), [(0, "CLEAR"), (1, "GREEN"), (2, "AMBER"), (3, "AMBER+STRICT"), (4, "RED")])
def test_tlp_label_upper_case(tlp: int, label: str) -> None:
    assert indicator_of("198.51.100.7", "ipv4", tlp=tlp)["marking"]["tlp"] == label


def test_optional_fields_left_out() -> None:
    row = make_row(valid_from=None, tlp=None, sources=(), labels=(), description="", collections=(), created_by=())
    document = ecs_document(row, T0)

    assert "first_seen" not in document["threat"]["indicator"]
    assert "marking" not in document["threat"]["indicator"]
    assert "provider" not in document["threat"]["indicator"]
    assert "tags" not in document
    assert set(document["stixbridge"]) == {"atom_type", "indicator_ids", "weight"}


def test_stixbridge_fields_carry_row_details() -> None:
    row = make_row(
        valid_until=datetime(2024, 8, 1, tzinfo=UTC),
        context=(("dst_port", "443"),),
        direction="src",
        sources=("a", "b"),
        indicator_ids=("indicator--1", "indicator--2"),
    )
    document = ecs_document(row, T0)

    assert document["stixbridge"]["valid_until"] == "2024-08-01T00:00:00.000Z"
    assert document["stixbridge"]["context"] == ["dst_port=443"]
    assert document["stixbridge"]["direction"] == "src"
    assert document["stixbridge"]["indicator_ids"] == ["indicator--1", "indicator--2"]
    assert document["threat"]["indicator"]["provider"] == ["a", "b"]


def test_document_differs_only_in_timestamp_over_time() -> None:
    row = make_row()
    earlier = ecs_document(row, T0)
    later = ecs_document(row, datetime(2025, 1, 1, tzinfo=UTC))

    assert earlier.pop("@timestamp") != later.pop("@timestamp")
    assert earlier == later


def test_feed_name_is_configurable() -> None:
    document = ecs_document(make_row(), T0, feed_name="alliance")

    assert document["threat"]["feed"]["name"] == "alliance"


def test_unsupported_type_raises() -> None:
    row = make_row("x", "ja3")

    assert not is_supported(row)
    with pytest.raises(ValueError, match="'ja3'"):
        ecs_document(row, T0)


def test_bad_as_number_is_unsupported() -> None:
    assert not is_supported(make_row("ASN-UNKNOWN", "as-number"))


def test_every_atom_type_is_supported() -> None:
    core_types = [
        "ipv4",
        "ipv6",
        "ipv4-cidr",
        "ipv6-cidr",
        "domain",
        "url",
        "email",
        "md5",
        "sha1",
        "sha256",
        "sha512",
        "sha3-256",
        "sha3-512",
        "ssdeep",
        "tlsh",
        "file-name",
        "x509-serial",
        "x509-sha1",
        "x509-sha256",
        "x509-md5",
        "registry-key",
        "mutex",
        "user-account",
        "process-name",
        "as-number",
    ]

    assert sorted(INDICATOR_TYPES) == sorted(core_types)


# -- reading alerts ---------------------------------------------------------------------------------------


def test_lookup_reads_dotted_and_nested_keys() -> None:
    source = {
        "kibana.alert.uuid": "u1",
        "kibana": {"alert": {"rule": {"name": "r"}}},
        "threat": {"enrichments": [{"matched.id": "a"}, {"matched": {"id": "b"}}]},
    }

    assert lookup(source, "kibana.alert.uuid") == ["u1"]
    assert first(source, "kibana.alert.rule.name") == "r"
    assert lookup(source, "threat.enrichments.matched.id") == ["a", "b"]
    assert lookup(source, "missing.field") == []
    assert first(source, "missing") is None


def test_lookup_skips_none_values() -> None:
    assert lookup({"a": None, "b": [None, 1]}, "b") == [1]
    assert lookup({"a": None}, "a") == []


@pytest.mark.parametrize(
    ("atom_type", "value"),
    [
        ("ipv4", "198.51.100.7"),
        ("ipv6", "2001:db8::5"),
        ("ipv4-cidr", "198.51.100.0/24"),
        ("ipv6-cidr", "2001:db8::/32"),
        ("domain", "cdn.example.net"),
        ("url", "https://example.com/a"),
        ("email", "a@example.com"),
        ("md5", "d41d8cd98f00b204e9800998ecf8427e"),
        ("sha256", SHA256),
        ("file-name", "a.exe"),
        ("x509-serial", "0a"),
        ("registry-key", "HKLM\\Software\\X"),
        ("mutex", "m"),
        ("user-account", "root"),
        ("process-name", "evil.exe"),
        ("as-number", "AS64496"),
    ],
)
def test_atom_type_read_back_from_indicator(atom_type: str, value: str) -> None:
    indicator = ecs_document(make_row(value, atom_type), T0)["threat"]["indicator"]

    assert atom_type_of(indicator) == atom_type


@pytest.mark.parametrize("atom_type", ["sha3-256", "x509-sha256"])
def test_atom_type_ambiguous_without_own_field(atom_type: str) -> None:
    indicator = ecs_document(make_row("ab" * 32, atom_type), T0)["threat"]["indicator"]

    assert atom_type_of(indicator) is None


def test_atom_type_of_flattened_copy() -> None:
    assert atom_type_of({"type": "file", "file.hash.sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709"}) == "sha1"
    assert atom_type_of({"type": "ipv4-addr", "name": "not an ip"}) is None
    assert atom_type_of({}) is None
