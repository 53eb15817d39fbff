"""The ``[trust]`` table: guards, blast-radius limits, and one policy per source in ``[[trust.sources]]``.

Example::

    [trust]
    warninglists = { cloud = "quarantine" }   # merged over the defaults below
    max_change_share = 0.5

    [[trust.sources]]
    name = "alliance"          # a [[sources]] entry
    min_confidence = 30
    max_tlp = "amber"
    weight = 0.8
    allow = ["documentation"]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..atoms import ATOM_TYPES
from ..errors import ConfigError
from ..settings import LineFinder, Settings, build_settings, check_names_configured, tlp_setting
from ..tlp import Tlp
from .rules import RULE_NAMES
from .warninglists import WARNINGLIST_GROUPS

GuardAction = Literal["quarantine", "label", "off"]
GUARD_ACTIONS = ("quarantine", "label", "off")

# What a hit on each warninglist group does unless [trust].warninglists says otherwise. Cloud ranges only
# label the atom: a single rented cloud server is a common and precise C2 indicator, while a CDN or public
# resolver address is shared by thousands of unrelated sites.
DEFAULT_WARNINGLIST_ACTIONS: dict[str, str] = {
    "top-sites": "quarantine",
    "public-dns": "quarantine",
    "cdn": "quarantine",
    "cloud": "label",
    "reserved-ranges": "quarantine",
    "benign-hashes": "quarantine",
}


@dataclass
class SourcePolicy(Settings):
    """One ``[[trust.sources]]`` entry: how far a source is trusted."""

    name: str = ""
    """The ``[[sources]]`` entry this policy is for."""
    min_confidence: int = 0
    """Indicators with a stated confidence below this (0-100) are skipped; unknown confidence passes."""
    atom_types: list[str] = field(default_factory=list)
    """Atom types taken from this source; empty means every type."""
    max_tlp: str = "red"
    """Highest TLP taken from this source (clear, green, amber, amber+strict, red); higher ones are skipped."""
    weight: float = 1.0
    """Multiplies the source's confidence in the row weight sinks receive: 0 adds nothing, 1 keeps it."""
    allow: list[str] = field(default_factory=list)
    """Guard rules, warninglist groups or single lists this source may override, e.g. ``documentation``."""
    max_change_share: float | None = None
    """Overrides ``[trust].max_change_share`` for this source."""
    max_retired_atoms: int | None = None
    """Overrides ``[trust].max_retired_atoms`` for this source."""

    def validate(self, where: str) -> None:
        if not self.name:
            raise ConfigError(f"{where}.name is required: the name of a [[sources]] entry", key=f"{where}.name")
        if not 0 <= self.min_confidence <= 100:
            raise ConfigError(
                f"{where}.min_confidence must be 0 to 100, got {self.min_confidence}", key=f"{where}.min_confidence"
            )
        unknown = sorted(set(self.atom_types) - ATOM_TYPES)
        if unknown:
            raise ConfigError(
                f"{where}.atom_types has unknown type {unknown[0]!r}; valid types: {', '.join(sorted(ATOM_TYPES))}",
                key=f"{where}.atom_types",
            )
        tlp_setting(self.max_tlp, f"{where}.max_tlp")
        if not 0 <= self.weight <= 1:
            raise ConfigError(f"{where}.weight must be 0 to 1, got {self.weight}", key=f"{where}.weight")
        names = allow_names()
        for item in self.allow:
            if item not in names:
                raise ConfigError(
                    f"{where}.allow has unknown name {item!r}; valid names: {', '.join(sorted(names))}",
                    key=f"{where}.allow",
                )
        _check_limits(self.max_change_share, self.max_retired_atoms, where)

    @property
    def tlp_ceiling(self) -> Tlp:
        """Return ``max_tlp`` as a level."""
        return Tlp.parse(self.max_tlp)


@dataclass
class TrustSettings(Settings):
    """The ``[trust]`` table."""

    warninglists: dict[str, str] = field(default_factory=dict)
    """Action per warninglist group: quarantine, label or off; merged over the defaults."""
    min_ipv4_prefix: int = 16
    """IPv4 networks broader than this prefix length (a /15 or wider) are quarantined."""
    min_ipv6_prefix: int = 32
    """IPv6 networks broader than this prefix length are quarantined."""
    max_change_share: float = 0.5
    """A pull that would add or remove more than this share of a source's live indicators is held."""
    max_retired_atoms: int = 5000
    """A pull that would retire more atoms than this is held."""
    review_min_live: int = 500
    """Sources with fewer live indicators are never held for their share of change (a first pull is all new)."""
    sources: list[SourcePolicy] = field(default_factory=list)

    def validate(self, where: str) -> None:
        for group, action in self.warninglists.items():
            if group not in WARNINGLIST_GROUPS:
                raise ConfigError(
                    f"{where}.warninglists has unknown group {group!r}; groups: {', '.join(WARNINGLIST_GROUPS)}",
                    key=f"{where}.warninglists.{group}",
                )
            if action not in GUARD_ACTIONS:
                raise ConfigError(
                    f"{where}.warninglists.{group} must be one of {', '.join(GUARD_ACTIONS)}, got {action!r}",
                    key=f"{where}.warninglists.{group}",
                )
        if not 0 <= self.min_ipv4_prefix <= 32 or not 0 <= self.min_ipv6_prefix <= 128:
            raise ConfigError(
                f"{where}.min_ipv4_prefix must be 0 to 32 and min_ipv6_prefix 0 to 128, got "
                f"{self.min_ipv4_prefix} and {self.min_ipv6_prefix}",
                key=f"{where}.min_ipv4_prefix",
            )
        _check_limits(self.max_change_share, self.max_retired_atoms, where)
        if self.review_min_live < 0:
            raise ConfigError(f"{where}.review_min_live must be 0 or more", key=f"{where}.review_min_live")
        seen: set[str] = set()
        for policy in self.sources:
            if policy.name in seen:
                raise ConfigError(
                    f"{where}.sources has two policies for source {policy.name!r}", key=f"{where}.sources"
                )
            seen.add(policy.name)

    def actions(self) -> dict[str, str]:
        """Return the action of every warninglist group, defaults merged with the configured ones."""
        return {**DEFAULT_WARNINGLIST_ACTIONS, **self.warninglists}

    def policy(self, source: str) -> SourcePolicy:
        """Return the policy of a source; a source without one gets the defaults of :class:`SourcePolicy`."""
        for policy in self.sources:
            if policy.name == source:
                return policy
        return SourcePolicy(name=source)

    def change_limits(self, source: str) -> tuple[float, int]:
        """Return (max_change_share, max_retired_atoms) for a source."""
        policy = self.policy(source)
        share = self.max_change_share if policy.max_change_share is None else policy.max_change_share
        retired = self.max_retired_atoms if policy.max_retired_atoms is None else policy.max_retired_atoms
        return share, retired


def allow_names() -> set[str]:
    """Return every name ``allow`` accepts: rules, warninglist groups and single lists."""
    names = set(RULE_NAMES) | set(WARNINGLIST_GROUPS)
    for lists in WARNINGLIST_GROUPS.values():
        names.update(lists)
    return names


def build_trust_settings(
    data: Any, source_names: Iterable[str], lines: LineFinder | None = None, where: str = "trust"
) -> TrustSettings:
    """Build the ``[trust]`` table and check that every policy names a configured source.

    Raises:
        ConfigError: naming the key of the first problem.
    """
    settings = build_settings(TrustSettings, data, where, lines)
    check_names_configured([entry.name for entry in settings.sources], source_names, f"{where}.sources", "source")
    return settings



def _check_limits(share: float | None, retired: int | None, where: str) -> None:
    if share is not None and not 0 < share <= 1:
        raise ConfigError(f"{where}.max_change_share must be above 0 and at most 1, got {share}",
                          key=f"{where}.max_change_share")  # fmt: skip
    if retired is not None and retired < 0:
        raise ConfigError(f"{where}.max_retired_atoms must be 0 or more, got {retired}",
                          key=f"{where}.max_retired_atoms")  # fmt: skip
