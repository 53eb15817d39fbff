"""Placement of new attributes in bounded events per source collection, numbered parts 0, 1, 2, ...

Each source collection gets events with UUIDs derived from (source, collection, part). New attributes
fill the lowest part with room. When every existing part has ``max_attributes_per_event`` attributes, the
next part is created. An attribute never moves once written, because updates go to the event that has it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

PARTS_PER_LOOKUP = 32
"""Number of part UUIDs sent in one ``events/index`` request."""


@dataclass
class EventSlot:
    """One part of a source collection's events, as this run has seen it."""

    uuid: str
    part: int
    exists: bool
    count: int
    usable: bool = True
    """False when MISP rejected the creation of the event (its UUID is on MISP's event blocklist)."""


@dataclass
class CollectionEvents:
    """The known parts of one source collection."""

    source: str
    collection: str
    slots: list[EventSlot] = field(default_factory=list)
    complete: bool = False
    """True once a lookup found a part that does not exist yet, so no later part exists either."""


class EventPlanner:
    """Chooses the event for new attributes, asking MISP about parts only when it must.

    Args:
        uuid_of: returns the event UUID of (source, collection, part).
        index: sends ``events/index`` for a list of event UUIDs and returns MISP's event list.
        capacity: the maximum number of attributes per event.
    """

    def __init__(
        self,
        uuid_of: Callable[[str, str, int], str],
        index: Callable[[list[str]], list[dict[str, Any]]],
        capacity: int,
    ) -> None:
        self._uuid_of = uuid_of
        self._index = index
        self.capacity = capacity
        self._groups: dict[tuple[str, str], CollectionEvents] = {}

    def reset(self) -> None:
        """Forget what was learned; called at the start of every push."""
        self._groups.clear()

    def slot_for(self, source: str, collection: str) -> EventSlot:
        """Return the event the next new attribute of this collection goes into."""
        group = self._groups.setdefault((source, collection), CollectionEvents(source, collection))
        while True:
            for slot in group.slots:
                if slot.usable and slot.count < self.capacity:
                    return slot
            if group.complete:
                part = len(group.slots)
                slot = EventSlot(self._uuid_of(source, collection, part), part, exists=False, count=0)
                group.slots.append(slot)
                return slot
            self._look_up(group)

    def _look_up(self, group: CollectionEvents) -> None:
        first = len(group.slots)
        uuids = [self._uuid_of(group.source, group.collection, part) for part in range(first, first + PARTS_PER_LOOKUP)]
        found = {}
        for event in self._index(uuids):
            if isinstance(event, dict) and str(event.get("uuid", "")).lower() in uuids:
                found[str(event["uuid"]).lower()] = int(event.get("attribute_count") or 0)

        for offset, event_uuid in enumerate(uuids):
            if event_uuid not in found:
                group.complete = True
                break
            group.slots.append(EventSlot(event_uuid, first + offset, exists=True, count=found[event_uuid]))
        logger.debug(
            "Events of %s / %s: %d parts known, complete=%s.", group.source, group.collection, len(group.slots),
            group.complete,
        )  # fmt: skip
