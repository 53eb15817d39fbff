"""MISP attribute types that match stixbridge atom types, and MISP's rules for their values.

The value rules repeat those of MISP's ``AttributeValidationTool`` (MISP 2.5) for the types written
here, so a value MISP would drop is reported as a failed row before it is sent. MISP drops invalid
attributes of an event edit without saying so, which is why the check runs on our side.

A domain atom is always written as MISP type ``domain``, never ``hostname``: telling a host name from a
registrable domain needs the Public Suffix List, which stixbridge does not ship, and MISP matches,
correlates and exports both types the same way.
"""

from __future__ import annotations

import ipaddress
import re

from stixbridge.model import AtomRow

# Atom type -> MISP attribute type. ip-dst becomes ip-src when the row says the address was a source.
MISP_TYPE_OF_ATOM: dict[str, str] = {
    "ipv4": "ip-dst",
    "ipv6": "ip-dst",
    "ipv4-cidr": "ip-dst",
    "ipv6-cidr": "ip-dst",
    "domain": "domain",
    "url": "url",
    "email": "email-src",
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "sha512": "sha512",
    "sha3-256": "sha3-256",
    "sha3-512": "sha3-512",
    "ssdeep": "ssdeep",
    "tlsh": "tlsh",
    "file-name": "filename",
    "x509-sha1": "x509-fingerprint-sha1",
    "x509-sha256": "x509-fingerprint-sha256",
    "x509-md5": "x509-fingerprint-md5",
    "registry-key": "regkey",
    "mutex": "mutex",
    "as-number": "AS",
}
"""Atom types MISP has no attribute type for (x509-serial, user-account, process-name) are not written."""

_IP_TYPES = frozenset({"ipv4", "ipv6", "ipv4-cidr", "ipv6-cidr"})

# The default category of each type written, from MISP's describeTypes ``sane_defaults``.
MISP_CATEGORY: dict[str, str] = {
    "ip-dst": "Network activity",
    "ip-src": "Network activity",
    "domain": "Network activity",
    "url": "Network activity",
    "AS": "Network activity",
    "x509-fingerprint-sha1": "Network activity",
    "x509-fingerprint-sha256": "Network activity",
    "x509-fingerprint-md5": "Network activity",
    "email-src": "Payload delivery",
    "md5": "Payload delivery",
    "sha1": "Payload delivery",
    "sha256": "Payload delivery",
    "sha512": "Payload delivery",
    "sha3-256": "Payload delivery",
    "sha3-512": "Payload delivery",
    "ssdeep": "Payload delivery",
    "tlsh": "Payload delivery",
    "filename": "Payload delivery",
    "regkey": "Persistence mechanism",
    "mutex": "Artifacts dropped",
}

# MISP attribute type -> atom type, for attributes read back (sightings); IP types are decided by value.
ATOM_TYPE_OF_MISP: dict[str, str] = {
    "domain": "domain",
    "hostname": "domain",
    "url": "url",
    "email": "email",
    "email-src": "email",
    "email-dst": "email",
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "sha512": "sha512",
    "sha3-256": "sha3-256",
    "sha3-512": "sha3-512",
    "ssdeep": "ssdeep",
    "tlsh": "tlsh",
    "filename": "file-name",
    "x509-fingerprint-sha1": "x509-sha1",
    "x509-fingerprint-sha256": "x509-sha256",
    "x509-fingerprint-md5": "x509-md5",
    "regkey": "registry-key",
    "mutex": "mutex",
    "AS": "as-number",
}

_HEX_LENGTH = {
    "md5": 32,
    "sha1": 40,
    "sha256": 64,
    "sha512": 128,
    "sha3-256": 64,
    "sha3-512": 128,
    "x509-fingerprint-md5": 32,
    "x509-fingerprint-sha1": 40,
    "x509-fingerprint-sha256": 64,
}
_HEX = re.compile(r"[0-9a-fA-F]+")
_DOMAIN = re.compile(r"^[A-Z0-9.\-_]+\.[A-Z0-9\-]{2,}$", re.IGNORECASE)
_EMAIL = re.compile(r"^.[^\s]*@.*\..*$", re.IGNORECASE)
_SSDEEP = re.compile(r"^([0-9]+):([0-9a-zA-Z/+]*):([0-9a-zA-Z/+]*)$")
MAX_AS_NUMBER = 4_294_967_295


def misp_type_of_row(row: AtomRow) -> str | None:
    """Return the MISP attribute type for a row, or None when MISP has no type for its atom."""
    misp_type = MISP_TYPE_OF_ATOM.get(row.type)
    if misp_type == "ip-dst" and row.direction == "src":
        return "ip-src"
    return misp_type


def misp_value_of_row(row: AtomRow) -> str:
    """Return the value as MISP stores it; MISP lower-cases hashes and writes AS numbers without ``AS``."""
    if row.type in _HEX_LENGTH or row.type in ("tlsh", "domain", "email"):
        return row.value.lower()
    return row.value


def value_problem(misp_type: str, value: str) -> str | None:
    """Return why MISP would reject ``value`` for ``misp_type``, or None when MISP accepts it.

    Only the types in :data:`MISP_CATEGORY` are checked; others return a message saying so.
    """
    if not value or not value.strip():
        return "the value is empty"
    if misp_type in _HEX_LENGTH:
        digits = value.replace(":", "") if misp_type.startswith("x509") else value
        if len(digits) != _HEX_LENGTH[misp_type] or not _HEX.fullmatch(digits):
            return f"a {misp_type} value must be {_HEX_LENGTH[misp_type]} hexadecimal characters"
        return None
    if misp_type in ("ip-dst", "ip-src"):
        try:
            ipaddress.ip_network(value, strict=False) if "/" in value else ipaddress.ip_address(value)
        except ValueError:
            return "not an IP address or CIDR block"
        return None
    if misp_type == "domain":
        return None if _DOMAIN.match(value) else "not a domain name as MISP accepts it (ASCII labels and a dot)"
    if misp_type == "email-src":
        return None if _EMAIL.match(value) else "not an e-mail address"
    if misp_type == "ssdeep":
        return None if _SSDEEP.match(value) else "not an SSDEEP hash (blocksize:hash:hash)"
    if misp_type == "tlsh":
        digits = value.lower()
        digits = digits[1:] if digits.startswith("t") else digits
        return None if len(digits) > 35 and _HEX.fullmatch(digits) else "not a TLSH hash"
    if misp_type == "AS":
        number = value[2:] if value.upper().startswith("AS") else value
        if not number.isdigit() or int(number) > MAX_AS_NUMBER:
            return f"an AS number must be an integer from 0 to {MAX_AS_NUMBER}"
        return None
    if misp_type in ("url", "filename", "regkey"):
        return "MISP rejects new lines in this type" if "\n" in value else None
    if misp_type == "mutex":
        return None
    return f"stixbridge does not write MISP type {misp_type!r}"


def atom_type_of_attribute(misp_type: str, value: str) -> str | None:
    """Return the atom type of a MISP attribute stixbridge wrote, or None for other types."""
    if misp_type in ("ip-dst", "ip-src"):
        try:
            if "/" in value:
                return f"ipv{ipaddress.ip_network(value, strict=False).version}-cidr"
            return f"ipv{ipaddress.ip_address(value).version}"
        except ValueError:
            return None
    return ATOM_TYPE_OF_MISP.get(misp_type)


def is_ip_atom(atom_type: str) -> bool:
    """Return True for the four IP atom types."""
    return atom_type in _IP_TYPES
