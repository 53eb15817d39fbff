"""Typed settings of the TAXII source and publisher, checked before any network call."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from stixbridge.errors import ConfigError
from stixbridge.secrets import Secret
from stixbridge.settings import Settings

from .timestamps import normalise_timestamp

# RFC 9110 token characters, the only ones allowed in a header name.
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
DEFAULT_MIN_LIMIT = 50
"""Default floor of the halving of ``limit`` after HTTP 413."""


@dataclass
class TaxiiConnectionSettings(Settings):
    """How to reach and authenticate to one TAXII server; shared by the source and the publisher.

    Authentication methods combine: HTTP Basic or a bearer token (both use the ``Authorization`` header,
    so only one of them), plus an API-key header, plus a client certificate.
    """

    url: str = ""
    """Discovery URL (``https://host/taxii2/``) or an API root URL."""
    api_root: str | None = None
    """API root to use, as a URL or a path relative to ``url``; default: the discovery's ``default`` root."""
    version: Literal["2.1", "2.0", "auto"] = "auto"
    """TAXII version; ``auto`` requests 2.1 and falls back to 2.0 when the server only speaks 2.0."""
    username: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    """Bearer token, sent as ``Authorization: Bearer <token>``."""
    api_key_header: str | None = None
    """Name of the header that carries ``api_key``, for example ``Ocp-Apim-Subscription-Key``."""
    api_key: Secret | None = None
    client_cert: str | None = None
    """PEM client certificate for mutual TLS (may also hold the key); relative to the configuration file."""
    client_key: str | None = None
    """PEM private key of ``client_cert`` when it is a separate file."""
    verify_tls: bool = True
    """Check the server's certificate. Turn off only for a test server; every run then logs a warning."""
    ca_bundle: str | None = None
    """PEM file of CA certificates to trust instead of the system store."""
    timeout: float | list[float] = 60.0
    """Seconds to wait for the server: one number for connect and read, or ``[connect, read]``."""
    retries: int = 5
    """Retries of one request after a connection error, 429 or 5xx."""
    max_retry_seconds: float = 300.0
    """Most seconds one request may spend waiting between retries, ``Retry-After`` included."""

    def validate(self, where: str) -> None:
        self._validate_url(where)
        self._validate_auth(where)
        self._validate_transport(where)

    def _validate_url(self, where: str) -> None:
        if not self.url:
            raise ConfigError(f"{where}.url is required: the TAXII discovery or API root URL", key=f"{where}.url")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"{where}.url must be an http:// or https:// URL with a host, got {self.url!r}", key=f"{where}.url"
            )
        if parts.username or parts.password:
            # The URL is shown in logs and messages, so it must not carry credentials; the value is not quoted.
            raise ConfigError(f"{where}.url contains credentials; set username and password instead",
                              key=f"{where}.url")  # fmt: skip
        if self.api_root is not None and not self.api_root.strip():
            raise ConfigError(f"{where}.api_root must not be empty; leave it out to use the default root",
                              key=f"{where}.api_root")  # fmt: skip

    def _validate_auth(self, where: str) -> None:
        if (self.username is None) != (self.password is None):
            missing = "password" if self.password is None else "username"
            raise ConfigError(f"{where} sets one of username and password but not {missing}; set both or neither",
                              key=f"{where}.{missing}")  # fmt: skip
        if self.username is not None and self.token is not None:
            raise ConfigError(
                f"{where} sets both username/password and token, which both use the Authorization header; "
                "keep one of them",
                key=f"{where}.token",
            )
        if (self.api_key_header is None) != (self.api_key is None):
            missing = "api_key" if self.api_key is None else "api_key_header"
            raise ConfigError(f"{where} sets one of api_key_header and api_key but not {missing}; set both",
                              key=f"{where}.{missing}")  # fmt: skip
        if self.api_key_header is not None:
            if not _HEADER_NAME.match(self.api_key_header):
                raise ConfigError(f"{where}.api_key_header {self.api_key_header!r} is not a valid HTTP header name",
                                  key=f"{where}.api_key_header")  # fmt: skip
            uses_authorization = self.username is not None or self.token is not None
            if self.api_key_header.lower() == "authorization" and uses_authorization:
                raise ConfigError(
                    f"{where}.api_key_header is Authorization, which username/password or token already use",
                    key=f"{where}.api_key_header",
                )
        if self.client_key is not None and self.client_cert is None:
            raise ConfigError(f"{where}.client_key needs client_cert, the certificate it belongs to",
                              key=f"{where}.client_cert")  # fmt: skip

    def _validate_transport(self, where: str) -> None:
        if not self.verify_tls and self.ca_bundle is not None:
            raise ConfigError(f"{where} sets ca_bundle but verify_tls = false; a CA bundle is used only to verify",
                              key=f"{where}.ca_bundle")  # fmt: skip
        timeouts = self.timeout if isinstance(self.timeout, list) else [self.timeout]
        if len(timeouts) not in (1, 2) or any(value <= 0 for value in timeouts):
            raise ConfigError(
                f"{where}.timeout must be a positive number of seconds or [connect, read], got {self.timeout!r}",
                key=f"{where}.timeout",
            )
        if self.retries < 0:
            raise ConfigError(f"{where}.retries must be 0 or more, got {self.retries}", key=f"{where}.retries")
        if self.max_retry_seconds < 0:
            raise ConfigError(f"{where}.max_retry_seconds must be 0 or more, got {self.max_retry_seconds}",
                              key=f"{where}.max_retry_seconds")  # fmt: skip

    def timeouts(self) -> tuple[float, float]:
        """Return ``(connect, read)`` seconds as ``requests`` takes them."""
        if isinstance(self.timeout, list):
            if len(self.timeout) == 1:
                return (self.timeout[0], self.timeout[0])
            return (self.timeout[0], self.timeout[1])
        return (self.timeout, self.timeout)

    def check_files(self, base_dir: Path, where: str) -> None:
        """Raise ConfigError when a certificate or CA file named in the settings does not exist."""
        for key in ("client_cert", "client_key", "ca_bundle"):
            value = getattr(self, key)
            if value is None:
                continue
            path = resolve_path(value, base_dir)
            if not path.is_file():
                raise ConfigError(f"{where}.{key} names {value!r}, but {path} is not a file", key=f"{where}.{key}")


@dataclass
class TaxiiSettings(TaxiiConnectionSettings):
    """Settings of ``kind = "taxii"`` sources: one server, one API root, one or more collections."""

    collections: list[str] = field(default_factory=list)
    """Collection ids or titles to pull; empty pulls every collection the account can read."""
    limit: int = 500
    """Objects asked for per request; servers may send fewer or more."""
    min_limit: int | None = None
    """Smallest ``limit`` that halving after HTTP 413 (Payload Too Large) goes down to; unset, 50 or
    ``limit`` when that is smaller (see :attr:`floor_limit`)."""
    added_after: str | None = None
    """Start of the first pull (RFC 3339); later pulls resume from their checkpoint."""
    max_pages: int = 10_000
    """Most pages read from one collection in one pull; more stops the pull with an error."""

    @property
    def floor_limit(self) -> int:
        """Return ``min_limit``, or its default: 50, or ``limit`` when that is smaller."""
        return self.min_limit if self.min_limit is not None else min(DEFAULT_MIN_LIMIT, self.limit)

    def validate(self, where: str) -> None:
        super().validate(where)
        if self.limit < 1:
            raise ConfigError(f"{where}.limit must be at least 1, got {self.limit}", key=f"{where}.limit")
        if self.min_limit is not None and not 1 <= self.min_limit <= self.limit:
            raise ConfigError(
                f"{where}.min_limit must be between 1 and limit ({self.limit}), got {self.min_limit}; "
                "leave it out to use 50, or limit when that is smaller",
                key=f"{where}.min_limit",
            )
        if self.max_pages < 1:
            raise ConfigError(f"{where}.max_pages must be at least 1, got {self.max_pages}", key=f"{where}.max_pages")
        if any(not name.strip() for name in self.collections):
            raise ConfigError(f"{where}.collections holds an empty name; use collection ids or titles",
                              key=f"{where}.collections")  # fmt: skip
        if self.added_after is not None and normalise_timestamp(self.added_after) is None:
            raise ConfigError(
                f"{where}.added_after {self.added_after!r} is not an RFC 3339 timestamp such as "
                "'2024-05-01T00:00:00Z'",
                key=f"{where}.added_after",
            )


@dataclass
class TaxiiPublishSettings(TaxiiConnectionSettings):
    """Settings of ``publish`` entries of ``kind = "taxii"``: where our own objects are posted."""

    enabled: bool = False
    """Publishing sends our objects to the alliance, so it is off until ``enabled = true``."""
    collection: str = ""
    """Id or title of the collection to post to."""
    max_objects_per_request: int = 1000
    """Most objects in one POST; envelopes are also kept under the API root's ``max_content_length``."""
    poll_interval: float = 1.0
    """Seconds between reads of a pending status resource."""
    poll_timeout: float = 60.0
    """Seconds to wait for a pending status to complete; objects still pending are reported as pending."""

    def validate(self, where: str) -> None:
        super().validate(where)
        if not self.collection.strip():
            raise ConfigError(f"{where}.collection is required: the id or title of the collection to post to",
                              key=f"{where}.collection")  # fmt: skip
        if self.max_objects_per_request < 1:
            raise ConfigError(f"{where}.max_objects_per_request must be at least 1, got "
                              f"{self.max_objects_per_request}", key=f"{where}.max_objects_per_request")  # fmt: skip
        if self.poll_interval <= 0 or self.poll_timeout < 0:
            raise ConfigError(
                f"{where}.poll_interval must be positive and poll_timeout 0 or more, got "
                f"{self.poll_interval} and {self.poll_timeout}",
                key=f"{where}.poll_interval",
            )


def resolve_path(value: str, base_dir: Path) -> Path:
    """Return ``value`` as a path, relative ones resolved against the configuration file's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir / path
