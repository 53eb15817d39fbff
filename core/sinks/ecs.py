"""One Elastic Common Schema (ECS) threat-indicator document per atom.

The ECS NDJSON file sink and the Elasticsearch connector both build their documents here, so an
indicator looks the same whichever way it reaches Elasticsearch. Field names follow ECS 8.16 or later
(``threat.indicator.id`` is new in 8.16). Elastic's prebuilt indicator-match rules read only documents
with ``event.kind: enrichment``, ``event.category: threat``, ``event.type: indicator``, an
``event.module`` starting with ``ti_`` and an ``@timestamp`` in the last 30 days. Every document carries
all of them, and ``@timestamp`` is the time it was written, not the time the indicator was made.
"""

from __future__ import annotations

from copy import deepcopy
from datetime import datetime
from typing import Any

from ..model import AtomRow
from ..timeutil import format_timestamp
from ..tlp import Tlp
from .mapping import CIDR_TYPES, IP_TYPES, spelled_keys

EVENT_MODULE = "ti_stixbridge"
EVENT_DATASET = "ti_stixbridge.indicator"
DEFAULT_FEED_NAME = "stixbridge"

ECS_INDICATOR_TYPES: dict[str, str] = {
    # threat.indicator.type takes STIX Cyber-observable type names.
    "ipv4": "ipv4-addr",
    "ipv4-cidr": "ipv4-addr",
    "ipv6": "ipv6-addr",
    "ipv6-cidr": "ipv6-addr",
    "domain": "domain-name",
    "url": "url",
    "email": "email-addr",
    "md5": "file",
    "sha1": "file",
    "sha256": "file",
    "sha512": "file",
    "ssdeep": "file",
    "tlsh": "file",
    "file-name": "file",
    "x509-serial": "x509-certificate",
    "registry-key": "windows-registry-key",
    "mutex": "mutex",
    "user-account": "user-account",
    "process-name": "process",
    "as-number": "autonomous-system",
}
"""Atom type to ``threat.indicator.type``."""

ECS_UNSUPPORTED: dict[str, str] = {
    "sha3-256": "ECS file.hash has no SHA3 field",
    "sha3-512": "ECS file.hash has no SHA3 field",
    "x509-sha1": "ECS x509 has no certificate hash field",
    "x509-sha256": "ECS x509 has no certificate hash field",
    "x509-md5": "ECS x509 has no certificate hash field",
}
"""Atom types with no ECS field, with the reason a sink reports when it skips them."""

_HASH_FIELDS = frozenset({"md5", "sha1", "sha256", "sha512", "ssdeep", "tlsh"})
"""Hash atom types whose name is also their ``file.hash`` field name in ECS."""


def ecs_confidence(confidence: int | None) -> str:
    """Return the ECS confidence word for a STIX 0-100 confidence, using the STIX 2.1 None/Low/Med/High bands."""
    if confidence is None:
        return "Not Specified"
    if confidence <= 0:
        return "None"
    if confidence < 30:
        return "Low"
    if confidence < 70:
        return "Medium"
    return "High"


def ecs_document(row: AtomRow, now: datetime, *, feed_name: str = DEFAULT_FEED_NAME) -> dict[str, Any]:
    """Build the ECS document of one atom; its ``_id`` is ``row.key``, which callers put in the bulk action.

    Args:
        row: the live atom.
        now: the write time, stored as ``@timestamp``.
        feed_name: ``threat.feed.name``, which Kibana copies into alerts and lets rules tell feeds apart.

    Raises:
        ValueError: ECS has no field for the atom's type (see :data:`ECS_UNSUPPORTED`).
    """
    indicator_type = ECS_INDICATOR_TYPES.get(row.type)
    if indicator_type is None:
        reason = ECS_UNSUPPORTED.get(row.type, "unknown atom type")
        raise ValueError(f"cannot build an ECS document for atom type {row.type!r} ({row.value!r}): {reason}")

    indicator: dict[str, Any] = {
        "type": indicator_type,
        "id": _indicator_ids(row),
        "name": row.value,
        "confidence": ecs_confidence(row.confidence),
        "modified_at": format_timestamp(row.modified),
        "last_seen": format_timestamp(row.modified),
    }
    indicator.update(_value_fields(row))
    if row.valid_from is not None:
        indicator["first_seen"] = format_timestamp(row.valid_from)
    if row.description or row.name:
        indicator["description"] = row.description or row.name
    if row.tlp is not None:
        indicator["marking"] = {"tlp": Tlp(row.tlp).label, "tlp_version": "2.0"}
    if row.sources:
        indicator["provider"] = row.sources[0]

    document: dict[str, Any] = {
        "@timestamp": format_timestamp(now),
        "event": {
            "kind": "enrichment",
            "category": ["threat"],
            "type": ["indicator"],
            "module": EVENT_MODULE,
            "dataset": EVENT_DATASET,
        },
        "threat": {"feed": {"name": feed_name}, "indicator": indicator},
        "stixbridge": _stixbridge_fields(row),
    }
    if row.labels:
        document["tags"] = list(row.labels)
    return document


def ecs_documents(
    row: AtomRow, now: datetime, *, feed_name: str = DEFAULT_FEED_NAME
) -> list[tuple[str, dict[str, Any]]]:
    """Build the (``_id``, document) pairs of one atom: one pair, or one per spelling of a registry key.

    ``keyword`` fields such as ``registry.path`` compare exactly, and event sources write a hive as
    ``HKEY_LOCAL_MACHINE``, ``HKLM`` or ``\\REGISTRY\\MACHINE``, so each spelling needs its own document.

    Raises:
        ValueError: ECS has no field for the atom's type (see :data:`ECS_UNSUPPORTED`).
    """
    document = ecs_document(row, now, feed_name=feed_name)
    pairs = spelled_keys(row.key, row.type, row.value)
    if len(pairs) == 1:
        return [(row.key, document)]

    documents = []
    for key, spelling in pairs:
        copy = deepcopy(document)
        copy["threat"]["indicator"]["name"] = spelling
        copy["threat"]["indicator"]["registry"] = {"path": spelling}
        documents.append((key, copy))
    return documents


def ecs_document_ids(key: str, atom_type: str, value: str) -> list[str]:
    """Return every ``_id`` that :func:`ecs_documents` writes for an atom, so a delete removes them all."""
    return [document_id for document_id, _ in spelled_keys(key, atom_type, value)]


def _indicator_ids(row: AtomRow) -> list[str]:
    # The representative indicator first, then the others that carry the same atom.
    ids = [row.indicator_id]
    ids.extend(i for i in row.indicator_ids if i != row.indicator_id)
    return ids


def _value_fields(row: AtomRow) -> dict[str, Any]:
    atom_type, value = row.type, row.value
    if atom_type in IP_TYPES:
        return {"ip": value}
    if atom_type in CIDR_TYPES:
        # threat.indicator.ip has type ip, which rejects a block; the block goes to stixbridge.ip_range.
        return {}
    if atom_type == "domain":
        return {"url": {"domain": value}}
    if atom_type == "url":
        # url.domain stays unset: a rule matching on it would flag every visit to the host, not the URL.
        return {"url": {"full": value, "original": value}}
    if atom_type in _HASH_FIELDS:
        return {"file": {"hash": {atom_type: value}}}
    if atom_type == "file-name":
        return {"file": {"name": value}}
    if atom_type == "email":
        return {"email": {"address": value}}
    if atom_type == "x509-serial":
        return {"x509": {"serial_number": value}}
    if atom_type == "registry-key":
        return {"registry": {"path": value}}
    if atom_type == "as-number":
        return _as_number(value)
    return {}


def _as_number(value: str) -> dict[str, Any]:
    digits = value[2:] if value[:2].upper() == "AS" else value
    if not digits.isdigit():
        return {}
    return {"as": {"number": int(digits)}}


def _stixbridge_fields(row: AtomRow) -> dict[str, Any]:
    # Fields outside ECS that a cleanup query or an analyst needs: the expiry, the weight, every source.
    fields: dict[str, Any] = {
        "atom_type": row.type,
        "weight": row.weight,
        "sources": list(row.sources),
        "collections": list(row.collections),
    }
    if row.type in CIDR_TYPES:
        fields["ip_range"] = row.value
    if row.valid_until is not None:
        fields["valid_until"] = format_timestamp(row.valid_until)
    if row.direction:
        fields["direction"] = row.direction
    return fields
