"""Tests of STIX patterns built from MISP attributes: escaping and composite types."""

from __future__ import annotations

import re

import pytest
from stix2patterns.v21.pattern import Pattern
from stix2patterns.validator import run_validator

from stixbridge.connectors.misp.patterns import pattern_of_attribute, split_composite
from stixbridge.errors import InvalidInputError

SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _literals(pattern: str) -> list[str]:
    """Return the decoded string literals of a pattern, as a STIX parser reads them."""
    found = []
    for comparisons in Pattern(pattern).inspect().comparisons.values():
        for _path, _operator, literal in comparisons:
            if literal.startswith("'"):
                found.append(re.sub(r"\\(.)", r"\1", literal[1:-1]))
    return found


# Values that need escaping, with the exact pattern text they must give.
ESCAPED = [
    ("filename", "quarterly report's draft.docx", "[file:name = 'quarterly report\\'s draft.docx']"),
    ("regkey", "HKLM\\Software\\ExampleVendor\\Updater",
     "[windows-registry-key:key = 'HKLM\\\\Software\\\\ExampleVendor\\\\Updater']"),
    ("url", "http://example.org/download?name=it's", "[url:value = 'http://example.org/download?name=it\\'s']"),
    ("filename|sha256", f"o'neil.exe|{SHA256_EMPTY}",
     f"[file:name = 'o\\'neil.exe' AND file:hashes.'SHA-256' = '{SHA256_EMPTY}']"),
]  # fmt: skip


@pytest.mark.parametrize(("misp_type", "value", "expected"), ESCAPED)
def test_pattern_escapes_values(misp_type: str, value: str, expected: str) -> None:
    assert pattern_of_attribute(misp_type, value) == expected


@pytest.mark.parametrize(("misp_type", "value", "expected"), ESCAPED)
def test_pattern_passes_stix2_patterns(misp_type: str, value: str, expected: str) -> None:
    assert run_validator(pattern_of_attribute(misp_type, value), stix_version="2.1") == []


@pytest.mark.parametrize(("misp_type", "value", "expected"), ESCAPED)
def test_pattern_parses_back_to_value(misp_type: str, value: str, expected: str) -> None:
    literals = _literals(pattern_of_attribute(misp_type, value))

    assert literals == value.split("|")


# Composite types, with the split parts and the pattern each must give.
COMPOSITES = [
    ("domain|ip", "portal.example.com|198.51.100.14", {"domain": "portal.example.com", "ip": "198.51.100.14"},
     "[domain-name:value = 'portal.example.com' AND domain-name:resolves_to_refs[*].value = '198.51.100.14']"),
    ("ip-dst|port", "203.0.113.77|8443", {"dest_ip": "203.0.113.77", "dest_port": "8443"},
     "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '203.0.113.77' AND "
     "network-traffic:dst_port = 8443]"),
    ("ip-src|port", "2001:db8::7|53", {"src_ip": "2001:db8::7", "src_port": "53"},
     "[network-traffic:src_ref.type = 'ipv6-addr' AND network-traffic:src_ref.value = '2001:db8::7' AND "
     "network-traffic:src_port = 53]"),
    ("filename|sha256", f"invoice_2024.exe|{SHA256_EMPTY}",
     {"file_name": "invoice_2024.exe", "file_hash": SHA256_EMPTY, "hash_type": "SHA-256"},
     f"[file:name = 'invoice_2024.exe' AND file:hashes.'SHA-256' = '{SHA256_EMPTY}']"),
    ("regkey|value", "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\Updater|C:\\Users\\Public\\upd.exe --mode a|b",
     {"registry_key": "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\Updater",
      "registry_value_data": "C:\\Users\\Public\\upd.exe --mode a|b"},
     "[windows-registry-key:key = 'HKCU\\\\Software\\\\Microsoft\\\\Windows\\\\CurrentVersion\\\\Run\\\\Updater' AND "
     "windows-registry-key:values[*].data = 'C:\\\\Users\\\\Public\\\\upd.exe --mode a|b']"),
    ("malware-sample", "sample.zip|d41d8cd98f00b204e9800998ecf8427e",
     {"file_name": "sample.zip", "file_hash": "d41d8cd98f00b204e9800998ecf8427e", "hash_type": "MD5"},
     "[file:name = 'sample.zip' AND file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']"),
]  # fmt: skip


@pytest.mark.parametrize(("misp_type", "value", "parts", "pattern"), COMPOSITES)
def test_composite_split(misp_type: str, value: str, parts: dict[str, str], pattern: str) -> None:
    assert split_composite(misp_type, value) == parts


@pytest.mark.parametrize(("misp_type", "value", "parts", "pattern"), COMPOSITES)
def test_composite_pattern(misp_type: str, value: str, parts: dict[str, str], pattern: str) -> None:
    assert pattern_of_attribute(misp_type, value) == pattern
    assert run_validator(pattern, stix_version="2.1") == []


def test_ports_are_integers_in_patterns() -> None:
    pattern = pattern_of_attribute("ip-dst|port", "203.0.113.77|8443")

    assert Pattern(pattern).inspect().comparisons["network-traffic"][2] == (["dst_port"], "=", "8443")


@pytest.mark.parametrize(
    ("misp_type", "value", "expected"),
    [
        ("ip-dst", "198.51.100.7", "[ipv4-addr:value = '198.51.100.7']"),
        ("ip-dst", "2001:db8::/32", "[ipv6-addr:value = '2001:db8::/32']"),
        ("ip-src", "198.51.100.7",
         "[network-traffic:src_ref.type = 'ipv4-addr' AND network-traffic:src_ref.value = '198.51.100.7']"),
        ("domain", "example.com", "[domain-name:value = 'example.com']"),
        ("hostname", "www.example.com", "[domain-name:value = 'www.example.com']"),
        ("md5", "d41d8cd98f00b204e9800998ecf8427e", "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']"),
        ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709",
         "[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']"),
        ("email-src", "a@example.com", "[email-message:from_ref.value = 'a@example.com']"),
        ("mutex", "Global\\x", "[mutex:name = 'Global\\\\x']"),
        ("AS", "AS64496", "[autonomous-system:number = 64496]"),
        ("x509-fingerprint-sha256", SHA256_EMPTY, f"[x509-certificate:hashes.'SHA-256' = '{SHA256_EMPTY}']"),
        ("hostname|port", "c2.example.com|443",
         "[network-traffic:dst_ref.type = 'domain-name' AND network-traffic:dst_ref.value = 'c2.example.com' AND "
         "network-traffic:dst_port = 443]"),
    ],
)  # fmt: skip
def test_single_types(misp_type: str, value: str, expected: str) -> None:
    assert pattern_of_attribute(misp_type, value) == expected
    assert run_validator(expected, stix_version="2.1") == []


@pytest.mark.parametrize(
    ("misp_type", "value", "message"),
    [
        ("ip-dst|port", "203.0.113.77", "has no '|'"),
        ("ip-dst|port", "203.0.113.77|http", "not a number from 1 to 65535"),
        ("ip-dst|port", "203.0.113.77|70000", "not a number from 1 to 65535"),
        ("filename|md5", "|d41d8cd98f00b204e9800998ecf8427e", "empty part"),
        ("AS", "ASX", "not an AS number"),
        ("text", "anything", "has no STIX pattern"),
    ],
)
def test_bad_values_rejected(misp_type: str, value: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        pattern_of_attribute(misp_type, value)
