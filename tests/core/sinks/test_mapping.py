"""Tests of the atom-type tables for Splunk ES and MISP."""

from __future__ import annotations

import pytest

from stixbridge.sinks.mapping import (
    ES_COLLECTION_FIELDS,
    ES_COLLECTIONS,
    ES_UNSUPPORTED,
    LOWERCASE_TYPES,
    MISP_ATTRIBUTE_TYPES,
    MISP_UNSUPPORTED,
    misp_attribute_type,
    misp_value,
    splunk_value,
)
from tests.core.sinks.filesink_fixtures import ATOM_EXAMPLES


def test_every_atom_type_has_an_es_answer() -> None:
    for atom_type in ATOM_EXAMPLES:
        assert (atom_type in ES_COLLECTIONS) != (atom_type in ES_UNSUPPORTED), atom_type


def test_every_atom_type_has_a_misp_answer() -> None:
    for atom_type in ATOM_EXAMPLES:
        assert (atom_type in MISP_ATTRIBUTE_TYPES) != (atom_type in MISP_UNSUPPORTED), atom_type


def test_es_fields_exist_in_their_collection() -> None:
    for atom_type, (collection, field) in ES_COLLECTIONS.items():
        assert field in ES_COLLECTION_FIELDS[collection], atom_type


def test_no_domain_intel_collection() -> None:
    assert ES_COLLECTIONS["domain"] == ("ip_intel", "domain")
    assert "domain_intel" not in ES_COLLECTION_FIELDS


def test_lowercase_types_are_known() -> None:
    assert set(LOWERCASE_TYPES) <= set(ATOM_EXAMPLES)


@pytest.mark.parametrize(
    ("atom_type", "value", "expected"),
    [
        ("ipv4", "198.51.100.7", "198.51.100.7"),
        ("mutex", "Global\\Evil", "Global\\Evil"),
        ("url", "not a url", "not a url"),
        ("url", "http://[2001:DB8::1]:8080/A", "http://[2001:db8::1]:8080/A"),
        ("url", "http://[broken", "http://[broken"),
        ("x509-serial", "0A:1B", "0a:1b"),
    ],
)
def test_splunk_value(atom_type: str, value: str, expected: str) -> None:
    assert splunk_value(atom_type, value) == expected


def test_misp_direction_only_changes_addresses() -> None:
    assert misp_attribute_type("ipv6-cidr", "src").type == "ip-src"
    assert misp_attribute_type("ipv4", None).type == "ip-dst"
    assert misp_attribute_type("url", "src").type == "url"
    assert misp_attribute_type("user-account", None) is None


@pytest.mark.parametrize(("value", "expected"), [("AS64496", "64496"), ("as64496", "64496"), ("64496", "64496")])
def test_misp_as_number(value: str, expected: str) -> None:
    assert misp_value("as-number", value) == expected
    assert misp_value("domain", "as.example") == "as.example"
