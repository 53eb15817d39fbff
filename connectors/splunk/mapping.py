"""How an atom row becomes a KV store document: ES threat-intel collections and the app's own collection.

Enterprise Security keeps one collection per kind of artifact (``DA-ESS-ThreatIntelligence``
``collections.conf``); there is no ``domain_intel``, so domains go to ``ip_intel.domain``. Each atom goes
to exactly one collection and field. Types that ES cannot match by equality are left out of ES:
fuzzy hashes (ssdeep, TLSH), certificate fingerprints (``certificate_intel`` has no hash field), mutexes
and AS numbers. The app's own collection holds every type.

Case: Splunk compares lookup values case-sensitively unless the lookup sets ``case_sensitive_match =
false``, and that setting only works on KV store data stored in lower case. So values are written in lower
case for every type whose meaning ignores case: IP addresses (IPv6 hex digits), CIDRs, domains, hashes,
email addresses, certificate serials, Windows registry paths, file names, process names and user names.
URLs keep their case in ES (``http_intel.url``), because paths and queries are case-sensitive. The app
collection's ``value`` is lower case for every type, since its lookup matches case-insensitively, and
``display`` keeps the original spelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stixbridge.model import ROW_KEY_PREFIX, AtomRow, DeliveredRow
from stixbridge.tlp import Tlp

KEY_PREFIX = f"{ROW_KEY_PREFIX}-"
DIGEST_FIELD = "stixbridge_digest"
SCHEMA_VERSION = "1"
"""Stored with each row's digest; bump it when this module changes what a row looks like."""
MAX_DESCRIPTION = 1024

ES_TARGETS: dict[str, tuple[str, str]] = {
    "ipv4": ("ip_intel", "ip"),
    "ipv6": ("ip_intel", "ip"),
    "ipv4-cidr": ("ip_intel", "ip"),
    "ipv6-cidr": ("ip_intel", "ip"),
    "domain": ("ip_intel", "domain"),
    "url": ("http_intel", "url"),
    "md5": ("file_intel", "file_hash"),
    "sha1": ("file_intel", "file_hash"),
    "sha256": ("file_intel", "file_hash"),
    "sha512": ("file_intel", "file_hash"),
    "sha3-256": ("file_intel", "file_hash"),
    "sha3-512": ("file_intel", "file_hash"),
    "file-name": ("file_intel", "file_name"),
    "email": ("email_intel", "src_user"),
    "x509-serial": ("certificate_intel", "certificate_serial"),
    "registry-key": ("registry_intel", "registry_path"),
    "process-name": ("process_intel", "process"),
    "user-account": ("user_intel", "user"),
}
"""Atom type to (ES collection, field)."""

ES_COLLECTIONS = tuple(sorted({collection for collection, _ in ES_TARGETS.values()}))

CASE_SENSITIVE_IN_ES = frozenset({"url"})

APP_COLLECTION_FIELDS: dict[str, str] = {
    "type": "string",
    "value": "string",
    "display": "string",
    "threat_key": "string",
    "indicator_ids": "string",
    "name": "string",
    "description": "string",
    "time": "time",
    "valid_until": "time",
    "modified": "time",
    "confidence": "number",
    "weight": "number",
    "tlp": "string",
    "labels": "string",
    "sources": "string",
    "collections": "string",
    "created_by": "string",
    "direction": "string",
    "context": "string",
    DIGEST_FIELD: "string",
}
"""Field types of the app collection, as in the app's ``collections.conf``."""

APP_ACCELERATIONS: dict[str, dict[str, int]] = {"value_idx": {"value": 1}, "threat_key_idx": {"threat_key": 1}}


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one row goes in one target: the namespace app, the collection and the document."""

    app: str
    collection: str
    document: dict[str, Any]


def es_place(row: AtomRow, es_app: str) -> Placement | None:
    """Return the ES placement of a row, or None when ES has no collection for its type."""
    target = ES_TARGETS.get(row.type)
    if target is None:
        return None
    collection, field = target

    value = row.value if row.type in CASE_SENSITIVE_IN_ES else row.value.lower()
    document: dict[str, Any] = {
        "_key": row.key,
        field: value,
        "threat_key": row.indicator_id,
        "time": _epoch(row.valid_from or row.modified),
        "description": describe(row),
        "weight": row.weight,
        DIGEST_FIELD: stored_digest(row),
    }
    if row.valid_until is not None:
        document["stixbridge_valid_until"] = _epoch(row.valid_until)
    return Placement(es_app, collection, document)


def app_place(row: AtomRow, app: str, collection: str) -> Placement:
    """Return the placement of a row in the app's own collection, which holds every atom type."""
    document: dict[str, Any] = {
        "_key": row.key,
        "type": row.type,
        "value": row.value.lower(),
        "display": row.display or row.value,
        "threat_key": row.indicator_id,
        "indicator_ids": list(row.indicator_ids),
        "name": row.name,
        "description": describe(row),
        "time": _epoch(row.valid_from or row.modified),
        "valid_until": _epoch(row.valid_until) if row.valid_until is not None else None,
        "modified": _epoch(row.modified),
        "confidence": row.confidence,
        "weight": row.weight,
        "tlp": Tlp(row.tlp).label if row.tlp is not None else None,
        "labels": list(row.labels),
        "sources": list(row.sources),
        "collections": list(row.collections),
        "created_by": list(row.created_by),
        "direction": row.direction,
        "context": [f"{name}={value}" for name, value in row.context],
        DIGEST_FIELD: stored_digest(row),
    }
    return Placement(app, collection, document)


def es_collection_of(row: DeliveredRow) -> str | None:
    """Return the ES collection that holds a delivered row, or None when ES never got it."""
    target = ES_TARGETS.get(row.type)
    return target[0] if target else None


def es_skip_reason(atom_type: str) -> str:
    """Return why ES cannot hold an atom type, for skip counts and logs."""
    if atom_type in ("ssdeep", "tlsh"):
        return f"ES cannot match fuzzy hashes ({atom_type})"
    if atom_type.startswith("x509-"):
        return f"ES certificate_intel has no field for {atom_type}"
    return f"ES has no collection for {atom_type}"


def is_our_key(key: str) -> bool:
    """Return True for keys stixbridge writes: the prefix, then lower-case hex and hyphens only.

    A key with ``/`` can be inserted into the KV store but never updated or deleted by key, and a key
    without the prefix belongs to someone else; neither is ever deleted.
    """
    if not key.startswith(KEY_PREFIX) or len(key) <= len(KEY_PREFIX):
        return False
    return all(ch in "0123456789abcdef-" for ch in key[len(KEY_PREFIX) :])


def stored_digest(row: AtomRow) -> str:
    """Return the digest written with a row: the schema version, then the row's own digest."""
    return f"{SCHEMA_VERSION}:{row.digest}"


def describe(row: AtomRow) -> str:
    """Return the ``description`` field: name and description, cut to a length lookups show well."""
    if row.name and row.description and row.description != row.name:
        text = f"{row.name}: {row.description}"
    else:
        text = row.description or row.name
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 3] + "..."
    return text


def _epoch(moment: Any) -> float:
    return round(moment.timestamp(), 3)
