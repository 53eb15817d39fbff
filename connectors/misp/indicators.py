"""STIX 2.1 indicator dicts built from MISP attributes, so the core normaliser reads them like any feed.

Mapping of one attribute:

- ``id`` is ``indicator--<attribute uuid>``, so every pull of the same attribute updates one indicator;
- ``modified`` is the attribute's ``timestamp``; ``created`` is the event date (or ``modified`` when
  that is later), which stays the same across edits of the attribute;
- ``valid_from`` is the attribute's ``first_seen``, else ``created``; ``valid_until`` is the moment
  MISP's decay models say the attribute decays, when MISP sent scores;
- ``name`` is the event title and ``description`` the attribute comment;
- ``tlp:`` tags of the event and the attribute become a TLP 2.0 marking (the most restrictive wins),
  the other tags become ``labels``;
- ``created_by_ref`` is ``identity--<uuid of the organisation that created the event>``;
- warninglist hits are listed in ``x_stixbridge_warninglist``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from stixbridge.errors import InvalidInputError
from stixbridge.normalise import SCORE_EXPIRY_PROPERTY
from stixbridge.timeutil import format_timestamp, from_epoch, parse_timestamp
from stixbridge.tlp import TLP2_MARKING_IDS, tlp_of_tags

from .decay import decay_expiry
from .events import EventMeta, moment_of_epoch, tag_names
from .patterns import pattern_of_attribute


def indicator_of_attribute(attribute: Mapping[str, Any], event: EventMeta, now: datetime) -> dict[str, Any]:
    """Return the STIX 2.1 indicator for one MISP attribute.

    Args:
        attribute: the attribute as MISP writes it, with ``decay_score`` and ``warnings`` when requested.
        event: the event the attribute belongs to.
        now: the current time, from which decay expiry is computed.

    Raises:
        InvalidInputError: the attribute has no valid UUID or timestamp, or its value does not fit its type.
    """
    attribute_uuid = _uuid(attribute.get("uuid"))
    indicator_id = f"indicator--{attribute_uuid}"
    misp_type = str(attribute.get("type") or "")
    value = attribute.get("value")
    if not isinstance(value, str):
        raise InvalidInputError(f"MISP attribute {attribute_uuid} has no text value", object_id=indicator_id)
    try:
        pattern = pattern_of_attribute(misp_type, value)
    except InvalidInputError as exc:
        raise InvalidInputError(f"MISP attribute {attribute_uuid}: {exc}", object_id=indicator_id,
                                reason_code=exc.reason_code) from exc  # fmt: skip

    modified = moment_of_epoch(attribute.get("timestamp")) or moment_of_epoch(event.timestamp)
    if modified is None:
        raise InvalidInputError(
            f"MISP attribute {attribute_uuid} has no valid timestamp ({attribute.get('timestamp')!r})",
            object_id=indicator_id,
            reason_code="timestamp",
        )
    created = event.date if event.date is not None and event.date <= modified else modified
    valid_from = _seen(attribute.get("first_seen")) or created

    indicator: dict[str, Any] = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": indicator_id,
        "created": format_timestamp(created),
        "modified": format_timestamp(modified),
        "name": event.info or f"MISP {misp_type} {value}",
        "indicator_types": ["malicious-activity"],
        "pattern": pattern,
        "pattern_type": "stix",
        "pattern_version": "2.1",
        "valid_from": format_timestamp(valid_from),
        "x_misp_attribute_type": misp_type,
        "x_misp_category": str(attribute.get("category") or ""),
        "x_misp_event_uuid": event.uuid,
    }
    _add_optional(indicator, attribute, event, valid_from, now)
    return indicator


def _add_optional(
    indicator: dict[str, Any], attribute: Mapping[str, Any], event: EventMeta, valid_from: datetime, now: datetime
) -> None:
    comment = attribute.get("comment")
    if isinstance(comment, str) and comment.strip():
        indicator["description"] = comment

    tags = list(dict.fromkeys([*event.tags, *tag_names(attribute)]))
    tlp = tlp_of_tags(tags)
    if tlp is not None:
        indicator["object_marking_refs"] = [TLP2_MARKING_IDS[tlp]]
    labels = [tag for tag in tags if not tag.lower().startswith("tlp:")]
    if labels:
        indicator["labels"] = labels

    if event.identity_id:
        indicator["created_by_ref"] = event.identity_id
    if attribute.get("object_name"):
        indicator["x_misp_object_name"] = str(attribute["object_name"])

    scores = attribute.get("decay_score")
    if isinstance(scores, list) and scores:
        expiry = decay_expiry(scores, now)
        if expiry is not None:
            # Not valid_until: that would state the producer's own expiry, and the decay is our estimate.
            # An attribute that decayed before it became valid expires one second after.
            indicator[SCORE_EXPIRY_PROPERTY] = format_timestamp(max(expiry, valid_from + timedelta(seconds=1)))

    warnings = attribute.get("warnings")
    if isinstance(warnings, list) and warnings:
        names = [str(w.get("warninglist_name") or w.get("warninglist_id")) for w in warnings if isinstance(w, dict)]
        indicator["x_stixbridge_warninglist"] = list(dict.fromkeys(names))


def _uuid(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise InvalidInputError(f"MISP attribute has no valid uuid ({value!r})", reason_code="invalid") from None


def _seen(value: Any) -> datetime | None:
    """Parse MISP's ``first_seen`` (ISO 8601 with microseconds and an offset), or return None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def identity_of_event(event: EventMeta) -> dict[str, Any] | None:
    """Return a STIX identity for the event's creating organisation, or None when the event names none."""
    if not event.identity_id or not event.org_name:
        return None
    moment = format_timestamp(from_epoch(event.timestamp or 0))
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": event.identity_id,
        "created": moment,
        "modified": moment,
        "name": event.org_name,
        "identity_class": "organization",
    }
