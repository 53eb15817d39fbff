"""Settings of the Splunk sink and sightings reader, checked before any network call."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from stixbridge.errors import ConfigError
from stixbridge.secrets import Secret
from stixbridge.settings import Settings

# KV store limits.conf [kvstore] defaults (Splunk 10.4 limits.conf.spec); the server's own values win.
DEFAULT_MAX_DOCUMENTS_PER_BATCH_SAVE = 1000
DEFAULT_MAX_SIZE_PER_BATCH_SAVE_MB = 50
DEFAULT_MAX_ROWS_PER_QUERY = 50000

APP_NAME = "TA-stixbridge"
APP_COLLECTION = "stixbridge_intel"
ES_APP = "DA-ESS-ThreatIntelligence"

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def is_loopback(host: str) -> bool:
    """Return True when ``host`` names this machine (127.0.0.0/8, ::1 or localhost)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class SplunkConnectionSettings(Settings):
    """How to reach splunkd's management port (8089) and authenticate there.

    Exactly one way to authenticate is set: ``username`` with ``password``, ``token`` (a Splunk
    authentication token, sent as ``Authorization: Bearer``), or ``session_key`` (the key Splunk hands a
    modular input, sent as ``Authorization: Splunk``).
    """

    url: str = ""
    """Base URL of the management port, for example ``https://splunk.example.org:8089``."""
    username: str = ""
    password: Secret | None = None
    token: Secret | None = None
    session_key: Secret | None = None
    verify_tls: bool = True
    ca_bundle: str = ""
    """PEM file of the CAs that signed splunkd's certificate; empty uses the system store."""
    tls_hostname: str = ""
    """Name to expect in splunkd's certificate when it differs from the URL's host; Splunk's default
    certificate is issued to ``SplunkServerDefaultCert``."""
    timeout: float = 30.0
    """Seconds to wait for a connection or for the next bytes of a response."""
    retries: int = 3
    """How many times a request that failed for a transient reason (503, timeout) is sent again."""
    owner: str = "nobody"
    app: str = APP_NAME

    def validate(self, where: str) -> None:
        """Check the URL, the one way to authenticate and the numeric bounds."""
        _validate_url(self.url, f"{where}.url")

        methods = [
            name
            for name, present in (
                ("username/password", bool(self.username) or self.password is not None),
                ("token", self.token is not None),
                ("session_key", self.session_key is not None),
            )
            if present
        ]
        if len(methods) != 1:
            raise ConfigError(
                f"{where} needs exactly one way to authenticate (username with password, token, or "
                f"session_key), got {', '.join(methods) or 'none'}",
                key=f"{where}.token",
            )
        if methods[0] == "username/password" and not (self.username and self.password is not None):
            raise ConfigError(f"{where} sets only one of username and password; set both", key=f"{where}.password")

        if self.timeout <= 0:
            raise ConfigError(f"{where}.timeout must be a positive number of seconds, got {self.timeout}")
        if not 0 <= self.retries <= 10:
            raise ConfigError(f"{where}.retries must be between 0 and 10, got {self.retries}", key=f"{where}.retries")
        if self.tls_hostname and not self.verify_tls:
            raise ConfigError(
                f"{where} sets tls_hostname but verify_tls = false, so the name would not be checked; remove one",
                key=f"{where}.tls_hostname",
            )
        if self.ca_bundle and not self.verify_tls:
            raise ConfigError(
                f"{where} sets ca_bundle but verify_tls = false, so the bundle would be ignored; remove one",
                key=f"{where}.ca_bundle",
            )


def _validate_url(url: str, key: str) -> None:
    if not url:
        raise ConfigError(f"{key} is required, for example 'https://splunk.example.org:8089'", key=key)
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"invalid URL {url!r} for {key}: expected https://host:8089", key=key)
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            f"invalid URL {url!r} for {key}: give only scheme, host and port; the REST paths are added", key=key
        )
    if parts.username or parts.password:
        raise ConfigError(f"{key} must not carry credentials; use username/password or token", key=key)
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigError(
            f"{key} uses plain http to {parts.hostname!r}, which would send credentials in clear text; "
            "use https (plain http is accepted only for a splunkd on this machine)",
            key=key,
        )


@dataclass
class SplunkSinkSettings(SplunkConnectionSettings):
    """Settings of the ``splunk`` sink (table ``[[sinks]] kind = "splunk"``)."""

    targets: list[str] = field(default_factory=lambda: ["app"])
    """``app``: the app's own collection ``stixbridge_intel``; ``es``: Enterprise Security's collections."""
    es_app: str = ES_APP
    collection: str = APP_COLLECTION
    create_collection: bool = True
    """Create the app collection when it is missing (stixbridge run outside the installed app)."""
    max_batch_docs: int = DEFAULT_MAX_DOCUMENTS_PER_BATCH_SAVE
    max_batch_bytes: int = DEFAULT_MAX_SIZE_PER_BATCH_SAVE_MB * 1024 * 1024
    read_page: int = 10000
    """Rows per read request; kept below the server's ``max_rows_per_query`` cap."""
    max_delete_url_bytes: int = 7000
    """Longest URL of one delete-by-query request; the key list is split to stay under it."""

    def validate(self, where: str) -> None:
        """Check the connection settings, then targets and batch bounds."""
        super().validate(where)

        if not self.targets:
            raise ConfigError(f"{where}.targets is empty; use ['app'], ['es'] or both", key=f"{where}.targets")
        unknown = [t for t in self.targets if t not in ("app", "es")]
        if unknown:
            raise ConfigError(
                f"unknown target {unknown[0]!r} in {where}.targets: expected 'app' or 'es'", key=f"{where}.targets"
            )
        if len(set(self.targets)) != len(self.targets):
            raise ConfigError(f"{where}.targets lists a target twice: {self.targets}", key=f"{where}.targets")

        for name, value, low in (
            ("max_batch_docs", self.max_batch_docs, 1),
            ("max_batch_bytes", self.max_batch_bytes, 1024),
            ("read_page", self.read_page, 1),
            ("max_delete_url_bytes", self.max_delete_url_bytes, 1024),
        ):
            if value < low:
                raise ConfigError(f"{where}.{name} must be at least {low}, got {value}", key=f"{where}.{name}")
        if self.read_page >= DEFAULT_MAX_ROWS_PER_QUERY:
            raise ConfigError(
                f"{where}.read_page must stay below Splunk's default max_rows_per_query "
                f"({DEFAULT_MAX_ROWS_PER_QUERY}), got {self.read_page}; reads past that cap are cut silently",
                key=f"{where}.read_page",
            )
        if not self.collection or "/" in self.collection:
            raise ConfigError(f"invalid collection name {self.collection!r} in {where}.collection")


@dataclass
class SplunkSightingsSettings(SplunkConnectionSettings):
    """Settings of the ``splunk`` sightings reader (table ``[[sightings]] kind = "splunk"``)."""

    mode: Literal["es", "app"] = "es"
    """``es``: read Enterprise Security's threat activity; ``app``: read the app's saved-search hits."""
    index: str = ""
    """Index to search; empty means ``threat_activity`` in ``es`` mode and ``summary`` in ``app`` mode."""
    source: str = ""
    """Restrict to events of this ``source``; empty means the app's saved search in ``app`` mode."""
    search_mode: Literal["export", "job"] = "job"
    """``job``: a blocking search job read in pages; ``export``: one streamed export request."""
    page_size: int = 5000
    """Results per page of a job, and records per batch handed to the engine."""
    lookback_days: int = 7
    """How far back the first read goes when there is no cursor yet."""
    lag_seconds: int = 120
    """Hits newer than this are left for the next read, so late-indexed events are not skipped."""

    def validate(self, where: str) -> None:
        """Check the connection settings, then the paging and time bounds."""
        super().validate(where)

        if not 1 <= self.page_size < DEFAULT_MAX_ROWS_PER_QUERY:
            raise ConfigError(
                f"{where}.page_size must be between 1 and {DEFAULT_MAX_ROWS_PER_QUERY - 1}, got {self.page_size}",
                key=f"{where}.page_size",
            )
        if self.lookback_days < 1:
            raise ConfigError(f"{where}.lookback_days must be at least 1, got {self.lookback_days}")
        if self.lag_seconds < 0:
            raise ConfigError(f"{where}.lag_seconds must not be negative, got {self.lag_seconds}")
        for name in ("index", "source"):
            value = getattr(self, name)
            if any(ch in value for ch in '"\\|[]`'):
                raise ConfigError(
                    f"invalid {name} {value!r} in {where}.{name}: quotes, backslashes, pipes, brackets and "
                    "backquotes are not allowed",
                    key=f"{where}.{name}",
                )
