"""MISP events as JSON documents: the envelopes they come in and the attributes they hold.

MISP writes an event as ``{"Event": {...}}`` (event view, feeds, most exports) or as
``{"response": [{"Event": {...}}, ...]}`` (restSearch results saved to a file). Both are read here. An
event's attributes sit in ``Attribute`` and inside each entry of ``Object``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stixbridge.timeutil import from_epoch

ORGANISATION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "stixbridge:misp:organisation")
"""Namespace of identity ids made for organisations that come without a valid UUID."""


class NotAnEventError(ValueError):
    """Raised when a JSON document is not a MISP event in either envelope."""


def events_of_document(document: Any) -> list[dict[str, Any]]:
    """Return the events in a parsed MISP JSON document.

    Raises:
        NotAnEventError: the document is neither ``{"Event": ...}`` nor ``{"response": [...]}`` of events.
    """
    if isinstance(document, dict) and isinstance(document.get("Event"), dict):
        return [document["Event"]]
    if isinstance(document, dict) and isinstance(document.get("response"), list):
        events = []
        for entry in document["response"]:
            event = entry.get("Event", entry) if isinstance(entry, dict) else None
            if not isinstance(event, dict) or not isinstance(event.get("Attribute", []), list):
                raise NotAnEventError("an entry of 'response' is not a MISP event")
            events.append(event)
        return events
    keys = ", ".join(sorted(document)[:5]) if isinstance(document, dict) else type(document).__name__
    raise NotAnEventError(f"not a MISP event: expected an 'Event' object or a 'response' list, found {keys}")


def tag_names(entity: Mapping[str, Any]) -> list[str]:
    """Return the tag names of an event or attribute, in their order, without duplicates."""
    names: list[str] = []
    tags = entity.get("Tag")
    if isinstance(tags, list):
        for tag in tags:
            name = tag.get("name") if isinstance(tag, dict) else None
            if isinstance(name, str) and name and name not in names:
                names.append(name)
    return names


def epoch_of(value: Any) -> int | None:
    """Return a MISP timestamp (seconds since the epoch, as a string or a number) as an int, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def truthy(value: Any) -> bool:
    """Read a MISP flag, which arrives as true/false, 1/0 or "1"/"0"."""
    return value is True or value in (1, "1", "true", "True")


@dataclass(frozen=True)
class EventMeta:
    """The event metadata that an indicator built from one of the event's attributes carries."""

    uuid: str
    info: str
    org_name: str
    org_uuid: str
    tags: tuple[str, ...]
    date: datetime | None
    timestamp: int | None
    published: bool

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> EventMeta:
        """Read the metadata of an event dict (an event file's or a restSearch attribute's ``Event``)."""
        orgc = event.get("Orgc")
        org: Mapping[str, Any] = orgc if isinstance(orgc, dict) else {}
        return cls(
            uuid=str(event.get("uuid") or ""),
            info=str(event.get("info") or ""),
            org_name=str(org.get("name") or ""),
            org_uuid=str(org.get("uuid") or ""),
            tags=tuple(tag_names(event)),
            date=_date(event.get("date")),
            timestamp=epoch_of(event.get("timestamp")),
            published=truthy(event.get("published")),
        )

    @property
    def identity_id(self) -> str:
        """The STIX identity id of the organisation that created the event: ``identity--<Orgc uuid>``.

        An organisation without a valid UUID gets one derived from its name; without a name, "".
        """
        try:
            return f"identity--{uuid.UUID(self.org_uuid)}"
        except ValueError:
            if not self.org_name:
                return ""
            return f"identity--{uuid.uuid5(ORGANISATION_NAMESPACE, self.org_name)}"


def _date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None


def attributes_of_event(event: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the event's attributes, those inside objects too, each with ``object_name`` when it has one."""
    for attribute in event.get("Attribute") or []:
        if isinstance(attribute, dict):
            yield attribute
    for obj in event.get("Object") or []:
        if not isinstance(obj, dict):
            continue
        for attribute in obj.get("Attribute") or []:
            if isinstance(attribute, dict):
                yield {**attribute, "object_name": obj.get("name", "")}


def moment_of_epoch(value: Any) -> datetime | None:
    """Return a MISP timestamp as a UTC datetime, or None when it is missing or invalid."""
    seconds = epoch_of(value)
    return None if seconds is None else from_epoch(seconds)
