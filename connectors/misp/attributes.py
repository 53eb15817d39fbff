"""MISP attributes built from stixbridge rows, with UUIDs that stay the same on every run.

An attribute's UUID is a UUIDv5 of the row key under the sink's namespace, so writing the same row
again updates the attribute instead of adding a second one. The namespace comes from ``uuid_seed`` (by
default our identity id), so two alliance members whose MISP instances sync with each other never
produce the same UUID for their own copies of an alliance indicator.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from stixbridge.model import AtomRow
from stixbridge.tlp import Tlp

from .attribute_types import MISP_CATEGORY, misp_type_of_row, misp_value_of_row, value_problem
from .settings import MispSinkSettings

UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "stixbridge:misp:sink")
SOURCE_TAG_PREFIX = "stixbridge:source="
"""Tags stixbridge puts on its attributes start with this; the sightings reader recognises them by it."""
TLP_TAGS = tuple(f"tlp:{name}" for name in ("clear", "white", "green", "amber", "amber+strict", "red"))
MAX_COMMENT = 1024
INHERIT_DISTRIBUTION = 5


def sink_namespace(seed: str) -> uuid.UUID:
    """Return the namespace of one sink's UUIDs."""
    return uuid.uuid5(UUID_NAMESPACE, seed)


def attribute_uuid(namespace: uuid.UUID, row_key: str) -> str:
    """Return the UUID of the attribute written for the row with this key."""
    return str(uuid.uuid5(namespace, row_key))


def event_uuid(namespace: uuid.UUID, source: str, collection: str, part: int) -> str:
    """Return the UUID of part ``part`` (0, 1, ...) of the event for one source collection."""
    return str(uuid.uuid5(namespace, f"event\x00{source}\x00{collection}\x00{part}"))


def source_tag(source: str) -> str:
    """Return the tag that names a source, for example ``stixbridge:source="alliance-taxii"``."""
    return f'{SOURCE_TAG_PREFIX}"{source}"'


def tlp_name(row: AtomRow, default: str) -> str:
    """Return the row's TLP as a MISP tag level (``amber+strict``), or ``default`` when it has none."""
    if row.tlp is None:
        return default
    return Tlp(row.tlp).label.lower()


def misp_time(moment: datetime | None) -> str | None:
    """Format a datetime as MISP writes ``first_seen``: ISO 8601 with microseconds and an offset."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class AttributeBuilder:
    """Turns rows into MISP attribute dicts for one sink's settings."""

    def __init__(self, settings: MispSinkSettings, namespace: uuid.UUID) -> None:
        self.settings = settings
        self.namespace = namespace

    def problem(self, row: AtomRow) -> str | None:
        """Return why MISP would reject this row's attribute, or None."""
        misp_type = misp_type_of_row(row)
        if misp_type is None:
            return f"MISP has no attribute type for atom type {row.type!r}"
        problem = value_problem(misp_type, misp_value_of_row(row))
        if problem:
            return f"MISP would reject {misp_type} value {row.value!r}: {problem}"
        return None

    def build(self, row: AtomRow, *, update: bool = False) -> dict[str, Any]:
        """Return the attribute for a row; ``update`` adds what an edit needs (undelete, stale TLP tags)."""
        misp_type = misp_type_of_row(row)
        assert misp_type is not None, "rows are checked with problem() first"
        level = tlp_name(row, self.settings.default_tlp)
        distribution = self.settings.distribution_by_tlp.get(level, INHERIT_DISTRIBUTION)

        first_seen = misp_time(row.valid_from)
        last_seen = misp_time(row.valid_until)
        if row.valid_from and row.valid_until and row.valid_until < row.valid_from:
            last_seen = None
        comment = row.indicator_id + (f" {row.name}" if row.name else "")

        tags: list[dict[str, Any]] = [{"name": f"tlp:{level}"}]
        tags.extend({"name": source_tag(source)} for source in row.sources or ("unknown",))
        attribute: dict[str, Any] = {
            "uuid": attribute_uuid(self.namespace, row.key),
            "type": misp_type,
            "category": MISP_CATEGORY[misp_type],
            "value": misp_value_of_row(row),
            "to_ids": True,
            "distribution": distribution,
            "comment": comment[:MAX_COMMENT],
            "first_seen": first_seen,
            "last_seen": last_seen,
            "disable_correlation": False,
            "Tag": tags,
        }
        if distribution == 4:
            attribute["sharing_group_id"] = self.settings.sharing_group
        if update:
            # An edit must also bring back a soft-deleted attribute and take off a TLP tag that no longer
            # applies; MISP detaches a tag sent with "deleted": true.
            attribute["deleted"] = False
            attribute["Tag"] = tags + [{"name": name, "deleted": True} for name in TLP_TAGS if name != f"tlp:{level}"]
        return attribute
