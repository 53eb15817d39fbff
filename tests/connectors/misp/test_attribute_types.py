"""Tests of MISP attribute types and MISP's value rules as stixbridge applies them before writing."""

from __future__ import annotations

import pytest

from stixbridge.connectors.misp.attribute_types import (
    MISP_CATEGORY,
    MISP_TYPE_OF_ATOM,
    atom_type_of_attribute,
    misp_type_of_row,
    misp_value_of_row,
    value_problem,
)

from .conftest import make_row


@pytest.mark.parametrize(
    ("misp_type", "value"),
    [
        ("ip-dst", "198.51.100.7"),
        ("ip-dst", "2001:db8::1"),
        ("ip-src", "198.51.100.0/24"),
        ("domain", "xn--bcher-kva.example"),
        ("md5", "d41d8cd98f00b204e9800998ecf8427e"),
        ("sha512", "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"),
        ("x509-fingerprint-sha1", "da:39:a3:ee:5e:6b:4b:0d:32:55:bf:ef:95:60:18:90:af:d8:07:09"),
        ("ssdeep", "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C"),
        ("tlsh", "T1" + "A" * 70),
        ("email-src", "a@example.com"),
        ("AS", "AS64496"),
        ("url", "http://example.org/a?b=c"),
        ("regkey", "HKEY_LOCAL_MACHINE\\Software\\Example"),
        ("mutex", "Global\\x"),
    ],
)
def test_values_misp_accepts(misp_type: str, value: str) -> None:
    assert value_problem(misp_type, value) is None


@pytest.mark.parametrize(
    ("misp_type", "value", "message"),
    [
        ("ip-dst", "198.51.100.300", "not an IP address"),
        ("ip-dst", "198.51.100.0/33", "not an IP address"),
        ("md5", "d41d8cd98f00b204", "32 hexadecimal characters"),
        ("sha1", "zz39a3ee5e6b4b0d3255bfef95601890afd80709", "40 hexadecimal characters"),
        ("domain", "localhost", "not a domain name"),
        ("domain", "bücher.example", "not a domain name"),
        ("email-src", "nobody", "not an e-mail address"),
        ("ssdeep", "not-ssdeep", "not an SSDEEP hash"),
        ("tlsh", "T1ABC", "not a TLSH hash"),
        ("AS", "4294967296", "AS number"),
        ("url", "http://a\nb", "new lines"),
        ("filename", "", "empty"),
        ("text", "x", "does not write"),
    ],
)
def test_values_misp_rejects(misp_type: str, value: str, message: str) -> None:
    problem = value_problem(misp_type, value)

    assert problem is not None
    assert message in problem


def test_every_written_type_has_category() -> None:
    assert set(MISP_TYPE_OF_ATOM.values()) | {"ip-src"} <= set(MISP_CATEGORY)


def test_ip_src_for_source_direction() -> None:
    assert misp_type_of_row(make_row(1, direction="src")) == "ip-src"
    assert misp_type_of_row(make_row(1)) == "ip-dst"
    assert misp_type_of_row(make_row(1, "user-account", "admin")) is None


def test_values_lowercased_as_misp_stores() -> None:
    assert misp_value_of_row(make_row(1, "tlsh", "T1ABCDEF")) == "t1abcdef"
    assert misp_value_of_row(make_row(1, "file-name", "Report.DOCX")) == "Report.DOCX"


@pytest.mark.parametrize(
    ("misp_type", "value", "atom_type"),
    [
        ("ip-dst", "198.51.100.7", "ipv4"),
        ("ip-src", "2001:db8::1", "ipv6"),
        ("ip-dst", "198.51.100.0/24", "ipv4-cidr"),
        ("ip-dst", "2001:db8::/32", "ipv6-cidr"),
        ("ip-dst", "not-an-ip", None),
        ("hostname", "www.example.com", "domain"),
        ("email-dst", "a@example.com", "email"),
        ("x509-fingerprint-sha256", "00", "x509-sha256"),
        ("AS", "64496", "as-number"),
        ("text", "x", None),
    ],
)
def test_atom_type_of_attribute(misp_type: str, value: str, atom_type: str | None) -> None:
    assert atom_type_of_attribute(misp_type, value) == atom_type
