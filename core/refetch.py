"""Fetching one indicator again by id from the source that sent it.

:func:`refetch` returns a result with a ``status`` instead of raising, because the sightings loop calls
it for every expired indicator a hit names and must go on after each. The command line turns the
status into an exit code (:data:`USAGE_STATUSES`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .identifiers import id_problem
from .model import Provenance
from .sources.base import Source

if TYPE_CHECKING:
    from .engine import Engine

logger = logging.getLogger(__name__)

FETCHED = "fetched"
"""The source served the request; ``found`` is False when it no longer has the object."""
INVALID_ID = "invalid-id"
UNKNOWN_ID = "unknown-id"
NO_SOURCE = "no-source"
"""The source that sent the indicator is no longer in the configuration."""
NOT_SUPPORTED = "not-supported"
"""The source cannot fetch by id (the ``file`` source reads whole files only)."""

USAGE_STATUSES = frozenset({INVALID_ID, UNKNOWN_ID, NO_SOURCE, NOT_SUPPORTED})
"""Statuses that no retry can change: the id or the configuration must change first."""


def refetch(engine: Engine, object_id: str) -> dict[str, Any]:
    """Fetch ``object_id`` again from its source and store what comes back.

    The expired index says which source and collection sent the object; an object still live is fetched
    from the source that last sent it. A newer version that is valid brings the indicator back to life; the
    same version stays expired.

    Returns:
        ``id``, ``status`` (one of the module constants), ``found`` (the source returned the object),
        ``reason`` when it was not found, and the ingest counts and indicator state when it was.

    Raises:
        StixbridgeError: the source failed while fetching (transport, authentication, rejection).
    """
    problem = id_problem(object_id)
    if problem is None and not object_id.startswith("indicator--"):
        problem = "it is not an indicator id, and only indicators are fetched again"
    if problem is not None:
        reason = f"{object_id!r} is not a valid indicator id: {problem}; give an id such as 'indicator--<UUID>'"
        return _not_found(object_id, INVALID_ID, reason)

    provenance = _provenance(engine, object_id)
    if provenance is None:
        reason = (
            f"{object_id} is neither live nor in the expired index; 'stixbridge status' shows what is stored, "
            "and a pull brings in new indicators"
        )
        return _not_found(object_id, UNKNOWN_ID, reason)

    try:
        source_entry = engine.config.source(provenance.source)
    except ConfigError as exc:
        return _not_found(object_id, NO_SOURCE, f"{object_id} came from a source that is not configured: {exc}")
    source = source_entry.connector
    assert isinstance(source, Source)

    try:
        items = source.fetch_by_id(object_id, provenance)
    except NotImplementedError as exc:
        reason = (
            f"{object_id} came from source {provenance.source}, which cannot fetch it again: {exc}; a newer "
            "version comes in when the source's next pull delivers it"
        )
        return _not_found(object_id, NOT_SUPPORTED, reason)
    logger.info("Fetched %s again from source %s (%s): %d versions.", object_id, provenance.source,
                provenance.collection, len(items))  # fmt: skip
    if not items:
        return _not_found(object_id, FETCHED, f"source {provenance.source} no longer has it")

    counts = engine.ingest_items(provenance.source, items)
    state = engine.store.indicator_state(object_id)
    return {"id": object_id, "status": FETCHED, "found": True, "fetched_versions": len(items), **counts,
            "state": state}  # fmt: skip


def _provenance(engine: Engine, object_id: str) -> Provenance | None:
    """Return where the indicator came from: its expired-index entry, else its live row, else None."""
    entry = engine.store.expired_entry(object_id)
    if entry is not None:
        return entry.provenance
    row = engine.store.db.execute(
        "SELECT source, collection, created_by FROM indicators WHERE id = ?", (object_id,)
    ).fetchone()
    if row is None:
        return None
    return Provenance(row[0], row[1] or "", row[2] or "")


def _not_found(object_id: str, status: str, reason: str) -> dict[str, Any]:
    return {"id": object_id, "status": status, "found": False, "reason": reason}
