"""One Elastic Common Schema (ECS) indicator document per atom, and the way back from an alert's enrichment.

The document holds one atomic value in one typed field, because Kibana's indicator-match rules skip
indicator documents whose mapped field has several values. Everything in it except ``@timestamp`` follows
from the row alone, so a row that did not change produces the same document and need not be sent again.

Field names and expected values follow ECS 8.16 (``threat.indicator.id`` was added there). Where ECS has no
field for an atom type (SHA-3 hashes, certificate fingerprints, mutexes, user accounts, process names) the
value is only in ``threat.indicator.name``, next to ``threat.indicator.type``. CIDR blocks go to
``stixbridge.ip_range`` (mapped as ``ip_range``), never to ``threat.indicator.ip``, which holds single
addresses only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from stixbridge.model import AtomRow
from stixbridge.timeutil import format_timestamp
from stixbridge.tlp import Tlp

ECS_VERSION = "8.16.0"
EVENT_MODULE = "ti_stixbridge"
EVENT_DATASET = "ti_stixbridge.indicator"

# Atom type -> ECS threat.indicator.type (the STIX Cyber-observable type names ECS expects).
INDICATOR_TYPES: dict[str, str] = {
    "ipv4": "ipv4-addr",
    "ipv6": "ipv6-addr",
    "ipv4-cidr": "ipv4-addr",
    "ipv6-cidr": "ipv6-addr",
    "domain": "domain-name",
    "url": "url",
    "email": "email-addr",
    "md5": "file",
    "sha1": "file",
    "sha256": "file",
    "sha512": "file",
    "sha3-256": "file",
    "sha3-512": "file",
    "ssdeep": "file",
    "tlsh": "file",
    "file-name": "file",
    "x509-serial": "x509-certificate",
    "x509-sha1": "x509-certificate",
    "x509-sha256": "x509-certificate",
    "x509-md5": "x509-certificate",
    "registry-key": "windows-registry-key",
    "mutex": "mutex",
    "user-account": "user-account",
    "process-name": "process",
    "as-number": "autonomous-system",
}

# Atom type -> the field under threat.indicator that holds the value; absent where ECS has none.
VALUE_FIELDS: dict[str, str] = {
    "ipv4": "ip",
    "ipv6": "ip",
    "domain": "url.domain",
    "url": "url.full",
    "email": "email.address",
    "md5": "file.hash.md5",
    "sha1": "file.hash.sha1",
    "sha256": "file.hash.sha256",
    "sha512": "file.hash.sha512",
    "ssdeep": "file.hash.ssdeep",
    "tlsh": "file.hash.tlsh",
    "file-name": "file.name",
    "x509-serial": "x509.serial_number",
    "registry-key": "registry.path",
    "as-number": "as.number",
}

CIDR_FIELD = "stixbridge.ip_range"

# Registry hive names as STIX writes them -> the abbreviations ECS uses in registry.hive.
_HIVES = {
    "HKEY_LOCAL_MACHINE": "HKLM",
    "HKLM": "HKLM",
    "HKEY_CURRENT_USER": "HKCU",
    "HKCU": "HKCU",
    "HKEY_CLASSES_ROOT": "HKCR",
    "HKCR": "HKCR",
    "HKEY_USERS": "HKU",
    "HKU": "HKU",
    "HKEY_CURRENT_CONFIG": "HKCC",
    "HKCC": "HKCC",
}


def confidence_label(confidence: int | None) -> str:
    """Map a STIX 0-100 confidence to ECS's words by the STIX 2.1 None/Low/Med/High scale.

    0 is ``None``, 1-29 ``Low``, 30-69 ``Medium``, 70-100 ``High``; an unknown confidence is ``Not Specified``.
    """
    if confidence is None:
        return "Not Specified"
    if confidence <= 0:
        return "None"
    if confidence < 30:
        return "Low"
    if confidence < 70:
        return "Medium"
    return "High"


def as_number(value: str) -> int | None:
    """Return the number of an AS written ``AS64496``, ``as64496`` or ``64496``, or None."""
    digits = value.strip().upper().removeprefix("AS")
    if not digits.isdigit():
        return None
    number = int(digits)
    return number if number < 2**32 else None


def is_supported(row: AtomRow) -> bool:
    """Return True when ``ecs_document`` can represent the row."""
    if row.type not in INDICATOR_TYPES:
        return False
    if row.type == "as-number":
        return as_number(row.value) is not None
    return True


def ecs_document(row: AtomRow, now: datetime, *, feed_name: str = "stixbridge") -> dict[str, Any]:
    """Build the ECS indicator document for one atom row.

    Args:
        row: the atom; its key is the document ``_id``.
        now: written as ``@timestamp``, the one field that does not follow from the row.
        feed_name: written as ``threat.feed.name``.

    Raises:
        ValueError: the row's type has no ECS form (see :func:`is_supported`); the message quotes it.
    """
    if not is_supported(row):
        raise ValueError(f"atom type {row.type!r} with value {row.value!r} has no ECS indicator form")

    indicator: dict[str, Any] = {
        "type": INDICATOR_TYPES[row.type],
        "name": row.value,
        "id": [row.indicator_id],
        "confidence": confidence_label(row.confidence),
        "modified_at": format_timestamp(row.modified),
        "last_seen": format_timestamp(row.modified),
    }
    _set_value_fields(indicator, row)
    if row.valid_from is not None:
        indicator["first_seen"] = format_timestamp(row.valid_from)
    if row.description:
        indicator["description"] = row.description
    if row.tlp is not None:
        indicator["marking"] = {"tlp": Tlp(row.tlp).label, "tlp_version": "2.0"}
    if row.sources:
        indicator["provider"] = row.sources[0] if len(row.sources) == 1 else list(row.sources)

    document: dict[str, Any] = {
        "@timestamp": format_timestamp(now),
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "enrichment",
            "category": ["threat"],
            "type": ["indicator"],
            "module": EVENT_MODULE,
            "dataset": EVENT_DATASET,
        },
        "threat": {"indicator": indicator, "feed": {"name": feed_name}},
        "stixbridge": _stixbridge_fields(row),
    }
    if row.labels:
        document["tags"] = list(row.labels)
    return document


def _set_value_fields(indicator: dict[str, Any], row: AtomRow) -> None:
    field = VALUE_FIELDS.get(row.type)
    if row.type == "as-number":
        indicator["as"] = {"number": as_number(row.value)}
    elif row.type == "url":
        url: dict[str, Any] = {"full": row.value, "original": row.value}
        host = _url_host(row.value)
        if host:
            url["domain"] = host
        indicator["url"] = url
    elif row.type == "registry-key":
        registry: dict[str, Any] = {"path": row.value}
        hive, _, rest = row.value.partition("\\")
        if hive.upper() in _HIVES and rest:
            registry["hive"] = _HIVES[hive.upper()]
            registry["key"] = rest
        else:
            registry["key"] = row.value
        indicator["registry"] = registry
    elif field is not None:
        _set_dotted(indicator, field, row.value)


def _url_host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _stixbridge_fields(row: AtomRow) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "atom_type": row.type,
        "indicator_ids": list(row.indicator_ids),
        "weight": row.weight,
    }
    if row.type in ("ipv4-cidr", "ipv6-cidr"):
        fields["ip_range"] = row.value
    if row.valid_until is not None:
        fields["valid_until"] = format_timestamp(row.valid_until)
    if row.sources:
        fields["sources"] = list(row.sources)
    if row.collections:
        fields["collections"] = list(row.collections)
    if row.created_by:
        fields["created_by"] = list(row.created_by)
    if row.context:
        fields["context"] = [f"{name}={value}" for name, value in row.context]
    if row.direction:
        fields["direction"] = row.direction
    return fields


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def lookup(source: Any, dotted: str) -> list[Any]:
    """Return every value at a dotted path, whether the JSON nests objects or writes dotted keys.

    Alert documents mix both: ``{"kibana.alert.uuid": ...}`` next to ``{"threat": {"enrichments": [...]}}``.
    Lists along the way are walked, so the result is flat; None values are left out.
    """
    if source is None:
        return []
    if isinstance(source, list):
        found: list[Any] = []
        for item in source:
            found.extend(lookup(item, dotted))
        return found
    if dotted == "":
        return [source]
    if not isinstance(source, Mapping):
        return []

    parts = dotted.split(".")
    found = []
    for cut in range(1, len(parts) + 1):
        key = ".".join(parts[:cut])
        if key in source:
            found.extend(lookup(source[key], ".".join(parts[cut:])))
    return found


def first(source: Any, dotted: str) -> Any:
    """Return the first value at a dotted path (see :func:`lookup`), or None."""
    values = lookup(source, dotted)
    return values[0] if values else None


def atom_type_of(indicator: Any) -> str | None:
    """Return the atom type a ``threat.indicator`` object of ours describes, or None when it is ambiguous.

    Works on the copy Kibana writes into an alert's ``threat.enrichments[].indicator``. SHA-3 hashes and
    certificate fingerprints have no field of their own, so the caller must look at the document itself.
    """
    ecs_type = first(indicator, "type")
    name = first(indicator, "name")
    name = name if isinstance(name, str) else ""
    simple = {
        "domain-name": "domain",
        "url": "url",
        "email-addr": "email",
        "windows-registry-key": "registry-key",
        "mutex": "mutex",
        "user-account": "user-account",
        "process": "process-name",
        "autonomous-system": "as-number",
    }
    if ecs_type in simple:
        return simple[ecs_type]
    if ecs_type in ("ipv4-addr", "ipv6-addr"):
        return _ip_atom_type(name)
    if ecs_type == "file":
        for atom_type in ("md5", "sha1", "sha256", "sha512", "ssdeep", "tlsh"):
            if first(indicator, f"file.hash.{atom_type}") is not None:
                return atom_type
        if first(indicator, "file.name") is not None:
            return "file-name"
        return None
    if ecs_type == "x509-certificate" and first(indicator, "x509.serial_number") is not None:
        return "x509-serial"
    return None


def _ip_atom_type(value: str) -> str | None:
    try:
        if "/" in value:
            return "ipv4-cidr" if ipaddress.ip_network(value, strict=False).version == 4 else "ipv6-cidr"
        return "ipv4" if ipaddress.ip_address(value).version == 4 else "ipv6"
    except ValueError:
        return None
