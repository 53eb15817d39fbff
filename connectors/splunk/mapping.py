"""How an atom row becomes KV store documents: ES threat-intel collections and the app's own collection.

The ES fields, the types ES cannot hold, the lower-casing rules and the registry-key spellings come from
:mod:`stixbridge.sinks.mapping`, the tables the ``splunk-csv`` sink uses too, so a row looks the same in a
CSV lookup and in the KV store, under the same ``_key``. In short:

- Enterprise Security has no ``domain_intel``, so domains go to ``ip_intel.domain``.
- Fuzzy hashes, certificate fingerprints, mutexes and AS numbers have no ES field and are left out of ES.
- Values are stored in lower case for every type whose meaning ignores case (IPv6, domains, hashes, email
  addresses, Windows names and paths). URLs lower only their scheme and host.
- A registry key gets one row per hive spelling (``HKEY_LOCAL_MACHINE``, ``HKLM``,
  ``\\REGISTRY\\MACHINE``) under the keys ``<key>``, ``<key>-1``, ``<key>-2``.

The app collection ``stixbridge_intel`` holds every atom type with the same values, plus the atom
``type`` that its lookup definitions filter on (exact match without case, exact match with case for
URLs, CIDR match for blocks).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stixbridge.model import ROW_KEY_PREFIX, AtomRow, DeliveredRow
from stixbridge.sinks.mapping import ES_COLLECTIONS, ES_UNSUPPORTED, spelled_keys, splunk_value
from stixbridge.tlp import Tlp

KEY_PREFIX = f"{ROW_KEY_PREFIX}-"
DIGEST_FIELD = "stixbridge_digest"
SCHEMA_VERSION = "1"
"""Stored with each row's digest; bump it when this module changes what a document looks like."""
MAX_DESCRIPTION = 2000
"""Characters of description kept per row, as in the ``splunk-csv`` sink."""

ES_COLLECTION_NAMES = tuple(sorted({collection for collection, _ in ES_COLLECTIONS.values()}))

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
    """One document of one row in one collection: the namespace app, the collection and the document."""

    row_key: str
    app: str
    collection: str
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Location:
    """Location of a delivered row's document, used to delete it."""

    row_key: str
    app: str
    collection: str
    key: str


def es_places(row: AtomRow, es_app: str) -> list[Placement]:
    """Return the ES documents of a row, one per spelling, or none when ES has no field for its type."""
    target = ES_COLLECTIONS.get(row.type)
    if target is None:
        return []
    collection, field = target

    placements = []
    for key, spelling in spelled_keys(row.key, row.type, row.value):
        document: dict[str, Any] = {
            "_key": key,
            field: splunk_value(row.type, spelling),
            "threat_key": row.indicator_id,
            "time": epoch(row.valid_from or row.modified),
            "description": describe(row),
            "weight": row.weight,
            "valid_until": epoch(row.valid_until) if row.valid_until is not None else None,
            DIGEST_FIELD: stored_digest(row),
        }
        placements.append(Placement(row.key, es_app, collection, document))
    return placements


def app_places(row: AtomRow, app: str, collection: str) -> list[Placement]:
    """Return the app-collection documents of a row, one per spelling; every atom type has a place."""
    placements = []
    for key, spelling in spelled_keys(row.key, row.type, row.value):
        document: dict[str, Any] = {
            "_key": key,
            "type": row.type,
            "value": splunk_value(row.type, spelling),
            "display": row.display or row.value,
            "threat_key": row.indicator_id,
            "indicator_ids": list(row.indicator_ids),
            "name": row.name,
            "description": describe(row),
            "time": epoch(row.valid_from or row.modified),
            "valid_until": epoch(row.valid_until) if row.valid_until is not None else None,
            "modified": epoch(row.modified),
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
        placements.append(Placement(row.key, app, collection, document))
    return placements


def es_locations(row: DeliveredRow, es_app: str) -> list[Location]:
    """Return the ES locations of a delivered row, or none when ES never got its type."""
    target = ES_COLLECTIONS.get(row.type)
    if target is None:
        return []
    return [Location(row.key, es_app, target[0], key) for key, _ in spelled_keys(row.key, row.type, row.value)]


def app_locations(row: DeliveredRow, app: str, collection: str) -> list[Location]:
    """Return the app-collection locations of a delivered row."""
    return [Location(row.key, app, collection, key) for key, _ in spelled_keys(row.key, row.type, row.value)]


def es_skip_reason(atom_type: str) -> str:
    """Return why ES cannot hold an atom type, for skip counts and logs."""
    return f"ES: {ES_UNSUPPORTED.get(atom_type, f'no collection for {atom_type}')}"


def is_our_key(key: str) -> bool:
    """Return True for keys stixbridge writes: the prefix, then lower-case hex and hyphens only.

    A key with ``/`` can be inserted into the KV store but never updated or deleted by key. A key without
    the prefix belongs to someone else. The sink writes and deletes neither.
    """
    if not key.startswith(KEY_PREFIX) or len(key) <= len(KEY_PREFIX):
        return False
    return all(ch in "0123456789abcdef-" for ch in key[len(KEY_PREFIX) :])


def stored_digest(row: AtomRow) -> str:
    """Return the digest written with a row: the schema version, then the row's own digest."""
    return f"{SCHEMA_VERSION}:{row.digest}"


def describe(row: AtomRow) -> str:
    """Return the ``description`` field: name and description on one line, cut to a length lookups show well."""
    if row.name and row.description and row.description != row.name:
        text = f"{row.name}: {row.description}"
    else:
        text = row.description or row.name
    # Splunk reads a line break inside a lookup value as a multivalue separator.
    text = " ".join(text.split())
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 3] + "..."
    return text


def epoch(moment: datetime) -> float:
    """Return seconds since the epoch with millisecond precision, as KV store ``time`` fields take them."""
    return round(moment.timestamp(), 3)
