"""The main job: pull from sources, expire, and push only what changed to every sink."""

from __future__ import annotations

import gc
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests

from .config import Config, ConnectorEntry
from .errors import NotFoundError, StixbridgeError
from .model import AtomRow, Changes, DeliveredRow, IndicatorRecord, Page, Provenance, QuarantineItem, RawItem
from .normalise import FeedContext, normalise_item
from .progress import Progress
from .secrets import mask_mapping
from .sinks.base import Sink
from .sources.base import Source
from .store.sqlite import SqliteStore
from .timeutil import utcnow
from .trust.guard import GuardVerdict
from .trust.layer import TrustLayer
from .trust.review import (
    APPLIED,
    REJECTED,
    close_review,
    drop_staging,
    last_cursor,
    review_source,
    set_status,
    staged_pages,
)

logger = logging.getLogger(__name__)

# Exit codes of the command line, listed in the README and in `stixbridge --help`.
EXIT_OK = 0
EXIT_QUARANTINED = 1
EXIT_CONFIG = 2
EXIT_FAILED = 3
EXIT_HELD = 4

# Errors a connector may let through that mean "this source or sink failed", not "stixbridge is broken".
CONNECTOR_ERRORS: tuple[type[BaseException], ...] = (StixbridgeError, OSError, requests.RequestException)


@dataclass
class RunSummary:
    """Counts of one command, printed at the end and turned into the exit code."""

    pulled: dict[str, dict[str, int]] = field(default_factory=dict)
    expired: int = 0
    activated: int = 0
    rows_changed: int = 0
    pushed: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    quarantined: int = 0
    held: list[str] = field(default_factory=list)
    """Pulls held for review by the blast-radius guard, each as a sentence naming the review id."""
    extra: dict[str, Any] = field(default_factory=dict)

    def exit_code(self) -> int:
        if self.failures:
            return EXIT_FAILED
        if self.held:
            return EXIT_HELD
        if self.quarantined:
            return EXIT_QUARANTINED
        return EXIT_OK


class Engine:
    """Runs the main job over a configuration and a store.

    Args:
        config: the validated configuration.
        store: the state store.
        clock: returns the current time; tests pass a fixed clock.
    """

    def __init__(self, config: Config, store: SqliteStore, clock: Callable[[], datetime] = utcnow) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.trust = TrustLayer(config.trust, store)
        self.guards: list[Callable[[IndicatorRecord], QuarantineItem | GuardVerdict | None]] = [self.trust.guard]
        """Checks run on every indicator before it is stored: a returned item quarantines it, a verdict
        says whether to keep the (changed) indicator and which single atoms to quarantine."""

    # -- pull ------------------------------------------------------------------------------------------

    def pull(self, summary: RunSummary, only: str | None = None) -> None:
        """Pull every enabled source (or only the named one) into the store."""
        # Normalising allocates many short-lived objects and no cycles worth collecting; fewer young
        # generation collections make a pull about 15% faster (benchmarks/core_normalise.py).
        previous = gc.get_threshold()
        gc.set_threshold(50_000, previous[1], previous[2])
        try:
            self._pull_all(summary, only)
        finally:
            gc.set_threshold(*previous)

    def _pull_all(self, summary: RunSummary, only: str | None) -> None:
        for entry in self.config.sources:
            if only and entry.name != only:
                continue
            # A stricter policy must also reach what is stored, even from a source that is not pulled now.
            changed = self.trust.recheck_policy(entry.name, self.clock())
            if changed is not None and changed.checked:
                summary.extra.setdefault("policy_changes", {})[entry.name] = changed.summary()
                summary.quarantined += changed.quarantined
            if not entry.enabled:
                continue
            try:
                counts = self._pull_source(entry)
            except CONNECTOR_ERRORS as exc:
                logger.error("Source %s failed: %s", entry.name, exc)
                summary.failures.append(f"source {entry.name}: {exc}")
                self.store.record_source_run(entry.name, self.clock(), None, str(exc))
                continue
            self.store.record_source_run(entry.name, self.clock(), counts["objects"], None)
            summary.pulled[entry.name] = counts
            summary.quarantined += counts["quarantined"]
            if counts["held_for_review"]:
                review_id = counts["held_for_review"]
                summary.held.append(
                    f"source {entry.name}: pull held for review {review_id}; see 'stixbridge review list'"
                )

    def _pull_source(self, entry: ConnectorEntry) -> dict[str, int]:
        source = entry.connector
        assert isinstance(source, Source)
        cursor_name = f"source:{entry.name}"
        cursor = self.store.get_cursor(cursor_name)
        feed = FeedContext()
        counts = _pull_counts()
        held = self.trust.open_review(entry.name)
        if held is not None:
            logger.warning("Source %s is not pulled: its last pull is held for review %d.", entry.name, held)
            counts["held_for_review"] = held
            return counts
        logger.info("Pulling source %s (%s).", entry.name, entry.kind)
        self.trust.begin_pull()
        progress = Progress(f"pull {entry.name}")

        judged = self.trust.needs_staging(entry.name)
        if judged or source.land_first:
            # The blast-radius guard counts the whole pull before anything of it is stored, and a source
            # that lands first is read to its end before the slower normalising starts.
            stager = self.trust.stager(entry.name, self.clock(), self.config.engine.max_object_bytes)
            landed = 0
            for page in coalesce_pages(source.pull(cursor), self.config.engine.transaction_objects):
                stager.stage(page)
                landed += len(page.items)
                progress.advance(len(page.items))
            stager.flush()
            logger.info("Source %s: %d objects landed in the store; normalising them.", entry.name, landed)
            if judged and self.trust.judge(stager):
                counts["held_for_review"] = stager.review_id
                progress.close()
                return counts
            if not judged:
                stager.finish(None)
            for page in staged_pages(self.store, stager.review_id):
                self._ingest_page(cursor_name, page.items, page.cursor, feed, counts)
            if judged:
                close_review(self.store, stager.review_id, APPLIED, self.clock())
            else:
                drop_staging(self.store, stager.review_id)
        else:
            for page in coalesce_pages(source.pull(cursor), self.config.engine.transaction_objects):
                self._ingest_page(cursor_name, page.items, page.cursor, feed, counts)
                progress.advance(len(page.items))

        progress.close()
        counts["skipped_by_policy"] = sum(self.trust.guard.take_skipped(entry.name).values())
        logger.info(
            "Source %s done: %d objects, %d indicators (%d new, %d updated, %d unchanged), %d quarantined.",
            entry.name, counts["objects"], counts["indicators"], counts["new"], counts["updated"],
            counts["unchanged"], counts["quarantined"],
        )  # fmt: skip
        return counts

    def _ingest_page(
        self, cursor_name: str, items: list[Any], cursor: str | None, feed: FeedContext, counts: dict[str, int]
    ) -> None:
        """Normalise, guard and store one page with its cursor, adding to ``counts``."""
        records, others, rejects = self._normalise_page(items, feed)
        stats = self.store.ingest_page(
            cursor_name, records, others, rejects, cursor, self.config.lifetimes(), self.clock()
        )
        self.trust.after_page(records, self.clock())
        counts["pages"] += 1
        counts["objects"] += len(items)
        counts["indicators"] += len(records)
        counts["new"] += stats.new
        counts["updated"] += stats.updated
        counts["unchanged"] += stats.unchanged
        counts["revoked"] += stats.revoked
        counts["revived"] += stats.revived
        counts["other"] += stats.other_objects
        counts["quarantined"] += stats.quarantined

    def _normalise_page(
        self, items: list[Any], feed: FeedContext
    ) -> tuple[list[IndicatorRecord], list[tuple[dict[str, Any], Provenance]], list[QuarantineItem]]:
        records: list[IndicatorRecord] = []
        others: list[tuple[dict[str, Any], Provenance]] = []
        rejects: list[QuarantineItem] = []
        for item in items:
            result = normalise_item(item, feed, max_object_bytes=self.config.engine.max_object_bytes)
            if result.quarantine is not None:
                logger.warning(
                    "Quarantined %s from %s: %s",
                    result.quarantine.object_id or "an object",
                    item.provenance.source,
                    result.quarantine.reason,
                )
                rejects.append(result.quarantine)
            elif result.indicator is not None:
                keep, held = self._guard(result.indicator)
                rejects.extend(held)
                if keep:
                    records.append(result.indicator)
            elif result.other is not None:
                others.append((result.other, item.provenance))
        return records, others, rejects

    def _guard(self, record: IndicatorRecord) -> tuple[bool, list[QuarantineItem]]:
        """Return whether to store the record, and the quarantine items the guards made."""
        held: list[QuarantineItem] = []
        for guard in self.guards:
            verdict = guard(record)
            if verdict is None:
                continue
            if isinstance(verdict, GuardVerdict):
                held.extend(verdict.quarantined)
                if not verdict.keep:
                    return False, held
                continue
            held.append(verdict)
            return False, held
        return True, held

    def ingest_items(self, source_name: str, items: list[Any]) -> dict[str, int]:
        """Normalise and store items fetched outside a pull (``refetch``); returns ingest counts."""
        self.trust.begin_pull()
        records, others, rejects = self._normalise_page(items, FeedContext())
        stats = self.store.ingest_page(
            f"refetch:{source_name}", records, others, rejects, None, self.config.lifetimes(), self.clock()
        )
        self.trust.after_page(records, self.clock())
        return {"new": stats.new, "updated": stats.updated, "unchanged": stats.unchanged,
                "revived": stats.revived, "quarantined": stats.quarantined}  # fmt: skip

    # -- expire ----------------------------------------------------------------------------------------

    def expire(self, summary: RunSummary) -> None:
        """Take expired indicators out of the live set, keeping a compact index row for each."""
        stats = self.store.expire(self.clock(), self.config.lifetimes())
        summary.expired += stats.expired
        summary.activated += stats.activated

    # -- push ------------------------------------------------------------------------------------------

    def push(self, summary: RunSummary, only: str | None = None) -> None:
        """Send every enabled sink what changed since its last successful push."""
        summary.rows_changed += self.store.refresh_rows(self.clock())
        generation = self.store.generation()
        for entry in self.config.sinks:
            if not entry.enabled or (only and entry.name != only):
                continue
            sink = entry.connector
            assert isinstance(sink, Sink)
            fingerprint = _fingerprint(entry)
            state = self.store.sink_state(entry.name)
            if state == (generation, fingerprint):
                logger.info("Sink %s is up to date; nothing to send.", entry.name)
                try:
                    sink.maintain()
                except CONNECTOR_ERRORS as exc:
                    logger.warning("Upkeep of sink %s failed and is tried again next run: %s", entry.name, exc)
                summary.pushed[entry.name] = {"written": 0, "deleted": 0, "failed": 0, "skipped": {}}
                continue
            try:
                counts = self._push_sink(entry.name, sink)
            except CONNECTOR_ERRORS as exc:
                logger.error("Sink %s failed: %s", entry.name, exc)
                summary.failures.append(f"sink {entry.name}: {exc}")
                self.store.set_sink_state(entry.name, -1, fingerprint, self.clock(), str(exc)[:500])
                continue
            summary.pushed[entry.name] = counts
            failed = counts["failed"]
            if failed:
                summary.failures.append(f"sink {entry.name}: {failed} rows failed and will be retried")
            next_generation = generation if not failed else -1
            error = f"{failed} rows failed" if failed else None
            self.store.set_sink_state(entry.name, next_generation, fingerprint, self.clock(), error)

    def _push_sink(self, name: str, sink: Sink) -> dict[str, Any]:
        counts: dict[str, Any] = {"written": 0, "deleted": 0, "failed": 0, "skipped": {}, "requests": 0, "bytes": 0}
        logger.info("Pushing to sink %s.", name)
        sink.begin()
        complete = False
        try:
            for changes in diff_rows(self.store.iter_rows(), self.store.iter_delivered(name), sink, sink.batch_size):
                result = sink.push(changes)
                by_key = {row.key: row for row in changes.upserts}
                written = [by_key[key] for key in result.written if key in by_key]
                self.store.record_delivery(name, written, result.deleted)
                counts["written"] += len(result.written)
                counts["deleted"] += len(result.deleted)
                counts["failed"] += len(result.failed)
                counts["requests"] += result.requests
                counts["bytes"] += result.bytes_sent
                for reason, number in result.skipped.items():
                    counts["skipped"][reason] = counts["skipped"].get(reason, 0) + number
                for key, reason in list(result.failed.items())[:10]:
                    logger.error("Sink %s could not write row %s: %s", name, key, reason)
            complete = True
        finally:
            sink.finish(complete)
        logger.info(
            "Sink %s done: %d written, %d deleted, %d failed.", name, counts["written"], counts["deleted"],
            counts["failed"],
        )  # fmt: skip
        return counts

    # -- sightings ------------------------------------------------------------------------------------

    def read_sightings(self, summary: RunSummary) -> None:
        """Read every sightings reader and count new hits into per-indicator windows."""
        from .sightings.loop import read_sightings

        read_sightings(self, summary, CONNECTOR_ERRORS)

    def publish(self, summary: RunSummary, only: str | None = None) -> None:
        """Send our Sightings and Opinions to every enabled publish target (or only the named one)."""
        from .sightings.loop import publish

        publish(self, summary, CONNECTOR_ERRORS, only)

    # -- reviews of held pulls --------------------------------------------------------------------------

    def approve_review(self, review_id: int) -> dict[str, int]:
        """Store a held pull's staged pages, in order and each with its cursor; return the ingest counts.

        Raises:
            StixbridgeError: there is no held review with that id.
        """
        source = self._held_review_source(review_id)
        set_status(self.store, review_id, "approving")
        self.trust.begin_pull()
        counts = _pull_counts()
        feed = FeedContext()
        for page in staged_pages(self.store, review_id):
            self._ingest_page(f"source:{source}", page.items, page.cursor, feed, counts)
        close_review(self.store, review_id, APPLIED, self.clock())
        logger.info("Review %d approved: the held pull of source %s is stored.", review_id, source)
        return counts

    def reject_review(self, review_id: int) -> str | None:
        """Drop a held pull and move its source's cursor past it; return the new cursor.

        Raises:
            StixbridgeError: there is no held review with that id.
        """
        source = self._held_review_source(review_id)
        cursor = last_cursor(self.store, review_id)
        if cursor is not None:
            self.store.db.execute(
                "INSERT INTO cursors (name, cursor, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                "SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                (f"source:{source}", cursor, self.clock().timestamp()),
            )
        close_review(self.store, review_id, REJECTED, self.clock())
        logger.warning("Review %d rejected: the held pull of source %s was dropped.", review_id, source)
        return cursor

    def _held_review_source(self, review_id: int) -> str:
        found = review_source(self.store, review_id)
        if found is None or found[1] not in ("held", "approving"):
            state = "does not exist" if found is None else f"is {found[1]}"
            raise NotFoundError(f"review {review_id} {state}; see 'stixbridge review list' for held pulls")
        return found[0]

    # -- the whole job ---------------------------------------------------------------------------------

    def sync(self) -> RunSummary:
        """Pull, expire, push, read sightings and publish, in that order."""
        summary = RunSummary()
        self.pull(summary)
        self.expire(summary)
        self.push(summary)
        self.read_sightings(summary)
        self.publish(summary)
        return summary


def _pull_counts() -> dict[str, int]:
    return {"objects": 0, "indicators": 0, "new": 0, "updated": 0, "unchanged": 0, "revoked": 0, "revived": 0,
            "other": 0, "quarantined": 0, "pages": 0, "skipped_by_policy": 0, "held_for_review": 0}  # fmt: skip


def _fingerprint(entry: ConnectorEntry) -> str:
    """Digest of a sink's kind and settings; a change forces a full comparison with what it holds."""
    settings = {k: repr(v) for k, v in vars(entry.connector.settings).items()}
    masked = mask_mapping(settings)
    assert isinstance(masked, dict)
    text = repr((entry.kind, sorted(masked.items())))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def diff_rows(
    rows: Iterator[AtomRow], delivered: Iterator[DeliveredRow], sink: Sink, batch_size: int
) -> Iterator[Changes]:
    """Merge the live rows and a sink's delivered rows (both ordered by key) into batches of changes.

    A live row the sink does not accept counts as absent, so it is deleted if it was delivered before.
    """
    changes = Changes()
    row = next(rows, None)
    held = next(delivered, None)
    while row is not None or held is not None:
        if row is not None and not sink.accepts(row):
            row = next(rows, None)
            continue
        if held is None or (row is not None and row.key < held.key):
            assert row is not None
            changes.upserts.append(row)
            row = next(rows, None)
        elif row is None or held.key < row.key:
            changes.deletes.append(held)
            held = next(delivered, None)
        else:
            if row.digest != held.digest:
                changes.upserts.append(row)
            row = next(rows, None)
            held = next(delivered, None)
        if len(changes.upserts) + len(changes.deletes) >= batch_size:
            yield changes
            changes = Changes()
    if changes:
        yield changes


def coalesce_pages(pages: Iterator[Page], min_items: int) -> Iterator[Page]:
    """Join consecutive pages until they hold ``min_items`` objects, so one transaction stores several.

    The joined page carries the last cursor any of its pages set, and is complete when its last page is.
    Storing it in one transaction keeps the rule that a cursor is stored with everything before it. A
    crash loses at most the pages of one joined page, and the source sends them again. Commits cost tens of
    milliseconds each, so a TAXII pull with 500-object pages spent a third of its time committing.
    """
    items: list[RawItem] = []
    bodies: list[bytes] | None = []
    cursor: str | None = None
    complete = False
    for page in pages:
        items.extend(page.items)
        if bodies is not None and page.items:
            # The joined page keeps its bodies only when each of its pages came with them.
            bodies = bodies + list(page.bodies) if page.bodies else None
        if page.cursor is not None:
            cursor = page.cursor
        complete = page.complete
        if len(items) >= min_items or complete:
            yield Page(items, cursor=cursor, complete=complete, bodies=tuple(bodies or ()))
            items, bodies, cursor, complete = [], [], None, False
    if items or cursor is not None:
        yield Page(items, cursor=cursor, complete=complete, bodies=tuple(bodies or ()))

