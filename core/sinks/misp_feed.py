"""A folder that MISP can subscribe to as a feed of source format "MISP Feed".

Layout, as MISP reads it: ``manifest.json`` maps each event UUID to the event's metadata (MISP fetches
an event again only when its ``timestamp`` there is newer than its own copy), ``hashes.csv`` lists
``md5(value),event_uuid`` per value for MISP's feed correlation, and ``<event_uuid>.json`` holds each
event as ``{"Event": {...}}``. There is one event per source collection.

UUIDs are stable so that MISP updates its copy instead of adding a new one: an event's is uuid5 of the
collection name and an attribute's is uuid5 of the row key, both under the ``org_uuid`` namespace, so
two organisations publishing the same atoms never share an attribute UUID. An atom carried by several
collections is listed once, in the event of the first collection that reached the sink.

MISP ignores attributes that vanish from a feed event, so an expired atom stays in its event as a
soft-deleted attribute (``deleted: true``, ``to_ids: false``, new timestamp), which MISP's
synchronisation applies, for ``keep_deleted_days`` days; after that it is dropped from the file.
With ``keep_deleted_days = 0`` it is dropped at once.

The files are the sink's state: a push reads them once, applies the changes and rewrites the events it
changed, then ``hashes.csv`` and ``manifest.json`` when their content differs, each file atomically
and the manifest last, so MISP never finds a manifest entry without its event file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from ..connector import ConnectorContext
from ..errors import ConfigError
from ..model import AtomRow, Changes, PushResult
from ..settings import Settings
from ..tlp import Tlp
from .atomic import resolve_output_path, write_text_atomic
from .base import Sink
from .mapping import MISP_UNSUPPORTED, misp_attribute_type, misp_value

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
HASHES = "hashes.csv"
MAX_COMMENT = 1000
"""Characters of indicator name kept in an attribute comment."""

TLP_TAG_COLOURS = {
    # Colours of MISP's tlp taxonomy.
    Tlp.CLEAR: "#ffffff",
    Tlp.GREEN: "#339900",
    Tlp.AMBER: "#ffc000",
    Tlp.AMBER_STRICT: "#ffc000",
    Tlp.RED: "#cc0033",
}
OTHER_TAG_COLOUR = "#0088cc"
_EVENT_KEYS = frozenset({"uuid", "info", "date", "analysis", "threat_level_id", "timestamp", "Orgc"})


@dataclass
class MispFeedSettings(Settings):
    """Settings of the ``misp-feed`` sink."""

    path: str = ""
    """Folder of the feed files. Serve it over HTTPS, or point a MISP feed with input source "local" at it."""
    org_name: str = ""
    """Name of the organisation shown as the events' creator (``Orgc``)."""
    org_uuid: str = ""
    """UUID of that organisation; also the namespace of every event and attribute UUID."""
    keep_deleted_days: int = 30
    """Days an expired atom stays in its event as a soft-deleted attribute; 0 drops it at once."""

    def validate(self, where: str) -> None:
        if not self.path.strip():
            raise ConfigError(f"{where}.path is missing: name the folder for the MISP feed", key=f"{where}.path")
        if not self.org_name.strip():
            raise ConfigError(f"{where}.org_name is missing: name the organisation that creates the events",
                              key=f"{where}.org_name")
        try:
            uuid.UUID(self.org_uuid)
        except ValueError:
            raise ConfigError(
                f"invalid org_uuid {self.org_uuid!r} in {where}: expected the organisation's UUID, "
                "such as the one MISP shows on its organisation page",
                key=f"{where}.org_uuid",
            ) from None
        if self.keep_deleted_days < 0:
            raise ConfigError(f"{where}.keep_deleted_days must be 0 or more, got {self.keep_deleted_days}",
                              key=f"{where}.keep_deleted_days")


class MispFeedSink(Sink):
    """Writes live atoms as a MISP feed: one event per source collection, one attribute per atom."""

    kind: ClassVar[str] = "misp-feed"
    settings_class: ClassVar[type[Settings]] = MispFeedSettings
    # Each push rewrites the events it touches, so fewer, larger batches mean fewer rewrites.
    batch_size: ClassVar[int] = 100_000

    def __init__(self, name: str, settings: Settings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        assert isinstance(settings, MispFeedSettings)
        self.feed_settings = settings
        self.folder = resolve_output_path(context.base_dir, settings.path)
        self.namespace = uuid.UUID(settings.org_uuid) if settings.org_uuid else uuid.NAMESPACE_OID
        self._events: dict[str, dict[str, Any]] | None = None
        self._event_of_attribute: dict[str, str] = {}
        # Position of each attribute in its event's list, by event; dropped whenever a list is reordered.
        self._positions: dict[str, dict[str, int]] = {}

    def describe(self) -> str:
        return f"misp-feed {self.name!r}: MISP feed in {self.folder} created by {self.feed_settings.org_name!r}"

    def accepts(self, row: AtomRow) -> bool:
        return misp_attribute_type(row.type, row.direction) is not None

    def begin(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # Re-read the files on every run: someone may have edited or replaced them in between.
        self._events = None

    def push(self, changes: Changes) -> PushResult:
        result = PushResult()
        if not changes:
            return result
        self.folder.mkdir(parents=True, exist_ok=True)
        events = self._load()
        now = self.context.clock()

        changed: set[str] = set()
        written: list[str] = []
        skipped: Counter[str] = Counter()
        for row in changes.upserts:
            event_uuid = self._upsert(events, row, now)
            if event_uuid is None:
                why = MISP_UNSUPPORTED.get(row.type, "no MISP attribute type for this type")
                skipped[f"atom type {row.type}: {why}"] += 1
                continue
            if event_uuid:
                changed.add(event_uuid)
            written.append(row.key)

        deleted: list[str] = []
        for delivered in changes.deletes:
            event_uuid = self._delete(events, delivered.key, now)
            if event_uuid:
                changed.add(event_uuid)
            deleted.append(delivered.key)

        result.skipped.update(skipped)
        try:
            self._write(events, changed, now)
        except OSError as exc:
            logger.error("Writing MISP feed in %s failed: %s; its changes will be sent again next run.",
                         self.folder, exc)
            # Start again from the files on disk; the manifest and hashes are rebuilt from the events.
            self._events = None
            reason = f"writing the MISP feed in {self.folder} failed: {exc}"
            result.failed.update(dict.fromkeys(written + deleted, reason))
            return result

        result.written.extend(written)
        result.deleted.extend(deleted)
        return result

    def attribute_uuid(self, key: str) -> str:
        """Return the UUID of the attribute written for a row key."""
        return str(uuid.uuid5(self.namespace, key))

    def event_uuid(self, collection: str) -> str:
        """Return the UUID of the event that contains a collection's atoms."""
        return str(uuid.uuid5(self.namespace, f"collection:{collection}"))

    def _upsert(self, events: dict[str, dict[str, Any]], row: AtomRow, now: datetime) -> str | None:
        """Apply one row; return the changed event's UUID, "" when nothing changed, None when skipped."""
        misp_type = misp_attribute_type(row.type, row.direction)
        if misp_type is None:
            return None

        attribute_uuid = self.attribute_uuid(row.key)
        attribute: dict[str, Any] = {
            "uuid": attribute_uuid,
            "type": misp_type.type,
            "category": misp_type.category,
            "value": misp_value(row.type, row.value),
            "to_ids": misp_type.to_ids,
            "comment": _comment(row),
            "disable_correlation": False,
            "deleted": False,
            "timestamp": _epoch_text(now),
            "Tag": _attribute_tags(row),
        }
        attribute.update(_seen_fields(row))

        # An attribute stays in the event it was first written to.
        event_uuid = self._event_of_attribute.get(attribute_uuid)
        if event_uuid is None:
            collection = _collection_of(row)
            event_uuid = self.event_uuid(collection)
            if event_uuid not in events:
                events[event_uuid] = self._new_event(event_uuid, collection, now)

        attributes = events[event_uuid]["Attribute"]
        positions = self._positions_of(event_uuid, attributes)
        index = positions.get(attribute_uuid)
        if index is not None:
            existing = attributes[index]
            if _without_timestamp(existing) == _without_timestamp(attribute):
                return ""
            attribute["timestamp"] = _later_timestamp(existing.get("timestamp"), now)
            attributes[index] = attribute
            self._event_of_attribute[attribute_uuid] = event_uuid
            return event_uuid
        positions[attribute_uuid] = len(attributes)
        attributes.append(attribute)
        self._event_of_attribute[attribute_uuid] = event_uuid
        return event_uuid

    def _positions_of(self, event_uuid: str, attributes: list[dict[str, Any]]) -> dict[str, int]:
        """Return attribute UUID to list position for one event, built once per list order."""
        positions = self._positions.get(event_uuid)
        if positions is None:
            positions = {a.get("uuid", ""): i for i, a in enumerate(attributes) if isinstance(a, dict)}
            self._positions[event_uuid] = positions
        return positions

    def _delete(self, events: dict[str, dict[str, Any]], key: str, now: datetime) -> str:
        """Remove or soft-delete the attribute of a key; return its event's UUID, or "" when it was absent."""
        attribute_uuid = self.attribute_uuid(key)
        event_uuid = self._event_of_attribute.get(attribute_uuid)
        if event_uuid is None:
            return ""

        attributes = events[event_uuid]["Attribute"]
        index = self._positions_of(event_uuid, attributes).get(attribute_uuid)
        if index is not None:
            existing = attributes[index]
            if self.feed_settings.keep_deleted_days == 0:
                # Marked now and dropped when the event is written, so positions stay valid meanwhile.
                attributes[index] = {**existing, _DROP: True}
                del self._event_of_attribute[attribute_uuid]
            elif not existing.get("deleted"):
                attributes[index] = {
                    **existing,
                    "deleted": True,
                    "to_ids": False,
                    "timestamp": _later_timestamp(existing.get("timestamp"), now),
                }
            else:
                return ""
            return event_uuid
        return ""

    def _new_event(self, event_uuid: str, collection: str, now: datetime) -> dict[str, Any]:
        return {
            "uuid": event_uuid,
            "info": f"stixbridge: {collection}",
            "date": now.date().isoformat(),
            # analysis 2 is "completed"; threat level 4 is "undefined", since tags carry the detail.
            "analysis": "2",
            "threat_level_id": "4",
            "published": True,
            "protected": False,
            "extends_uuid": "",
            # Set when the event is written.
            "timestamp": "0",
            "publish_timestamp": "0",
            "Orgc": {"name": self.feed_settings.org_name, "uuid": str(self.namespace)},
            "Tag": [_tag(f'stixbridge:collection="{collection}"')],
            "Attribute": [],
        }

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._events is not None:
            return self._events

        events: dict[str, dict[str, Any]] = {}
        manifest = _read_json(self.folder / MANIFEST)
        if manifest is not None and not isinstance(manifest, dict):
            raise ConfigError(f"{self.folder / MANIFEST} is not a MISP feed manifest (expected a JSON object); "
                              "move it away or set the sink's path to another folder")
        for event_uuid in manifest or {}:
            path = self.folder / f"{event_uuid}.json"
            document = _read_json(path)
            if not (isinstance(document, dict) and isinstance(document.get("Event"), dict)):
                logger.warning("MISP feed event file %s is missing or unreadable; its event starts empty.", path)
                continue
            event = document["Event"]
            missing = sorted(_EVENT_KEYS - set(event))
            if missing:
                raise ConfigError(f"MISP feed event file {path} lacks {', '.join(missing)}; "
                                  "restore it or delete the feed folder's files and push everything again")
            event.setdefault("Attribute", [])
            event.setdefault("Tag", [])
            events[event_uuid] = event

        self._positions = {}
        self._event_of_attribute = {
            attribute["uuid"]: event_uuid
            for event_uuid, event in events.items()
            for attribute in event["Attribute"]
            if isinstance(attribute, dict) and "uuid" in attribute
        }
        self._events = events
        return events

    def _write(self, events: dict[str, dict[str, Any]], changed: set[str], now: datetime) -> None:
        for event_uuid in sorted(changed):
            event = events[event_uuid]
            self._prune_deleted(event, now)
            event["Attribute"].sort(key=lambda a: (a["type"], a["value"], a["uuid"]))
            self._positions.pop(event_uuid, None)
            event["Tag"] = _event_tags(event)
            event["timestamp"] = _later_timestamp(event.get("timestamp"), now)
            event["publish_timestamp"] = event["timestamp"]
            write_text_atomic(self.folder / f"{event_uuid}.json", _dump({"Event": event}))

        if changed:
            logger.info("Wrote %d MISP feed events in %s.", len(changed), self.folder)
        _write_if_different(self.folder / HASHES, _hashes_text(events))
        _write_if_different(self.folder / MANIFEST, _dump(_manifest(events)))

    def _prune_deleted(self, event: dict[str, Any], now: datetime) -> None:
        cutoff = int((now - timedelta(days=self.feed_settings.keep_deleted_days)).timestamp())
        kept = []
        for attribute in event["Attribute"]:
            if attribute.get(_DROP):
                continue
            if attribute.get("deleted") and int(attribute.get("timestamp", 0)) < cutoff:
                self._event_of_attribute.pop(attribute["uuid"], None)
                continue
            kept.append(attribute)
        event["Attribute"] = kept


_DROP = "_stixbridge_drop"


def _collection_of(row: AtomRow) -> str:
    if row.collections and row.collections[0]:
        return row.collections[0]
    if row.sources:
        return row.sources[0]
    return "stixbridge"


def _comment(row: AtomRow) -> str:
    name = " ".join(row.name.split())[:MAX_COMMENT]
    return f"{row.indicator_id}: {name}" if name else row.indicator_id


def _seen_fields(row: AtomRow) -> dict[str, str]:
    # MISP rejects a last_seen before first_seen, so an inverted pair keeps only first_seen.
    fields = {}
    if row.valid_from is not None:
        fields["first_seen"] = row.valid_from.isoformat(timespec="microseconds")
    if row.valid_until is not None and (row.valid_from is None or row.valid_until >= row.valid_from):
        fields["last_seen"] = row.valid_until.isoformat(timespec="microseconds")
    return fields


def _attribute_tags(row: AtomRow) -> list[dict[str, Any]]:
    tags = []
    if row.tlp is not None:
        tags.append(_tlp_tag(Tlp(row.tlp)))
    tags.extend(_tag(f'stixbridge:source="{source}"') for source in row.sources)
    return tags


def _event_tags(event: dict[str, Any]) -> list[dict[str, Any]]:
    # The event carries the most restrictive TLP of its live attributes, so feed rules that block a TLP
    # level in MISP (which filter on event tags) never let a stricter attribute through.
    levels = [
        Tlp.parse(tag["name"])
        for attribute in event["Attribute"]
        if not attribute.get("deleted")
        for tag in attribute.get("Tag", [])
        if tag.get("name", "").startswith("tlp:")
    ]
    other = [tag for tag in event.get("Tag", []) if not tag.get("name", "").startswith("tlp:")]
    return ([_tlp_tag(max(levels))] if levels else []) + other


def _tlp_tag(level: Tlp) -> dict[str, Any]:
    return _tag(f"tlp:{level.label.lower()}", TLP_TAG_COLOURS[level])


def _tag(name: str, colour: str = OTHER_TAG_COLOUR) -> dict[str, Any]:
    return {"name": name, "colour": colour, "local": False, "relationship_type": ""}


def _manifest(events: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        event_uuid: {
            "Orgc": event["Orgc"],
            "Tag": event["Tag"],
            "info": event["info"],
            "date": event["date"],
            "analysis": event["analysis"],
            "threat_level_id": event["threat_level_id"],
            "timestamp": event["timestamp"],
        }
        for event_uuid, event in sorted(events.items())
    }


def _hashes_text(events: dict[str, dict[str, Any]]) -> str:
    lines = sorted(
        f"{hashlib.md5(str(attribute['value']).encode(), usedforsecurity=False).hexdigest()},{event_uuid}"
        for event_uuid, event in events.items()
        for attribute in event["Attribute"]
        if not attribute.get("deleted")
    )
    return "".join(f"{line}\n" for line in lines)


def _without_timestamp(attribute: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attribute.items() if k != "timestamp"}


def _later_timestamp(previous: Any, now: datetime) -> str:
    """Return ``now`` as a MISP timestamp, or one second past ``previous`` when that is not earlier.

    MISP takes an event or attribute from a feed only when its timestamp is newer than its own copy, so
    a second change within the same second, or after the clock went back, still needs a larger one.
    """
    current = int(now.timestamp())
    try:
        current = max(current, int(previous) + 1)
    except (TypeError, ValueError):
        pass
    return str(current)


def _epoch_text(moment: datetime) -> str:
    # MISP writes timestamps in feeds as strings of whole seconds.
    return str(int(moment.timestamp()))


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1) + "\n"


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"cannot read MISP feed file {path}: {exc}; fix or delete it and run again") from exc


def _write_if_different(path: Path, text: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except FileNotFoundError:
        pass
    write_text_atomic(path, text)
