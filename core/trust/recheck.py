"""Applying a changed source policy to the indicators already stored from that source.

A fingerprint of each source's policy (``min_confidence``, ``atom_types`` and ``max_tlp``) is kept in the
store's ``meta`` table. When it differs from the configured policy, every stored indicator of that source
is checked again, as if it had just been pulled:

- an indicator the policy no longer takes moves to state ``withheld`` with the policy's reason, so its
  atoms leave every sink on the next push, but the object stays in the store;
- a withheld indicator the policy takes again moves back to ``live`` (or ``pending``), with the atoms
  that the policy and the guards now accept.

TLP and confidence come from the stored columns, because they were worked out with the marking
definitions of the original feed, which a re-read of the single object does not have. The atoms come
from the stored object text, so atom types dropped by an earlier ``atom_types`` come back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import InvalidInputError
from ..model import AtomLink, IndicatorRecord, Provenance, QuarantineItem
from ..normalise import FeedContext, normalise_indicator
from ..store.sqlite import SqliteStore
from .guard import MATCHABLE_ROLES, GuardVerdict, TrustGuard, policy_reason
from .policy import SourcePolicy

logger = logging.getLogger(__name__)

_CHUNK = 500
"""Indicators read and updated per transaction."""


@dataclass
class PolicyRecheck:
    """Counts of the changes that re-checking one source's stored indicators made."""

    source: str
    checked: int = 0
    withheld: dict[str, int] = field(default_factory=dict)
    """Indicators that left the live set, by the policy's reason."""
    restored: int = 0
    """Withheld indicators that the policy takes again."""
    quarantined: int = 0
    """Guard quarantine rows written for atoms that came back and hit a guard."""
    not_rechecked: int = 0
    """Indicators without readable object text: only their TLP and confidence were checked."""

    def summary(self) -> dict[str, Any]:
        """Return the counts for the run summary."""
        return {
            "checked": self.checked,
            "withheld": sum(self.withheld.values()),
            "withheld_by_reason": dict(self.withheld),
            "restored": self.restored,
            "quarantined": self.quarantined,
        }


def policy_fingerprint(policy: SourcePolicy) -> str:
    """Return the text that changes whenever the policy would take a different set of indicators."""
    return json.dumps(
        {
            "atom_types": sorted(policy.atom_types),
            "max_tlp": int(policy.tlp_ceiling),
            "min_confidence": policy.min_confidence,
        },
        sort_keys=True,
    )


def recheck_source(store: SqliteStore, guard: TrustGuard, source: str, now: datetime) -> PolicyRecheck | None:
    """Check a source's stored indicators again when its policy changed, or return None when it did not.

    The fingerprint is stored after the last indicator, so a run that stops half-way checks them all again
    next time. Checking an indicator twice changes nothing the second time.
    """
    key = f"trust_policy:{source}"
    fingerprint = policy_fingerprint(guard.settings.policy(source))
    previous = store.get_meta(key)
    if previous == fingerprint:
        return None

    result = PolicyRecheck(source)
    last_rowid = 0
    while True:
        chunk = store.db.execute(
            "SELECT rowid, id, state, tlp, confidence, valid_from, collection, created_by, raw "
            "FROM indicators WHERE source = ? AND rowid > ? ORDER BY rowid LIMIT ?",
            (source, last_rowid, _CHUNK),
        ).fetchall()
        if not chunk:
            break
        last_rowid = chunk[-1][0]
        _recheck_chunk(store, guard, source, chunk, now, result)

    guard.take_skipped(source)
    store.set_meta(key, fingerprint)
    _log(result, first=previous is None)
    return result


def _recheck_chunk(
    store: SqliteStore,
    guard: TrustGuard,
    source: str,
    chunk: list[tuple[Any, ...]],
    now: datetime,
    result: PolicyRecheck,
) -> None:
    quarantined: list[QuarantineItem] = []
    store.db.execute("BEGIN IMMEDIATE")
    try:
        for _rowid, indicator_id, state, tlp, confidence, valid_from, collection, created_by, raw in chunk:
            result.checked += 1
            provenance = Provenance(source, collection or "", created_by or "")
            record = _record_from_text(indicator_id, raw, provenance, tlp, confidence)
            if record is None:
                result.not_rechecked += 1
                reason = policy_reason(tlp, confidence, guard.settings.policy(source))
                atoms = None
            else:
                reason, atoms = _judge(guard, record, quarantined)

            if reason is not None:
                if state != "withheld":
                    result.withheld[reason] = result.withheld.get(reason, 0) + 1
                _withhold(store, indicator_id, reason)
                continue
            if state == "withheld":
                result.restored += 1
            live_state = "pending" if valid_from is not None and valid_from > now.timestamp() else "live"
            _admit(store, indicator_id, live_state, atoms, None if record is None else record.labels)
        store.db.execute("COMMIT")
    except BaseException:
        if store.db.in_transaction:
            store.db.execute("ROLLBACK")
        raise

    if quarantined:
        store.add_quarantine(quarantined, now)
        result.quarantined += len(quarantined)


def _record_from_text(
    indicator_id: str, raw: str | None, provenance: Provenance, tlp: int | None, confidence: int | None
) -> IndicatorRecord | None:
    if not raw:
        return None
    try:
        record = normalise_indicator(json.loads(raw), provenance, FeedContext())
    except (ValueError, KeyError, TypeError, InvalidInputError) as exc:
        logger.warning(
            "Stored text of indicator %s from source %s is invalid, so only its TLP and confidence are checked: %s",
            indicator_id, provenance.source, exc,
        )  # fmt: skip
        return None
    record.tlp = tlp
    record.confidence = confidence
    return record


def _judge(
    guard: TrustGuard, record: IndicatorRecord, quarantined: list[QuarantineItem]
) -> tuple[str | None, list[AtomLink]]:
    """Run the guard on a re-read stored indicator and return the withhold reason and the atoms to keep."""
    verdict = guard(record)
    if record.withheld is not None:
        return record.withheld, record.atoms
    if isinstance(verdict, GuardVerdict):
        quarantined.extend(verdict.quarantined)
        return None, record.atoms
    if verdict is not None:
        # Every matchable atom hit a guard: the indicator stays stored without them until a release.
        quarantined.append(verdict)
        return None, [a for a in record.atoms if a.role not in MATCHABLE_ROLES]
    return None, record.atoms


def _withhold(store: SqliteStore, indicator_id: str, reason: str) -> None:
    store.db.execute(
        "UPDATE indicators SET state = 'withheld', withheld_reason = ? WHERE id = ?", (reason, indicator_id)
    )
    _mark_dirty(store, indicator_id)


def _admit(
    store: SqliteStore,
    indicator_id: str,
    state: str,
    atoms: list[AtomLink] | None,
    labels: tuple[str, ...] | None,
) -> None:
    """Make an indicator live or pending, replacing its atoms when they differ from the stored ones."""
    changed_state = (
        store.db.execute(
            "UPDATE indicators SET state = ?, withheld_reason = NULL WHERE id = ? AND state = 'withheld'",
            (state, indicator_id),
        ).rowcount
        > 0
    )
    stored = {
        (t, v, r)
        for t, v, r in store.db.execute(
            "SELECT type, value, role FROM indicator_atoms WHERE indicator_id = ?", (indicator_id,)
        )
    }
    accepted = None if atoms is None else {(a.type, a.value, a.role) for a in atoms}
    if atoms is not None and accepted != stored:
        _mark_dirty(store, indicator_id)
        store.db.execute("DELETE FROM indicator_atoms WHERE indicator_id = ?", (indicator_id,))
        store.db.executemany(
            "INSERT OR REPLACE INTO indicator_atoms (type, value, indicator_id, display, role, context) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (a.type, a.value, indicator_id, a.display, a.role, json.dumps(a.context) if a.context else None)
                for a in atoms
            ],
        )
        if labels is not None:
            store.db.execute("UPDATE indicators SET labels = ? WHERE id = ?", (json.dumps(labels), indicator_id))
        changed_state = True
    if changed_state:
        _mark_dirty(store, indicator_id)


def _mark_dirty(store: SqliteStore, indicator_id: str) -> None:
    store.db.execute(
        "INSERT OR IGNORE INTO dirty_atoms (type, value) "
        "SELECT type, value FROM indicator_atoms WHERE indicator_id = ?",
        (indicator_id,),
    )


def _log(result: PolicyRecheck, first: bool) -> None:
    left = sum(result.withheld.values())
    if first and not left and not result.restored:
        return
    reasons = "; ".join(f"{count} because {reason}" for reason, count in sorted(result.withheld.items()))
    logger.info(
        "Trust policy of source %s changed: %d stored indicators checked, %d withheld%s, %d restored.",
        result.source, result.checked, left, f" ({reasons})" if reasons else "", result.restored,
    )  # fmt: skip
    if result.not_rechecked:
        logger.warning(
            "%d stored indicators of source %s have no readable object text, so only their TLP and confidence "
            "were checked; atoms that atom_types dropped come back only with a new pull of the object.",
            result.not_rechecked, result.source,
        )  # fmt: skip

