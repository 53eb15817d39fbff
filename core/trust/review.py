"""The blast-radius guard: a pull that would change too much of a source at once is held for review.

When a source's live set is large enough to protect, its pull is first staged: each page's raw items and
cursor go to ``review_pages``, and then the change is counted (indicators added and removed, atoms
retired). Within the limits the staged pages are stored at once, in order, each with its cursor. Beyond them the
pull is held: nothing is stored, the source is not pulled again, and ``stixbridge review approve ID``
stores the staged pages or ``stixbridge review reject ID`` drops them and moves the cursor past them.

The engine also stages, without counting, every pull of a source that reads its whole pass first
(``Source.land_first``); such a staging leaves no review row once its pages are stored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ..errors import StixbridgeError
from ..model import Page, Provenance, RawItem
from ..normalise import FeedContext, normalise_item
from ..store.background import BackgroundWriter
from ..store.sqlite import SqliteStore
from ..timeutil import format_timestamp, from_epoch

logger = logging.getLogger(__name__)

STAGING = "staging"
HELD = "held"
APPROVED = "approved"
REJECTED = "rejected"
APPLIED = "applied"
OPEN_STATUSES = (HELD, "approving")

_IN_CHUNK = 500
_INSERT_PAGE = "INSERT INTO review_pages (review_id, seq, cursor, items) VALUES (?, ?, ?, ?)"


@dataclass
class ChangeCount:
    """How much of a source one pull would change."""

    live: int = 0
    """Live and pending indicators of the source before the pull."""
    added: int = 0
    removed: int = 0
    retired_atoms: int = 0

    def over_limits(self, max_share: float, max_retired: int, min_live: int) -> str | None:
        """Return why the change is too large, or None when it may be applied."""
        if self.retired_atoms > max_retired:
            return f"it would retire {self.retired_atoms} atoms, more than max_retired_atoms {max_retired}"
        if self.live >= min_live and self.live:
            for what, number in (("add", self.added), ("remove", self.removed)):
                if number / self.live > max_share:
                    return (
                        f"it would {what} {number} indicators, {number / self.live:.0%} of the {self.live} live "
                        f"ones, more than max_change_share {max_share:.0%}"
                    )
        return None


def live_count(store: SqliteStore, source: str) -> int:
    """Return the live and pending indicators last reported by a source."""
    return int(store.db.execute("SELECT COUNT(*) FROM indicators WHERE source = ?", (source,)).fetchone()[0])


def open_review(store: SqliteStore, source: str) -> int | None:
    """Return the id of a held review of the source, or None."""
    row = store.db.execute(
        f"SELECT review_id FROM reviews WHERE source = ? AND status IN ({','.join('?' * len(OPEN_STATUSES))}) "
        "ORDER BY review_id LIMIT 1",
        (source, *OPEN_STATUSES),
    ).fetchone()
    return None if row is None else int(row[0])


class Stager:
    """Stages one pull of a source and counts what it would change.

    Args:
        store: the state store.
        source: the source's name.
        now: the run's time, which decides whether a ``valid_until`` has passed.
        max_object_bytes: the engine's object size limit, so counting skips what ingest would reject.
    """

    def __init__(self, store: SqliteStore, source: str, now: datetime, max_object_bytes: int) -> None:
        self.store = store
        self.source = source
        self.now = now
        self.max_object_bytes = max_object_bytes
        self.change = ChangeCount(live=live_count(store, source))
        self._feed = FeedContext()
        self._counted: set[str] = set()
        self._drop_leftovers()
        cursor = store.db.execute(
            "INSERT INTO reviews (source, status, created) VALUES (?, ?, ?)", (source, STAGING, now.timestamp())
        )
        self.review_id = int(cursor.lastrowid or 0)
        self._seq = 0
        self._writer: BackgroundWriter | None = None

    def _drop_leftovers(self) -> None:
        """Remove pages that a crash left while staging or storing, so the source is pulled again from its cursor.

        Each stored page moved the cursor past itself, so the pages left are exactly those a new pull
        fetches again.
        """
        stale = [row[0] for row in self.store.db.execute(
            "SELECT review_id FROM reviews WHERE source = ? AND status IN (?, ?)", (self.source, STAGING, APPROVED)
        )]  # fmt: skip
        for review_id in stale:
            self.store.db.execute("DELETE FROM review_pages WHERE review_id = ?", (review_id,))
            self.store.db.execute("DELETE FROM reviews WHERE review_id = ?", (review_id,))

    def stage(self, page: Page) -> None:
        """Keep one page for later, without normalising it.

        A store in a file is written by a second thread while the caller fetches the next page; call
        :meth:`flush` before reading the pages back.
        """
        row = (self.review_id, self._seq, page.cursor, _encode_page(page))
        self._seq += 1
        if str(self.store.path) == ":memory:":
            self.store.db.execute(_INSERT_PAGE, row)
            return
        if self._writer is None:
            self._writer = BackgroundWriter(self.store.path, _INSERT_PAGE)
        self._writer.put(row)

    def flush(self) -> None:
        """Wait until every staged page is in the store.

        Raises:
            sqlite3.Error: a page could not be written; the pull must not go on.
        """
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()

    def count(self) -> None:
        """Count what the staged pages would change, reading them back one page at a time."""
        self.flush()
        for page in staged_pages(self.store, self.review_id):
            self._count(page.items)

    def _count(self, items: list[RawItem]) -> None:
        newest: dict[str, Any] = {}
        for item in items:
            result = normalise_item(item, self._feed, max_object_bytes=self.max_object_bytes)
            record = result.indicator
            if record is None or record.id in self._counted:
                continue
            held = newest.get(record.id)
            if held is None or record.modified > held.modified:
                newest[record.id] = record
        if not newest:
            return

        stored = _stored_ids(self.store, list(newest))
        for record_id, record in newest.items():
            self._counted.add(record_id)
            ended = record.revoked or (record.valid_until is not None and record.valid_until <= self.now)
            if record_id in stored and ended:
                self.change.removed += 1
                self.change.retired_atoms += stored[record_id]
            elif record_id not in stored and not ended:
                self.change.added += 1

    def finish(self, reason: str | None) -> None:
        """Mark the staging held (with the reason) or ready to apply."""
        self.flush()
        status = HELD if reason else APPROVED
        self.store.db.execute(
            "UPDATE reviews SET status = ?, counts = ?, reason = ? WHERE review_id = ?",
            (status, json.dumps(asdict(self.change)), reason, self.review_id),
        )


def staged_pages(store: SqliteStore, review_id: int) -> Iterator[Page]:
    """Yield the staged pages of a review in the order they were pulled."""
    seqs = [row[0] for row in store.db.execute(
        "SELECT seq FROM review_pages WHERE review_id = ? ORDER BY seq", (review_id,)
    )]  # fmt: skip
    for seq in seqs:
        cursor, items = store.db.execute(
            "SELECT cursor, items FROM review_pages WHERE review_id = ? AND seq = ?", (review_id, seq)
        ).fetchone()
        yield Page(_decode_page(items), cursor=cursor)


def last_cursor(store: SqliteStore, review_id: int) -> str | None:
    """Return the last cursor any staged page of a review carries."""
    row = store.db.execute(
        "SELECT cursor FROM review_pages WHERE review_id = ? AND cursor IS NOT NULL ORDER BY seq DESC LIMIT 1",
        (review_id,),
    ).fetchone()
    return None if row is None else row[0]


def close_review(store: SqliteStore, review_id: int, status: str, now: datetime) -> None:
    """Set the final status of a review and drop its staged pages."""
    store.db.execute("BEGIN IMMEDIATE")
    try:
        store.db.execute("DELETE FROM review_pages WHERE review_id = ?", (review_id,))
        store.db.execute(
            "UPDATE reviews SET status = ?, decided = ? WHERE review_id = ?", (status, now.timestamp(), review_id)
        )
        store.db.execute("COMMIT")
    except BaseException:
        if store.db.in_transaction:
            store.db.execute("ROLLBACK")
        raise


def drop_staging(store: SqliteStore, review_id: int) -> None:
    """Remove a staging that was never a review, once its pages are stored."""
    store.db.execute("BEGIN IMMEDIATE")
    try:
        store.db.execute("DELETE FROM review_pages WHERE review_id = ?", (review_id,))
        store.db.execute("DELETE FROM reviews WHERE review_id = ?", (review_id,))
        store.db.execute("COMMIT")
    except BaseException:
        if store.db.in_transaction:
            store.db.execute("ROLLBACK")
        raise


def set_status(store: SqliteStore, review_id: int, status: str) -> None:
    """Set the status of a review."""
    store.db.execute("UPDATE reviews SET status = ? WHERE review_id = ?", (status, review_id))


def review_rows(store: SqliteStore, statuses: Iterable[str] | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Return reviews, newest first, optionally only those with the given statuses."""
    sql = "SELECT review_id, source, status, created, decided, counts, reason FROM reviews"
    params: list[Any] = []
    wanted = list(statuses or [])
    if wanted:
        sql += f" WHERE status IN ({','.join('?' * len(wanted))})"
        params.extend(wanted)
    sql += " ORDER BY review_id DESC LIMIT ?"
    params.append(limit)
    rows = []
    for review_id, source, status, created, decided, counts, reason in store.db.execute(sql, params):
        rows.append(
            {
                "review": review_id,
                "source": source,
                "status": status,
                "created": format_timestamp(from_epoch(created)),
                "decided": None if decided is None else format_timestamp(from_epoch(decided)),
                "change": json.loads(counts) if counts else {},
                "reason": reason,
            }
        )
    return rows


def review_source(store: SqliteStore, review_id: int) -> tuple[str, str] | None:
    """Return (source, status) of a review, or None when there is no such review."""
    row = store.db.execute("SELECT source, status FROM reviews WHERE review_id = ?", (review_id,)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def _stored_ids(store: SqliteStore, ids: list[str]) -> dict[str, int]:
    """Return stored indicator ids among ``ids`` with the number of their exact atoms."""
    found: dict[str, int] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        for indicator_id, atoms in store.db.execute(
            f"SELECT i.id, (SELECT COUNT(*) FROM indicator_atoms a WHERE a.indicator_id = i.id AND a.role = 'exact') "
            f"FROM indicators i WHERE i.id IN ({marks})",
            chunk,
        ):
            found[indicator_id] = int(atoms)
    return found


def _encode_page(page: Page) -> str | bytes:
    """Encode a page's items for ``review_pages``, keeping the source's own JSON text when it has it."""
    if page.bodies:
        return _encode_with_bodies(page.items, page.bodies)
    # Compact, and without the circular check, because staged objects come from JSON, which has no cycles.
    return json.dumps(
        [_encode_item(i) for i in page.items], separators=(",", ":"), ensure_ascii=False, check_circular=False
    )


def _encode_with_bodies(items: list[RawItem], bodies: tuple[bytes, ...]) -> bytes:
    """Join the bodies as they are, with what the items add to their objects (provenance, size, errors).

    Each body is a JSON text already, so the joined text is JSON without encoding any object again.
    That halves the time a page takes to land. The additions are flat lists of numbers, which encode
    several times faster than a small list per item.
    """
    table: list[Provenance] = []
    position_of: dict[int, int] = {}
    provenance_of: list[int] = []
    sizes: list[int] = []
    errors: dict[str, list[Any]] = {}
    for number, item in enumerate(items):
        # Sources share one Provenance object among many items, so its identity is a cheap key.
        position = position_of.get(id(item.provenance))
        if position is None:
            position = position_of[id(item.provenance)] = len(table)
            table.append(item.provenance)
        provenance_of.append(position)
        sizes.append(item.size)
        if item.obj is None:
            errors[str(number)] = [item.raw_text, item.error, item.reason_code]
    meta = {
        "provenances": [[p.source, p.collection, p.created_by] for p in table],
        "provenance_of": provenance_of,
        "sizes": sizes if any(sizes) else [],
        "errors": errors,
    }
    head = b'{"meta":' + json.dumps(meta, separators=(",", ":")).encode() + b',"bodies":['
    return head + b",".join(bodies) + b"]}"


def _decode_page(text: str | bytes) -> list[RawItem]:
    """Decode what :func:`_encode_page` stored.

    Raises:
        StixbridgeError: the stored bodies do not hold one object per item, so the staged page is damaged.
    """
    data = json.loads(text)
    if isinstance(data, list):
        return [_decode_item(i) for i in data]

    meta = data["meta"]
    provenances = [Provenance(*p) for p in meta["provenances"]]
    provenance_of = meta["provenance_of"]
    sizes = meta["sizes"] or [0] * len(provenance_of)
    errors = meta["errors"]
    objects = [obj for body in data["bodies"] if isinstance(body, dict) for obj in body.get("objects") or []]
    if len(objects) != len(provenance_of):
        raise StixbridgeError(
            f"a staged page lists {len(provenance_of)} items but its bodies hold {len(objects)} objects; "
            "reject its review ('stixbridge review reject') or pull the source again"
        )
    items = []
    for number, obj in enumerate(objects):
        provenance = provenances[provenance_of[number]]
        error = errors.get(str(number)) if errors else None
        if error is not None:
            raw_text, reason, code = error
            items.append(
                RawItem(None, provenance, raw_text=raw_text, error=reason, size=sizes[number], reason_code=code)
            )
        else:
            items.append(RawItem(obj, provenance, size=sizes[number]))
    return items


def _encode_item(item: RawItem) -> list[Any]:
    p = item.provenance
    return [item.obj, p.source, p.collection, p.created_by, item.raw_text, item.error, item.size, item.reason_code]


def _decode_item(data: list[Any]) -> RawItem:
    obj, source, collection, created_by, raw_text, error, size = data[:7]
    reason_code = data[7] if len(data) > 7 else "not-json"
    return RawItem(
        obj, Provenance(source, collection, created_by), raw_text=raw_text, error=error, size=size,
        reason_code=reason_code,
    )  # fmt: skip
