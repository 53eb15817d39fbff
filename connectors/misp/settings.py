"""Settings of the MISP connectors: the connection they share and what each role adds.

Every table is checked before any network call: unknown keys and wrong types by
:func:`stixbridge.settings.build_settings`, and the rules between keys by ``validate``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from stixbridge.errors import ConfigError
from stixbridge.secrets import Secret
from stixbridge.settings import Settings

DEFAULT_TIMEOUT = 60.0
"""Seconds to wait for one MISP response. Reads of a few thousand attributes take seconds on a busy MISP."""

MAX_TIMEOUT = 900.0
DEFAULT_CHUNK_SIZE = 4000
"""Attributes per write request. MISP users report 503 errors on single requests of many thousands and
split theirs at about 4,000."""

DEFAULT_MAX_ATTRIBUTES_PER_EVENT = 8000
"""MISP slows down on very large events (minutes to open one of 350,000), so events stay bounded."""

TLP_NAMES = ("clear", "green", "amber", "amber+strict", "red")

# MISP distribution levels: 0 your organisation only, 1 this community, 2 connected communities,
# 3 all communities, 4 a sharing group, 5 inherit from the event (attributes only).
EVENT_DISTRIBUTIONS = range(0, 5)
ATTRIBUTE_DISTRIBUTIONS = range(0, 6)


@dataclass
class MispConnectionSettings(Settings):
    """How to reach one MISP instance; shared by the sink, the source and the sightings reader."""

    url: str = ""
    """Base URL of the MISP instance, for example ``https://misp.example.org``."""
    key: Secret | None = None
    """The MISP API key (auth key), written as ``{ env = "VARIABLE" }``."""
    verify_tls: bool = True
    """Check the server certificate. Turning it off logs a warning on every run."""
    ca_bundle: str = ""
    """A PEM file of CA certificates to trust instead of the system ones; relative to the configuration file."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds to wait for each response (connecting waits at most 10 seconds)."""
    max_retries: int = 3
    """How many times a request that timed out or got 429 or 5xx is sent again before the run fails."""
    retry_backoff: float = 2.0
    """Seconds before the first retry; doubled after each further one."""

    def validate(self, where: str) -> None:
        self.validate_connection(where, required=True)

    def validate_connection(self, where: str, *, required: bool) -> None:
        """Check the connection keys; ``required`` is False for a source that may read files instead."""
        if self.url or required:
            _check_url(self.url, f"{where}.url")
            if self.key is None:
                raise ConfigError(
                    f"{where}.key is required: the MISP API key, written as {{ env = \"MISP_KEY\" }}",
                    key=f"{where}.key",
                )
        if not 0 < self.timeout <= MAX_TIMEOUT:
            raise ConfigError(
                f"{where}.timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds, got {self.timeout}",
                key=f"{where}.timeout",
            )
        if not 0 <= self.max_retries <= 10:
            raise ConfigError(
                f"{where}.max_retries must be from 0 to 10, got {self.max_retries}", key=f"{where}.max_retries"
            )
        if not 0 <= self.retry_backoff <= 300:
            raise ConfigError(
                f"{where}.retry_backoff must be from 0 to 300 seconds, got {self.retry_backoff}",
                key=f"{where}.retry_backoff",
            )
        if self.ca_bundle and not self.verify_tls:
            raise ConfigError(
                f"{where}.ca_bundle is set but verify_tls is false; remove one of them", key=f"{where}.ca_bundle"
            )


def _check_url(url: str, key: str) -> None:
    if not url:
        raise ConfigError(f"{key} is required: the base URL of the MISP instance", key=key)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{key} must be an http or https URL such as 'https://misp.example.org', got {url!r}", key=key
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"{key} must not have a query or fragment, got {url!r}", key=key)


def resolve_path(text: str, base_dir: Path) -> Path:
    """Return ``text`` as a path, relative paths taken from the configuration file's folder."""
    path = Path(text).expanduser()
    return path if path.is_absolute() else base_dir / path


@dataclass
class MispSinkSettings(MispConnectionSettings):
    """Settings of ``kind = "misp"`` under ``[[sinks]]``."""

    distribution: int = 0
    """Distribution of the events stixbridge creates: 0 your organisation only (default) up to 4 a sharing group."""
    sharing_group: int | None = None
    """Numeric id of the sharing group; required when ``distribution`` or a TLP mapping is 4."""
    distribution_by_tlp: dict[str, int] = field(default_factory=lambda: {"red": 0, "amber+strict": 0})
    """Attribute distribution per TLP level; levels not listed inherit the event's distribution (5)."""
    default_tlp: Literal["clear", "green", "amber", "amber+strict", "red"] = "red"
    """TLP tag for rows whose feed gave no TLP. Red is the safe default, because widening later is possible
    and recalling shared data is not."""
    publish: bool = False
    """Publish the events written in a run, which lets MISP sync them to other instances."""
    max_attributes_per_event: int = DEFAULT_MAX_ATTRIBUTES_PER_EVENT
    """A new event is started when one reaches this many attributes."""
    chunk_size: int = DEFAULT_CHUNK_SIZE
    """Attributes per write request."""
    expiry_action: Literal["disable", "delete"] = "disable"
    """Action on an attribute whose atom expired: ``disable`` turns ``to_ids`` off and adds an expiration
    sighting, ``delete`` soft-deletes it."""
    event_info: str = "stixbridge: {source} / {collection}"
    """Title of each event; ``{source}``, ``{collection}`` and ``{part}`` are filled in."""
    event_tags: list[str] = field(default_factory=list)
    """Extra tags put on every event stixbridge creates, for example for MISP sync filter rules."""
    uuid_seed: str = ""
    """Seed of the event and attribute UUIDs. Empty: our identity id. Set it once and never change it,
    because other UUIDs make MISP hold every attribute twice."""

    def validate(self, where: str) -> None:
        super().validate(where)
        if self.distribution not in EVENT_DISTRIBUTIONS:
            raise ConfigError(
                f"{where}.distribution must be 0 (your organisation), 1 (this community), 2 (connected "
                f"communities), 3 (all communities) or 4 (sharing group), got {self.distribution}",
                key=f"{where}.distribution",
            )
        for level, value in self.distribution_by_tlp.items():
            if level not in TLP_NAMES:
                raise ConfigError(
                    f"{where}.distribution_by_tlp has unknown TLP level {level!r}; use {', '.join(TLP_NAMES)}",
                    key=f"{where}.distribution_by_tlp",
                )
            if value not in ATTRIBUTE_DISTRIBUTIONS:
                raise ConfigError(
                    f"{where}.distribution_by_tlp.{level} must be from 0 to 5, got {value}",
                    key=f"{where}.distribution_by_tlp",
                )
        uses_group = self.distribution == 4 or 4 in self.distribution_by_tlp.values()
        if uses_group and self.sharing_group is None:
            raise ConfigError(
                f"{where}.sharing_group is required when a distribution is 4 (sharing group); give its numeric id",
                key=f"{where}.sharing_group",
            )
        if not 1 <= self.max_attributes_per_event <= 100_000:
            raise ConfigError(
                f"{where}.max_attributes_per_event must be from 1 to 100000, got {self.max_attributes_per_event}",
                key=f"{where}.max_attributes_per_event",
            )
        if not 1 <= self.chunk_size <= 10_000:
            raise ConfigError(
                f"{where}.chunk_size must be from 1 to 10000, got {self.chunk_size}", key=f"{where}.chunk_size"
            )
        try:
            self.event_info.format(source="s", collection="c", part=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"{where}.event_info {self.event_info!r} is not a valid template ({exc}); "
                "use only {source}, {collection} and {part}",
                key=f"{where}.event_info",
            ) from exc


@dataclass
class MispSourceSettings(MispConnectionSettings):
    """Settings of ``kind = "misp"`` under ``[[sources]]``: a MISP instance (``url``) or event files (``path``)."""

    path: str = ""
    """A MISP event JSON file or a folder of them, read instead of a server."""
    patterns: list[str] = field(default_factory=lambda: ["*.json"])
    """Glob patterns of event files in a folder (searched recursively)."""
    page_size: int = 1000
    """Attributes per restSearch request."""
    published_only: bool | None = None
    """Read only attributes of published events. Default: true for a server, false for files, because
    exported event files rarely keep the flag."""
    to_ids_only: bool = True
    """Read only attributes flagged for detection (``to_ids``)."""
    since: str = ""
    """On the first pull, read attributes changed at or after this RFC 3339 time; empty reads all."""
    max_pages: int = 100_000
    """Stop a pull after this many restSearch requests, as a guard against a server that never ends a list."""

    def validate(self, where: str) -> None:
        if bool(self.url) == bool(self.path):
            raise ConfigError(
                f"{where} needs exactly one of 'url' (a MISP instance) and 'path' (MISP event files)",
                key=f"{where}.url",
            )
        self.validate_connection(where, required=False)
        if not 1 <= self.page_size <= 10_000:
            raise ConfigError(
                f"{where}.page_size must be from 1 to 10000, got {self.page_size}", key=f"{where}.page_size"
            )
        if self.max_pages < 1:
            raise ConfigError(f"{where}.max_pages must be at least 1, got {self.max_pages}", key=f"{where}.max_pages")
        if self.since:
            from stixbridge.timeutil import parse_timestamp

            try:
                parse_timestamp(self.since)
            except ValueError as exc:
                raise ConfigError(f"{where}.since: {exc}", key=f"{where}.since") from exc


@dataclass
class MispSightingsSettings(MispConnectionSettings):
    """Settings of ``kind = "misp"`` under ``[[sightings]]``."""

    initial_days: int = 30
    """On the first read, look this many days back (MISP's own default for sighting searches)."""
    lookback_seconds: int = 86_400
    """Each read starts this long before the cursor, because a sighting may be added with an older date."""
    window_hours: int = 24
    """Sightings are read in time windows of this size, so one response stays small."""

    def validate(self, where: str) -> None:
        super().validate(where)
        if not 1 <= self.initial_days <= 3650:
            raise ConfigError(
                f"{where}.initial_days must be from 1 to 3650, got {self.initial_days}", key=f"{where}.initial_days"
            )
        if not 0 <= self.lookback_seconds <= 30 * 86_400:
            raise ConfigError(
                f"{where}.lookback_seconds must be from 0 to 2592000 (30 days), got {self.lookback_seconds}",
                key=f"{where}.lookback_seconds",
            )
        if not 1 <= self.window_hours <= 24 * 31:
            raise ConfigError(
                f"{where}.window_hours must be from 1 to 744, got {self.window_hours}", key=f"{where}.window_hours"
            )
