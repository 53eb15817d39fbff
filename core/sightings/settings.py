"""The ``[sharing]`` table: how sightings become STIX objects and what each publish target may receive.

Example::

    [sharing]
    window_minutes = 60        # one Sighting per indicator and hour
    tlp = "green"              # our own marking; a sighting carries this or its indicator's, whichever is higher
    extend_days = 30           # a sighting keeps its indicator live at least this long locally
    keep_days = 90             # windows, their hits and published outbox rows are deleted after this

    [[sharing.targets]]
    name = "alliance-taxii"    # a [[publish]] entry
    max_tlp = "amber"
    observed_fields = ["src"]  # context shared as observed-data; none by default
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..settings import LineFinder, Settings, build_settings, check_names_configured, tlp_setting
from ..tlp import Tlp

# Context fields that may be shared as observed-data, and the cyber-observable each becomes. Anything else
# a reader collects stays local, because it cannot be told apart from internal detail.
OBSERVED_FIELDS: dict[str, str] = {
    "src": "address",
    "src_ip": "address",
    "dest": "address",
    "dest_ip": "address",
    "ip": "address",
    "host": "hostname",
    "hostname": "hostname",
    "user": "user-account",
    "email": "email-addr",
    "url": "url",
}

# Levels that never leave, whatever a target accepts: AMBER+STRICT is for our organisation only and RED for
# the people in the conversation.
NEVER_SHARED = (Tlp.AMBER_STRICT, Tlp.RED)


@dataclass
class PublishTarget(Settings):
    """One ``[[sharing.targets]]`` entry: the policy of one ``[[publish]]`` entry."""

    name: str = ""
    """The ``[[publish]]`` entry this policy is for."""
    max_tlp: str = "green"
    """Highest TLP this target may receive: clear, green or amber (amber+strict and red never leave)."""
    observed_fields: list[str] = field(default_factory=list)
    """Context fields shared as STIX observed-data with each sighting; empty shares none."""

    def validate(self, where: str) -> None:
        if not self.name:
            raise ConfigError(f"{where}.name is required: the name of a [[publish]] entry", key=f"{where}.name")
        level = tlp_setting(self.max_tlp, f"{where}.max_tlp")
        if level in NEVER_SHARED:
            raise ConfigError(
                f"{where}.max_tlp is {self.max_tlp!r}, but TLP:AMBER+STRICT and TLP:RED objects are never "
                "published; use clear, green or amber",
                key=f"{where}.max_tlp",
            )
        for name in self.observed_fields:
            if name not in OBSERVED_FIELDS:
                raise ConfigError(
                    f"{where}.observed_fields has unknown field {name!r}; fields that can be shared: "
                    f"{', '.join(sorted(OBSERVED_FIELDS))}",
                    key=f"{where}.observed_fields",
                )

    @property
    def tlp_ceiling(self) -> Tlp:
        """Return ``max_tlp`` as a level."""
        return Tlp.parse(self.max_tlp)


@dataclass
class SharingSettings(Settings):
    """The ``[sharing]`` table."""

    window_minutes: int = 60
    """Hits of one indicator within one window (counted from midnight UTC) become one Sighting."""
    tlp: str = "green"
    """The lowest TLP our published objects carry; an indicator's higher TLP wins."""
    extend_days: float = 30.0
    """A sighting keeps a live indicator whose expiry is a local lifetime live at least this long; 0: off."""
    refetch_expired: bool = True
    """A sighting of an expired indicator fetches it again from its source, which may have a newer version."""
    max_attempts: int = 5
    """Publishing an object the target rejected is tried this many times, then it stays failed."""
    keep_days: int = 90
    """Days a window is kept after it ends. Then it is deleted with its hits and settled outbox rows, and
    later hits in a window this old are dropped when read."""
    targets: list[PublishTarget] = field(default_factory=list)

    def validate(self, where: str) -> None:
        if not 1 <= self.window_minutes <= 10080:
            raise ConfigError(
                f"{where}.window_minutes must be 1 to 10080 (a week), got {self.window_minutes}",
                key=f"{where}.window_minutes",
            )
        if 1440 % self.window_minutes and self.window_minutes % 1440:
            raise ConfigError(
                f"{where}.window_minutes must divide a day or be a whole number of days, got {self.window_minutes}",
                key=f"{where}.window_minutes",
            )
        tlp_setting(self.tlp, f"{where}.tlp")
        if self.extend_days < 0:
            raise ConfigError(f"{where}.extend_days must be 0 or more, got {self.extend_days}",
                              key=f"{where}.extend_days")  # fmt: skip
        if self.max_attempts < 1:
            raise ConfigError(f"{where}.max_attempts must be at least 1, got {self.max_attempts}",
                              key=f"{where}.max_attempts")  # fmt: skip
        if self.keep_days < 1:
            raise ConfigError(f"{where}.keep_days must be at least 1 (days), got {self.keep_days}",
                              key=f"{where}.keep_days")  # fmt: skip
        names = [t.name for t in self.targets]
        if len(names) != len(set(names)):
            raise ConfigError(f"{where}.targets names one publish entry twice", key=f"{where}.targets")

    @property
    def policy_tlp(self) -> Tlp:
        """Return ``tlp`` as a level."""
        return Tlp.parse(self.tlp)

    def target(self, name: str) -> PublishTarget:
        """Return the policy of a publish entry; one without a policy gets the defaults."""
        for target in self.targets:
            if target.name == name:
                return target
        return PublishTarget(name=name)


def build_sharing_settings(
    data: Any, publish_names: Iterable[str], lines: LineFinder | None = None, where: str = "sharing"
) -> SharingSettings:
    """Build the ``[sharing]`` table and check that every target names a configured publish entry.

    Raises:
        ConfigError: naming the key of the first problem.
    """
    settings = build_settings(SharingSettings, data, where, lines)
    names = [target.name for target in settings.targets]
    check_names_configured(names, publish_names, f"{where}.targets", "publish entry")
    return settings

