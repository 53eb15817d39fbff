"""Releasing quarantined objects after an analyst has looked at them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import NotFoundError

if TYPE_CHECKING:
    from .engine import Engine


def release(engine: Engine, qid: int) -> str:
    """Mark a quarantined object released and return a sentence saying what happens next.

    An indicator or atom that the trust guard held is let through at once: it is stored now (see
    :func:`stixbridge.trust.release.release_guard_hold`) and the guard lets it pass in later pulls. An
    object that was invalid stays invalid: releasing it only clears it from ``quarantine list``.
    """
    store = engine.store
    row = store.db.execute("SELECT object_id, reason_code, status FROM quarantine WHERE qid = ?", (qid,)).fetchone()
    if row is None:
        raise NotFoundError(f"no quarantined object with id {qid}; see 'stixbridge quarantine list'")
    object_id, code, status = row
    if status == "released":
        return f"quarantine row {qid} ({object_id or 'no id'}) was already released"
    store.mark_quarantine(qid, "released", engine.clock())
    if code == "guard":
        from .trust.release import release_guard_hold

        return release_guard_hold(engine, qid)
    return (
        f"released quarantine row {qid} ({object_id or 'no id'}); the object is invalid (reason code {code!r}), "
        "so it stays out of the store and only leaves 'stixbridge quarantine list'. A corrected version from "
        "the source is stored as usual."
    )
