"""Value objects that flow between sources, the store, the engine and sinks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ROW_KEY_PREFIX = "stixbridge"


@dataclass(frozen=True, slots=True)
class Provenance:
    """The origin of one report of an indicator."""

    source: str
    """Name of the configured source, for example ``alliance-taxii``."""
    collection: str = ""
    """Collection id or title, file path, or MISP event, inside the source."""
    created_by: str = ""
    """The ``created_by_ref`` identity of the object, when it has one."""


@dataclass(frozen=True, slots=True)
class RawItem:
    """One object as a source delivered it: parsed JSON, or the text that failed to parse."""

    obj: dict[str, Any] | None
    provenance: Provenance
    raw_text: str | None = None
    """The original text, kept for the quarantine when the object is bad."""
    error: str | None = None
    """The reason the item could not be read, when ``obj`` is None."""
    size: int = 0
    """Size of the object's JSON text in bytes, or 0 when the source did not measure it."""
    reason_code: str = "not-json"
    """Quarantine code when ``obj`` is None: ``not-json`` for unreadable text, ``invalid`` for a source item
    that could not be turned into STIX."""


@dataclass(slots=True)
class Page:
    """A batch of objects from a source, stored in one transaction together with ``cursor``.

    A source yields pages in order. The engine stores each page's objects and then the page's cursor in the
    same database transaction, so a crash between two pages repeats nothing and loses nothing.
    """

    items: list[RawItem]
    cursor: str | None = None
    """The source's resume point after this page, or None to keep the previous one."""
    complete: bool = False
    """True on the last page of a completed pass."""
    bodies: tuple[bytes, ...] = ()
    """The UTF-8 JSON texts the items were decoded from, when the source kept them. Each is a JSON object
    whose ``objects`` array contains one element per item, in order, and together they contain exactly
    the items. The engine stores these texts when it lands a page instead of encoding the objects again."""


@dataclass(frozen=True, slots=True)
class AtomLink:
    """One atom of an indicator, with the role it plays there."""

    type: str
    value: str
    display: str
    role: str
    """``exact`` (matches alone), ``partial`` (broader than the indicator) or ``context``."""
    context: tuple[tuple[str, str], ...] = ()
    """Other facts of the same observation, such as a destination port; never matched alone."""


@dataclass(slots=True)
class IndicatorRecord:
    """One normalised version of a STIX indicator (or of an indicator built from a MISP attribute)."""

    id: str
    modified: datetime
    created: datetime
    spec_version: str
    valid_from: datetime | None
    valid_until: datetime | None
    revoked: bool
    confidence: int | None
    tlp: int | None
    name: str
    description: str
    labels: tuple[str, ...]
    pattern: str
    pattern_type: str
    provenance: Provenance
    atoms: list[AtomLink] = field(default_factory=list)
    composite_reason: str | None = None
    """The reason part or all of the pattern cannot be matched one atom at a time, or None."""
    window_start: datetime | None = None
    window_stop: datetime | None = None
    raw: dict[str, Any] | None = None
    raw_text: str | None = None
    """The object's JSON text as the source delivered it, stored instead of re-serialising ``raw``."""
    observed_direction: str | None = None
    """``src`` when the pattern marks the value as a source (MISP ``ip-src``), else None."""
    score_expiry: datetime | None = None
    """An expiry computed by the producer's scoring (MISP decay), used when there is no ``valid_until``."""
    withheld: str | None = None
    """The reason the source's trust policy does not take this version, or None. A withheld version is stored
    but reaches no sink."""


@dataclass(frozen=True, slots=True)
class QuarantineItem:
    """An object that was rejected, with the reason, kept so an analyst can see and release it."""

    provenance: Provenance
    reason: str
    object_id: str | None = None
    raw_text: str | None = None
    reason_code: str = "invalid"
    """A short stable code: ``not-json``, ``pattern``, ``timestamp``, ``too-large``, ``atom``, ``guard``..."""


@dataclass(frozen=True, slots=True)
class AtomRow:
    """One live atom as a sink receives it: the union of every live indicator that carries it."""

    key: str
    """Deterministic row key, also the ``_key``, ``_id`` or UUID seed in sinks."""
    type: str
    value: str
    display: str
    indicator_id: str
    """The representative indicator: the earliest created live indicator carrying the atom."""
    indicator_ids: tuple[str, ...]
    name: str
    description: str
    valid_from: datetime | None
    valid_until: datetime | None
    """When the atom leaves the live set unless renewed: the latest expiry among its indicators."""
    modified: datetime
    confidence: int | None
    weight: int
    """1 to 100, from confidence, source weight and corroboration."""
    tlp: int | None
    labels: tuple[str, ...]
    sources: tuple[str, ...]
    collections: tuple[str, ...]
    created_by: tuple[str, ...]
    context: tuple[tuple[str, str], ...] = ()
    direction: str | None = None
    digest: str = ""
    """Hash of every field a sink writes; a change means the row must be sent again."""


@dataclass(frozen=True, slots=True)
class DeliveredRow:
    """The last version of a row sent to a sink, from which deletes are built."""

    key: str
    type: str
    value: str
    digest: str
    indicator_id: str = ""


@dataclass(slots=True)
class Changes:
    """The rows a sink must write and delete to match the live set."""

    upserts: list[AtomRow] = field(default_factory=list)
    deletes: list[DeliveredRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes)


@dataclass(slots=True)
class PushResult:
    """The outcome of one batch of changes at a sink.

    Keys listed in ``failed`` are not recorded as delivered, so the next push sends them again.
    """

    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Row key to the reason it failed."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Reason to the number of rows the sink cannot represent (for example CIDRs in a field of type ip)."""
    requests: int = 0
    bytes_sent: int = 0


@dataclass(frozen=True, slots=True)
class SightingRecord:
    """One hit of an alliance atom in our own telemetry, read back from a SIEM or a file."""

    source: str
    """The sightings reader that produced it, for example ``splunk`` or ``elastic``."""
    value: str
    seen_at: datetime
    atom_type: str | None = None
    indicator_id: str | None = None
    count: int = 1
    kind: str = "seen"
    """``seen`` or ``false-positive``."""
    context: tuple[tuple[str, str], ...] = ()
    """Internal details (host, user, address); never published unless a target enables it."""
    external_id: str = ""
    """The reader's own id of the hit, used with the other fields to drop duplicates."""


def row_key(indicator_id: str, atom_type: str, value: str) -> str:
    """Return the deterministic key of the row for an atom under its representative indicator.

    The key holds only ``[a-z0-9-]``, because Splunk's KV store can insert a ``_key`` containing ``/`` but
    cannot update or delete it by key afterwards, and Elasticsearch ids appear in URL paths too.
    """
    digest = hashlib.sha256(f"{indicator_id}\x00{atom_type}\x00{value}".encode()).hexdigest()[:40]
    return f"{ROW_KEY_PREFIX}-{digest}"
