"""Trust state in the store: released guard holds, revoked atoms and indicators withheld by policy."""

from __future__ import annotations

import json
from typing import Any

from ..model import IndicatorRecord
from ..store.sqlite import SqliteStore
from .guard import GUARD_REASON_CODE, GuardState


def load_guard_state(store: SqliteStore) -> GuardState:
    """Read the released and still-held guard quarantine rows."""
    state = GuardState()
    for object_id, held_atoms, status in store.db.execute(
        "SELECT object_id, held_atoms, status FROM quarantine WHERE reason_code = ? AND held_atoms IS NOT NULL",
        (GUARD_REASON_CODE,),
    ):
        atoms = tuple((str(t), str(v)) for t, v in json.loads(held_atoms))
        if status == "released":
            state.released.update((object_id, atom) for atom in atoms)
        elif status == "held":
            state.held.add((object_id, atoms))
    return state


def is_stored(store: SqliteStore, indicator_id: str) -> bool:
    """Return True when the indicator is stored: live, pending or withheld by its source's policy."""
    return store.db.execute("SELECT 1 FROM indicators WHERE id = ?", (indicator_id,)).fetchone() is not None


def withheld(store: SqliteStore) -> dict[str, dict[str, int]]:
    """Return how many stored indicators each source's trust policy holds back, by reason."""
    counts: dict[str, dict[str, int]] = {}
    for source, reason, count in store.db.execute(
        "SELECT source, withheld_reason, COUNT(*) FROM indicators WHERE state = 'withheld' "
        "GROUP BY source, withheld_reason ORDER BY source, withheld_reason"
    ):
        counts.setdefault(source, {})[reason or "unknown"] = count
    return counts


def record_revocations(store: SqliteStore, records: list[IndicatorRecord], now: float) -> None:
    """Remember the atoms of revoked indicators, to show where one source revokes what another asserts."""
    rows = [
        (atom.type, atom.value, record.id, record.provenance.source, record.provenance.created_by, now)
        for record in records
        if record.revoked
        for atom in record.atoms
        if atom.role == "exact"
    ]
    if not rows:
        return
    store.db.execute("BEGIN IMMEDIATE")
    try:
        store.db.executemany(
            "INSERT OR REPLACE INTO revoked_atoms (type, value, indicator_id, source, created_by, revoked_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        store.db.execute("COMMIT")
    except BaseException:
        if store.db.in_transaction:
            store.db.execute("ROLLBACK")
        raise


def conflicts(store: SqliteStore, limit: int = 20) -> dict[str, Any]:
    """Return atoms that one reporter revoked while another reporter's live indicator still asserts them.

    A reporter is the producer identity (``created_by_ref``), or the source when the object names none.
    """
    sql = (
        "SELECT r.type, r.value, r.indicator_id, r.source, r.created_by, i.id, i.source, i.created_by "
        "FROM revoked_atoms r "
        "JOIN indicator_atoms a ON a.type = r.type AND a.value = r.value AND a.role = 'exact' "
        "JOIN indicators i ON i.id = a.indicator_id AND i.state = 'live' "
        "WHERE COALESCE(NULLIF(i.created_by, ''), i.source) != COALESCE(NULLIF(r.created_by, ''), r.source) "
        "ORDER BY r.revoked_at DESC"
    )
    examples: list[Any] = []
    total = 0
    for row in store.db.execute(sql):
        total += 1
        if len(examples) < limit:
            examples.append(
                {
                    "atom": f"{row[0]} {row[1]}",
                    "revoked": row[2],
                    "revoked_by": row[4] or row[3],
                    "still_asserted_by": row[7] or row[6],
                    "live_indicator": row[5],
                }
            )
    return {"count": total, "examples": examples}
