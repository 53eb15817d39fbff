"""Retention of sightings: deleting windows, hits and outbox rows older than ``[sharing] keep_days``.

A window is old when it ended more than ``keep_days`` before now. An old window is deleted together
with its outbox rows (the Sighting or Opinion and its observed-data, for every target) and the hits
counted into it. That happens only when each of those outbox rows is settled: ``published``,
``refused``, or ``failed`` with no attempts left. A row that may still be sent (``pending``,
``sending``, or ``failed`` with attempts left) keeps its whole window.

Hits that fall into an old window are dropped when read (:func:`drop_old`). Otherwise a late hit would
create the deleted window again with a lower count, and it would be published as a new version.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..model import SightingRecord
from ..store.sqlite import SqliteStore, iter_chunks
from .settings import SharingSettings

logger = logging.getLogger(__name__)

# Ids bound per statement; SQLite before 3.32 allows at most 999 parameters.
_CHUNK = 500


@dataclass
class PruneCounts:
    """Counts of one pruning pass: rows deleted, and old windows kept."""

    windows: int = 0
    records: int = 0
    outbox_rows: int = 0
    kept_unsettled: int = 0
    """Old windows kept because one of their outbox rows may still be sent."""


def retention_start(settings: SharingSettings, now: datetime) -> float:
    """Return the start, in seconds since the epoch, of the oldest window that is kept.

    A window that starts before this instant ended ``keep_days`` or more before ``now``.
    """
    window_seconds = settings.window_minutes * 60
    cutoff = (now - timedelta(days=settings.keep_days)).timestamp()
    return float(int(cutoff // window_seconds) * window_seconds)


def drop_old(records: list[SightingRecord], settings: SharingSettings, now: datetime) -> list[SightingRecord]:
    """Return the records whose window is kept; the caller logs how many were dropped."""
    start = retention_start(settings, now)
    return [record for record in records if record.seen_at.timestamp() >= start]


def prune(store: SqliteStore, settings: SharingSettings, now: datetime) -> PruneCounts:
    """Delete old windows whose outbox rows are settled, with those rows and the hits counted into them."""
    counts = PruneCounts()
    start = retention_start(settings, now)
    old = [row[0] for row in store.db.execute(
        "SELECT object_id FROM sighting_windows WHERE window_start < ?", (start,)
    )]  # fmt: skip

    rows: list[_OutboxRow] = []
    for chunk in iter_chunks(old, _CHUNK):
        rows.extend(_outbox_rows_of(store, chunk))
    blocked = {row.window for row in rows if not row.settled(settings.max_attempts)}
    deletable = [object_id for object_id in old if object_id not in blocked]
    counts.kept_unsettled = len(blocked)

    store.db.execute("BEGIN IMMEDIATE")
    try:
        for row in rows:
            if row.window not in blocked:
                counts.outbox_rows += store.db.execute(
                    "DELETE FROM outbox WHERE target = ? AND object_id = ?", (row.target, row.object_id)
                ).rowcount
        for chunk in iter_chunks(deletable, _CHUNK):
            marks = ",".join("?" * len(chunk))
            counts.windows += store.db.execute(
                f"DELETE FROM sighting_windows WHERE object_id IN ({marks})", chunk
            ).rowcount
        counts.records = _delete_records(store, start, blocked)
        store.db.execute("COMMIT")
    except BaseException:
        if store.db.in_transaction:
            store.db.execute("ROLLBACK")
        raise

    if not (counts.windows or counts.records or counts.outbox_rows or counts.kept_unsettled):
        return counts
    logger.info(
        "Sightings retention (keep_days = %d): deleted %d windows, %d hits and %d outbox rows; kept %d old "
        "windows whose objects may still be sent.",
        settings.keep_days, counts.windows, counts.records, counts.outbox_rows, counts.kept_unsettled,
    )  # fmt: skip
    return counts


@dataclass(frozen=True)
class _OutboxRow:
    """One outbox row of an old window."""

    window: str
    target: str
    object_id: str
    status: str
    attempts: int

    def settled(self, max_attempts: int) -> bool:
        """Tell whether the row will never be sent again as it is."""
        if self.status in ("published", "refused"):
            return True
        return self.status == "failed" and self.attempts >= max_attempts


def _outbox_rows_of(store: SqliteStore, windows: list[str]) -> list[_OutboxRow]:
    """Return the outbox rows of the windows: their own objects and the observed-data they link to.

    The observed-data ids are read from each Sighting's payload, because they are derived from the
    target's field list and cannot be computed from the window alone.
    """
    marks = ",".join("?" * len(windows))
    own = store.db.execute(
        f"SELECT target, object_id, status, attempts, payload FROM outbox WHERE object_id IN ({marks})", windows
    ).fetchall()
    rows = [_OutboxRow(window, target, window, status, attempts) for target, window, status, attempts, _ in own]

    # TODO: prune observed objects (addresses, host names) too. Windows share them, so each one needs a
    # check that no kept observed-data refers to it; their rows grow with the distinct values seen.
    for target, window, _, _, payload in own:
        for ref in json.loads(payload).get("observed_data_refs") or []:
            held = store.db.execute(
                "SELECT status, attempts FROM outbox WHERE target = ? AND object_id = ?", (target, ref)
            ).fetchone()
            if held is not None:
                rows.append(_OutboxRow(window, target, ref, held[0], held[1]))
    return rows


def _delete_records(store: SqliteStore, start: float, blocked: set[str]) -> int:
    """Delete read hits of old windows, except those counted into a window that is kept."""
    old = store.db.execute(
        "SELECT sid, object_id FROM sightings WHERE seen_at < ? AND status != 'pending'", (start,)
    ).fetchall()
    sids = [sid for sid, object_ids in old if not blocked.intersection((object_ids or "").split(","))]
    deleted = 0
    for chunk in iter_chunks(sids, _CHUNK):
        marks = ",".join("?" * len(chunk))
        deleted += store.db.execute(f"DELETE FROM sightings WHERE sid IN ({marks})", chunk).rowcount
    return deleted
