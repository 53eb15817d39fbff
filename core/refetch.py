"""Fetching one indicator again by id from the source that sent it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .model import Provenance
from .sources.base import Source

if TYPE_CHECKING:
    from .engine import Engine

logger = logging.getLogger(__name__)


def refetch(engine: Engine, object_id: str) -> dict[str, Any]:
    """Fetch ``object_id`` again from its source and store what comes back.

    The expired index says which source and collection sent the object; an object still live is fetched
    from the source that last sent it. A newer version that is valid brings the indicator back to life; the
    same version stays expired.
    """
    store = engine.store
    entry = store.expired_entry(object_id)
    if entry is not None:
        provenance = entry.provenance
    else:
        row = store.db.execute(
            "SELECT source, collection, created_by FROM indicators WHERE id = ?", (object_id,)
        ).fetchone()
        if row is None:
            return {"id": object_id, "found": False, "reason": "the id is neither live nor in the expired index"}
        provenance = Provenance(row[0], row[1] or "", row[2] or "")

    try:
        source_entry = engine.config.source(provenance.source)
    except ConfigError as exc:
        return {"id": object_id, "found": False, "reason": str(exc)}
    source = source_entry.connector
    assert isinstance(source, Source)

    logger.info("Fetching %s again from source %s (%s).", object_id, provenance.source, provenance.collection)
    try:
        items = source.fetch_by_id(object_id, provenance)
    except NotImplementedError as exc:
        return {"id": object_id, "found": False, "reason": str(exc)}
    if not items:
        return {"id": object_id, "found": False, "reason": f"source {provenance.source} no longer has it"}

    counts = engine.ingest_items(provenance.source, items)
    state = store.indicator_state(object_id)
    return {"id": object_id, "found": True, "fetched_versions": len(items), **counts, "state": state}
