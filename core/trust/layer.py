"""The trust layer as the engine sees it: one object that owns the guard, the reviews and the weights."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from ..errors import MissingExtraError
from ..model import IndicatorRecord
from ..store.sqlite import SqliteStore
from . import recheck, review, state
from .guard import TrustGuard
from .policy import TrustSettings
from .warninglists import lists_folder

logger = logging.getLogger(__name__)


class TrustLayer:
    """Applies the ``[trust]`` table to one store.

    Args:
        settings: the ``[trust]`` table.
        store: the state store; the source weights are handed to it at once.
    """

    def __init__(self, settings: TrustSettings, store: SqliteStore) -> None:
        self.settings = settings
        self.store = store
        self.guard = TrustGuard(settings, is_stored=lambda indicator_id: state.is_stored(store, indicator_id))
        store.set_source_weights({policy.name: policy.weight for policy in settings.sources})

    def begin_pull(self) -> None:
        """Read releases and holds made since the last pull (an analyst may have released something)."""
        self.guard.state = state.load_guard_state(self.store)

    def recheck_policy(self, source: str, now: datetime) -> recheck.PolicyRecheck | None:
        """Apply a changed policy of a source to its stored indicators; return None when it did not change."""
        self.begin_pull()
        return recheck.recheck_source(self.store, self.guard, source, now)

    def after_page(self, records: list[IndicatorRecord], now: datetime) -> None:
        """Remember what a stored page revoked, for the conflicts in ``stixbridge status``."""
        state.record_revocations(self.store, records, now.timestamp())

    # -- blast radius ----------------------------------------------------------------------------------

    def open_review(self, source: str) -> int | None:
        """Return the held review that blocks pulls of a source, or None."""
        return review.open_review(self.store, source)

    def needs_staging(self, source: str) -> bool:
        """Return True when a pull of the source must be staged and counted before it is stored.

        Small sources are never held for their share of change, but a pull can still retire too many
        atoms of a source of any size that has live atoms.
        """
        return review.live_count(self.store, source) > 0

    def stager(self, source: str, now: datetime, max_object_bytes: int) -> review.Stager:
        """Start staging a pull of a source."""
        return review.Stager(self.store, source, now, max_object_bytes)

    def judge(self, stager: review.Stager) -> str | None:
        """Decide a staged pull: return why it is held, or None; the review row records the outcome."""
        stager.count()
        share, retired = self.settings.change_limits(stager.source)
        reason = stager.change.over_limits(share, retired, self.settings.review_min_live)
        stager.finish(reason)
        if reason:
            logger.warning(
                "Pull of source %s is held for review %d: %s. Approve it with 'stixbridge review approve %d' "
                "or drop it with 'stixbridge review reject %d'.",
                stager.source, stager.review_id, reason, stager.review_id, stager.review_id,
            )  # fmt: skip
        return reason

    # -- status ----------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Return the trust section of ``stixbridge status``."""
        return {
            "held_reviews": review.review_rows(self.store, review.OPEN_STATUSES),
            "conflicts": state.conflicts(self.store),
            "withheld_by_policy": state.withheld(self.store),
            "source_weights": {p.name: p.weight for p in self.settings.sources if p.weight != 1.0},
            "warninglists": _warninglists_state(),
        }


def _warninglists_state() -> str:
    try:
        lists_folder()
    except MissingExtraError as exc:
        return f"not checked: {exc}"
    return "checked"
