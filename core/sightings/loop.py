"""The sightings loop of a run: read every reader, aggregate, then publish to every target."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError
from ..refetch import refetch
from .aggregate import aggregate_pending
from .base import SightingsReader
from .outbox import Identity, Outbox, Publisher
from .retention import drop_old, prune

if TYPE_CHECKING:
    from ..engine import Engine, RunSummary

logger = logging.getLogger(__name__)


def outbox_of(engine: Engine) -> Outbox:
    """Return the outbox of the engine's store with the configured sharing policy and identity."""
    identity = engine.config.identity
    return Outbox(engine.store, engine.config.sharing, Identity(identity.id, identity.name, identity.identity_class))


def read_sightings(engine: Engine, summary: RunSummary, errors: tuple[type[BaseException], ...]) -> None:
    """Read every enabled ``[[sightings]]`` reader into the store, then aggregate what is pending."""
    store = engine.store
    report: dict[str, Any] = {"read": {}}
    for entry in engine.config.sightings:
        if not entry.enabled:
            continue
        reader = entry.connector
        assert isinstance(reader, SightingsReader)
        cursor_name = f"sightings:{entry.name}"
        new = total = too_old = 0
        try:
            for records, cursor in reader.read(store.get_cursor(cursor_name)):
                total += len(records)
                kept = drop_old(records, engine.config.sharing, engine.clock())
                too_old += len(records) - len(kept)
                new += store.add_sightings(kept, cursor_name, cursor)
        except errors as exc:
            logger.error("Sightings reader %s failed: %s", entry.name, exc)
            summary.failures.append(f"sightings {entry.name}: {exc}")
        report["read"][entry.name] = {"records": total, "new": new}
        logger.info("Sightings reader %s: %d records, %d new.", entry.name, total, new)
        if too_old:
            report["read"][entry.name]["too_old"] = too_old
            logger.warning(
                "Sightings reader %s: dropped %d records seen in windows older than keep_days = %d in [sharing].",
                entry.name, too_old, engine.config.sharing.keep_days,
            )  # fmt: skip

    counts = aggregate_pending(
        store,
        engine.config.sharing,
        engine.config.identity.id,
        engine.clock(),
        refetch=lambda object_id: refetch(engine, object_id),
    )
    report.update(asdict(counts))
    summary.extra["sightings"] = report


def publish(
    engine: Engine, summary: RunSummary, errors: tuple[type[BaseException], ...], only: str | None = None
) -> None:
    """Delete sightings older than the retention, then build and send the outbox of every enabled target."""
    if only and only not in {entry.name for entry in engine.config.publish}:
        names = ", ".join(sorted(entry.name for entry in engine.config.publish)) or "none"
        raise NotFoundError(f"no publish target named {only!r}; configured [[publish]] entries: {names}")
    outbox = outbox_of(engine)
    report: dict[str, Any] = {}
    summary.extra["pruned"] = asdict(prune(engine.store, engine.config.sharing, engine.clock()))
    for entry in engine.config.publish:
        if only and entry.name != only:
            continue
        if not entry.enabled:
            if only:
                logger.warning("Publish target %s is disabled (enabled = false in its [[publish]] entry).", only)
                report[entry.name] = {"off": "enabled = false in its [[publish]] entry"}
            continue
        publisher: Publisher = entry.connector  # type: ignore[assignment]
        if getattr(entry.connector.settings, "enabled", True) is False:
            # The TAXII publisher is off until its own ``enabled = true``; that is a choice, not a failure.
            logger.info("Publish target %s is off until enabled = true is set in its [[publish]] entry.", entry.name)
            report[entry.name] = {"off": "set enabled = true in its [[publish]] entry to publish"}
            continue
        try:
            outbox.follow_destination(entry.name, _destination(entry.connector.settings), engine.clock())
            queued = outbox.enqueue(entry.name, engine.clock())
            counts = outbox.send(publisher, engine.clock())
        except errors as exc:
            logger.error("Publish target %s failed: %s", entry.name, exc)
            summary.failures.append(f"publish {entry.name}: {exc}")
            continue
        report[entry.name] = {"built": queued, **asdict(counts)}
        if counts.failed:
            summary.failures.append(f"publish {entry.name}: {counts.failed} objects failed and will be retried")
        if counts.unknown:
            summary.failures.append(
                f"publish {entry.name}: {counts.unknown} objects may not have reached the target; the next run "
                "reads them back and sends those it does not store"
            )
    summary.extra["published"] = report


def _destination(settings: Any) -> str:
    """Return where a publisher posts (server, API root, collection), to notice when that changes."""
    parts = [str(getattr(settings, name, "") or "") for name in ("url", "api_root", "collection")]
    return " ".join(parts)
