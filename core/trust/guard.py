"""The guard every indicator passes before it is stored: source policy, warninglists and stixbridge's rules.

For one indicator the guard returns one of:

- ``None``: store it as it is (it may have gained ``warninglist:<name>`` labels).
- a :class:`GuardHold`: quarantine the whole indicator, because every matchable atom was held.
- a :class:`GuardVerdict`: store what is left after single atoms were held (each with its own
  quarantine row), or skip the indicator because the source's policy does not take it. A skipped
  version of a stored indicator is kept with ``withheld`` set to the policy's reason.

Held atoms stay in quarantine until an analyst releases them (``stixbridge quarantine release``) or the
source's policy allows the list or rule that matched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import MissingExtraError
from ..model import AtomLink, IndicatorRecord, QuarantineItem
from ..tlp import Tlp
from .policy import SourcePolicy, TrustSettings
from .rules import Rules, is_documentation
from .warninglists import WarningListIndex, public_suffixes

logger = logging.getLogger(__name__)

MATCHABLE_ROLES = ("exact", "partial")
GUARD_REASON_CODE = "guard"

Atom = tuple[str, str]


@dataclass(frozen=True, slots=True)
class GuardHold(QuarantineItem):
    """A quarantine item written by the guard: which atoms it held and which lists or rules matched."""

    held_atoms: tuple[Atom, ...] = ()
    matched: tuple[str, ...] = ()


@dataclass
class GuardVerdict:
    """The engine's instruction for an indicator the guard changed or skipped."""

    keep: bool
    """True: store the (changed) indicator. False: drop it."""
    quarantined: list[QuarantineItem] = field(default_factory=list)
    """Quarantine rows to write, one per held atom."""


@dataclass(frozen=True)
class Finding:
    """One reason an atom must not be blocked."""

    name: str
    """Rule or warninglist name."""
    group: str
    """Warninglist group, or ``rule``."""
    action: str
    reason: str


@dataclass
class GuardState:
    """Releases and holds the guard reads from the store before a pull."""

    released: set[tuple[str, Atom]] = field(default_factory=set)
    """(indicator id, atom) pairs an analyst released."""
    held: set[tuple[str, tuple[Atom, ...]]] = field(default_factory=set)
    """(indicator id, held atoms) of quarantine rows still held, so a repeat adds no second row."""


class TrustGuard:
    """Applies source policies, warninglists and rules to indicators (the callable in ``Engine.guards``).

    Args:
        settings: the ``[trust]`` table.
        is_stored: returns True when an indicator id is stored (live, pending or withheld). A skipped
            version of a stored indicator is stored withheld, so the older version leaves the sinks.
    """

    def __init__(self, settings: TrustSettings, is_stored: Callable[[str], bool] = lambda _id: False) -> None:
        self.settings = settings
        self.is_stored = is_stored
        self.state = GuardState()
        self.skipped: dict[str, dict[str, int]] = {}
        """Indicators skipped by policy, by source and reason, since the counts were last taken."""
        self._actions = settings.actions()
        self._index: WarningListIndex | None = None
        self._index_loaded = False
        self.warninglists_missing: str | None = None
        self._rules = Rules(settings.min_ipv4_prefix, settings.min_ipv6_prefix, self._suffixes)

    # -- loading ---------------------------------------------------------------------------------------

    def _warninglists(self) -> WarningListIndex | None:
        if not self._index_loaded:
            self._index_loaded = True
            groups = [group for group, action in self._actions.items() if action != "off"]
            try:
                self._index = WarningListIndex(groups)
            except MissingExtraError as exc:
                self.warninglists_missing = str(exc)
                logger.warning("MISP warninglists are not checked: %s", exc)
        return self._index

    def _suffixes(self) -> frozenset[str]:
        if self._warninglists() is None:
            return frozenset()
        return public_suffixes()

    # -- the check -------------------------------------------------------------------------------------

    def __call__(self, record: IndicatorRecord) -> QuarantineItem | GuardVerdict | None:
        if record.revoked:
            # A revocation only takes intel away, so it always passes.
            return None
        policy = self.settings.policy(record.provenance.source)
        reason = policy_reason(record.tlp, record.confidence, policy)
        if reason is not None:
            return self._skip(record, reason)

        if policy.atom_types:
            accepted = set(policy.atom_types)
            had_matchable = any(a.role in MATCHABLE_ROLES for a in record.atoms)
            record.atoms = [a for a in record.atoms if a.type in accepted or a.role not in MATCHABLE_ROLES]
            if had_matchable and not any(a.role in MATCHABLE_ROLES for a in record.atoms):
                return self._skip(record, "atom types not taken from this source")

        held: list[tuple[AtomLink, list[Finding]]] = []
        labels: list[str] = []
        for atom in record.atoms:
            if atom.role not in MATCHABLE_ROLES or (record.id, (atom.type, atom.value)) in self.state.released:
                continue
            findings = self.findings(atom.type, atom.value, policy)
            labels.extend(f"warninglist:{f.name}" for f in findings if f.action == "label")
            blocking = [f for f in findings if f.action == "quarantine"]
            if blocking:
                held.append((atom, blocking))

        if labels:
            record.labels = tuple(dict.fromkeys([*record.labels, *labels]))
        if not held:
            return None
        return self._hold(record, held)

    def findings(self, atom_type: str, value: str, policy: SourcePolicy) -> list[Finding]:
        """Return every rule and warninglist the atom is on that the source's policy does not allow.

        A source that allows ``documentation`` passes documentation values without any other check,
        because such values can never match real traffic whatever lists also name them.
        """
        allowed = set(policy.allow)
        if "documentation" in allowed and is_documentation(atom_type, value):
            return []

        findings = [
            Finding(hit.name, "rule", "quarantine", hit.reason)
            for hit in self._rules.check(atom_type, value)
            if hit.name not in allowed
        ]
        index = self._warninglists()
        if index is not None:
            for hit in index.match(atom_type, value):
                action = self._actions.get(hit.group, "off")
                if action == "off" or hit.name in allowed or hit.group in allowed:
                    continue
                findings.append(
                    Finding(hit.name, hit.group, action, f"on MISP warninglist {hit.name} ({hit.description})")
                )
        return findings

    # -- outcomes --------------------------------------------------------------------------------------

    def _skip(self, record: IndicatorRecord, reason: str) -> GuardVerdict:
        counts = self.skipped.setdefault(record.provenance.source, {})
        counts[reason] = counts.get(reason, 0) + 1
        if not self.is_stored(record.id):
            return GuardVerdict(keep=False)
        # A stored older version must stop reaching the sinks. This version is stored withheld, so it
        # comes back if the policy is relaxed.
        record.withheld = reason
        return GuardVerdict(keep=True)

    def _hold(
        self, record: IndicatorRecord, held: list[tuple[AtomLink, list[Finding]]]
    ) -> QuarantineItem | GuardVerdict:
        raw = json.dumps(record.raw, separators=(",", ":")) if record.raw is not None else None
        matchable = [a for a in record.atoms if a.role in MATCHABLE_ROLES]
        hint = (
            "to accept it, release its row (see 'stixbridge quarantine list', then 'stixbridge quarantine "
            f"release QID'), or add the list or rule to 'allow' in the [[trust.sources]] entry of "
            f"{record.provenance.source}"
        )

        if len(held) == len(matchable):
            atoms = tuple((a.type, a.value) for a, _ in held)
            reason = "every atom hit a guard: " + "; ".join(_describe(a, f) for a, f in held) + f"; {hint}"
            item = self._item(record, atoms, [f for _, fs in held for f in fs], reason, raw)
            logger.warning("Quarantined indicator %s from %s: %s", record.id, record.provenance.source, reason)
            return item if item is not None else GuardVerdict(keep=False)

        held_keys = {(a.type, a.value) for a, _ in held}
        record.atoms = [a for a in record.atoms if (a.type, a.value) not in held_keys]
        items: list[QuarantineItem] = []
        for atom, findings in held:
            reason = f"{_describe(atom, findings)}; the rest of the indicator was stored; {hint}"
            logger.warning("Held atom %s %s of indicator %s: %s", atom.type, atom.value, record.id, reason)
            item = self._item(record, ((atom.type, atom.value),), findings, reason, raw)
            if item is not None:
                items.append(item)
        return GuardVerdict(keep=True, quarantined=items)

    def _item(
        self, record: IndicatorRecord, atoms: tuple[Atom, ...], findings: list[Finding], reason: str, raw: str | None
    ) -> GuardHold | None:
        if (record.id, atoms) in self.state.held:
            return None
        self.state.held.add((record.id, atoms))
        matched = tuple(dict.fromkeys(f.name for f in findings))
        return GuardHold(
            provenance=record.provenance,
            reason=reason,
            object_id=record.id,
            raw_text=raw,
            reason_code=GUARD_REASON_CODE,
            held_atoms=atoms,
            matched=matched,
        )

    def take_skipped(self, source: str) -> dict[str, int]:
        """Return and reset the counts of indicators a source's policy skipped."""
        return self.skipped.pop(source, {})


def policy_reason(tlp: int | None, confidence: int | None, policy: SourcePolicy) -> str | None:
    """Return why a source's policy does not take an indicator with this TLP and confidence, or None."""
    if tlp is not None and tlp > policy.tlp_ceiling:
        return f"TLP:{Tlp(tlp).label} is above max_tlp {policy.max_tlp}"
    if confidence is not None and confidence < policy.min_confidence:
        return f"confidence below min_confidence {policy.min_confidence}"
    return None


def _describe(atom: AtomLink, findings: list[Finding]) -> str:
    return f"{atom.type} {atom.value}: " + ", ".join(f"{f.reason} [{f.name}]" for f in findings)
