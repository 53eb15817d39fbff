"""The MISP sink: live atoms become MISP attributes in bounded events, updated in place every run.

How one batch of changes travels (every write carries up to ``chunk_size`` attributes):

1. One ``attributes/restSearch`` by UUID finds which rows MISP already holds, and in which event.
2. Rows MISP already has are updated with ``events/edit/<event>`` carrying the attribute list (MISP updates
   attributes by UUID there and creates missing ones).
3. New rows go to the event of their source collection with room: a new event is created with
   ``events/add`` carrying its first chunk, later chunks go through ``attributes/add/<event>`` with a
   list, which returns an error per rejected attribute.
4. Expired rows are disabled (``to_ids`` off through ``events/edit`` and one expiration sighting, type
   2, per chunk through ``sightings/add`` with the attribute id list) or soft-deleted through
   ``events/edit``, as ``expiry_action`` sets.

``events/add`` and ``events/edit`` drop invalid attributes without an error, so values are checked with
MISP's rules before they are sent and the attributes ``events/add`` returns are compared with those sent.
A push with no changes sends no request at all.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any, ClassVar, TypeVar

from stixbridge.connector import ConnectorContext
from stixbridge.errors import RemoteRejectedError, StixbridgeError
from stixbridge.model import AtomRow, Changes, DeliveredRow, PushResult
from stixbridge.sinks.base import Sink

from .attribute_types import misp_type_of_row
from .attributes import AttributeBuilder, attribute_uuid, event_uuid, sink_namespace, source_tag
from .client import MispAnswer, MispClient
from .placement import EventPlanner, EventSlot
from .settings import MispSinkSettings

logger = logging.getLogger(__name__)

EXPIRATION_SIGHTING = "2"
SIGHTING_SOURCE = "stixbridge"
_T = TypeVar("_T")


class MispSink(Sink):
    """Writes live atoms into MISP as ``to_ids`` attributes, one bounded event per source collection.

    The constructor only reads settings; the first request creates the PyMISP client. The engine calls
    :meth:`begin`, :meth:`push` per batch, then :meth:`finish`, which publishes the events written when
    ``publish`` is on.
    """

    kind = "misp"
    settings_class = MispSinkSettings
    settings: MispSinkSettings
    batch_size: ClassVar[int] = 25_000
    """Rows per push. Large batches let the rows of one collection fill whole write requests. With the
    engine's default of 5,000 rows spread over several collections, most requests would carry a fraction."""

    def __init__(self, name: str, settings: MispSinkSettings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        self.client = MispClient(settings, context.base_dir, f"MISP sink {name!r}")
        self.namespace = sink_namespace(settings.uuid_seed or context.identity_id or name)
        self.builder = AttributeBuilder(settings, self.namespace)
        self.planner = EventPlanner(self._event_uuid, self._index_events, settings.max_attributes_per_event)
        self._touched: set[str] = set()
        self._left_out: defaultdict[str, int] = defaultdict(int)

    def describe(self) -> str:
        publishing = "publishing" if self.settings.publish else "not publishing"
        return (
            f"MISP sink {self.name!r} writing to {self.settings.url} (event distribution "
            f"{self.settings.distribution}, {publishing}, expired atoms: {self.settings.expiry_action})"
        )

    def accepts(self, row: AtomRow) -> bool:
        """Return True when MISP can hold the row: its atom type has a MISP type and MISP accepts the value.

        A row MISP would always reject is left out (and deleted from MISP if an earlier version was
        written) instead of failing on every run; :meth:`finish` logs how many were left out.
        """
        problem = self.builder.problem(row)
        if problem is None:
            return True
        logger.debug("MISP sink %s leaves out row %s: %s", self.name, row.key, problem)
        misp_type = misp_type_of_row(row)
        reason = f"no MISP type for atom type {row.type!r}" if misp_type is None else f"{misp_type} values MISP rejects"
        self._left_out[reason] += 1
        return False

    def begin(self) -> None:
        self.planner.reset()
        self._touched.clear()

    def push(self, changes: Changes) -> PushResult:
        result = PushResult()
        if not changes:
            return result
        requests_before = self.client.stats.requests
        bytes_before = self.client.stats.bytes_sent

        if changes.upserts:
            self._upsert(changes.upserts, result)
        if changes.deletes:
            self._expire(changes.deletes, result)

        result.requests = self.client.stats.requests - requests_before
        result.bytes_sent = self.client.stats.bytes_sent - bytes_before
        logger.info(
            "MISP sink %s: %d attributes written, %d expired (%s), %d failed, in %d requests.",
            self.name, len(result.written), len(result.deleted), self.settings.expiry_action, len(result.failed),
            result.requests,
        )  # fmt: skip
        return result

    def finish(self, complete: bool) -> None:
        """Publish the events written in this run when ``publish`` is on."""
        if self._left_out:
            summary = ", ".join(f"{reason} ({count})" for reason, count in sorted(self._left_out.items()))
            logger.warning("MISP sink %s left out rows MISP cannot hold: %s.", self.name, summary)
            self._left_out.clear()
        if not self.settings.publish or not self._touched:
            return
        try:
            for uuid in sorted(self._touched):
                self.client.call(f"events/publish/{uuid}", {})
        except StixbridgeError as exc:
            logger.error("MISP sink %s could not publish its events: %s", self.name, exc)
            if complete:
                raise
            return
        logger.info("MISP sink %s published %d events.", self.name, len(self._touched))
        self._touched.clear()

    # -- upserts ---------------------------------------------------------------------------------------

    def _upsert(self, rows: list[AtomRow], result: PushResult) -> None:
        valid = []
        for row in rows:
            problem = self.builder.problem(row)
            if problem:
                result.failed[row.key] = problem
            else:
                valid.append(row)
        if not valid:
            return

        held = self._look_up([attribute_uuid(self.namespace, row.key) for row in valid])
        updates: dict[str, list[AtomRow]] = defaultdict(list)
        new: dict[tuple[str, str], list[AtomRow]] = defaultdict(list)
        for row in valid:
            found = held.get(attribute_uuid(self.namespace, row.key))
            if found is not None:
                updates[str(found["event_uuid"])].append(row)
            else:
                new[(_source(row), _collection(row))].append(row)

        for target, event_rows in updates.items():
            self._update(target, event_rows, result)
        for (source, collection), group_rows in new.items():
            self._add(source, collection, group_rows, result)

    def _update(self, target: str, rows: list[AtomRow], result: PushResult) -> None:
        for chunk in _chunks(rows, self.settings.chunk_size):
            attributes = [self.builder.build(row, update=True) for row in chunk]
            answer = self._edit_event(target, attributes)
            if answer.status != 200:
                reason = f"MISP rejected the edit of event {target}: {_message(answer.body)}"
                result.failed.update({row.key: reason for row in chunk})
                continue
            result.written.extend(row.key for row in chunk)
            self._touched.add(target)

    def _add(self, source: str, collection: str, rows: list[AtomRow], result: PushResult) -> None:
        pending = list(rows)
        while pending:
            slot = self.planner.slot_for(source, collection)
            room = self.planner.capacity - slot.count
            batch, pending = pending[:room], pending[room:]
            self._add_to_slot(slot, source, collection, batch, result)

    def _add_to_slot(
        self, slot: EventSlot, source: str, collection: str, rows: list[AtomRow], result: PushResult
    ) -> None:
        chunks = list(_chunks(rows, self.settings.chunk_size))
        for number, chunk in enumerate(chunks):
            if slot.exists:
                self._add_attributes(slot, chunk, result)
            elif not self._create_event(slot, source, collection, chunk, result):
                # The event could not be created as planned; the rest of the rows are placed again.
                self._add(source, collection, [row for later in chunks[number:] for row in later], result)
                return
            slot.count += len(chunk)

    def _create_event(
        self, slot: EventSlot, source: str, collection: str, rows: list[AtomRow], result: PushResult
    ) -> bool:
        """Create the slot's event with ``rows``; return False when the rows must be placed again.

        That happens when the event exists already (its real size is then read) or when MISP will not
        create it (its UUID is on the event blocklist, and the slot is no longer used).
        """
        attributes = [self.builder.build(row) for row in rows]
        event = {
            "uuid": slot.uuid,
            "info": self.settings.event_info.format(source=source, collection=collection, part=slot.part + 1),
            "distribution": self.settings.distribution,
            "threat_level_id": 4,
            "analysis": 2,
            "date": date.today().isoformat(),
            "published": False,
            "Tag": [{"name": source_tag(source)}, *({"name": tag} for tag in self.settings.event_tags)],
            "Attribute": attributes,
        }
        if self.settings.distribution == 4:
            event["sharing_group_id"] = self.settings.sharing_group

        answer = self.client.call("events/add", {"Event": event}, accept=(403, 404))
        if answer.status == 404:
            # The event exists after all (created by a request that timed out, or by another run).
            logger.info("MISP event %s already exists; adding the attributes to it.", slot.uuid)
            slot.exists = True
            held = [e for e in self._index_events([slot.uuid]) if str(e.get("uuid", "")).lower() == slot.uuid]
            slot.count = int(held[0].get("attribute_count") or 0) if held else 0
            return False
        if answer.status == 403:
            slot.usable = False
            logger.warning(
                "MISP rejected the creation of event %s (%s); using the next part.", slot.uuid, _message(answer.body)
            )
            return False

        slot.exists = True
        self._touched.add(slot.uuid)
        stored = {str(a.get("uuid")) for a in _event_of(answer.body).get("Attribute") or [] if isinstance(a, dict)}
        for row, attribute in zip(rows, attributes, strict=True):
            if attribute["uuid"] in stored:
                result.written.append(row.key)
            else:
                result.failed[row.key] = f"MISP dropped attribute {attribute['uuid']} when creating event {slot.uuid}"
        logger.info("Created MISP event %s (%s) with %d attributes.", slot.uuid, event["info"], len(stored))
        return True

    def _add_attributes(self, slot: EventSlot, rows: list[AtomRow], result: PushResult) -> None:
        attributes = [self.builder.build(row) for row in rows]
        # breakOnDuplicate:0 turns a repeat of the same value into an update, so a retried request is harmless.
        answer = self.client.call(f"attributes/add/{slot.uuid}/breakOnDuplicate:0", attributes, accept=(403,))
        errors = _attribute_errors(answer, len(attributes))
        for index, row in enumerate(rows):
            error = errors.get(index)
            if error is None:
                result.written.append(row.key)
            else:
                result.failed[row.key] = f"MISP rejected attribute {attributes[index]['uuid']}: {error}"
        if len(errors) < len(rows):
            self._touched.add(slot.uuid)

    # -- expiry ----------------------------------------------------------------------------------------

    def _expire(self, held: list[DeliveredRow], result: PushResult) -> None:
        uuids = {attribute_uuid(self.namespace, row.key): row for row in held}
        found = self._look_up(list(uuids))
        by_event: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for uuid, row in uuids.items():
            attribute = found.get(uuid)
            if attribute is None or attribute.get("deleted") in (True, 1, "1"):
                result.deleted.append(row.key)
            else:
                by_event[str(attribute["event_uuid"])].append(attribute)

        expire_ids: list[str] = []
        for target, event_attributes in by_event.items():
            for attributes in _chunks(event_attributes, self.settings.chunk_size):
                if self._expire_in_event(target, attributes, uuids, result):
                    expire_ids.extend(str(a["id"]) for a in attributes)

        if self.settings.expiry_action == "disable":
            for ids in _chunks(expire_ids, self.settings.chunk_size):
                # One request marks a whole chunk: MISP accepts attribute ids joined by "|".
                self.client.call(
                    "sightings/add",
                    {"id": "|".join(ids), "type": EXPIRATION_SIGHTING, "source": SIGHTING_SOURCE,
                     "timestamp": int(self.context.clock().timestamp())},
                )  # fmt: skip

    def _expire_in_event(
        self, target: str, attributes: list[dict[str, Any]], rows: dict[str, DeliveredRow], result: PushResult
    ) -> bool:
        """Disable or delete attributes of one event; return False when MISP rejected the edit."""
        if self.settings.expiry_action == "delete":
            changes = [{"uuid": a["uuid"], "deleted": True} for a in attributes]
        else:
            changes = [{"uuid": a["uuid"], "to_ids": False} for a in attributes]
        answer = self._edit_event(target, changes)
        keys = [rows[str(a["uuid"])].key for a in attributes]
        if answer.status != 200:
            reason = f"MISP rejected the edit of event {target}: {_message(answer.body)}"
            result.failed.update({key: reason for key in keys})
            return False
        self._touched.add(target)
        result.deleted.extend(keys)
        return True

    # -- MISP calls ------------------------------------------------------------------------------------

    def _look_up(self, uuids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return the attributes MISP has among ``uuids`` (soft-deleted ones too), by UUID."""
        found = {}
        for chunk in _chunks(uuids, self.settings.chunk_size):
            wanted = set(chunk)
            answer = self.client.call(
                "attributes/restSearch",
                {"returnFormat": "json", "uuid": chunk, "deleted": [0, 1], "includeEventUuid": 1},
            )
            body = answer.body if isinstance(answer.body, dict) else {}
            for attribute in body.get("Attribute") or []:
                if isinstance(attribute, dict) and attribute.get("uuid") in wanted:
                    found[str(attribute["uuid"])] = attribute
        return found

    def _edit_event(self, target: str, attributes: list[dict[str, Any]]) -> MispAnswer:
        return self.client.call(
            f"events/edit/{target}/metadata:1", {"Event": {"uuid": target, "Attribute": attributes}}, accept=(403,)
        )

    def _index_events(self, uuids: list[str]) -> list[dict[str, Any]]:
        answer = self.client.call("events/index", {"eventid": uuids})
        return answer.body if isinstance(answer.body, list) else []

    def _event_uuid(self, source: str, collection: str, part: int) -> str:
        return event_uuid(self.namespace, source, collection, part)


def _source(row: AtomRow) -> str:
    return row.sources[0] if row.sources else "unknown"


def _collection(row: AtomRow) -> str:
    return row.collections[0] if row.collections else ""


def _event_of(body: Any) -> dict[str, Any]:
    if isinstance(body, dict) and isinstance(body.get("Event"), dict):
        return body["Event"]
    return {}


def _attribute_errors(answer: MispAnswer, sent: int) -> dict[int, str]:
    """Return MISP's error per attribute index from an ``attributes/add`` response.

    MISP names failures ``attribute_<index>``. When every attribute failed it returns 403 with the same
    map, or with the single attribute's errors when one was sent.

    Raises:
        RemoteRejectedError: a 403 that is not about the attributes (the user may not edit the event).
    """
    body = answer.body if isinstance(answer.body, dict) else {}
    errors = body.get("errors")
    if answer.status == 403 and not isinstance(errors, dict):
        raise RemoteRejectedError(f"MISP rejected attributes/add with 403: {_message(body)}", status=403)
    if not isinstance(errors, dict):
        return {}
    if answer.status == 403 and sent == 1 and "attribute_0" not in errors:
        return {0: _message({"errors": errors})}
    found = {}
    for name, detail in errors.items():
        if isinstance(name, str) and name.startswith("attribute_") and name[10:].isdigit():
            found[int(name[10:])] = _message({"errors": detail})
    return found


def _message(body: Any) -> str:
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, dict):
            parts = [f"{name}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for name, v in errors.items()]
            return "; ".join(parts)
        for name in ("errors", "message", "name"):
            if body.get(name):
                return str(body[name])
    return str(body)[:300]


def _chunks(items: Sequence[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
