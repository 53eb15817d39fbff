"""Settings of the Elasticsearch sink and sightings reader, as written in ``[[sinks]]`` and ``[[sightings]]``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from stixbridge.errors import ConfigError
from stixbridge.secrets import Secret
from stixbridge.settings import Settings

DEFAULT_INDEX = "stixbridge-indicators-000001"
DEFAULT_ALIAS = "logs-ti_stixbridge_latest.indicator"
DEFAULT_FEED_NAME = "stixbridge"

# Elasticsearch caps a request body at 100 MB (http.max_content_length); a bulk chunk stays well below.
MAX_CHUNK_BYTES = 100 * 1024 * 1024

# Kibana's indicator-match rules and the default indicator query read only indicators whose @timestamp is
# at most 30 days old, so a refresh period must leave room for a missed run or two.
MAX_REFRESH_DAYS = 29

_INDEX_FORBIDDEN = set('\\/*?"<>| ,#:')


def check_index_name(name: str, key: str) -> None:
    """Raise ConfigError unless ``name`` is a valid Elasticsearch index or alias name."""
    problem = ""
    if not name:
        problem = "it is empty"
    elif name != name.lower():
        problem = "it must be lower case"
    elif name[0] in "-_+":
        problem = "it must not start with '-', '_' or '+'"
    elif name in (".", ".."):
        problem = "it must not be '.' or '..'"
    elif any(ch in _INDEX_FORBIDDEN for ch in name):
        problem = 'it must not contain spaces or any of \\ / * ? " < > | , # :'
    elif len(name.encode()) > 255:
        problem = "it must be at most 255 bytes long"
    if problem:
        raise ConfigError(f"invalid index or alias name {name!r}: {problem}", key=key)


@dataclass
class ElasticConnectionSettings(Settings):
    """How to reach and authenticate to Elasticsearch; shared by the sink and the sightings reader."""

    hosts: list[str] = field(default_factory=list)
    """Node URLs such as ``https://es1.example.org:9200``; give these or ``cloud_id``."""
    cloud_id: str = ""
    """The Elastic Cloud deployment id, in place of ``hosts``."""
    api_key: Secret | None = None
    """An API key in the encoded form Kibana shows (base64 of ``id:key``)."""
    username: str = ""
    password: Secret | None = None
    bearer_token: Secret | None = None
    verify_tls: bool = True
    ca_bundle: str = ""
    """Path of a PEM file with the CA certificates that signed the cluster's certificate."""
    timeout: float = 30.0
    """Seconds to wait for one HTTP response."""

    def validate(self, where: str) -> None:
        if bool(self.hosts) == bool(self.cloud_id):
            raise ConfigError(f"{where} needs exactly one of 'hosts' and 'cloud_id'", key=f"{where}.hosts")
        for number, host in enumerate(self.hosts):
            parts = urlsplit(host)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"invalid Elasticsearch URL {host!r}: expected http(s)://host:port",
                    key=f"{where}.hosts[{number}]",
                )

        if self.ca_bundle and any(urlsplit(host).scheme != "https" for host in self.hosts):
            raise ConfigError(
                f"{where} sets ca_bundle but not every host uses https; use https:// URLs or drop ca_bundle",
                key=f"{where}.ca_bundle",
            )

        kinds = [name for name, value in self._auth_values().items() if value]
        if len(kinds) > 1:
            raise ConfigError(
                f"{where} sets {' and '.join(kinds)}; choose one way to authenticate", key=f"{where}.{kinds[1]}"
            )
        if self.username and self.password is None:
            raise ConfigError(f"{where} sets 'username' without 'password'", key=f"{where}.password")
        if self.password is not None and not self.username:
            raise ConfigError(f"{where} sets 'password' without 'username'", key=f"{where}.username")
        if not self.timeout > 0:
            raise ConfigError(
                f"timeout must be a positive number of seconds, got {self.timeout!r}", key=f"{where}.timeout"
            )

    def _auth_values(self) -> dict[str, object]:
        return {"api_key": self.api_key, "username": self.username, "bearer_token": self.bearer_token}


@dataclass
class ElasticSinkSettings(ElasticConnectionSettings):
    """Settings of the ``elastic`` sink and of ``stixbridge elastic setup``."""

    index: str = DEFAULT_INDEX
    """The concrete index that contains the documents; created by ``stixbridge elastic setup``."""
    alias: str = DEFAULT_ALIAS
    """The alias documents are written through; it must match ``logs-ti_*`` for Elastic's rules to read it."""
    feed_name: str = DEFAULT_FEED_NAME
    """Written as ``threat.feed.name``; alerts from matches show it."""
    refresh_days: int = 7
    """Documents whose ``@timestamp`` is older than this many days are stamped again while still valid."""
    chunk_bytes: int = 10_000_000
    """Upper bound of one bulk request body in bytes."""
    chunk_docs: int = 10_000
    """Upper bound of documents in one bulk request."""
    max_retries: int = 5
    """How often a document rejected with 429 (too many requests) is sent again within one push."""
    retry_backoff: float = 2.0
    """Seconds to wait before the first retry of rejected documents; doubled for each further retry."""
    space: str = "default"
    """Kibana space that the detection rule is installed in by ``setup --rules``."""
    kibana_url: str = ""
    """Kibana base URL for ``setup --rules``; uses the same credentials as Elasticsearch."""

    def validate(self, where: str) -> None:
        super().validate(where)
        self._validate_names(where)
        self._validate_bulk(where)

        check_space(self.space, f"{where}.space")
        if self.kibana_url:
            parts = urlsplit(self.kibana_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"invalid Kibana URL {self.kibana_url!r}: expected http(s)://host:port", key=f"{where}.kibana_url"
                )

    def _validate_names(self, where: str) -> None:
        check_index_name(self.index, f"{where}.index")
        check_index_name(self.alias, f"{where}.alias")
        if not self.alias.startswith("logs-ti_"):
            raise ConfigError(
                f"alias {self.alias!r} does not match logs-ti_*, so Elastic's indicator-match rules would never "
                f"read it; use a name such as {DEFAULT_ALIAS!r}",
                key=f"{where}.alias",
            )
        if self.alias == self.index:
            raise ConfigError(f"alias and index are both {self.index!r}; they must differ", key=f"{where}.alias")

    def _validate_bulk(self, where: str) -> None:
        if not 1 <= self.refresh_days <= MAX_REFRESH_DAYS:
            raise ConfigError(
                f"refresh_days must be between 1 and {MAX_REFRESH_DAYS}, got {self.refresh_days}: Elastic's "
                "indicator-match rules ignore indicators whose @timestamp is more than 30 days old",
                key=f"{where}.refresh_days",
            )
        if not 1024 <= self.chunk_bytes < MAX_CHUNK_BYTES:
            raise ConfigError(
                f"chunk_bytes must be between 1024 and {MAX_CHUNK_BYTES - 1} (Elasticsearch rejects requests of "
                f"100 MB and more), got {self.chunk_bytes}",
                key=f"{where}.chunk_bytes",
            )
        if self.chunk_docs < 1:
            raise ConfigError(f"chunk_docs must be at least 1, got {self.chunk_docs}", key=f"{where}.chunk_docs")
        if not 0 <= self.max_retries <= 20:
            raise ConfigError(
                f"max_retries must be between 0 and 20, got {self.max_retries}", key=f"{where}.max_retries"
            )
        if self.retry_backoff < 0:
            raise ConfigError(
                f"retry_backoff must not be negative, got {self.retry_backoff}", key=f"{where}.retry_backoff"
            )


@dataclass
class ElasticSightingsSettings(ElasticConnectionSettings):
    """Settings of the ``elastic`` sightings reader."""

    space: str = "default"
    """Kibana space whose alerts are read, from ``.alerts-security.alerts-<space>``."""
    index: str = DEFAULT_INDEX
    alias: str = DEFAULT_ALIAS
    """Alerts count as ours when an enrichment's ``matched.index`` is this index, this alias or an index the
    alias points to."""
    page_size: int = 500
    settle_seconds: int = 120
    """Alerts younger than this are left for the next run, so alerts that become searchable late are not
    skipped by the cursor."""
    first_run_days: int = 30
    """How far back the first run (without a cursor) reads."""

    def validate(self, where: str) -> None:
        super().validate(where)
        check_space(self.space, f"{where}.space")
        check_index_name(self.index, f"{where}.index")
        check_index_name(self.alias, f"{where}.alias")
        if not 1 <= self.page_size <= 10_000:
            raise ConfigError(
                f"page_size must be between 1 and 10000 (the search window), got {self.page_size}",
                key=f"{where}.page_size",
            )
        if self.settle_seconds < 0:
            raise ConfigError(
                f"settle_seconds must not be negative, got {self.settle_seconds}", key=f"{where}.settle_seconds"
            )
        if self.first_run_days < 1:
            raise ConfigError(
                f"first_run_days must be at least 1, got {self.first_run_days}", key=f"{where}.first_run_days"
            )


_SPACE = re.compile(r"^[a-z0-9_-]+$")


def check_space(space: str, key: str) -> None:
    """Raise ConfigError unless ``space`` is a valid Kibana space id (lower-case letters, digits, ``_``, ``-``)."""
    if not _SPACE.match(space):
        raise ConfigError(f"invalid Kibana space id {space!r}: use lower-case letters, digits, '_' and '-'", key=key)
