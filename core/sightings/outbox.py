"""The outbox: every object we publish, per publish target, with its state and the reason for it.

States of one row (one object id at one target; a newer version replaces the row's payload):

- ``pending``: built and waiting to be sent.
- ``sending``: handed to the publisher; set and committed before the request, so a crash leaves it
  visible. A row stays here when its fate is unknown: the process died before the outcome was
  committed, or the request failed after it may have reached the target. The next :meth:`Outbox.send`
  first asks the publisher which of these (id, version) the target stores (:class:`VersionReader`):
  those become ``published`` without a second request, and the rest are sent again. When the target
  cannot be read back, all of them are sent again. That is safe, because TAXII treats a repeat of the
  same id and version as a no-op.
- ``published``: the target accepted it (or reported it pending on its side).
- ``refused``: our policy keeps it here: its TLP is above what the target may receive, or it is
  TLP:AMBER+STRICT or TLP:RED, which never leave. Re-checked when the target's policy changes. A window
  whose object ``stix2`` cannot build (an invalid indicator id in an old store) is also ``refused``, with
  an empty payload and the error as its reason; it is never sent.
- ``failed``: the target rejected it; tried again on later runs until ``max_attempts``.

Building happens before sending and in its own transaction, so a crash between the two loses nothing:
the rows are still pending on the next run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import stix2

from ..errors import ConfigError, RemoteRejectedError, StixbridgeError
from ..store.sqlite import SqliteStore, iter_chunks
from ..timeutil import format_timestamp, from_epoch, parse_timestamp
from ..tlp import Tlp
from .settings import NEVER_SHARED, PublishTarget, SharingSettings
from .stix import Window, identity_object, marking_object, observed_objects, opinion_object, sighting_object

logger = logging.getLogger(__name__)

# Objects per publish call; the TAXII publisher splits further by the server's size limit.
SEND_BATCH = 500
# Referenced objects go first, so a server that checks references finds them.
_TYPE_ORDER = {"identity": 0, "marking-definition": 1, "observed-data": 3, "sighting": 4, "opinion": 5}
STATUSES = ("pending", "sending", "published", "refused", "failed")
# Rejections of a whole publish call that prove the target stored nothing of it: bad credentials, no
# access, no such collection.
NOTHING_STORED_STATUSES = frozenset({401, 403, 404})
CONFIRMED_REASON = "confirmed by reading it back: an earlier send was interrupted, and the target stores this version"


class Outcome(Protocol):
    """One object's result in a publish call (``stixbridge.connectors.taxii.publish.PublishOutcome``)."""

    object_id: str
    version: str | None
    state: str
    """``success``, ``failure``, ``pending`` or ``unknown`` (the request may or may not have been stored)."""
    message: str


class OutcomeList(Protocol):
    """The result of one publish call (``stixbridge.connectors.taxii.publish.PublishResult``)."""

    outcomes: list[Any]


class Publisher(Protocol):
    """A publish target (``stixbridge.connectors.taxii.publish.TaxiiPublisher``)."""

    name: str

    def publish(self, objects: list[dict[str, Any]]) -> OutcomeList: ...


@runtime_checkable
class VersionReader(Protocol):
    """A publisher that can read its target back; optional, used to avoid sending an object twice."""

    def stored_versions(self, object_ids: list[str]) -> dict[str, set[str]]:
        """Return the versions (``modified``, else ``created``) the target stores of each id.

        Ids the target does not store are absent. Raises :class:`StixbridgeError` when the target
        cannot be read.
        """
        ...


@dataclass
class PublishCounts:
    """Counts of one publish run for one target."""

    queued: int = 0
    published: int = 0
    refused: int = 0
    failed: int = 0
    pending_remote: int = 0
    unknown: int = 0
    """Objects whose request failed after it may have reached the target; checked on the next send."""
    confirmed: int = 0
    """Objects of an interrupted send that the target already stored, so they were not sent again."""
    resent: int = 0
    """Objects of an interrupted send that are sent again."""
    by_type: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Identity:
    """Our Identity as configured."""

    id: str
    name: str
    identity_class: str


def share_level(window_tlp: int | None, settings: SharingSettings) -> Tlp:
    """Return the TLP a published object carries: its indicator's or our policy's, whichever is higher."""
    policy = settings.policy_tlp
    return policy if window_tlp is None else max(policy, Tlp(window_tlp))


def refusal(level: Tlp, target: PublishTarget) -> str | None:
    """Return why an object of this TLP may not go to the target, or None when it may."""
    if level in NEVER_SHARED:
        return f"TLP:{level.label} never leaves this organisation"
    if level > target.tlp_ceiling:
        return (
            f"TLP:{level.label} is above TLP:{target.tlp_ceiling.label}, the highest this target may receive "
            f"(max_tlp in its [[sharing.targets]] entry)"
        )
    return None


def _nothing_stored(exc: BaseException) -> bool:
    """Tell whether a publish call that raised ``exc`` cannot have stored any of its objects."""
    # NOTE: a publisher that splits a call into several requests may raise a 401 or 403 after an earlier
    # request was stored. Those objects go back to pending and are sent again, which TAXII treats as a no-op.
    if isinstance(exc, ConfigError):
        return True
    return isinstance(exc, RemoteRejectedError) and exc.status in NOTHING_STORED_STATUSES


def _unknown_reason(error: str) -> str:
    return (
        f"the request failed after it may have reached the target ({error}); the next send reads the target "
        "back before sending it again"
    )


def _stores(versions: set[str] | None, version: str) -> bool:
    """Tell whether the target's versions of an object include ours; an unversioned object needs only its id."""
    if versions is None:
        return False
    if not version:
        return True
    return any(_same_time(held, version) for held in versions)


def _same_time(left: str, right: str) -> bool:
    """Compare two STIX timestamps as instants, so ``...00Z`` and ``...00.000Z`` are the same version."""
    try:
        return parse_timestamp(left) == parse_timestamp(right)
    except ValueError:
        return left == right


class Outbox:
    """The outbox of one store.

    Args:
        store: the state store.
        settings: the ``[sharing]`` table.
        identity: our Identity.
    """

    def __init__(self, store: SqliteStore, settings: SharingSettings, identity: Identity) -> None:
        self.store = store
        self.settings = settings
        self.identity = identity

    # -- building --------------------------------------------------------------------------------------

    def enqueue(self, target_name: str, now: datetime) -> int:
        """Build the objects of every window that changed since the target last got it; return how many."""
        target = self.settings.target(target_name)
        self._recheck_policy(target, now)
        windows = list(self._changed_windows(target_name))
        if not windows:
            return 0

        rows: list[tuple[dict[str, Any], Tlp]] = []
        unbuilt: list[tuple[Window, Tlp, str]] = []
        levels: set[Tlp] = set()
        for window in windows:
            level = share_level(window.tlp, self.settings)
            try:
                objects = self._objects(window, level, target)
            except stix2.exceptions.STIXError as exc:
                # A window that stix2 rejects must not stop the others. The usual cause is an indicator id
                # stored before ids were checked. Its row records the error, and new hits build it again.
                logger.warning(
                    "Publish target %s: cannot build the %s %s of indicator %s, so it is not queued: %s",
                    target.name, window.object_type, window.object_id, window.indicator_id, exc,
                )  # fmt: skip
                unbuilt.append((window, level, str(exc)))
                continue
            levels.add(level)
            rows.extend((obj, level) for obj in objects)
        if rows:
            identity = identity_object(self.identity.id, self.identity.name, self.identity.identity_class)
            rows.append((identity, Tlp.CLEAR))
            rows.extend((marking_object(level), Tlp.CLEAR) for level in sorted(levels) if level not in NEVER_SHARED)

        self.store.db.execute("BEGIN IMMEDIATE")
        try:
            queued = sum(self._put(target, obj, level, now) for obj, level in rows)
            for window, level, error in unbuilt:
                self._put_unbuilt(target, window, level, error, now)
            self.store.db.execute("COMMIT")
        except BaseException:
            if self.store.db.in_transaction:
                self.store.db.execute("ROLLBACK")
            raise
        return queued

    def _objects(self, window: Window, level: Tlp, target: PublishTarget) -> list[dict[str, Any]]:
        if window.object_type == "opinion":
            return [opinion_object(window, self.identity.id, level)]
        observed: list[dict[str, Any]] = []
        if target.observed_fields:
            observed = observed_objects(window, target.observed_fields, self.identity.id, level, target.name)
        observed_id = observed[-1]["id"] if observed else None
        return [*observed, sighting_object(window, self.identity.id, level, observed_id)]

    def _changed_windows(self, target: str) -> Iterator[Window]:
        # TODO: prune windows and outbox rows older than a retention period; this scan grows with both.
        for row in self.store.db.execute(
            "SELECT w.object_id, w.object_type, w.indicator_id, w.window_start, w.tlp, w.count, w.first_seen, "
            "w.last_seen, w.context, w.created_ms, w.modified_ms, o.modified FROM sighting_windows w "
            "LEFT JOIN outbox o ON o.target = ? AND o.object_id = w.object_id ORDER BY w.object_id",
            (target,),
        ).fetchall():
            context = tuple((str(p[0]), str(p[1])) for p in json.loads(row[8]))
            window = Window(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], context, row[9], row[10])
            if row[11] is None or row[11] != window.modified:
                yield window

    def _put(self, target: PublishTarget, obj: dict[str, Any], level: Tlp, now: datetime) -> int:
        """Store one object for the target unless that exact version is already there; return 1 if stored."""
        version = str(obj.get("modified", obj.get("created", "")))
        held = self.store.db.execute(
            "SELECT modified, status FROM outbox WHERE target = ? AND object_id = ?", (target.name, obj["id"])
        ).fetchone()
        if held is not None and held[0] == version:
            return 0
        reason = refusal(level, target)
        self.store.db.execute(
            "INSERT INTO outbox (target, object_id, object_type, modified, tlp, payload, status, reason, attempts, "
            "updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (target, object_id) DO UPDATE SET "
            "object_type = excluded.object_type, modified = excluded.modified, tlp = excluded.tlp, "
            "payload = excluded.payload, status = excluded.status, reason = excluded.reason, attempts = 0, "
            "updated = excluded.updated",
            (target.name, obj["id"], obj["type"], version, int(level), json.dumps(obj, separators=(",", ":")),
             "refused" if reason else "pending", reason, now.timestamp()),
        )  # fmt: skip
        return 1

    def _put_unbuilt(self, target: PublishTarget, window: Window, level: Tlp, error: str, now: datetime) -> None:
        """Record a window whose object cannot be built as ``refused``, with an empty payload.

        The empty payload keeps the row out of :meth:`_recheck_policy`, so it is never sent. New hits
        make a newer version of the window, which is built again and replaces the row.
        """
        reason = f"cannot be built as STIX 2.1, so it is never sent: {error}"
        self.store.db.execute(
            "INSERT INTO outbox (target, object_id, object_type, modified, tlp, payload, status, reason, attempts, "
            "updated) VALUES (?, ?, ?, ?, ?, '', 'refused', ?, 0, ?) ON CONFLICT (target, object_id) DO UPDATE SET "
            "object_type = excluded.object_type, modified = excluded.modified, tlp = excluded.tlp, payload = '', "
            "status = 'refused', reason = excluded.reason, attempts = 0, updated = excluded.updated",
            (target.name, window.object_id, window.object_type, window.modified, int(level), reason,
             now.timestamp()),
        )  # fmt: skip

    def follow_destination(self, target: str, destination: str, now: datetime) -> int:
        """Queue every published object of a target again when the target now posts somewhere else.

        A new server or collection has none of what the old one received, including our Identity and the
        TLP markings that each Sighting references. Returns how many rows were queued again.
        """
        key = f"sharing_destination:{target}"
        previous = self.store.get_meta(key)
        if previous == destination:
            return 0
        self.store.db.execute("BEGIN IMMEDIATE")
        try:
            moved = 0
            if previous is not None:
                moved = self.store.db.execute(
                    "UPDATE outbox SET status = 'pending', attempts = 0, reason = ?, updated = ? "
                    "WHERE target = ? AND status = 'published'",
                    ("queued again: the target's server or collection changed", now.timestamp(), target),
                ).rowcount
            self.store.set_meta(key, destination)
            self.store.db.execute("COMMIT")
        except BaseException:
            if self.store.db.in_transaction:
                self.store.db.execute("ROLLBACK")
            raise
        if moved:
            logger.info("Publish target %s now posts to another server or collection: %d published objects are "
                        "queued again.", target, moved)  # fmt: skip
        return moved

    def _recheck_policy(self, target: PublishTarget, now: datetime) -> None:
        """Queue refused rows again when the target's highest TLP changed since they were refused."""
        key = f"sharing_target:{target.name}"
        fingerprint = target.max_tlp.lower()
        if self.store.get_meta(key) == fingerprint:
            return
        refused = self.store.db.execute(
            "SELECT object_id, tlp FROM outbox WHERE target = ? AND status = 'refused' AND payload != ''",
            (target.name,),
        ).fetchall()
        self.store.db.execute("BEGIN IMMEDIATE")
        try:
            for object_id, tlp in refused:
                reason = refusal(Tlp(tlp), target)
                status = "refused" if reason else "pending"
                self.store.db.execute(
                    "UPDATE outbox SET status = ?, reason = ?, updated = ? WHERE target = ? AND object_id = ?",
                    (status, reason, now.timestamp(), target.name, object_id),
                )
            self.store.set_meta(key, fingerprint)
            self.store.db.execute("COMMIT")
        except BaseException:
            if self.store.db.in_transaction:
                self.store.db.execute("ROLLBACK")
            raise

    # -- sending ---------------------------------------------------------------------------------------

    def send(self, publisher: Publisher, now: datetime) -> PublishCounts:
        """Send every pending object (and failed ones with attempts left) to one target.

        Rows left in ``sending`` are reconciled first (see the module docstring), so an object the
        target already stores is not posted again.

        Raises:
            StixbridgeError: the publisher failed for the whole call (configuration, authentication,
                transport). A configuration error or a 401, 403 or 404 rejection proves the target
                stored nothing, so the objects of the call go back to ``pending``. After any other error
                they stay ``sending``, and the next send reconciles them. The row's reason contains the error.
        """
        counts = PublishCounts()
        target = publisher.name
        self._reconcile(publisher, counts, now)

        # ``tried`` sends each row at most once per call, so an object the target rejects waits for the next run.
        tried: set[str] = set()
        while True:
            batch = self._next_batch(target, tried)
            if not batch:
                break
            counts.queued += len(batch)
            object_ids = [object_id for object_id, _, _ in batch]
            tried.update(object_ids)
            self._mark(target, object_ids, "sending", None, now)
            objects = [json.loads(payload) for _, _, payload in batch]
            try:
                result = publisher.publish(objects)
            except BaseException as exc:
                if _nothing_stored(exc):
                    self._mark(target, object_ids, "pending", f"not sent: {exc}", now)
                else:
                    self._mark(target, object_ids, "sending", _unknown_reason(str(exc) or type(exc).__name__), now)
                raise
            self._record(target, batch, result, counts, now)

        if counts.queued:
            logger.info(
                "Publish target %s: %d objects sent, %d published, %d failed, %d unknown.",
                target, counts.queued, counts.published, counts.failed, counts.unknown,
            )  # fmt: skip
        return counts

    def _reconcile(self, publisher: Publisher, counts: PublishCounts, now: datetime) -> None:
        """Settle rows left in ``sending``: published when the target stores their version, else pending."""
        target = publisher.name
        rows = self.store.db.execute(
            "SELECT object_id, modified FROM outbox WHERE target = ? AND status = 'sending' ORDER BY object_id",
            (target,),
        ).fetchall()
        if not rows:
            return

        stored = self._stored_versions(publisher, [object_id for object_id, _ in rows])
        if stored is None:
            resend_reason = "sent again: an earlier send was interrupted and the target could not be checked"
            self._mark(target, [object_id for object_id, _ in rows], "pending", resend_reason, now)
            counts.resent += len(rows)
            return

        confirmed = [object_id for object_id, version in rows if _stores(stored.get(object_id), version)]
        resent = [object_id for object_id, version in rows if not _stores(stored.get(object_id), version)]
        self.store.db.execute("BEGIN IMMEDIATE")
        try:
            for object_id in confirmed:
                self._set(target, object_id, "published", CONFIRMED_REASON, now)
            for object_id in resent:
                self._set(target, object_id, "pending", "sent again: an earlier send was interrupted and the "
                                                        "target does not store this version", now)  # fmt: skip
            self.store.db.execute("COMMIT")
        except BaseException:
            if self.store.db.in_transaction:
                self.store.db.execute("ROLLBACK")
            raise
        counts.confirmed += len(confirmed)
        counts.resent += len(resent)
        logger.info(
            "Publish target %s: read back %d objects of an interrupted send: %d already stored (marked "
            "published, not sent again), %d sent again.",
            target, len(rows), len(confirmed), len(resent),
        )  # fmt: skip

    def _stored_versions(self, publisher: Publisher, object_ids: list[str]) -> dict[str, set[str]] | None:
        """Ask the publisher which versions its target stores; return None when it cannot tell."""
        if not isinstance(publisher, VersionReader):
            logger.warning(
                "Publish target %s: %d objects of an interrupted send may already be stored there, but this "
                "publisher cannot read its target back; sending them again (TAXII treats a repeat of the same "
                "id and version as a no-op).",
                publisher.name, len(object_ids),
            )  # fmt: skip
            return None

        stored: dict[str, set[str]] = {}
        try:
            for chunk in iter_chunks(object_ids, SEND_BATCH):
                stored.update(publisher.stored_versions(chunk))
        except StixbridgeError as exc:
            logger.warning(
                "Publish target %s: reading back %d objects of an interrupted send failed: %s; sending them "
                "again (TAXII treats a repeat of the same id and version as a no-op).",
                publisher.name, len(object_ids), exc,
            )  # fmt: skip
            return None
        return stored

    def _next_batch(self, target: str, tried: set[str]) -> list[tuple[str, str, str]]:
        rows = self.store.db.execute(
            "SELECT object_id, object_type, modified, payload FROM outbox WHERE target = ? AND "
            "(status = 'pending' OR (status = 'failed' AND attempts < ?)) ORDER BY object_id",
            (target, self.settings.max_attempts),
        ).fetchall()
        rows = [row for row in rows if row[0] not in tried]
        rows.sort(key=lambda r: (_TYPE_ORDER.get(r[1], 2), r[0]))
        return [(object_id, modified, payload) for object_id, _, modified, payload in rows[:SEND_BATCH]]

    def _record(
        self, target: str, batch: list[tuple[str, str, str]], result: OutcomeList, counts: PublishCounts, now: datetime
    ) -> None:
        outcomes: dict[str, Any] = {}
        for outcome in result.outcomes:
            outcomes.setdefault(outcome.object_id, outcome)
        self.store.db.execute("BEGIN IMMEDIATE")
        try:
            for object_id, _version, _payload in batch:
                outcome = outcomes.get(object_id)
                object_type = object_id.split("--", 1)[0]
                if outcome is None:
                    self._fail(target, object_id, "the publisher reported no outcome for this object", now)
                    counts.failed += 1
                elif outcome.state == "success":
                    self._set(target, object_id, "published", outcome.message or None, now)
                    counts.published += 1
                    counts.by_type[object_type] = counts.by_type.get(object_type, 0) + 1
                elif outcome.state == "unknown":
                    self._set(target, object_id, "sending", _unknown_reason(outcome.message), now)
                    counts.unknown += 1
                elif outcome.state == "pending":
                    reason = "accepted; the server is still processing it"
                    if outcome.message:
                        reason += f": {outcome.message}"
                    self._set(target, object_id, "published", reason, now)
                    counts.published += 1
                    counts.pending_remote += 1
                    counts.by_type[object_type] = counts.by_type.get(object_type, 0) + 1
                else:
                    self._fail(target, object_id, outcome.message or "rejected by the target", now)
                    counts.failed += 1
            self.store.db.execute("COMMIT")
        except BaseException:
            if self.store.db.in_transaction:
                self.store.db.execute("ROLLBACK")
            raise

    def _set(self, target: str, object_id: str, status: str, reason: str | None, now: datetime) -> None:
        self.store.db.execute(
            "UPDATE outbox SET status = ?, reason = ?, updated = ? WHERE target = ? AND object_id = ?",
            (status, reason, now.timestamp(), target, object_id),
        )

    def _fail(self, target: str, object_id: str, reason: str, now: datetime) -> None:
        self.store.db.execute(
            "UPDATE outbox SET status = 'failed', reason = ?, attempts = attempts + 1, updated = ? "
            "WHERE target = ? AND object_id = ?",
            (reason, now.timestamp(), target, object_id),
        )

    def _mark(self, target: str, object_ids: list[str], status: str, reason: str | None, now: datetime) -> None:
        self.store.db.execute("BEGIN IMMEDIATE")
        try:
            self.store.db.executemany(
                "UPDATE outbox SET status = ?, reason = ?, updated = ? WHERE target = ? AND object_id = ?",
                [(status, reason, now.timestamp(), target, object_id) for object_id in object_ids],
            )
            self.store.db.execute("COMMIT")
        except BaseException:
            if self.store.db.in_transaction:
                self.store.db.execute("ROLLBACK")
            raise

    # -- reading for people ----------------------------------------------------------------------------

    def rows(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Return outbox rows, newest change first, optionally of one status."""
        sql = "SELECT target, object_id, object_type, modified, tlp, status, reason, attempts, updated FROM outbox"
        params: list[Any] = []
        if status:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY updated DESC, object_id LIMIT ?"
        params.append(limit)
        names = ("target", "object_id", "type", "version", "tlp", "status", "reason", "attempts", "updated")
        result = []
        for row in self.store.db.execute(sql, params):
            item = dict(zip(names, row, strict=True))
            item["tlp"] = None if item["tlp"] is None else Tlp(item["tlp"]).label
            item["updated"] = format_timestamp(from_epoch(item["updated"]))
            result.append(item)
        return result

    def summary(self) -> dict[str, Any]:
        """Return counts for ``stixbridge status``: records by status, outbox rows by target and status."""
        records = dict(self.store.db.execute("SELECT status, COUNT(*) FROM sightings GROUP BY status").fetchall())
        outbox: dict[str, dict[str, int]] = {}
        for target, status, number in self.store.db.execute(
            "SELECT target, status, COUNT(*) FROM outbox GROUP BY target, status ORDER BY target, status"
        ):
            outbox.setdefault(target, {})[status] = number
        windows = dict(
            self.store.db.execute("SELECT object_type, COUNT(*) FROM sighting_windows GROUP BY object_type").fetchall()
        )
        return {"records": records, "aggregates": windows, "outbox": outbox}
