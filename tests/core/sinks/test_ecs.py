"""Tests of the ECS threat-indicator document builder."""

from __future__ import annotations

import pytest

from stixbridge.sinks.ecs import (
    ECS_INDICATOR_TYPES,
    ECS_UNSUPPORTED,
    ecs_confidence,
    ecs_document,
    ecs_document_ids,
    ecs_documents,
)
from stixbridge.tlp import Tlp
from tests.core.sinks.filesink_fixtures import ATOM_EXAMPLES, INDICATOR_ID, NOW, build_row


def indicator_of(atom_type: str, value: str | None = None, **overrides) -> dict:
    return ecs_document(build_row(atom_type, value, **overrides), NOW)["threat"]["indicator"]


def test_every_atom_type_is_mapped_or_refused() -> None:
    for atom_type in ATOM_EXAMPLES:
        assert (atom_type in ECS_INDICATOR_TYPES) != (atom_type in ECS_UNSUPPORTED), atom_type


def test_event_fields_for_indicator_match_rules() -> None:
    document = ecs_document(build_row("ipv4"), NOW, feed_name="alliance")

    assert document["@timestamp"] == "2024-06-15T12:00:00.000Z"
    assert document["event"]["kind"] == "enrichment"
    assert document["event"]["category"] == ["threat"]
    assert document["event"]["type"] == ["indicator"]
    assert document["event"]["module"].startswith("ti_")
    assert document["threat"]["feed"] == {"name": "alliance"}
    assert document["tags"] == ["malicious-activity"]


def test_indicator_common_fields() -> None:
    other = "indicator--ea74f7e3-6350-44c6-a99c-29e52462ad45"
    indicator = indicator_of("ipv4", indicator_ids=(other, INDICATOR_ID))

    assert indicator["id"] == [INDICATOR_ID, other]
    assert indicator["name"] == "198.51.100.7"
    assert indicator["type"] == "ipv4-addr"
    assert indicator["first_seen"] == "2024-05-01T08:00:00.000Z"
    assert indicator["last_seen"] == "2024-05-02T09:30:00.000Z"
    assert indicator["modified_at"] == "2024-05-02T09:30:00.000Z"
    assert indicator["confidence"] == "High"
    assert indicator["marking"] == {"tlp": "GREEN", "tlp_version": "2.0"}
    assert indicator["provider"] == "alliance"
    assert indicator["description"] == "Seen in a phishing campaign"


def test_optional_fields_left_out() -> None:
    document = ecs_document(build_row("ipv4", valid_from=None, tlp=None, labels=(), sources=(), description=""), NOW)
    indicator = document["threat"]["indicator"]

    assert "first_seen" not in indicator
    assert "marking" not in indicator
    assert "provider" not in indicator
    assert "tags" not in document
    assert indicator["description"] == "Phishing infrastructure"


@pytest.mark.parametrize(
    ("confidence", "expected"),
    [(None, "Not Specified"), (0, "None"), (1, "Low"), (29, "Low"), (30, "Medium"), (69, "Medium"),
     (70, "High"), (100, "High")],
)
def test_confidence_bands(confidence: int | None, expected: str) -> None:
    assert ecs_confidence(confidence) == expected
    assert indicator_of("ipv4", confidence=confidence)["confidence"] == expected


@pytest.mark.parametrize(
    ("level", "label"),
    [(Tlp.CLEAR, "CLEAR"), (Tlp.GREEN, "GREEN"), (Tlp.AMBER, "AMBER"), (Tlp.AMBER_STRICT, "AMBER+STRICT"),
     (Tlp.RED, "RED")],
)
def test_tlp_upper_case(level: Tlp, label: str) -> None:
    assert indicator_of("ipv4", tlp=int(level))["marking"]["tlp"] == label


@pytest.mark.parametrize(
    ("atom_type", "field", "expected"),
    [
        ("ipv4", ("ip",), "198.51.100.7"),
        ("ipv6", ("ip",), "2001:db8::5"),
        ("domain", ("url", "domain"), "cdn.example.net"),
        ("url", ("url", "full"), "https://login.example.com/reset"),
        ("url", ("url", "original"), "https://login.example.com/reset"),
        ("md5", ("file", "hash", "md5"), ATOM_EXAMPLES["md5"]),
        ("sha1", ("file", "hash", "sha1"), ATOM_EXAMPLES["sha1"]),
        ("sha256", ("file", "hash", "sha256"), ATOM_EXAMPLES["sha256"]),
        ("sha512", ("file", "hash", "sha512"), ATOM_EXAMPLES["sha512"]),
        ("ssdeep", ("file", "hash", "ssdeep"), ATOM_EXAMPLES["ssdeep"]),
        ("file-name", ("file", "name"), "invoice_2024.exe"),
        ("email", ("email", "address"), "billing@example.com"),
        ("x509-serial", ("x509", "serial_number"), "0A1B2C3D"),
        ("registry-key", ("registry", "path"), ATOM_EXAMPLES["registry-key"]),
        ("as-number", ("as", "number"), 64496),
    ],
)
def test_value_field_per_type(atom_type: str, field: tuple[str, ...], expected: object) -> None:
    value: object = indicator_of(atom_type)
    for part in field:
        value = value[part]  # type: ignore[index]
    assert value == expected


def test_as_number_with_prefix() -> None:
    assert indicator_of("as-number", "AS64500")["as"] == {"number": 64500}


def test_url_sets_no_domain() -> None:
    assert "domain" not in indicator_of("url")["url"]


@pytest.mark.parametrize("atom_type", ["ipv4-cidr", "ipv6-cidr"])
def test_cidr_never_in_ip_field(atom_type: str) -> None:
    document = ecs_document(build_row(atom_type), NOW)
    indicator = document["threat"]["indicator"]

    assert "ip" not in indicator
    assert indicator["type"] == ("ipv4-addr" if atom_type == "ipv4-cidr" else "ipv6-addr")
    assert document["stixbridge"]["ip_range"] == ATOM_EXAMPLES[atom_type]
    assert indicator["name"] == ATOM_EXAMPLES[atom_type]


def test_stixbridge_fields() -> None:
    row = build_row("ipv4", valid_until=NOW, direction="src", sources=("a", "b"), collections=("c1",))

    fields = ecs_document(row, NOW)["stixbridge"]

    assert fields == {
        "atom_type": "ipv4",
        "weight": 70,
        "sources": ["a", "b"],
        "collections": ["c1"],
        "valid_until": "2024-06-15T12:00:00.000Z",
        "direction": "src",
    }


@pytest.mark.parametrize("atom_type", sorted(ECS_UNSUPPORTED))
def test_unsupported_type_raises(atom_type: str) -> None:
    with pytest.raises(ValueError, match=f"atom type '{atom_type}'"):
        ecs_document(build_row(atom_type), NOW)


def test_documents_one_per_registry_spelling() -> None:
    row = build_row("registry-key", "HKEY_LOCAL_MACHINE\\Software\\Run")

    pairs = ecs_documents(row, NOW)

    assert [key for key, _ in pairs] == ecs_document_ids(row.key, row.type, row.value)
    assert [doc["threat"]["indicator"]["name"] for _, doc in pairs] == [
        "HKEY_LOCAL_MACHINE\\Software\\Run",
        "HKLM\\Software\\Run",
        "\\REGISTRY\\MACHINE\\Software\\Run",
    ]
    assert pairs[0][1] == ecs_document(row, NOW)


def test_documents_single_for_other_types() -> None:
    row = build_row("domain")

    assert ecs_documents(row, NOW) == [(row.key, ecs_document(row, NOW))]
    assert ecs_document_ids(row.key, "domain", row.value) == [row.key]
