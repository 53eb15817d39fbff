"""A folder that MISP can subscribe to as a feed of source format "MISP Feed".

Layout, as MISP reads it: ``manifest.json`` maps each event UUID to the event's metadata (MISP fetches
an event again only when its ``timestamp`` there is newer than its own copy), ``hashes.csv`` lists
``md5(value),event_uuid`` per value for MISP's feed correlation, and ``<event_uuid>.json`` holds each
event as ``{"Event": {...}}``. Each source collection has one event, and more when it outgrows
``max_attributes_per_event``.

UUIDs are stable so that MISP updates its copy instead of adding a new one: an event's is uuid5 of the
collection name (and part number after the first) and an attribute's is uuid5 of the row key, both
under the ``org_uuid`` namespace, so two organisations publishing the same atoms never share an
attribute UUID. An atom carried by several collections is listed once, in an event of the first
collection that reached the sink.

MISP ignores attributes that vanish from a feed event, so an expired atom stays in its event as a
soft-deleted attribute (``deleted: true``, ``to_ids: false``, new timestamp), which MISP's
synchronisation applies, for ``keep_deleted_days`` days; after that it is dropped from the file.
With ``keep_deleted_days = 0`` it is dropped at once.

The files are the sink's state. The first push of a run reads every event once to index it. Each push
then rewrites the events it changed, then ``hashes.csv`` and ``manifest.json`` when their content
differs, each file atomically and the manifest last, so MISP never finds a manifest entry without its
event file.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, ClassVar

from ..connector import ConnectorContext
from ..errors import ConfigError
from ..model import AtomRow, Changes, PushResult
from ..settings import Settings
from ..tlp import Tlp
from .atomic import atomic_writer, folder_problems, make_folder, resolve_output_path, write_text_atomic
from .base import Sink
from .mapping import MISP_UNSUPPORTED, misp_attribute_type, misp_value
from .placement import Placement

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
    max_attributes_per_event: int = 10_000
    """Attributes (soft-deleted ones included) after which a collection's new atoms go to its next event.
    MISP loads a whole event to show or synchronise it, so events of millions of attributes stall it."""

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
        if self.max_attributes_per_event < 1:
            raise ConfigError(
                f"{where}.max_attributes_per_event must be 1 or more, got {self.max_attributes_per_event}",
                key=f"{where}.max_attributes_per_event",
            )
        if self.keep_deleted_days < 0:
            raise ConfigError(f"{where}.keep_deleted_days must be 0 or more, got {self.keep_deleted_days}",
                              key=f"{where}.keep_deleted_days")


class MispFeedSink(Sink):
    """Writes live atoms as a MISP feed: events of at most ``max_attributes_per_event`` attributes per source
    collection, one attribute per atom.

    Memory stays flat as the feed grows: between pushes the sink keeps only a map of attribute UUID (as an
    integer) to event, each event's attribute count and manifest entry, and each event's ``hashes.csv``
    lines in an anonymous temporary file. A push groups its changes by event and loads, changes, writes
    and drops one event at a time.
    """

    kind: ClassVar[str] = "misp-feed"
    settings_class: ClassVar[type[Settings]] = MispFeedSettings
    # A push holds one event at a time, but rewrites hashes.csv and the manifest; 20,000 changes keep
    # the engine's batch small while a million atoms still take only about 50 rewrites of those files.
    batch_size: ClassVar[int] = 20_000

    def __init__(self, name: str, settings: Settings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        assert isinstance(settings, MispFeedSettings)
        self.feed_settings = settings
        self.folder = resolve_output_path(context.base_dir, settings.path)
        self.namespace = uuid.UUID(settings.org_uuid) if settings.org_uuid else uuid.NAMESPACE_OID
        self._index: _FeedIndex | None = None

    def describe(self) -> str:
        return f"misp-feed {self.name!r}: MISP feed in {self.folder} created by {self.feed_settings.org_name!r}"

    def preflight(self) -> list[str]:
        return [*super().preflight(), *folder_problems(self.folder, f"misp-feed sink {self.name!r}")]

    def accepts(self, row: AtomRow) -> bool:
        return misp_attribute_type(row.type, row.direction) is not None

    def begin(self) -> None:
        make_folder(self.folder, f"misp-feed sink {self.name!r}")
        # Re-read the files on every run: someone may have edited or replaced them in between.
        self._forget()

    def finish(self, complete: bool) -> None:
        self._forget()

    def push(self, changes: Changes) -> PushResult:
        result = PushResult()
        if not changes:
            return result
        make_folder(self.folder, f"misp-feed sink {self.name!r}")
        index = self._load()
        now = self.context.clock()

        # Rows, not attributes, wait here: the attribute is built when its event is loaded, which keeps
        # a batch's attributes out of memory until their event's turn.
        work: dict[str, list[tuple[str, AtomRow | None]]] = {}
        written: list[str] = []
        for row in changes.upserts:
            if not self.accepts(row):
                why = MISP_UNSUPPORTED.get(row.type, "no MISP attribute type for this type")
                reason = f"atom type {row.type}: {why}"
                result.skipped[reason] = result.skipped.get(reason, 0) + 1
                continue
            attribute_uuid = self.attribute_uuid(row.key)
            target = index.event_of(attribute_uuid) or self._event_with_room(index, _collection_of(row))
            work.setdefault(target, []).append((attribute_uuid, row))
            written.append(row.key)

        deleted: list[str] = []
        for delivered in changes.deletes:
            attribute_uuid = self.attribute_uuid(delivered.key)
            event_uuid = index.event_of(attribute_uuid)
            if event_uuid is not None:
                work.setdefault(event_uuid, []).append((attribute_uuid, None))
            deleted.append(delivered.key)

        try:
            self._apply(index, work, now)
        except OSError as exc:
            logger.error("Writing MISP feed in %s failed: %s; its changes will be sent again next run.",
                         self.folder, exc)
            # Start again from the files on disk; the manifest and hashes are rebuilt from the events.
            self._forget()
            reason = f"writing the MISP feed in {self.folder} failed: {exc}"
            result.failed.update(dict.fromkeys(written + deleted, reason))
            return result
        except BaseException:
            # A bad event file or an interrupt may leave the index ahead of the files.
            self._forget()
            raise

        result.written.extend(written)
        result.deleted.extend(deleted)
        return result

    def attribute_uuid(self, key: str) -> str:
        """Return the UUID of the attribute written for a row key."""
        return str(uuid.uuid5(self.namespace, key))

    def event_uuid(self, collection: str, part: int = 0) -> str:
        """Return the UUID of a collection's event; part 0 is the first, later parts take the overflow."""
        name = f"collection:{collection}" if part == 0 else f"collection:{collection}:part:{part}"
        return str(uuid.uuid5(self.namespace, name))

    def _forget(self) -> None:
        if self._index is not None:
            self._index.close()
        self._index = None

    def _attribute(self, row: AtomRow, now: datetime) -> dict[str, Any] | None:
        misp_type = misp_attribute_type(row.type, row.direction)
        if misp_type is None:
            return None
        attribute: dict[str, Any] = {
            "uuid": self.attribute_uuid(row.key),
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
        return attribute

    def _event_with_room(self, index: _FeedIndex, collection: str) -> str:
        """Return the first event of a collection with room for one more attribute, and count it there."""
        for part in itertools.count():
            event_uuid = self.event_uuid(collection, part)
            count = index.counts.get(event_uuid)
            if count is None:
                index.planned[event_uuid] = (collection, part)
                index.counts[event_uuid] = 1
                return event_uuid
            if count < self.feed_settings.max_attributes_per_event:
                index.counts[event_uuid] = count + 1
                return event_uuid
        raise AssertionError("unreachable")

    def _apply(self, index: _FeedIndex, work: dict[str, list[tuple[str, AtomRow | None]]],
               now: datetime) -> None:
        """Change and write each event that has work, one at a time, then ``hashes.csv`` and the manifest.

        The hash lines of changed events wait in an anonymous temporary file, so memory holds one event.
        """
        with tempfile.TemporaryFile() as spool:
            fresh: dict[str, tuple[int, int]] = {}
            for event_uuid in sorted(work):
                event = None
                if event_uuid in index.manifest:
                    event = self._read_event(event_uuid)
                    if event is None:
                        # Read at the start of the run, so someone removed it since; the next run rebuilds.
                        raise FileNotFoundError(f"MISP feed event file {self.folder / event_uuid}.json vanished")
                if event is None:
                    collection, part = index.planned.get(event_uuid) or (event_uuid, 0)
                    event = self._new_event(event_uuid, collection, part, now)
                if self._change_event(event, work[event_uuid], now):
                    lines = self._write_event(index, event, now)
                    fresh[event_uuid] = (spool.tell(), len(lines))
                    spool.write(lines)
                else:
                    # Planned counts may include attributes that the event already had.
                    index.counts[event_uuid] = len(event["Attribute"])
                del event

            if fresh:
                logger.info("Wrote %d MISP feed events in %s.", len(fresh), self.folder)
                index.write_hashes(self.folder / HASHES, spool, fresh)
        _write_if_different(self.folder / MANIFEST, _dump(dict(sorted(index.manifest.items()))))

    def _change_event(self, event: dict[str, Any], work: list[tuple[str, AtomRow | None]], now: datetime) -> bool:
        attributes = event["Attribute"]
        positions = {a.get("uuid", ""): i for i, a in enumerate(attributes) if isinstance(a, dict)}
        changed = False
        for attribute_uuid, row in work:
            position = positions.get(attribute_uuid)
            if row is None:
                changed |= position is not None and self._delete(attributes, position, now)
                continue
            attribute = self._attribute(row, now)
            assert attribute is not None, "push skips rows without a MISP attribute type"
            if position is None:
                positions[attribute_uuid] = len(attributes)
                attributes.append(attribute)
                changed = True
                continue
            existing = attributes[position]
            if _without_timestamp(existing) != _without_timestamp(attribute):
                attribute["timestamp"] = _later_timestamp(existing.get("timestamp"), now)
                attributes[position] = attribute
                changed = True
        return changed

    def _delete(self, attributes: list[dict[str, Any]], position: int, now: datetime) -> bool:
        """Remove or soft-delete the attribute at ``position``; return False when it was already deleted."""
        existing = attributes[position]
        if self.feed_settings.keep_deleted_days == 0:
            # Marked now and dropped when the event is written, so positions stay valid meanwhile.
            attributes[position] = {**existing, _DROP: True}
            return True
        if existing.get("deleted"):
            return False
        attributes[position] = {
            **existing,
            "deleted": True,
            "to_ids": False,
            "timestamp": _later_timestamp(existing.get("timestamp"), now),
        }
        return True

    def _write_event(self, index: _FeedIndex, event: dict[str, Any], now: datetime) -> bytes:
        """Prune, sort and write an event, record it in the index and return its ``hashes.csv`` lines."""
        event_uuid = event["uuid"]
        removed = self._prune_deleted(event, now)
        event["Attribute"].sort(key=lambda a: (a["type"], a["value"], a["uuid"]))
        event["Tag"] = _event_tags(event)
        event["timestamp"] = _later_timestamp(event.get("timestamp"), now)
        event["publish_timestamp"] = event["timestamp"]
        with atomic_writer(self.folder / f"{event_uuid}.json", newline="") as stream:
            # json.dumps with indent joins a list of every small piece, several times the text's size.
            json.dump({"Event": event}, stream, ensure_ascii=False, sort_keys=True, indent=1)
            stream.write("\n")

        index.forget_attributes(removed)
        return index.add_event(event)

    def _new_event(self, event_uuid: str, collection: str, part: int, now: datetime) -> dict[str, Any]:
        return {
            "uuid": event_uuid,
            "info": f"stixbridge: {collection}" if part == 0 else f"stixbridge: {collection} (part {part + 1})",
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

    def _load(self) -> _FeedIndex:
        """Build the index from the manifest and every event file it names, reading one event at a time.

        ``hashes.csv`` is rebuilt from the events on the way, in the layout :class:`_FeedIndex` expects,
        and replaced only when it differs.
        """
        if self._index is not None:
            return self._index

        manifest = _read_json(self.folder / MANIFEST)
        if manifest is not None and not isinstance(manifest, dict):
            raise ConfigError(f"{self.folder / MANIFEST} is not a MISP feed manifest (expected a JSON object); "
                              "move it away or set the sink's path to another folder")
        index = _FeedIndex()
        try:
            with atomic_writer(self.folder / HASHES, newline="", keep_if_same=True) as stream:
                for event_uuid in sorted(manifest or {}):
                    event = self._read_event(event_uuid)
                    if event is None:
                        continue
                    lines = index.add_event(event)
                    index.sections[event_uuid] = len(lines)
                    stream.write(lines.decode("ascii"))
                    del event
        except BaseException:
            index.close()
            raise
        self._index = index
        return index

    def _read_event(self, event_uuid: str) -> dict[str, Any] | None:
        path = self.folder / f"{event_uuid}.json"
        document = _read_json(path)
        if not (isinstance(document, dict) and isinstance(document.get("Event"), dict)):
            logger.warning("MISP feed event file %s is missing or unreadable; its event starts empty.", path)
            return None
        event: dict[str, Any] = document["Event"]
        missing = sorted(_EVENT_KEYS - set(event))
        if missing:
            raise ConfigError(f"MISP feed event file {path} lacks {', '.join(missing)}; "
                              "restore it or delete the feed folder's files and push everything again")
        event.setdefault("Attribute", [])
        event.setdefault("Tag", [])
        event["uuid"] = event_uuid
        return event

    def _prune_deleted(self, event: dict[str, Any], now: datetime) -> list[str]:
        """Drop attributes marked for removal and those soft-deleted too long ago; return their UUIDs."""
        cutoff = int((now - timedelta(days=self.feed_settings.keep_deleted_days)).timestamp())
        kept = []
        removed = []
        for attribute in event["Attribute"]:
            expired = attribute.get("deleted") and int(attribute.get("timestamp", 0)) < cutoff
            if attribute.get(_DROP) or expired:
                removed.append(attribute["uuid"])
                continue
            kept.append(attribute)
        event["Attribute"] = kept
        return removed


class _FeedIndex:
    """What a push needs to know about the events it does not load.

    ``placement`` maps each attribute UUID to its event's position in ``event_uuids``, on disk, so that
    memory does not grow with the number of attributes. ``hashes.csv`` keeps each event's lines together,
    events in UUID order, and ``sections`` stores the length of each event's part, so a push copies the
    parts of the events it did not change from the old file.
    """

    def __init__(self) -> None:
        self.event_uuids: list[str] = []
        self.position_of_event: dict[str, int] = {}
        self.placement = Placement()
        self.counts: dict[str, int] = {}
        """Attributes per event, including soft-deleted ones and those planned by the current push."""
        self.planned: dict[str, tuple[str, int]] = {}
        """Collection and part of events the current push creates."""
        self.manifest: dict[str, dict[str, Any]] = {}
        self.sections: dict[str, int] = {}
        """Bytes of each event's lines in ``hashes.csv``."""

    def close(self) -> None:
        self.placement.close()

    def event_of(self, attribute_uuid: str) -> str | None:
        position = self.placement.event_of(attribute_uuid)
        return None if position is None else self.event_uuids[position]

    def forget_attributes(self, attribute_uuids: list[str]) -> None:
        if attribute_uuids:
            self.placement.forget(attribute_uuids)

    def add_event(self, event: dict[str, Any]) -> bytes:
        """Record an event as written: its attributes, count and manifest entry; return its hash lines."""
        event_uuid = event["uuid"]
        position = self.position_of_event.get(event_uuid)
        if position is None:
            position = len(self.event_uuids)
            self.event_uuids.append(event_uuid)
            self.position_of_event[event_uuid] = position

        self.placement.place(
            (a["uuid"] for a in event["Attribute"] if isinstance(a, dict) and "uuid" in a), position
        )
        self.counts[event_uuid] = len(event["Attribute"])
        self.planned.pop(event_uuid, None)
        self.manifest[event_uuid] = _manifest_entry(event)
        return _hash_lines(event).encode("ascii")

    def write_hashes(self, path: Path, spool: IO[bytes], fresh: dict[str, tuple[int, int]]) -> None:
        """Rewrite ``hashes.csv`` with the lines of changed events taken from ``spool`` (offset, length).

        Raises:
            OSError: ``hashes.csv`` could not be read or replaced; it is unchanged.
        """
        old_offsets = {}
        offset = 0
        for event_uuid in sorted(self.sections):
            old_offsets[event_uuid] = offset
            offset += self.sections[event_uuid]

        lengths = dict(self.sections)
        with open(path, "rb") as old, atomic_writer(path, newline="", keep_if_same=True) as stream:
            for event_uuid in sorted(set(self.sections) | set(fresh)):
                if event_uuid in fresh:
                    source, (start, length) = spool, fresh[event_uuid]
                else:
                    source, start, length = old, old_offsets[event_uuid], self.sections[event_uuid]
                source.seek(start)
                stream.write(source.read(length).decode("ascii"))
                lengths[event_uuid] = length
        self.sections = lengths


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


def _manifest_entry(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "Orgc": event["Orgc"],
        "Tag": event["Tag"],
        "info": event["info"],
        "date": event["date"],
        "analysis": event["analysis"],
        "threat_level_id": event["threat_level_id"],
        "timestamp": event["timestamp"],
    }


def _hash_lines(event: dict[str, Any]) -> str:
    """Return the sorted ``hashes.csv`` lines of an event's live attributes."""
    lines = sorted(
        f"{hashlib.md5(str(attribute['value']).encode(), usedforsecurity=False).hexdigest()},{event['uuid']}"
        for attribute in event["Attribute"]
        if isinstance(attribute, dict) and not attribute.get("deleted")
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
