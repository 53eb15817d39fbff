"""STIX 2.1 objects we publish: our Identity, TLP 2.0 markings, Sightings, Opinions and observed data.

Objects are built with the ``stix2`` library, which checks required properties and value ranges, and
returned as plain dicts. Ids are deterministic (UUIDv5), so building the same aggregate again gives the
same object and publishing it again is a no-op on the server.
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stix2

from ..timeutil import format_timestamp, from_epoch
from ..tlp import TLP2_EXTENSION_ID, TLP2_MARKING_IDS, Tlp
from .settings import OBSERVED_FIELDS

SIGHTING_NAMESPACE = uuid.UUID("2f1d5c8a-7b3e-4e6f-9a0d-5c4b3a2f1e0d")
# Our Identity keeps one version: its id follows the configured name, so a new name is a new identity.
IDENTITY_CREATED = "2020-01-01T00:00:00.000Z"
# TLP 2.0 marking-definition objects were published by OASIS with this creation time.
TLP2_CREATED = "2022-10-01T00:00:00.000Z"


@dataclass(frozen=True)
class Window:
    """Hits of one indicator in one time window, as aggregated in the store."""

    object_id: str
    object_type: str
    """``sighting`` or ``opinion``."""
    indicator_id: str
    window_start: float
    tlp: int | None
    count: int
    first_seen: float
    last_seen: float
    context: tuple[tuple[str, str], ...]
    created_ms: int
    modified_ms: int

    @property
    def created(self) -> str:
        return format_timestamp(from_epoch(self.created_ms / 1000))

    @property
    def modified(self) -> str:
        return format_timestamp(from_epoch(self.modified_ms / 1000))


def window_object_id(object_type: str, indicator_id: str, window_start: datetime, identity_id: str) -> str:
    """Return the id of the Sighting or Opinion for one indicator, window and observer."""
    name = f"{object_type}|{indicator_id}|{format_timestamp(window_start)}|{identity_id}"
    return f"{object_type}--{uuid.uuid5(SIGHTING_NAMESPACE, name)}"


def serialise(obj: Any) -> dict[str, Any]:
    """Return a ``stix2`` object as a plain dict, as it is sent."""
    result: dict[str, Any] = json.loads(obj.serialize())
    return result


def identity_object(identity_id: str, name: str, identity_class: str) -> dict[str, Any]:
    """Return our Identity."""
    return serialise(
        stix2.v21.Identity(
            id=identity_id, name=name, identity_class=identity_class, created=IDENTITY_CREATED,
            modified=IDENTITY_CREATED,
        )  # fmt: skip
    )


def marking_object(level: Tlp) -> dict[str, Any]:
    """Return the OASIS TLP 2.0 marking-definition object of a level."""
    return serialise(
        stix2.v21.MarkingDefinition(
            id=TLP2_MARKING_IDS[level],
            created=TLP2_CREATED,
            name=f"TLP:{level.label}",
            extensions={TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": level.label.lower()}},
        )
    )


def sighting_object(
    window: Window, identity_id: str, level: Tlp, observed_data_id: str | None = None
) -> dict[str, Any]:
    """Return the Sighting of one window: of the alliance's indicator, sighted by us."""
    first_seen = from_epoch(window.first_seen)
    last_seen = from_epoch(max(window.last_seen, window.first_seen))
    properties: dict[str, Any] = {
        "id": window.object_id,
        "created": window.created,
        "modified": window.modified,
        "created_by_ref": identity_id,
        "sighting_of_ref": window.indicator_id,
        "where_sighted_refs": [identity_id],
        "count": min(window.count, 999_999_999),
        "first_seen": format_timestamp(first_seen),
        "last_seen": format_timestamp(last_seen),
        "object_marking_refs": [TLP2_MARKING_IDS[level]],
    }
    if observed_data_id is not None:
        properties["observed_data_refs"] = [observed_data_id]
    return serialise(stix2.v21.Sighting(**properties))


def opinion_object(window: Window, identity_id: str, level: Tlp) -> dict[str, Any]:
    """Return our Opinion that the indicator is a false positive (``disagree``)."""
    explanation = (
        f"Reported as a false positive {window.count} time(s) between "
        f"{format_timestamp(from_epoch(window.first_seen))} and {format_timestamp(from_epoch(window.last_seen))}."
    )
    return serialise(
        stix2.v21.Opinion(
            id=window.object_id,
            created=window.created,
            modified=window.modified,
            created_by_ref=identity_id,
            opinion="disagree",
            explanation=explanation,
            object_refs=[window.indicator_id],
            object_marking_refs=[TLP2_MARKING_IDS[level]],
        )
    )


def observed_objects(
    window: Window, fields: list[str], identity_id: str, level: Tlp, target: str
) -> list[dict[str, Any]]:
    """Return observed-data for the window's context fields that a target may receive, and its observables.

    Returns an empty list when the window holds none of those fields. The observed-data object comes last.
    """
    marking = [TLP2_MARKING_IDS[level]]
    observables: dict[str, dict[str, Any]] = {}
    for name, value in window.context:
        if name not in fields:
            continue
        observable = _observable(OBSERVED_FIELDS[name], value, marking)
        if observable is not None:
            observables[observable["id"]] = observable
    if not observables:
        return []

    observed_id = f"observed-data--{uuid.uuid5(SIGHTING_NAMESPACE, f'{window.object_id}|{target}|{sorted(fields)}')}"
    observed = serialise(
        stix2.v21.ObservedData(
            id=observed_id,
            created=window.created,
            modified=window.modified,
            created_by_ref=identity_id,
            first_observed=format_timestamp(from_epoch(window.first_seen)),
            last_observed=format_timestamp(from_epoch(max(window.last_seen, window.first_seen))),
            number_observed=min(window.count, 999_999_999),
            object_refs=sorted(observables),
            object_marking_refs=marking,
        )
    )
    return [*observables.values(), observed]


def _observable(kind: str, value: str, marking: list[str]) -> dict[str, Any] | None:
    """Return the cyber-observable of one context value, or None when the value does not fit its kind."""
    if kind in ("address", "hostname"):
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            if kind == "address":
                return None
            return serialise(stix2.v21.DomainName(value=value, object_marking_refs=marking))
        factory = stix2.v21.IPv4Address if address.version == 4 else stix2.v21.IPv6Address
        return serialise(factory(value=str(address), object_marking_refs=marking))
    if kind == "user-account":
        return serialise(stix2.v21.UserAccount(user_id=value, object_marking_refs=marking))
    if kind == "email-addr":
        return serialise(stix2.v21.EmailAddress(value=value, object_marking_refs=marking))
    if kind == "url":
        return serialise(stix2.v21.URL(value=value, object_marking_refs=marking))
    return None
