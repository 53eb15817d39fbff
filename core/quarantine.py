"""Releasing quarantined objects after an analyst has looked at them."""

from __future__ import annotations

import json
from datetime import datetime

from .store.sqlite import SqliteStore


def release(store: SqliteStore, qid: int, now: datetime) -> str:
    """Mark a quarantined object released and return a sentence saying what happens next.

    A released indicator that a guard stopped is let through on the next pull that brings it (the guard
    skips ids with a released quarantine row). An object that was invalid stays invalid: releasing it only
    clears it from ``quarantine list``.
    """
    rows = store.db.execute("SELECT object_id, reason_code, raw FROM quarantine WHERE qid = ?", (qid,)).fetchone()
    if rows is None:
        return f"no quarantined object with id {qid}; see 'stixbridge quarantine list'"
    object_id, code, raw = rows
    store.mark_quarantine(qid, "released", now)
    if code == "guard" and raw:
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if isinstance(obj, dict):
            return f"released {object_id}; it will be stored on the next pull that brings it"
    return f"released quarantine row {qid} ({object_id or 'no id'}); the object was {code} and stays out of the store"
