"""The embedded state store: one SQLite file in WAL mode."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..model import (
    AtomLink,
    AtomRow,
    DeliveredRow,
    IndicatorRecord,
    Provenance,
    QuarantineItem,
    SightingRecord,
    row_key,
)
from ..timeutil import format_timestamp, from_epoch
from .base import ExpiredEntry, ExpireStats, IngestStats, Store
from .schema import migrate

logger = logging.getLogger(__name__)

# Maximum raw text kept for one quarantined object; longer text is cut, with a note of how much was cut.
QUARANTINE_RAW_LIMIT = 65536
_CHUNK = 5000  # rows per step of a pass over a large table
_IN_CHUNK = 500  # ids per "IN (...)" lookup; SQLite allows 32766 parameters, smaller keeps plans cheap
WAL_CHECKPOINT_PAGES = 10_000
"""WAL pages (4 KiB each by default) after which a commit copies the WAL into the database file."""


def _ts(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _dt(seconds: float | None) -> datetime | None:
    return None if seconds is None else from_epoch(seconds)


def _modified_text(moment: datetime) -> str:
    # Microsecond precision in a fixed-width form, so text order equals time order. isoformat is several
    # times faster than strftime and gives the same text for a UTC datetime.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:26] + "Z"


def expiry_of(record: IndicatorRecord, lifetimes: Mapping[str, timedelta], first_seen: datetime) -> tuple[
    float | None, str
]:
    """Return (expiry epoch or None for never, basis) for an indicator.

    ``valid_until`` wins. Without it, a producer's score expiry (MISP decay) is used, then the local
    lifetime of the indicator's first atom type counted from ``valid_from`` (or first sight). A lifetime of
    zero means no local expiry. A START/STOP window that ends earlier ends the indicator earlier.
    """
    if record.revoked:
        return None, "revoked"

    expiry: datetime | None
    if record.valid_until is not None:
        expiry, basis = record.valid_until, "valid_until"
    elif record.score_expiry is not None:
        expiry, basis = record.score_expiry, "score"
    else:
        primary = record.atoms[0].type if record.atoms else "default"
        lifetime = lifetimes.get(primary, lifetimes.get("default", timedelta(0)))
        if lifetime <= timedelta(0):
            expiry, basis = None, "none"
        else:
            start = record.valid_from or first_seen
            expiry, basis = start + lifetime, f"lifetime:{primary}"

    if record.window_stop is not None and (expiry is None or record.window_stop < expiry):
        expiry, basis = record.window_stop, "window_stop"
    return _ts(expiry), basis


class SqliteStore(Store):
    """State in one SQLite file: objects, atoms, expired index, quarantine, cursors, deliveries, sightings.

    One process at a time may write; a second ``sync`` on the same file waits up to ``busy_timeout``
    seconds and then fails with "database is locked".
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        # A checkpoint (and its fsync) every 40 MB of WAL instead of every 4 MB: pages of thousands of
        # objects made the default checkpoint run at nearly every commit, a third of a page's write time.
        self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        self.db.execute("PRAGMA foreign_keys=OFF")
        migrate(self.db)
        self.source_weights: dict[str, float] = {}
        """Trust weight of each source for row weights; set through :meth:`set_source_weights`."""

    def close(self) -> None:
        self.db.close()

    # -- cursors ---------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """Return a value kept in the ``meta`` table (settings fingerprints, run records), or None."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        """Keep a value in the ``meta`` table, replacing the one before; joins the caller's transaction."""
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def record_source_run(self, source: str, now: datetime, objects: int | None, error: str | None) -> None:
        """Keep the time and outcome of a source's last pull, for ``stixbridge status``."""
        run = {"at": format_timestamp(now), "objects": objects, "error": error}
        self.set_meta(f"source_run:{source}", json.dumps(run))

    def source_runs(self, sources: list[str]) -> dict[str, dict[str, Any]]:
        """Return, per source, its checkpoint with the time it moved, and its last pull's time and outcome."""
        result: dict[str, dict[str, Any]] = {}
        for source in sources:
            cursor = self.db.execute(
                "SELECT cursor, updated_at FROM cursors WHERE name = ?", (f"source:{source}",)
            ).fetchone()
            run = self.get_meta(f"source_run:{source}")
            last = json.loads(run) if run else {}
            result[source] = {
                "checkpoint": None if cursor is None else cursor[0],
                "checkpoint_moved": None if cursor is None else format_timestamp(from_epoch(cursor[1])),
                "last_pull": last.get("at"),
                "last_pull_objects": last.get("objects"),
                "last_error": last.get("error"),
            }
        return result

    def get_cursor(self, name: str) -> str | None:
        row = self.db.execute("SELECT cursor FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else row[0]

    def _set_cursor(self, name: str, cursor: str | None, now: float) -> None:
        if cursor is None:
            return
        self.db.execute(
            "INSERT INTO cursors (name, cursor, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            (name, cursor, now),
        )

    # -- ingest ----------------------------------------------------------------------------------------

    def _lookup(self, table: str, ids: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id, modified FROM {table} WHERE id IN ({marks})"
            found.update(self.db.execute(sql, chunk).fetchall())
        return found

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
        stats = IngestStats()
        now_s = now.timestamp()

        # Within a page, keep only the newest version of each id; older ones still count as versions.
        newest: dict[str, IndicatorRecord] = {}
        for record in records:
            held = newest.get(record.id)
            if held is None or record.modified > held.modified:
                newest[record.id] = record

        ids = list(newest)
        current = self._lookup("indicators", ids)
        expired = self._lookup("expired", ids)

        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(
                "INSERT OR IGNORE INTO versions (id, modified, source, seen_at) VALUES (?, ?, ?, ?)",
                [(r.id, _modified_text(r.modified), r.provenance.source, now_s) for r in records],
            )
            self.db.executemany(
                "INSERT INTO indicator_sources "
                "(indicator_id, source, collection, created_by, confidence, first_seen, last_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (indicator_id, source, collection) DO UPDATE SET "
                "last_seen = excluded.last_seen, confidence = excluded.confidence",
                [
                    (
                        r.id,
                        r.provenance.source,
                        r.provenance.collection,
                        r.provenance.created_by,
                        r.confidence,
                        now_s,
                        now_s,
                    )
                    for r in records
                ],
            )

            upserts: list[IndicatorRecord] = []
            retire: list[IndicatorRecord] = []
            for record_id, record in newest.items():
                modified = _modified_text(record.modified)
                stored = current.get(record_id)
                gone = expired.get(record_id)
                if (stored is not None and stored >= modified) or (gone is not None and gone >= modified):
                    stats.unchanged += 1
                    continue
                if record.revoked:
                    retire.append(record)
                    stats.revoked += 1
                    continue
                if gone is not None:
                    stats.revived += 1
                if stored is None:
                    stats.new += 1
                else:
                    stats.updated += 1
                upserts.append(record)

            self._write_indicators(upserts, current, expired, lifetimes, now)
            self._retire_records(retire, current, now_s)
            self._write_others(others)
            stats.other_objects = len(others)
            self._write_quarantine(quarantined, now_s)
            stats.quarantined = len(quarantined)
            self._set_cursor(cursor_name, cursor, now_s)
            # The expiries just computed used these lifetimes. They are recorded only when none are, so rows
            # stored under other lifetimes are still recomputed by the next expire.
            self.db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('lifetimes', ?)", (_lifetimes_fingerprint(lifetimes),)
            )
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return stats

    def _write_indicators(
        self,
        records: list[IndicatorRecord],
        current: Mapping[str, str],
        expired: Mapping[str, str],
        lifetimes: Mapping[str, timedelta],
        now: datetime,
    ) -> None:
        if not records:
            return
        now_s = now.timestamp()
        replaced = [(r.id,) for r in records if r.id in current]
        if replaced:
            self.db.executemany(
                "INSERT OR IGNORE INTO dirty_atoms (type, value) "
                "SELECT type, value FROM indicator_atoms WHERE indicator_id = ?",
                replaced,
            )
            self.db.executemany("DELETE FROM indicator_atoms WHERE indicator_id = ?", replaced)
        revived = [(r.id,) for r in records if r.id in expired]
        if revived:
            self.db.executemany("DELETE FROM expired WHERE id = ?", revived)

        indicator_rows = []
        atom_rows = []
        dirty = []
        for r in records:
            expires_at, basis = expiry_of(r, lifetimes, now)
            valid_from = _ts(r.valid_from)
            if r.window_start is not None and (valid_from is None or r.window_start.timestamp() > valid_from):
                valid_from = r.window_start.timestamp()
            if r.withheld is not None:
                state = "withheld"
            else:
                state = "pending" if valid_from is not None and valid_from > now_s else "live"
            indicator_rows.append(
                (
                    r.id,
                    _modified_text(r.modified),
                    format_timestamp(r.created),
                    r.spec_version,
                    valid_from,
                    _ts(r.valid_until),
                    expires_at,
                    basis,
                    r.atoms[0].type if r.atoms else None,
                    r.confidence,
                    r.tlp,
                    r.name,
                    r.description,
                    json.dumps(r.labels),
                    r.pattern,
                    r.pattern_type,
                    r.composite_reason,
                    _ts(r.window_start),
                    _ts(r.window_stop),
                    state,
                    r.provenance.source,
                    r.provenance.collection,
                    r.provenance.created_by,
                    r.observed_direction,
                    now_s,
                    r.raw_text or (None if r.raw is None else json.dumps(r.raw, separators=(",", ":"))),
                    r.withheld,
                )
            )
            for atom in r.atoms:
                context = json.dumps(atom.context) if atom.context else None
                atom_rows.append((atom.type, atom.value, r.id, atom.display, atom.role, context))
                dirty.append((atom.type, atom.value))

        self.db.executemany(
            "INSERT INTO indicators (id, modified, created, spec_version, valid_from, valid_until, expires_at, "
            "expiry_basis, primary_type, confidence, tlp, name, description, labels, pattern, pattern_type, "
            "composite_reason, window_start, window_stop, state, source, collection, created_by, direction, "
            "first_seen, raw, withheld_reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (id) DO UPDATE SET modified=excluded.modified, created=excluded.created, "
            "spec_version=excluded.spec_version, valid_from=excluded.valid_from, "
            "valid_until=excluded.valid_until, expires_at=excluded.expires_at, "
            "expiry_basis=excluded.expiry_basis, primary_type=excluded.primary_type, "
            "confidence=excluded.confidence, tlp=excluded.tlp, name=excluded.name, "
            "description=excluded.description, labels=excluded.labels, pattern=excluded.pattern, "
            "pattern_type=excluded.pattern_type, composite_reason=excluded.composite_reason, "
            "window_start=excluded.window_start, window_stop=excluded.window_stop, state=excluded.state, "
            "source=excluded.source, collection=excluded.collection, created_by=excluded.created_by, "
            "direction=excluded.direction, raw=excluded.raw, withheld_reason=excluded.withheld_reason",
            indicator_rows,
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO indicator_atoms (type, value, indicator_id, display, role, context) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            atom_rows,
        )
        self.db.executemany("INSERT OR IGNORE INTO dirty_atoms (type, value) VALUES (?, ?)", dirty)

    def _retire_records(self, records: list[IndicatorRecord], current: Mapping[str, str], now_s: float) -> None:
        """Move revoked indicators to the expired index, whether or not they were stored before."""
        for record in records:
            if record.id in current:
                self._retire_ids([record.id], "revoked", now_s)
            digests = [_atom_digest(a.type, a.value) for a in record.atoms]
            self.db.execute(
                "INSERT OR REPLACE INTO expired (id, modified, source, collection, created_by, atoms, "
                "valid_from, valid_until, reason, expired_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    _modified_text(record.modified),
                    record.provenance.source,
                    record.provenance.collection,
                    record.provenance.created_by,
                    json.dumps(digests),
                    _ts(record.valid_from),
                    _ts(record.valid_until),
                    "revoked",
                    now_s,
                ),
            )

    def _retire_ids(self, ids: list[str], reason: str, now_s: float) -> None:
        """Move live or pending indicators to the expired index and drop their full objects."""
        for indicator_id in ids:
            digests = [
                _atom_digest(t, v)
                for t, v in self.db.execute(
                    "SELECT type, value FROM indicator_atoms WHERE indicator_id = ?", (indicator_id,)
                )
            ]
            self.db.execute(
                "INSERT OR REPLACE INTO expired (id, modified, source, collection, created_by, atoms, "
                "valid_from, valid_until, reason, expired_at) "
                "SELECT id, modified, source, collection, created_by, ?, valid_from, valid_until, ?, ? "
                "FROM indicators WHERE id = ?",
                (json.dumps(digests), reason, now_s, indicator_id),
            )
            self.db.execute(
                "INSERT OR IGNORE INTO dirty_atoms (type, value) "
                "SELECT type, value FROM indicator_atoms WHERE indicator_id = ?",
                (indicator_id,),
            )
            self.db.execute("DELETE FROM indicator_atoms WHERE indicator_id = ?", (indicator_id,))
            self.db.execute("DELETE FROM indicators WHERE id = ?", (indicator_id,))

    def _write_others(self, others: list[tuple[dict[str, Any], Provenance]]) -> None:
        rows = []
        for obj, provenance in others:
            object_id = obj.get("id")
            if not isinstance(object_id, str):
                continue
            rows.append(
                (
                    object_id,
                    str(obj.get("type", "")),
                    obj.get("modified") if isinstance(obj.get("modified"), str) else None,
                    obj.get("spec_version", "2.0") if isinstance(obj.get("spec_version"), str) else "2.0",
                    provenance.source,
                    provenance.collection,
                    json.dumps(obj, separators=(",", ":")),
                )
            )
        self.db.executemany(
            "INSERT INTO objects (id, type, modified, spec_version, source, collection, raw) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET type=excluded.type, "
            "modified=excluded.modified, spec_version=excluded.spec_version, source=excluded.source, "
            "collection=excluded.collection, raw=excluded.raw "
            "WHERE excluded.modified IS NULL OR objects.modified IS NULL OR excluded.modified >= objects.modified",
            rows,
        )

    def _write_quarantine(self, items: list[QuarantineItem], now_s: float) -> None:
        """Add a held row per item, or refresh the held row of the same object and reason.

        A row is the same when source, object id (the raw text when there is no id, the reason when there
        is neither), reason code and, for guard holds, the held atoms match. A repeat updates the time, the
        reason text and the raw text. A released row is never refreshed, so a repeat after a release adds
        a new held row: the analyst released an earlier copy, and this one has not been looked at.
        """
        for item in items:
            raw = item.raw_text
            if raw is not None and len(raw) > QUARANTINE_RAW_LIMIT:
                raw = raw[:QUARANTINE_RAW_LIMIT] + f"\n[cut: {len(raw) - QUARANTINE_RAW_LIMIT} more characters]"
            # Guard holds (stixbridge.trust.guard.GuardHold) also name the atoms they held and what matched.
            held_atoms = getattr(item, "held_atoms", None)
            matched = getattr(item, "matched", None)
            held_text = json.dumps(held_atoms) if held_atoms else None
            matched_text = ",".join(matched) if matched else None
            dedup = quarantine_dedup_key(item, held_text)

            refreshed = self.db.execute(
                "UPDATE quarantine SET at = ?, reason = ?, raw = ?, collection = ?, matched = ? "
                "WHERE dedup = ? AND status = 'held'",
                (now_s, item.reason, raw, item.provenance.collection, matched_text, dedup),
            ).rowcount
            if refreshed:
                continue
            self.db.execute(
                "INSERT INTO quarantine (source, collection, object_id, reason_code, reason, raw, at, held_atoms, "
                "matched, dedup) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.provenance.source,
                    item.provenance.collection,
                    item.object_id,
                    item.reason_code,
                    item.reason,
                    raw,
                    now_s,
                    held_text,
                    matched_text,
                    dedup,
                ),
            )

    def add_quarantine(self, items: list[QuarantineItem], now: datetime) -> None:
        """Store rejected objects outside a page (guards, sinks)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self._write_quarantine(items, now.timestamp())

    # -- expiry ----------------------------------------------------------------------------------------

    def expire(self, now: datetime, lifetimes: Mapping[str, timedelta]) -> ExpireStats:
        stats = ExpireStats()
        now_s = now.timestamp()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self._apply_lifetimes(lifetimes)

            # Both loops take bounded chunks and query again, because each chunk's rows leave the
            # selection; memory stays flat however many indicators change state at once.
            while True:
                activated = [
                    row[0]
                    for row in self.db.execute(
                        "SELECT id FROM indicators WHERE state = 'pending' AND valid_from <= ? LIMIT ?",
                        (now_s, _CHUNK),
                    )
                ]
                if not activated:
                    break
                for indicator_id in activated:
                    self.db.execute("UPDATE indicators SET state = 'live' WHERE id = ?", (indicator_id,))
                    self.db.execute(
                        "INSERT OR IGNORE INTO dirty_atoms (type, value) "
                        "SELECT type, value FROM indicator_atoms WHERE indicator_id = ?",
                        (indicator_id,),
                    )
                stats.activated += len(activated)

            while True:
                due = self.db.execute(
                    "SELECT id, expiry_basis FROM indicators WHERE expires_at IS NOT NULL AND expires_at <= ? "
                    "LIMIT ?",
                    (now_s, _CHUNK),
                ).fetchall()
                if not due:
                    break
                for indicator_id, basis in due:
                    reason = "expired:" + basis
                    self._retire_ids([indicator_id], reason, now_s)
                    stats.by_reason[reason] = stats.by_reason.get(reason, 0) + 1
                stats.expired += len(due)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        if stats.expired or stats.activated:
            logger.info("Expired %d indicators and activated %d.", stats.expired, stats.activated)
        return stats

    def _apply_lifetimes(self, lifetimes: Mapping[str, timedelta]) -> None:
        """Recompute lifetime-based expiries when the configured lifetimes changed since the last run."""
        fingerprint = _lifetimes_fingerprint(lifetimes)
        row = self.db.execute("SELECT value FROM meta WHERE key = 'lifetimes'").fetchone()
        if row is not None and row[0] == fingerprint:
            return
        default = lifetimes.get("default", timedelta(0))
        last_rowid = 0
        while True:
            chunk = self.db.execute(
                "SELECT rowid, id, primary_type, valid_from, first_seen, window_stop FROM indicators "
                "WHERE rowid > ? AND (expiry_basis LIKE 'lifetime:%' OR expiry_basis = 'none') "
                "ORDER BY rowid LIMIT ?",
                (last_rowid, _CHUNK),
            ).fetchall()
            if not chunk:
                break
            updates = []
            for rowid, indicator_id, primary, valid_from, first_seen, window_stop in chunk:
                last_rowid = rowid
                lifetime = lifetimes.get(primary or "default", default)
                if lifetime <= timedelta(0):
                    expires, basis = None, "none"
                else:
                    expires = (valid_from if valid_from is not None else first_seen) + lifetime.total_seconds()
                    basis = f"lifetime:{primary or 'default'}"
                if window_stop is not None and (expires is None or window_stop < expires):
                    expires, basis = window_stop, "window_stop"
                updates.append((expires, basis, indicator_id))
            self.db.executemany("UPDATE indicators SET expires_at = ?, expiry_basis = ? WHERE id = ?", updates)
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES ('lifetimes', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (fingerprint,),
        )

    def expired_entry(self, indicator_id: str) -> ExpiredEntry | None:
        row = self.db.execute(
            "SELECT id, modified, source, collection, created_by, atoms, valid_from, valid_until, reason, "
            "expired_at FROM expired WHERE id = ?",
            (indicator_id,),
        ).fetchone()
        if row is None:
            return None
        return ExpiredEntry(
            id=row[0],
            modified=row[1],
            provenance=Provenance(source=row[2], collection=row[3] or "", created_by=row[4] or ""),
            atom_digests=tuple(json.loads(row[5])),
            valid_from=_dt(row[6]),
            valid_until=_dt(row[7]),
            reason=row[8],
            expired_at=from_epoch(row[9]),
        )

    def expired_for_atom(self, atom_type: str, value: str) -> list[ExpiredEntry]:
        """Return expired-index rows whose atoms include this one (for sightings of expired intel)."""
        digest = _atom_digest(atom_type, value)
        ids = [
            row[0]
            for row in self.db.execute(
                "SELECT id FROM expired WHERE atoms LIKE ?", (f'%"{digest}"%',)
            )
        ]
        return [entry for entry in (self.expired_entry(i) for i in ids) if entry is not None]

    # -- rows for sinks --------------------------------------------------------------------------------

    def refresh_rows(self, now: datetime) -> int:
        """Recompute rows of dirty atoms from their live indicators; return how many rows changed.

        Streams the dirty atoms in (type, value) order together with their provenance in the same order,
        so memory stays flat however many atoms changed.
        """
        changed = 0
        self.db.execute("BEGIN IMMEDIATE")
        try:
            reader = self.db.cursor()
            members = reader.execute(
                "SELECT d.type, d.value, ia.indicator_id, ia.display, ia.role, ia.context, i.created, "
                "i.modified, i.valid_from, i.expires_at, i.confidence, i.tlp, i.name, i.description, i.labels, "
                "i.direction, i.id IS NOT NULL AND i.state = 'live' "
                "FROM dirty_atoms d "
                "LEFT JOIN indicator_atoms ia ON ia.type = d.type AND ia.value = d.value "
                "LEFT JOIN indicators i ON i.id = ia.indicator_id "
                "ORDER BY d.type, d.value"
            )
            provenance = _ProvenanceStream(
                self.db.cursor().execute(
                    "SELECT d.type, d.value, s.source, s.collection, s.created_by, s.confidence FROM dirty_atoms d "
                    "JOIN indicator_atoms ia ON ia.type = d.type AND ia.value = d.value "
                    "JOIN indicators i ON i.id = ia.indicator_id AND i.state = 'live' "
                    "JOIN indicator_sources s ON s.indicator_id = ia.indicator_id "
                    "ORDER BY d.type, d.value"
                )
            )
            group: list[tuple[Any, ...]] = []
            current: tuple[str, str] | None = None
            writes: list[tuple[str, str, str, str, str]] = []
            removals: list[tuple[str, str]] = []
            for row in members:
                atom = (row[0], row[1])
                if atom != current and current is not None:
                    self._rebuild_row(current, group, provenance.take(current), writes, removals)
                    group = []
                    if len(writes) + len(removals) >= 5000:
                        changed += self._apply_row_changes(writes, removals)
                        writes, removals = [], []
                current = atom
                group.append(row)
            if current is not None:
                self._rebuild_row(current, group, provenance.take(current), writes, removals)
            changed += self._apply_row_changes(writes, removals)

            self.db.execute("DELETE FROM dirty_atoms")
            if changed:
                self.db.execute(
                    "INSERT INTO meta (key, value) VALUES ('generation', '1') ON CONFLICT (key) DO UPDATE "
                    "SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)"
                )
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return changed

    def _rebuild_row(
        self,
        atom: tuple[str, str],
        group: list[tuple[Any, ...]],
        provenance: list[tuple[str, str, str, int | None]],
        writes: list[tuple[str, str, str, str, str]],
        removals: list[tuple[str, str]],
    ) -> None:
        live = [row for row in group if row[16] and row[4] == "exact"]
        if not live:
            removals.append(atom)
            return
        row = build_row(atom, live, provenance, self.source_weights)
        payload = json.dumps(_row_payload(row), separators=(",", ":"), sort_keys=True)
        digest = hashlib.sha256(payload.encode()).hexdigest()[:32]
        writes.append((row.key, atom[0], atom[1], digest, payload))

    def _apply_row_changes(
        self, writes: list[tuple[str, str, str, str, str]], removals: list[tuple[str, str]]
    ) -> int:
        changed = 0
        for atom_type, value in removals:
            changed += self.db.execute(
                "DELETE FROM rows WHERE type = ? AND value = ?", (atom_type, value)
            ).rowcount
        for key, atom_type, value, digest, payload in writes:
            existing = self.db.execute(
                "SELECT key, digest FROM rows WHERE type = ? AND value = ?", (atom_type, value)
            ).fetchone()
            if existing is not None and existing[0] == key and existing[1] == digest:
                continue
            if existing is not None:
                self.db.execute("DELETE FROM rows WHERE type = ? AND value = ?", (atom_type, value))
            self.db.execute(
                "INSERT INTO rows (key, type, value, digest, payload) VALUES (?, ?, ?, ?, ?)",
                (key, atom_type, value, digest, payload),
            )
            changed += 1
        return changed

    def set_source_weights(self, weights: Mapping[str, float]) -> None:
        """Use these source weights in row weights; when they differ from the last run's, every row is rebuilt."""
        self.source_weights = dict(weights)
        fingerprint = json.dumps(sorted(self.source_weights.items()))
        row = self.db.execute("SELECT value FROM meta WHERE key = 'source_weights'").fetchone()
        if row is not None and row[0] == fingerprint:
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if row is not None:
                self.db.execute(
                    "INSERT OR IGNORE INTO dirty_atoms (type, value) SELECT type, value FROM indicator_atoms"
                )
            self.db.execute(
                "INSERT INTO meta (key, value) VALUES ('source_weights', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (fingerprint,),
            )
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def add_indicator_atoms(self, indicator_id: str, atoms: Iterable[AtomLink]) -> int:
        """Add atoms to a stored indicator (a released guard hold); return how many were added.

        Nothing is added when the indicator is not stored, because a later version will bring them.
        """
        if self.db.execute("SELECT 1 FROM indicators WHERE id = ?", (indicator_id,)).fetchone() is None:
            return 0
        rows = [
            (a.type, a.value, indicator_id, a.display, a.role, json.dumps(a.context) if a.context else None)
            for a in atoms
        ]
        self.db.execute("BEGIN IMMEDIATE")
        try:
            before = self.db.total_changes
            self.db.executemany(
                "INSERT OR IGNORE INTO indicator_atoms (type, value, indicator_id, display, role, context) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            added = self.db.total_changes - before
            self.db.executemany(
                "INSERT OR IGNORE INTO dirty_atoms (type, value) VALUES (?, ?)", [(r[0], r[1]) for r in rows]
            )
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return added

    def generation(self) -> int:
        """Return a counter that grows whenever any row changes."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return 0 if row is None else int(row[0])

    def iter_rows(self) -> Iterator[AtomRow]:
        for (payload,) in self.db.execute("SELECT payload FROM rows ORDER BY key"):
            yield _row_from_payload(json.loads(payload))

    def iter_delivered(self, sink: str) -> Iterator[DeliveredRow]:
        for key, atom_type, value, digest, indicator_id in self.db.execute(
            "SELECT key, type, value, digest, indicator_id FROM delivered WHERE sink = ? ORDER BY key", (sink,)
        ):
            yield DeliveredRow(key=key, type=atom_type, value=value, digest=digest, indicator_id=indicator_id)

    def record_delivery(self, sink: str, written: list[AtomRow], deleted: list[str]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(
                "INSERT OR REPLACE INTO delivered (sink, key, type, value, digest, indicator_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(sink, r.key, r.type, r.value, r.digest, r.indicator_id) for r in written],
            )
            self.db.executemany("DELETE FROM delivered WHERE sink = ? AND key = ?", [(sink, k) for k in deleted])
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def sink_state(self, sink: str) -> tuple[int, str] | None:
        """Return (generation, fingerprint) of the sink's last complete push, or None."""
        row = self.db.execute("SELECT generation, fingerprint FROM sink_state WHERE sink = ?", (sink,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def set_sink_state(self, sink: str, generation: int, fingerprint: str, now: datetime, error: str | None) -> None:
        """Remember the outcome of a push; a failed push stores generation -1 so the next run retries."""
        self.db.execute(
            "INSERT INTO sink_state (sink, generation, fingerprint, last_push, last_error) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (sink) DO UPDATE SET generation = excluded.generation, "
            "fingerprint = excluded.fingerprint, last_push = excluded.last_push, last_error = excluded.last_error",
            (sink, generation, fingerprint, now.timestamp(), error),
        )

    # -- sightings -------------------------------------------------------------------------------------

    def add_sightings(self, records: list[SightingRecord], cursor_name: str, cursor: str | None) -> int:
        before = self.db.total_changes
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.executemany(
                "INSERT OR IGNORE INTO sightings (dedup, source, value, atom_type, indicator_id, seen_at, count, "
                "kind, context, external_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        sighting_dedup_key(r),
                        r.source,
                        r.value,
                        r.atom_type,
                        r.indicator_id,
                        r.seen_at.timestamp(),
                        r.count,
                        r.kind,
                        json.dumps(r.context) if r.context else None,
                        r.external_id,
                    )
                    for r in records
                ],
            )
            new = self.db.total_changes - before
            self._set_cursor(cursor_name, cursor, records[-1].seen_at.timestamp() if records else 0.0)
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        return new

    # -- queries for people ----------------------------------------------------------------------------

    def quarantine_rows(self, status: str | None = "held", limit: int = 100) -> list[dict[str, Any]]:
        """Return quarantined objects, newest first."""
        sql = "SELECT qid, source, collection, object_id, reason_code, reason, at, status FROM quarantine"
        params: tuple[Any, ...] = ()
        if status is not None:
            sql += " WHERE status = ?"
            params = (status,)
        sql += " ORDER BY qid DESC LIMIT ?"
        names = ("qid", "source", "collection", "object_id", "reason_code", "reason", "at", "status")
        return [dict(zip(names, row, strict=True)) for row in self.db.execute(sql, (*params, limit))]

    def quarantine_raw(self, qid: int) -> str | None:
        """Return the raw text kept for a quarantined object."""
        row = self.db.execute("SELECT raw FROM quarantine WHERE qid = ?", (qid,)).fetchone()
        return None if row is None else row[0]

    def quarantine_entry(self, qid: int) -> dict[str, Any] | None:
        """Return one quarantine row with its raw text, or None when there is no such row."""
        names = ("qid", "source", "collection", "object_id", "reason_code", "reason", "at", "status", "raw")
        row = self.db.execute(f"SELECT {', '.join(names)} FROM quarantine WHERE qid = ?", (qid,)).fetchone()
        return None if row is None else dict(zip(names, row, strict=True))

    def mark_quarantine(self, qid: int, status: str, now: datetime) -> bool:
        """Set a quarantine row's status (``released``); return False when no such row exists."""
        cursor = self.db.execute(
            "UPDATE quarantine SET status = ?, released_at = ? WHERE qid = ?", (status, now.timestamp(), qid)
        )
        return cursor.rowcount == 1

    def status(self, now: datetime) -> dict[str, Any]:
        db = self.db
        now_s = now.timestamp()
        by_source = dict(db.execute("SELECT source, COUNT(*) FROM indicators GROUP BY source").fetchall())
        by_state = dict(db.execute("SELECT state, COUNT(*) FROM indicators GROUP BY state").fetchall())
        atoms_by_type = dict(db.execute("SELECT type, COUNT(*) FROM rows GROUP BY type").fetchall())
        composites = db.execute(
            "SELECT COUNT(*) FROM indicators WHERE composite_reason IS NOT NULL"
        ).fetchone()[0]
        composite_only = db.execute(
            "SELECT COUNT(*) FROM indicators i WHERE NOT EXISTS "
            "(SELECT 1 FROM indicator_atoms a WHERE a.indicator_id = i.id AND a.role = 'exact')"
        ).fetchone()[0]
        quarantine = dict(
            db.execute(
                "SELECT reason_code, COUNT(*) FROM quarantine WHERE status = 'held' GROUP BY reason_code"
            ).fetchall()
        )
        expired = dict(db.execute("SELECT reason, COUNT(*) FROM expired GROUP BY reason").fetchall())
        versions = db.execute("SELECT COUNT(*) FROM versions").fetchone()[0]
        distinct_versions = db.execute("SELECT COUNT(DISTINCT id || modified) FROM versions").fetchone()[0]
        next_expiries = [
            {"id": row[0], "expires_at": format_timestamp(from_epoch(row[1])), "basis": row[2]}
            for row in db.execute(
                "SELECT id, expires_at, expiry_basis FROM indicators WHERE expires_at > ? "
                "ORDER BY expires_at LIMIT 5",
                (now_s,),
            )
        ]
        sinks = {
            row[0]: {
                "rows": row[1],
                "last_push": None if row[2] is None else format_timestamp(from_epoch(row[2])),
                "last_error": row[3],
            }
            for row in db.execute(
                "SELECT s.sink, (SELECT COUNT(*) FROM delivered d WHERE d.sink = s.sink), s.last_push, "
                "s.last_error FROM sink_state s ORDER BY s.sink"
            )
        }
        sightings = dict(db.execute("SELECT status, COUNT(*) FROM sightings GROUP BY status").fetchall())
        return {
            "indicators": {"by_source": by_source, "by_state": by_state},
            "atoms": {"by_type": atoms_by_type, "total": sum(atoms_by_type.values())},
            "composites": {"with_reason": composites, "without_exact_atom": composite_only},
            "versions": {"seen": distinct_versions, "reports": versions},
            "expired": expired,
            "quarantine": quarantine,
            "next_expiries": next_expiries,
            "sinks": sinks,
            "sightings": sightings,
        }

    def count(self, table: str) -> int:
        """Return the number of rows in a table (tests and benchmarks)."""
        if table not in {"indicators", "objects", "expired", "quarantine", "rows", "versions", "sightings", "reviews",
                         "review_pages"}:
            raise ValueError(f"unknown table {table!r}")
        return int(self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def indicator_atoms(self, indicator_id: str) -> list[tuple[str, str, str]]:
        """Return (type, value, role) of an indicator's atoms."""
        return [
            (t, v, r)
            for t, v, r in self.db.execute(
                "SELECT type, value, role FROM indicator_atoms WHERE indicator_id = ? ORDER BY type, value",
                (indicator_id,),
            )
        ]

    def indicator_state(self, indicator_id: str) -> dict[str, Any] | None:
        """Return the stored state of one indicator: live, pending, withheld or expired (with reason), or None."""
        row = self.db.execute(
            "SELECT state, modified, expires_at, expiry_basis, composite_reason, withheld_reason FROM indicators "
            "WHERE id = ?",
            (indicator_id,),
        ).fetchone()
        if row is not None:
            return {
                "state": row[0],
                "modified": row[1],
                "expires_at": _dt(row[2]),
                "basis": row[3],
                "composite_reason": row[4],
                "withheld_reason": row[5],
            }
        entry = self.expired_entry(indicator_id)
        if entry is not None:
            return {"state": "expired", "modified": entry.modified, "reason": entry.reason}
        return None


def _lifetimes_fingerprint(lifetimes: Mapping[str, timedelta]) -> str:
    return json.dumps({k: v.total_seconds() for k, v in sorted(lifetimes.items())})


def quarantine_dedup_key(item: QuarantineItem, held_atoms: str | None = None) -> str:
    """Return the key that makes repeats of one rejected object and reason one quarantine row."""
    if item.object_id:
        subject = "id:" + item.object_id
    elif item.raw_text is not None:
        subject = "raw:" + hashlib.sha256(item.raw_text.encode("utf-8", "surrogatepass")).hexdigest()
    else:
        subject = "reason:" + item.reason
    parts = [item.provenance.source, subject, item.reason_code, held_atoms or ""]
    return hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def _atom_digest(atom_type: str, value: str) -> str:
    return hashlib.sha256(f"{atom_type}\x00{value}".encode()).hexdigest()[:24]


def sighting_dedup_key(record: SightingRecord, window_seconds: int = 3600) -> str:
    """Return the key that makes repeated reads of the same hit one sighting.

    Hits of the same value, indicator and kind from the same reader within one time window (an hour by
    default) are one sighting. The reader's own id is part of the key when it has one.
    """
    window = int(record.seen_at.timestamp()) // window_seconds
    parts = [record.source, record.value, record.indicator_id or "", record.kind, str(window), record.external_id]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class _ProvenanceStream:
    """Walks (type, value, source, collection, created_by, confidence) rows in atom order beside the member rows."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self._pending: tuple[Any, ...] | None = next(cursor, None)

    def take(self, atom: tuple[str, str]) -> list[tuple[str, str, str, int | None]]:
        found: list[tuple[str, str, str, int | None]] = []
        while self._pending is not None and (self._pending[0], self._pending[1]) < atom:
            self._pending = next(self._cursor, None)
        while self._pending is not None and (self._pending[0], self._pending[1]) == atom:
            item = (self._pending[2], self._pending[3] or "", self._pending[4] or "", self._pending[5])
            if item not in found:
                found.append(item)
            self._pending = next(self._cursor, None)
        return found


def build_row(
    atom: tuple[str, str],
    live: list[tuple[Any, ...]],
    provenance: list[tuple[str, str, str, int | None]] | None = None,
    weights: Mapping[str, float] | None = None,
) -> AtomRow:
    """Combine the live indicators that carry one atom into the row sinks receive.

    ``provenance`` holds (source, collection, created_by, confidence) of every report of the atom, and
    ``weights`` the trust weight of each source (1.0 when absent).
    """
    live = sorted(live, key=lambda r: (r[6] or "", r[2]))
    first = live[0]
    indicator_ids = tuple(r[2] for r in live)
    confidences = [r[10] for r in live if r[10] is not None]
    tlps = [r[11] for r in live if r[11] is not None]
    expiries = [r[9] for r in live]
    labels: list[str] = []
    for r in live:
        for label in json.loads(r[14] or "[]"):
            if label not in labels:
                labels.append(label)
    context: list[tuple[str, str]] = []
    for r in live:
        for pair in json.loads(r[5] or "[]"):
            item = (str(pair[0]), str(pair[1]))
            if item not in context:
                context.append(item)
    confidence = max(confidences) if confidences else None
    valid_from = min((r[8] for r in live if r[8] is not None), default=None)
    valid_until = None if any(e is None for e in expiries) else max(expiries)
    modified = max(r[7] for r in live)

    row = AtomRow(
        key=row_key(first[2], atom[0], atom[1]),
        type=atom[0],
        value=atom[1],
        display=first[3],
        indicator_id=first[2],
        indicator_ids=indicator_ids,
        name=first[12] or "",
        description=first[13] or "",
        valid_from=_dt(valid_from),
        valid_until=_dt(valid_until),
        modified=datetime.strptime(modified, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=from_epoch(0).tzinfo),
        confidence=confidence,
        weight=corroborated_weight([(p[0], p[2] or p[0], p[3]) for p in provenance or ()], weights, confidence),
        tlp=max(tlps) if tlps else None,
        labels=tuple(labels),
        sources=tuple(sorted({p[0] for p in provenance or ()})),
        collections=tuple(sorted({p[1] for p in provenance or () if p[1]})),
        created_by=tuple(sorted({p[2] for p in provenance or () if p[2]})),
        context=tuple(context),
        direction=first[15],
    )
    return row


def corroborated_weight(
    reports: Iterable[tuple[str, str, int | None]],
    weights: Mapping[str, float] | None = None,
    confidence: int | None = None,
) -> int:
    """Return a 1-100 weight from the reports of one atom.

    Each report is (source, reporter, confidence); the reporter is the producer identity, or the source
    when the object names none, so two collections of one producer are one voice. A reporter scores its
    best confidence (50 when unknown) times its source's weight. The weight is the best score plus 10
    times the source weight of each further reporter, so a weight-0 source neither scores nor corroborates.
    Without reports, ``confidence`` alone gives the weight.
    """
    weights = weights or {}
    scores: dict[str, tuple[float, float]] = {}
    for source, reporter, stated in reports:
        source_weight = weights.get(source, 1.0)
        score = (50 if stated is None else stated) * source_weight
        held = scores.get(reporter)
        if held is None or (score, source_weight) > held:
            scores[reporter] = (score, source_weight)
    if not scores:
        return max(1, min(100, 50 if confidence is None else confidence))

    ranked = sorted(scores.values(), reverse=True)
    total = ranked[0][0] + 10 * sum(source_weight for _, source_weight in ranked[1:])
    return max(1, min(100, round(total)))


def _row_payload(row: AtomRow) -> dict[str, Any]:
    return {
        "key": row.key,
        "type": row.type,
        "value": row.value,
        "display": row.display,
        "indicator_id": row.indicator_id,
        "indicator_ids": list(row.indicator_ids),
        "name": row.name,
        "description": row.description,
        "valid_from": _ts(row.valid_from),
        "valid_until": _ts(row.valid_until),
        "modified": _ts(row.modified),
        "confidence": row.confidence,
        "weight": row.weight,
        "tlp": row.tlp,
        "labels": list(row.labels),
        "sources": list(row.sources),
        "collections": list(row.collections),
        "created_by": list(row.created_by),
        "context": [list(c) for c in row.context],
        "direction": row.direction,
    }


def _row_from_payload(data: dict[str, Any]) -> AtomRow:
    payload = json.dumps(data, separators=(",", ":"), sort_keys=True)
    return AtomRow(
        key=data["key"],
        type=data["type"],
        value=data["value"],
        display=data["display"],
        indicator_id=data["indicator_id"],
        indicator_ids=tuple(data["indicator_ids"]),
        name=data["name"],
        description=data["description"],
        valid_from=_dt(data["valid_from"]),
        valid_until=_dt(data["valid_until"]),
        modified=from_epoch(data["modified"]),
        confidence=data["confidence"],
        weight=data["weight"],
        tlp=data["tlp"],
        labels=tuple(data["labels"]),
        sources=tuple(data["sources"]),
        collections=tuple(data["collections"]),
        created_by=tuple(data["created_by"]),
        context=tuple((c[0], c[1]) for c in data["context"]),
        direction=data["direction"],
        digest=hashlib.sha256(payload.encode()).hexdigest()[:32],
    )


def iter_chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Yield lists of at most ``size`` items."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
