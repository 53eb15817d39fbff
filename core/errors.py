"""Exceptions raised by stixbridge, grouped by what the caller should do.

::

    StixbridgeError
    ├── ConfigError          stop: the configuration is wrong; fix it and run again
    ├── MissingExtraError    stop: a connector's SDK is not installed
    ├── TransientError       retry: the remote side may answer later (timeouts, 429, 5xx)
    ├── RemoteRejectedError  give up on this call: the remote side refused it (401, 403, 404, 4xx)
    ├── InvalidInputError    skip the item: one object is bad; quarantine it and go on
    └── NotFoundError        stop: a command named a row or id that does not exist

Connectors translate their SDK's exceptions into these at their boundary (``raise ... from exc``), so the
engine never sees a splunklib, elasticsearch, pymisp or requests exception.
"""

from __future__ import annotations


class StixbridgeError(Exception):
    """Root of every error that stixbridge raises on purpose."""


class ConfigError(StixbridgeError):
    """Raised when the configuration is invalid; the run stops before any network call."""

    def __init__(self, message: str, *, key: str | None = None, line: int | None = None) -> None:
        where = ""
        if key and line:
            where = f" (key {key!r}, line {line})"
        elif key:
            where = f" (key {key!r})"
        super().__init__(message + where)
        self.message = message
        self.key = key
        self.line = line


class MissingExtraError(StixbridgeError):
    """Raised when a connector needs a package that is not installed."""

    def __init__(self, connector: str, package: str, extra: str) -> None:
        super().__init__(
            f"the {connector} connector needs the {package!r} package, which is not installed; "
            f"install it with: pip install 'stixbridge[{extra}]'"
        )
        self.connector = connector
        self.package = package
        self.extra = extra


class TransientError(StixbridgeError):
    """Raised when a remote call failed in a way that may succeed later (timeout, 429, 5xx)."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class RemoteRejectedError(StixbridgeError):
    """Raised when a remote system refused a request; retrying the same request will not help."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class InvalidInputError(StixbridgeError):
    """Raised for one bad input object; the caller quarantines it and goes on with the rest."""

    def __init__(self, message: str, *, object_id: str | None = None, reason_code: str = "invalid") -> None:
        super().__init__(message)
        self.object_id = object_id
        self.reason_code = reason_code


class NotFoundError(StixbridgeError):
    """Raised when a command names a quarantine row, review or id that does not exist or is already decided."""
