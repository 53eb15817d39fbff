"""ECS indicator documents for the elastic sink, and the way back from an alert's enrichment to an atom.

The documents themselves are built by :mod:`stixbridge.sinks.ecs`, which the ``ecs-ndjson`` file sink uses
too, so an indicator looks the same whichever way it reaches Elasticsearch. That module contains the
mapping table. This one adds what only the connector needs: which rows the sink accepts, and reading the
copies of our documents that Kibana writes into indicator-match alerts.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from stixbridge.model import ROW_KEY_PREFIX, AtomRow
from stixbridge.sinks.ecs import (
    ECS_INDICATOR_TYPES,
    ECS_UNSUPPORTED,
    EVENT_MODULE,
    ecs_document,
    ecs_document_ids,
    ecs_documents,
)

__all__ = [
    "ECS_INDICATOR_TYPES",
    "ECS_UNSUPPORTED",
    "EVENT_MODULE",
    "atom_type_of",
    "base_document_id",
    "ecs_document",
    "ecs_document_ids",
    "ecs_documents",
    "first",
    "is_supported",
    "lookup",
    "unsupported_reason",
]

# An extra document for another spelling of a registry key has the row key plus "-<n>" as its _id.
_SPELLING_ID = re.compile(rf"^(?P<key>{ROW_KEY_PREFIX}-[0-9a-f]{{40}})-[0-9]+$")


def is_supported(row: AtomRow) -> bool:
    """Return True when the row has an ECS form the sink can write."""
    return row.type in ECS_INDICATOR_TYPES


def unsupported_reason(atom_type: str) -> str:
    """Return the reason a row of this type is skipped, as counted in ``PushResult.skipped``."""
    return f"atom type {atom_type}: {ECS_UNSUPPORTED.get(atom_type, 'no ECS field for this type')}"


def base_document_id(document_id: str) -> str:
    """Return the row key behind a document id: the id itself, or the id without a spelling suffix."""
    match = _SPELLING_ID.match(document_id)
    return document_id if match is None else match.group("key")


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
    """Return the atom type a ``threat.indicator`` object of ours describes, or None when it cannot tell.

    Works on the copy Kibana writes into an alert's ``threat.enrichments[].indicator``. When the copy lacks
    the fields that tell, the caller reads ``stixbridge.atom_type`` from the document itself.
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
