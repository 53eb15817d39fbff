"""Releasing what the trust guard held, so it reaches the store at once and passes the guard from then on."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from ..errors import InvalidInputError
from ..model import Provenance, RawItem
from ..normalise import FeedContext, normalise_indicator

if TYPE_CHECKING:
    from ..engine import Engine

logger = logging.getLogger(__name__)


def release_guard_hold(engine: Engine, qid: int) -> str:
    """Let a guard hold through now and return a sentence saying what happened.

    The quarantine row must already be marked released, so the guard lets its atoms pass. A whole held
    indicator is stored from the text kept in quarantine. Single held atoms are added to the stored
    indicator when that version is still the stored one; later versions bring them in any case.
    """
    store = engine.store
    row = store.db.execute(
        "SELECT source, collection, object_id, raw, held_atoms FROM quarantine WHERE qid = ?", (qid,)
    ).fetchone()
    if row is None or not row[3]:
        return f"released quarantine row {qid}; no object text was kept, so it passes on the next pull that brings it"
    source, collection, object_id, raw, held_atoms = row
    try:
        obj = json.loads(raw)
    except ValueError:
        return f"released quarantine row {qid}; its kept text is not JSON, so it passes on the next pull that brings it"

    provenance = Provenance(source, collection or "", obj.get("created_by_ref", "") if isinstance(obj, dict) else "")
    if store.db.execute("SELECT 1 FROM indicators WHERE id = ?", (object_id,)).fetchone() is None:
        counts = engine.ingest_items(source, [RawItem(obj, provenance, raw_text=raw)])
        stored = counts["new"] + counts["updated"] + counts["revived"]
        if stored:
            return f"released {object_id}; it is stored now and reaches the sinks on the next push"
        return f"released {object_id}; the store already holds a newer version or it expired, so nothing changed"

    try:
        record = normalise_indicator(obj, provenance, FeedContext())
    except InvalidInputError as exc:
        return f"released quarantine row {qid}; its kept text no longer normalises ({exc})"
    wanted = {(str(t), str(v)) for t, v in json.loads(held_atoms or "[]")}
    stored_modified = store.db.execute("SELECT modified FROM indicators WHERE id = ?", (object_id,)).fetchone()[0]
    if stored_modified != record.modified.strftime("%Y-%m-%dT%H:%M:%S.%fZ"):
        return f"released {object_id}; a newer version is stored, and the released atoms pass when they come again"
    links = [link for link in record.atoms if (link.type, link.value) in wanted]
    added = store.add_indicator_atoms(object_id, links)
    logger.info("Released %d held atoms of %s into the store.", added, object_id)
    state = store.db.execute("SELECT state FROM indicators WHERE id = ?", (object_id,)).fetchone()[0]
    if state == "withheld":
        return (
            f"released {added} atom(s) of {object_id}; the indicator is withheld by the trust policy of source "
            f"{source}, so they reach the sinks once that policy takes it again"
        )
    return f"released {added} atom(s) of {object_id}; they reach the sinks on the next push"
