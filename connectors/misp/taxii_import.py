"""One pull of an alliance collection, returned as MISP attributes: the work behind the misp-modules module.

A MISP user picks "Populate using" on an event and the misp-modules import module
``stixbridge_taxii_import`` calls :func:`import_collection`. The feed is read with a source of the
stixbridge configuration named by the MISP administrator (its TAXII server, credentials and TLS
settings), normalised by the core like any pull, and every live atom becomes one attribute. Nothing is
stored: the import is one-shot, and MISP shows the attributes for review before saving them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from stixbridge.config import ConnectorEntry, load_config
from stixbridge.errors import ConfigError
from stixbridge.model import AtomLink, IndicatorRecord
from stixbridge.normalise import FeedContext, normalise_item
from stixbridge.sources.base import Source
from stixbridge.timeutil import utcnow
from stixbridge.tlp import Tlp

from .attribute_types import MISP_CATEGORY, MISP_TYPE_OF_ATOM, is_ip_atom, value_problem
from .attributes import MAX_COMMENT, misp_time, source_tag

logger = logging.getLogger(__name__)

DEFAULT_MAX_OBJECTS = 10_000
"""Objects one import reads at most, so a click in the MISP UI cannot pull a whole feed's history."""


@dataclass(frozen=True)
class ImportRequest:
    """The settings of one import, from the MISP administrator and the user."""

    config_path: Path
    """The stixbridge configuration file whose sources name the alliance servers."""
    source: str = ""
    """Name of the source to read; empty when the configuration has one enabled source."""
    collection: str = ""
    """A TAXII collection id or title, instead of the collections the source lists."""
    added_after: str = ""
    """Only objects added to the collection after this RFC 3339 time."""
    max_objects: int = DEFAULT_MAX_OBJECTS
    to_ids: bool = True
    """Whether exact atoms are flagged for detection; partial atoms never are."""


def import_collection(request: ImportRequest, now: datetime | None = None) -> dict[str, Any]:
    """Pull one collection once and return a misp-modules ``misp_standard`` result.

    Returns:
        ``{"results": {"Attribute": [...], "Object": [], "Tag": [...]}}``.

    Raises:
        ConfigError: the configuration or the request is invalid (the message names the key).
        StixbridgeError: the pull failed (transient or rejected by the server).
    """
    if request.max_objects < 1:
        raise ConfigError(f"max_objects must be at least 1, got {request.max_objects}", key="max_objects")
    now = now or utcnow()
    config = load_config(request.config_path)
    try:
        entry = _pick_source(config.sources, request.source)
        source = _with_overrides(entry, request)
        records = _read(source, request.max_objects, config.engine.max_object_bytes)
        attributes, counts = _attributes(records.values(), request.to_ids, now)
    finally:
        config.close()

    logger.info(
        "Import from %s: %d indicators, %d attributes, %d atoms left out (expired or revoked %d, MISP cannot "
        "hold %d).",
        entry.name, len(records), len(attributes), counts["inactive"] + counts["unsupported"], counts["inactive"],
        counts["unsupported"],
    )  # fmt: skip
    return {"results": {"Attribute": attributes, "Object": [], "Tag": [{"name": source_tag(entry.name)}]}}


def _pick_source(entries: list[ConnectorEntry], name: str) -> ConnectorEntry:
    enabled = [entry for entry in entries if entry.enabled]
    if name:
        for entry in enabled:
            if entry.name == name:
                return entry
        names = ", ".join(entry.name for entry in enabled) or "none"
        raise ConfigError(f"no enabled source named {name!r} in the stixbridge configuration; its sources: {names}",
                          key="source")  # fmt: skip
    if len(enabled) != 1:
        names = ", ".join(entry.name for entry in enabled) or "none"
        raise ConfigError(f"the stixbridge configuration has {len(enabled)} enabled sources ({names}); name one in "
                          "'source'", key="source")  # fmt: skip
    return enabled[0]


def _with_overrides(entry: ConnectorEntry, request: ImportRequest) -> Source:
    """Return a copy of the entry's source with the request's collection and start time."""
    source = entry.connector
    assert isinstance(source, Source)
    settings = source.settings
    changes: dict[str, Any] = {}
    if request.collection:
        if not hasattr(settings, "collections"):
            raise ConfigError(f"source {entry.name!r} is of kind {entry.kind!r}, which has no collections",
                              key="collection")  # fmt: skip
        changes["collections"] = [request.collection]
    if request.added_after:
        if not hasattr(settings, "added_after"):
            raise ConfigError(f"source {entry.name!r} is of kind {entry.kind!r}, which has no added_after",
                              key="added_after")  # fmt: skip
        changes["added_after"] = request.added_after
    if not changes:
        return source
    copied = dataclasses.replace(settings, **changes)
    copied.validate(entry.name)
    return type(source)(entry.name, copied, source.context)


def _read(source: Source, max_objects: int, max_object_bytes: int) -> dict[str, IndicatorRecord]:
    """Return the newest version of each indicator the source delivers, reading at most ``max_objects``."""
    feed = FeedContext()
    records: dict[str, IndicatorRecord] = {}
    read = 0
    pages: Iterator[Any] = source.pull(None)
    try:
        for page in pages:
            for item in page.items:
                read += 1
                result = normalise_item(item, feed, max_object_bytes=max_object_bytes)
                record = result.indicator
                if record is not None and (record.id not in records or records[record.id].modified < record.modified):
                    records[record.id] = record
                if read >= max_objects:
                    logger.warning("Import from %s stopped at max_objects (%d objects).", source.name, max_objects)
                    return records
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()
    return records


def _attributes(
    records: Any, to_ids: bool, now: datetime
) -> tuple[list[dict[str, Any]], Counter[str]]:
    counts: Counter[str] = Counter()
    attributes: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        active = not record.revoked and (record.valid_until is None or record.valid_until > now)
        for atom in record.atoms:
            if atom.role == "context":
                continue
            if not active:
                counts["inactive"] += 1
                continue
            attribute = _attribute(record, atom, to_ids)
            if attribute is None:
                counts["unsupported"] += 1
                continue
            attributes.setdefault((attribute["type"], attribute["value"]), attribute)
    return list(attributes.values()), counts


def _attribute(record: IndicatorRecord, atom: AtomLink, to_ids: bool) -> dict[str, Any] | None:
    misp_type = MISP_TYPE_OF_ATOM.get(atom.type)
    if misp_type is None:
        return None
    if misp_type == "ip-dst" and is_ip_atom(atom.type) and record.observed_direction == "src":
        misp_type = "ip-src"
    if value_problem(misp_type, atom.value):
        return None

    comment = f"{record.id} {record.name}".strip()
    attribute: dict[str, Any] = {
        "type": misp_type,
        "category": MISP_CATEGORY[misp_type],
        "value": atom.value,
        "to_ids": to_ids and atom.role == "exact",
        "comment": comment[:MAX_COMMENT],
        "first_seen": misp_time(record.valid_from),
        "last_seen": misp_time(record.valid_until),
        "disable_correlation": False,
    }
    if record.tlp is not None:
        attribute["Tag"] = [{"name": f"tlp:{Tlp(record.tlp).label.lower()}"}]
    return attribute
