"""The state store interface; the embedded default is :class:`stixbridge.store.sqlite.SqliteStore`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from ..model import AtomRow, DeliveredRow, IndicatorRecord, Provenance, QuarantineItem, SightingRecord


@dataclass
class IngestStats:
    """Counts from storing one page."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    """Same or older version than the one stored (idempotent repeats and late arrivals)."""
    revoked: int = 0
    revived: int = 0
    """Indicators that came back from the expired index with a newer version."""
    other_objects: int = 0
    quarantined: int = 0


@dataclass
class ExpireStats:
    """Counts from one expiry pass."""

    expired: int = 0
    activated: int = 0
    """Indicators whose ``valid_from`` has arrived."""
    by_reason: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ExpiredEntry:
    """The compact record an expired indicator leaves behind, enough to fetch it again by id."""

    id: str
    modified: str
    provenance: Provenance
    atom_digests: tuple[str, ...]
    valid_from: datetime | None
    valid_until: datetime | None
    reason: str
    expired_at: datetime


class Store(ABC):
    """Everything stixbridge remembers between runs.

    An implementation must make :meth:`ingest_page` atomic (objects, quarantine rows and the cursor in one
    transaction) and must keep, per sink, which row keys and digests were delivered. Override every
    abstract method; the engine calls them in the order pull (ingest), expire, refresh rows, push.
    """

    @abstractmethod
    def ingest_page(
        self,
        cursor_name: str,
        records: list[IndicatorRecord],
        others: list[tuple[dict[str, Any], Provenance]],
        quarantined: list[QuarantineItem],
        cursor: str | None,
        lifetimes: Mapping[str, timedelta],
        now: datetime,
    ) -> IngestStats:
        """Store one page of normalised indicators, other objects and rejects, then the cursor."""

    @abstractmethod
    def get_cursor(self, name: str) -> str | None:
        """Return the stored cursor, or None."""

    @abstractmethod
    def expire(self, now: datetime, lifetimes: Mapping[str, timedelta]) -> ExpireStats:
        """Move indicators whose expiry has passed into the expired index and activate pending ones."""

    @abstractmethod
    def expired_entry(self, indicator_id: str) -> ExpiredEntry | None:
        """Return the expired-index row of an indicator, or None."""

    @abstractmethod
    def refresh_rows(self, now: datetime) -> int:
        """Recompute the sink rows of atoms touched since the last refresh; return how many changed."""

    @abstractmethod
    def iter_rows(self) -> Iterator[AtomRow]:
        """Yield every live row ordered by key."""

    @abstractmethod
    def iter_delivered(self, sink: str) -> Iterator[DeliveredRow]:
        """Yield what a sink was last sent, ordered by key."""

    @abstractmethod
    def record_delivery(self, sink: str, written: list[AtomRow], deleted: list[str]) -> None:
        """Remember rows a sink now holds and keys it no longer holds."""

    @abstractmethod
    def add_sightings(self, records: list[SightingRecord], cursor_name: str, cursor: str | None) -> int:
        """Store sighting records not seen before and the reader's cursor; return how many were new."""

    @abstractmethod
    def status(self, now: datetime) -> dict[str, Any]:
        """Return counts for ``stixbridge status``."""

    @abstractmethod
    def close(self) -> None:
        """Close the store."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
