"""Turning stored sighting records into per-indicator, per-window aggregates.

Records wait in the ``sightings`` table with status ``pending``. Each is mapped to the live indicators
that carry its value, then counted into the window of each (one row of ``sighting_windows`` per
indicator, window and kind), and marked ``matched`` or ``unmatched`` with the reason. A record that hits
only expired intel makes the indicator be fetched again from its source first, once per run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..refetch import FETCHED
from ..store.sqlite import SqliteStore
from ..timeutil import format_timestamp, from_epoch
from .mapping import IndicatorFinder, LiveIndicator, canonical_atom
from .retention import retention_start
from .settings import SharingSettings
from .stix import window_object_id

logger = logging.getLogger(__name__)

# Distinct context pairs kept per window; more are counted but not kept, so one noisy host cannot grow a row.
MAX_CONTEXT_PAIRS = 50
_BATCH = 500
PUBLISHED_KINDS = ("seen", "false-positive")
MAX_CLOCK_SKEW_SECONDS = 3600
"""How far after now a hit may be dated (clocks of other systems drift); later ones are not counted."""

Refetch = Callable[[str], dict[str, Any]]


@dataclass
class AggregateCounts:
    """What one pass over the pending sighting records did."""

    matched: int = 0
    unmatched: int = 0
    windows: int = 0
    extended: int = 0
    refetched: int = 0
    """Expired indicators fetched again; requests a source cannot serve (a ``file`` source) are not counted."""
    reasons: dict[str, int] = field(default_factory=dict)


def aggregate_pending(
    store: SqliteStore,
    settings: SharingSettings,
    identity_id: str,
    now: datetime,
    refetch: Refetch | None = None,
) -> AggregateCounts:
    """Map and count every pending sighting record.

    Args:
        store: the state store.
        settings: the ``[sharing]`` table.
        identity_id: our Identity, the observer in every object id.
        now: the run's time, used for ``modified`` and for expiry extension.
        refetch: fetches an expired indicator again by id (``stixbridge.refetch.refetch`` bound to the
            engine); None turns that off.
    """
    counts = AggregateCounts()
    finder = IndicatorFinder(store)
    fetched: set[str] = set()
    last_sid = 0
    while True:
        rows = store.db.execute(
            "SELECT sid, value, atom_type, indicator_id, seen_at, count, kind, context FROM sightings "
            "WHERE status = 'pending' AND sid > ? ORDER BY sid LIMIT ?",
            (last_sid, _BATCH),
        ).fetchall()
        if not rows:
            break
        last_sid = rows[-1][0]
        store.db.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                _aggregate_row(store, finder, settings, identity_id, now, row, refetch, fetched, counts)
            store.db.execute("COMMIT")
        except BaseException:
            if store.db.in_transaction:
                store.db.execute("ROLLBACK")
            raise
    if counts.matched or counts.unmatched:
        logger.info(
            "Sightings: %d records matched live indicators, %d did not; %d windows changed, %d expiries extended.",
            counts.matched, counts.unmatched, counts.windows, counts.extended,
        )  # fmt: skip
    return counts


def _aggregate_row(
    store: SqliteStore,
    finder: IndicatorFinder,
    settings: SharingSettings,
    identity_id: str,
    now: datetime,
    row: tuple[Any, ...],
    refetch: Refetch | None,
    fetched: set[str],
    counts: AggregateCounts,
) -> None:
    sid, value, atom_type, indicator_id, seen_at, count, kind, context = row
    if seen_at < retention_start(settings, now):
        # Readers drop such hits already; this catches records stored by other paths. Counting one would
        # create a pruned window again and publish it as a new version with a lower count.
        too_old = f"seen before the retention of keep_days = {settings.keep_days}; its window is not kept"
        store.db.execute("UPDATE sightings SET status = 'unmatched', reason = ? WHERE sid = ?", (too_old, sid))
        counts.unmatched += 1
        counts.reasons["older than retention"] = counts.reasons.get("older than retention", 0) + 1
        return
    if seen_at > now.timestamp() + MAX_CLOCK_SKEW_SECONDS:
        # A hit from the future is a clock or parsing fault. Published, it would report a sighting that has
        # not happened, and it would keep its indicator alive until the extension after that date.
        future = (
            f"seen at {format_timestamp(from_epoch(seen_at))}, more than {MAX_CLOCK_SKEW_SECONDS // 60} minutes "
            "after now; check the reader's clock and time field"
        )
        store.db.execute("UPDATE sightings SET status = 'unmatched', reason = ? WHERE sid = ?", (future, sid))
        counts.unmatched += 1
        counts.reasons["seen in the future"] = counts.reasons.get("seen in the future", 0) + 1
        return
    if kind not in PUBLISHED_KINDS:
        # MISP's "expiration" sightings, for one, say nothing about our telemetry.
        not_published = f"kind {kind!r} is not published; only {' and '.join(PUBLISHED_KINDS)} are"
        store.db.execute("UPDATE sightings SET status = 'unmatched', reason = ? WHERE sid = ?", (not_published, sid))
        counts.unmatched += 1
        counts.reasons["kind not published"] = counts.reasons.get("kind not published", 0) + 1
        return
    atom = canonical_atom(value, atom_type)
    found: list[LiveIndicator] = []
    if indicator_id:
        live = finder.indicator(indicator_id)
        found = [live] if live is not None else []
    if not found and atom is not None:
        found = finder.live(atom)
    reason: str | None = None
    if not found and atom is not None:
        found, reason = _try_expired(store, finder, atom, settings, refetch, fetched, counts)
    if atom is None and not found:
        reason = f"{value!r} is not a valid indicator value"

    if not found:
        reason = reason or "matches no live indicator"
        store.db.execute("UPDATE sightings SET status = 'unmatched', reason = ? WHERE sid = ?", (reason, sid))
        counts.unmatched += 1
        key = reason.split(";")[0] if reason.startswith("matches") else "invalid value"
        counts.reasons[key] = counts.reasons.get(key, 0) + 1
        return

    pairs = [tuple(pair) for pair in json.loads(context)] if context else []
    object_type = "opinion" if kind == "false-positive" else "sighting"
    window_seconds = settings.window_minutes * 60
    start = from_epoch(int(seen_at // window_seconds) * window_seconds)
    object_ids = []
    for indicator in found:
        object_id = window_object_id(object_type, indicator.id, start, identity_id)
        _count_into(store, object_id, object_type, indicator, start.timestamp(), seen_at, count, pairs, now)
        object_ids.append(object_id)
        counts.windows += 1
        if object_type == "sighting" and _extend(store, indicator, seen_at, settings.extend_days):
            counts.extended += 1
    store.db.execute(
        "UPDATE sightings SET status = 'matched', reason = NULL, object_id = ?, read_at = ? WHERE sid = ?",
        (",".join(object_ids), now.timestamp(), sid),
    )
    counts.matched += 1


def _try_expired(
    store: SqliteStore,
    finder: IndicatorFinder,
    atom: Any,
    settings: SharingSettings,
    refetch: Refetch | None,
    fetched: set[str],
    counts: AggregateCounts,
) -> tuple[list[LiveIndicator], str | None]:
    """Fetch expired indicators of the atom again; return the live ones afterwards, or why there are none."""
    expired = store.expired_for_atom(str(atom.type), atom.value)
    if not expired:
        return [], None
    names = ", ".join(f"{entry.id} ({entry.reason})" for entry in expired[:3])
    if refetch is None or not settings.refetch_expired:
        return [], f"matches only expired indicators: {names}"

    outcomes = []
    for entry in expired:
        if entry.id in fetched:
            continue
        fetched.add(entry.id)
        # The refetch stores in its own transaction; close ours around it so both stay atomic.
        store.db.execute("COMMIT")
        try:
            result = refetch(entry.id)
        finally:
            store.db.execute("BEGIN IMMEDIATE")
        # Count only requests a source served, because a source that cannot fetch by id made no fetch.
        if result.get("status") == FETCHED:
            counts.refetched += 1
        outcomes.append(f"{entry.id}: {result.get('reason') or (result.get('state') or {}).get('state', 'fetched')}")
    found = finder.live(atom)
    if found:
        return found, None
    detail = "; ".join(outcomes) if outcomes else "already fetched again in this run"
    return [], f"matches only expired indicators: {names}; fetched again from their source: {detail}"


def _count_into(
    store: SqliteStore,
    object_id: str,
    object_type: str,
    indicator: LiveIndicator,
    window_start: float,
    seen_at: float,
    count: int,
    pairs: list[tuple[Any, ...]],
    now: datetime,
) -> None:
    now_ms = int(now.timestamp() * 1000)
    held = store.db.execute(
        "SELECT count, first_seen, last_seen, context, modified_ms, tlp FROM sighting_windows WHERE object_id = ?",
        (object_id,),
    ).fetchone()
    if held is None:
        context = [list(p) for p in dict.fromkeys(pairs)][:MAX_CONTEXT_PAIRS]
        store.db.execute(
            "INSERT INTO sighting_windows (object_id, object_type, indicator_id, window_start, tlp, count, "
            "first_seen, last_seen, context, created_ms, modified_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (object_id, object_type, indicator.id, window_start, indicator.tlp, count, seen_at, seen_at,
             json.dumps(context), now_ms, now_ms),
        )  # fmt: skip
        return

    old_count, first_seen, last_seen, old_context, modified_ms, old_tlp = held
    merged = [tuple(p) for p in json.loads(old_context)]
    for pair in pairs:
        if pair not in merged and len(merged) < MAX_CONTEXT_PAIRS:
            merged.append(pair)
    tlp = max((t for t in (old_tlp, indicator.tlp) if t is not None), default=None)
    # Every change is a new STIX version, whose modified must be later than the last one.
    store.db.execute(
        "UPDATE sighting_windows SET count = ?, first_seen = ?, last_seen = ?, context = ?, modified_ms = ?, tlp = ? "
        "WHERE object_id = ?",
        (old_count + count, min(first_seen, seen_at), max(last_seen, seen_at), json.dumps([list(p) for p in merged]),
         max(now_ms, modified_ms + 1), tlp, object_id),
    )  # fmt: skip


def _extend(store: SqliteStore, indicator: LiveIndicator, seen_at: float, days: float) -> bool:
    """Keep a live indicator whose expiry is a local estimate live until ``days`` after the sighting.

    A producer's ``valid_until`` and a pattern's STOP time are statements about the intel and stay as
    they are; so do indicators that never expire locally.
    """
    if days <= 0 or indicator.expires_at is None:
        return False
    if not (indicator.expiry_basis.startswith("lifetime:") or indicator.expiry_basis in ("score", "sighting")):
        return False
    until = seen_at + timedelta(days=days).total_seconds()
    if until <= indicator.expires_at:
        return False
    store.db.execute(
        "UPDATE indicators SET expires_at = ?, expiry_basis = 'sighting' WHERE id = ? AND state = 'live'",
        (until, indicator.id),
    )
    store.db.execute(
        "INSERT OR IGNORE INTO dirty_atoms (type, value) "
        "SELECT type, value FROM indicator_atoms WHERE indicator_id = ?",
        (indicator.id,),
    )
    return True
