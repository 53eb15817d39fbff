"""Tables of the fields each atom type goes to in Splunk Enterprise Security and in MISP.

The tables are public so that the file sinks and the Splunk and MISP connectors write the same fields.
``docs/mapping.md`` shows them as tables with the reasons for each choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from ..atoms import registry_key_aliases

IP_TYPES = frozenset({"ipv4", "ipv6"})
CIDR_TYPES = frozenset({"ipv4-cidr", "ipv6-cidr"})



def spelled_keys(key: str, atom_type: str, value: str) -> list[tuple[str, str]]:
    """Return one (row key, value) pair per spelling that a sink matching exactly writes as its own row.

    Event sources report a registry key under several hive spellings (``HKEY_LOCAL_MACHINE\\``, ``HKLM\\``,
    ``\\REGISTRY\\MACHINE\\``), so it gets one row per spelling. The first pair is the canonical value
    under ``key`` itself, and the others use ``<key>-1``, ``<key>-2``... Any other atom gives
    ``[(key, value)]``.
    The pairs depend only on the arguments, so a delete finds every row again from the delivered value.
    """
    spellings = registry_key_aliases(value) if atom_type == "registry-key" else (value,)
    return [(key if index == 0 else f"{key}-{index}", spelling) for index, spelling in enumerate(spellings)]


# Splunk Enterprise Security threat-intelligence collections.

ES_COMMON_FIELDS: tuple[str, ...] = ("_key", "threat_key", "time", "description", "weight")
"""Fields every ES threat-intelligence row has. ``threat_key`` contains the STIX indicator id."""

ES_EXTRA_FIELDS: tuple[str, ...] = ("valid_until",)
"""Fields stixbridge adds after the ES ones: ``valid_until`` (epoch, empty when none) lets a scheduled
search drop rows that outlived their indicator if stixbridge stops running."""

ES_COLLECTION_FIELDS: dict[str, tuple[str, ...]] = {
    # The type-specific CSV headers of ES's threat-intelligence lookups (ES 4.7 to 7.x documentation).
    "ip_intel": ("ip", "domain"),
    "http_intel": ("url", "http_referrer", "http_user_agent"),
    "file_intel": ("file_hash", "file_name"),
    "email_intel": ("src_user", "subject"),
    "certificate_intel": (
        "certificate_serial",
        "certificate_issuer",
        "certificate_subject",
        "certificate_issuer_organization",
        "certificate_subject_organization",
        "certificate_issuer_unit",
        "certificate_subject_unit",
    ),
    "registry_intel": ("registry_path", "registry_value_name", "registry_value_text"),
    "process_intel": ("process", "process_file_name"),
    "user_intel": ("user",),
}

ES_COLLECTIONS: dict[str, tuple[str, str]] = {
    # ES has no domain_intel collection; ES itself keeps domains in ip_intel.domain.
    "ipv4": ("ip_intel", "ip"),
    "ipv6": ("ip_intel", "ip"),
    # ip_intel.ip takes an address or a CIDR block; ES's lookup matches blocks with match_type CIDR(ip).
    "ipv4-cidr": ("ip_intel", "ip"),
    "ipv6-cidr": ("ip_intel", "ip"),
    "domain": ("ip_intel", "domain"),
    "url": ("http_intel", "url"),
    "email": ("email_intel", "src_user"),
    "md5": ("file_intel", "file_hash"),
    "sha1": ("file_intel", "file_hash"),
    "sha256": ("file_intel", "file_hash"),
    "sha512": ("file_intel", "file_hash"),
    "sha3-256": ("file_intel", "file_hash"),
    "sha3-512": ("file_intel", "file_hash"),
    "file-name": ("file_intel", "file_name"),
    "x509-serial": ("certificate_intel", "certificate_serial"),
    "registry-key": ("registry_intel", "registry_path"),
    # The atom is an executable name, which ES keeps in process_file_name; process is the command line.
    "process-name": ("process_intel", "process_file_name"),
    "user-account": ("user_intel", "user"),
}
"""Atom type to the ES collection and the field that contains the value."""

ES_UNSUPPORTED: dict[str, str] = {
    "ssdeep": "fuzzy hash; ES matches file_hash exactly",
    "tlsh": "fuzzy hash; ES matches file_hash exactly",
    "x509-sha1": "ES certificate_intel has no certificate hash field",
    "x509-sha256": "ES certificate_intel has no certificate hash field",
    "x509-md5": "ES certificate_intel has no certificate hash field",
    "mutex": "ES has no collection for mutexes",
    "as-number": "ES has no collection for autonomous systems",
}
"""Atom types with no ES field, with the reason a sink reports when it skips them."""

LOWERCASE_TYPES = frozenset(
    {
        "ipv6",
        "ipv6-cidr",
        "domain",
        "email",
        "md5",
        "sha1",
        "sha256",
        "sha512",
        "sha3-256",
        "sha3-512",
        "file-name",
        "x509-serial",
        "registry-key",
        "process-name",
        "user-account",
    }
)
"""Types whose values Splunk should compare without case.

A Splunk lookup with ``case_sensitive_match = false`` lowers the event value before comparing, so it
only finds rows stored in lower case. Hex digests, domains, IPv6 and the Windows names (files,
processes, registry paths, accounts) are case-insensitive by nature and are stored lower-cased. A URL
keeps the case of its path and query, where servers do distinguish case, and only its scheme and host
are lowered.
"""


def splunk_value(atom_type: str, value: str) -> str:
    """Return the value as it is stored in a Splunk lookup, lower-cased for :data:`LOWERCASE_TYPES`."""
    if atom_type in LOWERCASE_TYPES:
        return value.lower()
    if atom_type == "url":
        return _lower_scheme_and_host(value)
    return value


def _lower_scheme_and_host(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url

    # Lower only the host, not the user information before "@", which may be case-sensitive.
    userinfo, at, host = parts.netloc.rpartition("@")
    return urlunsplit((parts.scheme.lower(), f"{userinfo}{at}{host.lower()}", parts.path, parts.query, parts.fragment))


# MISP attribute types.


@dataclass(frozen=True, slots=True)
class MispType:
    """A MISP attribute type with the category and ``to_ids`` flag MISP's describeTypes defaults give it."""

    type: str
    category: str
    to_ids: bool


MISP_ATTRIBUTE_TYPES: dict[str, MispType] = {
    # Addresses default to destinations; an atom with direction "src" becomes ip-src instead.
    # ip-dst and ip-src accept CIDR notation, so blocks keep their prefix.
    "ipv4": MispType("ip-dst", "Network activity", True),
    "ipv6": MispType("ip-dst", "Network activity", True),
    "ipv4-cidr": MispType("ip-dst", "Network activity", True),
    "ipv6-cidr": MispType("ip-dst", "Network activity", True),
    "domain": MispType("domain", "Network activity", True),
    "url": MispType("url", "Network activity", True),
    "email": MispType("email-src", "Payload delivery", True),
    "md5": MispType("md5", "Payload delivery", True),
    "sha1": MispType("sha1", "Payload delivery", True),
    "sha256": MispType("sha256", "Payload delivery", True),
    "sha512": MispType("sha512", "Payload delivery", True),
    "sha3-256": MispType("sha3-256", "Payload delivery", True),
    "sha3-512": MispType("sha3-512", "Payload delivery", True),
    "ssdeep": MispType("ssdeep", "Payload delivery", True),
    "tlsh": MispType("tlsh", "Payload delivery", True),
    "file-name": MispType("filename", "Payload delivery", True),
    "x509-sha1": MispType("x509-fingerprint-sha1", "Network activity", True),
    "x509-sha256": MispType("x509-fingerprint-sha256", "Network activity", True),
    "x509-md5": MispType("x509-fingerprint-md5", "Network activity", True),
    "registry-key": MispType("regkey", "Persistence mechanism", True),
    "mutex": MispType("mutex", "Artifacts dropped", True),
    "as-number": MispType("AS", "Network activity", False),
}
"""Atom type to MISP attribute type (defaults from PyMISP 2.5's ``describeTypes.json``)."""

MISP_UNSUPPORTED: dict[str, str] = {
    "x509-serial": "MISP has no attribute type for a certificate serial number",
    "user-account": "MISP has no attribute type for an account used by an attacker",
    "process-name": "MISP has no attribute type for a process name",
}
"""Atom types with no MISP attribute type, with the reason a sink reports when it skips them."""


def misp_attribute_type(atom_type: str, direction: str | None) -> MispType | None:
    """Return the MISP type of an atom, or None when MISP has none; ``direction`` "src" picks ``ip-src``."""
    misp_type = MISP_ATTRIBUTE_TYPES.get(atom_type)
    if misp_type is not None and misp_type.type == "ip-dst" and direction == "src":
        return MispType("ip-src", misp_type.category, misp_type.to_ids)
    return misp_type


def misp_value(atom_type: str, value: str) -> str:
    """Return the value as MISP stores it: an AS number without its ``AS`` prefix, others unchanged."""
    if atom_type == "as-number" and value[:2].upper() == "AS":
        return value[2:]
    return value
