"""What the connector adds to the shared ECS mapping: accepted rows, and atoms read back from alert enrichments."""

from __future__ import annotations

import pytest

from stixbridge.connectors.elastic import ecs
from stixbridge.connectors.elastic.ecs import (
    atom_type_of,
    base_document_id,
    ecs_document,
    first,
    is_supported,
    lookup,
    unsupported_reason,
)
from stixbridge.sinks import ecs as core_ecs

from .conftest import T0, make_row

SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_documents_come_from_the_shared_mapping() -> None:
    # The ecs-ndjson file sink builds its documents with the same function.
    assert ecs.ecs_document is core_ecs.ecs_document
    assert ecs.ecs_documents is core_ecs.ecs_documents


@pytest.mark.parametrize("atom_type", sorted(core_ecs.ECS_INDICATOR_TYPES))
def test_types_with_ecs_form_supported(atom_type: str) -> None:
    assert is_supported(make_row("v", atom_type))


@pytest.mark.parametrize("atom_type", ["sha3-256", "x509-sha256", "ja3"])
def test_types_without_ecs_form_unsupported(atom_type: str) -> None:
    assert not is_supported(make_row("v", atom_type))
    assert unsupported_reason(atom_type).startswith(f"atom type {atom_type}: ")


def test_cidr_never_in_ip_field() -> None:
    # An ip field rejects a CIDR block; the block goes to an ip_range field a range query can use.
    document = ecs_document(make_row("198.51.100.0/24", "ipv4-cidr"), T0)

    assert "ip" not in document["threat"]["indicator"]
    assert document["threat"]["indicator"]["type"] == "ipv4-addr"
    assert document["stixbridge"]["ip_range"] == "198.51.100.0/24"


@pytest.mark.parametrize(
    ("value", "atom_type", "ecs_type"), [("2001:db8::5", "ipv6", "ipv6-addr"), ("198.51.100.5", "ipv4", "ipv4-addr")]
)
def test_address_typed_by_version(value: str, atom_type: str, ecs_type: str) -> None:
    # An IPv6 address is never labelled ipv4-addr, whatever type a producer declared.
    indicator = ecs_document(make_row(value, atom_type), T0)["threat"]["indicator"]

    assert indicator["type"] == ecs_type
    assert indicator["ip"] == value


def test_document_differs_only_in_timestamp_over_time() -> None:
    row = make_row()
    earlier = ecs_document(row, T0)
    later = ecs_document(row, T0.replace(year=2025))

    assert earlier.pop("@timestamp") != later.pop("@timestamp")
    assert earlier == later


@pytest.mark.parametrize(
    ("document_id", "base"),
    [
        ("stixbridge-" + "a" * 40, "stixbridge-" + "a" * 40),
        ("stixbridge-" + "a" * 40 + "-2", "stixbridge-" + "a" * 40),
        ("stixbridge-" + "1" * 40, "stixbridge-" + "1" * 40),
        ("other-3", "other-3"),
    ],
)
def test_base_document_id(document_id: str, base: str) -> None:
    assert base_document_id(document_id) == base


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


def test_atom_type_unknown_without_telling_fields() -> None:
    assert atom_type_of({"type": "file", "name": "ab" * 32}) is None
    assert atom_type_of({"type": "x509-certificate", "name": "ab" * 20}) is None


def test_atom_type_of_flattened_copy() -> None:
    assert atom_type_of({"type": "file", "file.hash.sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709"}) == "sha1"
    assert atom_type_of({"type": "ipv4-addr", "name": "not an ip"}) is None
    assert atom_type_of({}) is None
