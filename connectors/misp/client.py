"""One MISP connection through PyMISP: created on first use, with bounded timeouts and retries.

PyMISP's constructor makes three or four HTTP calls (version, current user, attribute types), so the
client is built on the first request, never when the connector is constructed. Every PyMISP and
``requests`` exception is translated here into the stixbridge errors:

- timeouts, refused connections, HTTP 429 and 5xx: :class:`TransientError`, after ``max_retries``
  retries with exponential backoff;
- TLS failures, HTTP 401/403/404 and other 4xx, responses that are not JSON: :class:`RemoteRejectedError`.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from stixbridge import __version__
from stixbridge.errors import ConfigError, RemoteRejectedError, TransientError
from stixbridge.plugins import require
from stixbridge.secrets import MASK

from .settings import MispConnectionSettings, resolve_path

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for a TCP and TLS connection; a MISP that takes longer is down, not busy."""

# Endpoints that only read; every other POST changes something in MISP.
_READ_ENDPOINTS = ("/restSearch", "/events/index", "/describeTypes", "/getVersion", "/getPyMISPVersion")
_STATUS_IN_MESSAGE = re.compile(r"Error code (\d{3})")


@dataclass
class RequestStats:
    """Counts of the HTTP requests one client sent."""

    requests: int = 0
    writes: int = 0
    bytes_sent: int = 0


@dataclass(frozen=True)
class MispAnswer:
    """A MISP response: the HTTP status and the decoded JSON body (PyMISP strips a ``response`` wrapper)."""

    status: int
    body: Any


class _RequestCounter(requests.auth.AuthBase):
    """Counts every request PyMISP sends, the constructor's included.

    PyMISP accepts a ``requests`` auth object and applies it to each request it prepares, which is the
    one public hook called for all of them. It changes nothing in the request.
    """

    def __init__(self, stats: RequestStats) -> None:
        self.stats = stats

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        self.stats.requests += 1
        body = request.body
        self.stats.bytes_sent += len(body) if isinstance(body, (bytes, str)) else 0
        path = urlsplit(request.url or "").path
        if request.method not in ("GET", "HEAD") and not path.endswith(_READ_ENDPOINTS):
            self.stats.writes += 1
        return request


class _RedactSecret(logging.Filter):
    """Masks the API key in PyMISP's own log records.

    At DEBUG level PyMISP logs the headers of every request it prepares, the ``Authorization`` header
    with the API key among them.
    """

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret and self.secret in message:
            record.msg = message.replace(self.secret, MASK)
            record.args = ()
        return True


def _redact_in_pymisp_logs(secret: str) -> None:
    pymisp_logger = logging.getLogger("pymisp")
    if not any(isinstance(f, _RedactSecret) and f.secret == secret for f in pymisp_logger.filters):
        pymisp_logger.addFilter(_RedactSecret(secret))


class MispClient:
    """A lazily connected PyMISP client with the stixbridge error contract.

    Args:
        settings: the connection settings of the connector.
        base_dir: folder that a relative ``ca_bundle`` is resolved against.
        owner: the connector's name, used in messages.
        sleep: waits between retries; tests pass a function that does not sleep.
    """

    def __init__(
        self,
        settings: MispConnectionSettings,
        base_dir: Path,
        owner: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.owner = owner
        self.stats = RequestStats()
        self._base_dir = base_dir
        self._sleep = sleep
        self._misp: Any = None
        self._url = settings.url if settings.url.endswith("/") else settings.url + "/"

    def __repr__(self) -> str:
        return f"MispClient(owner={self.owner!r}, url={self.settings.url!r})"

    @property
    def connected(self) -> bool:
        """True once PyMISP has been created (after the first request)."""
        return self._misp is not None

    def misp(self) -> Any:
        """Return the PyMISP object, creating it (and checking version and user) on first use.

        Raises:
            ConfigError: ``ca_bundle`` names no file.
            MissingExtraError: PyMISP is not installed.
            TransientError: MISP timed out or returned 5xx.
            RemoteRejectedError: the key was rejected, TLS verification failed, or the URL is not MISP.
        """
        if self._misp is None:
            self._misp = self._with_retries("connect", self._connect)
        return self._misp

    def _connect(self) -> Any:
        pymisp = require("pymisp", "misp", "misp")
        self._warn_about_transport()
        ssl: bool | str = self.settings.verify_tls
        if self.settings.ca_bundle:
            bundle = resolve_path(self.settings.ca_bundle, self._base_dir)
            if not bundle.is_file():
                raise ConfigError(
                    f"ca_bundle {bundle} of {self.owner} is not a file; give the PEM file of the CA that signed the "
                    "MISP certificate",
                    key="ca_bundle",
                )
            ssl = str(bundle)
        key = self.settings.key.reveal() if self.settings.key is not None else ""
        _redact_in_pymisp_logs(key.strip())

        try:
            misp = pymisp.PyMISP(
                self._url,
                key,
                ssl=ssl,
                timeout=(min(CONNECT_TIMEOUT, self.settings.timeout), self.settings.timeout),
                tool=f"stixbridge/{__version__}",
                auth=_RequestCounter(self.stats),
            )
        except requests.RequestException as exc:
            raise self._translate_transport(exc, "connect") from exc
        except pymisp.PyMISPError as exc:
            raise self._translate_pymisp(exc, "connect") from exc

        version = getattr(misp, "_misp_version", ())
        logger.info(
            "Connected %s to MISP %s at %s.", self.owner, ".".join(map(str, version)) or "(version unknown)",
            self.settings.url,
        )  # fmt: skip
        return misp

    def _warn_about_transport(self) -> None:
        if not self.settings.verify_tls:
            logger.warning(
                "TLS verification is off for %s (%s): anyone on the network path can read the API key and "
                "change what MISP returns. Set verify_tls = true, with ca_bundle for a private CA.",
                self.owner,
                self.settings.url,
            )
        parts = urlsplit(self.settings.url)
        if parts.scheme == "http" and not _is_loopback(parts.hostname or ""):
            logger.warning(
                "%s talks to MISP over plain http (%s), so the API key crosses the network unencrypted; use https.",
                self.owner,
                self.settings.url,
            )

    def types(self) -> dict[str, Any]:
        """Return MISP's ``describeTypes`` result (types, categories, defaults) as the server sent it."""
        return dict(self.misp().describe_types)

    def call(
        self, path: str, data: dict[str, Any] | list[Any] | None = None, *, accept: Collection[int] = ()
    ) -> MispAnswer:
        """Send one API request: a POST of ``data`` as JSON, or a GET when ``data`` is None.

        Args:
            path: the endpoint relative to the MISP URL, for example ``attributes/restSearch``.
            data: the JSON body.
            accept: HTTP error statuses the caller handles itself; their body is returned, not raised.

        Raises:
            TransientError: the request timed out, or MISP returned 429 or 5xx, after every retry.
            RemoteRejectedError: MISP rejected the request (4xx not in ``accept``) or sent something not JSON.
        """
        misp = self.misp()
        return self._with_retries(path, lambda: self._send(misp, path, data, accept))

    def _send(self, misp: Any, path: str, data: Any, accept: Collection[int]) -> MispAnswer:
        pymisp = require("pymisp", "misp", "misp")
        started = time.monotonic()
        try:
            response = misp.direct_call(path, data)
        except requests.RequestException as exc:
            raise self._translate_transport(exc, path) from exc
        except pymisp.PyMISPError as exc:
            raise self._translate_pymisp(exc, path) from exc
        logger.debug("MISP responded to %s in %.2f s.", path, time.monotonic() - started)

        if isinstance(response, dict) and isinstance(response.get("errors"), (tuple, list)):
            errors = response["errors"]
            if len(errors) == 2 and isinstance(errors[0], int):
                status, body = errors
                if status in accept:
                    return MispAnswer(status, body)
                raise self._translate_status(status, body, path)
        if isinstance(response, str):
            raise RemoteRejectedError(
                f"MISP at {self.settings.url} returned text that is not JSON for {path} "
                f"({response[:200]!r}); check that url points at the MISP instance itself",
                url=self.settings.url,
            )
        return MispAnswer(200, response)

    def _with_retries(self, what: str, action: Callable[[], Any]) -> Any:
        attempt = 0
        while True:
            try:
                return action()
            except TransientError as exc:
                if attempt >= self.settings.max_retries:
                    raise
                delay = self.settings.retry_backoff * (2**attempt)
                attempt += 1
                logger.warning(
                    "MISP request %s for %s failed (%s); retry %d of %d in %.1f s.",
                    what, self.owner, exc, attempt, self.settings.max_retries, delay,
                )  # fmt: skip
                self._sleep(delay)

    def _translate_transport(self, exc: requests.RequestException, what: str) -> Exception:
        url = self.settings.url
        if isinstance(exc, requests.exceptions.SSLError):
            return RemoteRejectedError(
                f"TLS verification of {url} failed during {what}: {exc}; set ca_bundle to the CA that signed "
                "the MISP certificate, or fix the certificate",
                url=url,
            )
        if isinstance(exc, requests.Timeout):
            return TransientError(
                f"MISP at {url} timed out on {what} after {self.settings.timeout:g} seconds; raise timeout "
                "if MISP is busy",
                url=url,
            )
        if isinstance(exc, requests.ConnectionError):
            return TransientError(f"cannot connect to MISP at {url} ({what}): {exc}", url=url)
        return TransientError(f"request {what} to MISP at {url} failed: {exc}", url=url)

    def _translate_pymisp(self, exc: Exception, what: str) -> Exception:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, requests.RequestException):
            return self._translate_transport(cause, what)
        match = _STATUS_IN_MESSAGE.search(str(exc))
        if match and int(match.group(1)) >= 500:
            # PyMISP reports every 5xx as "Error code 500", so the real status is unknown here.
            return TransientError(
                f"MISP at {self.settings.url} failed with a server error (HTTP 5xx) on {what}: {str(exc)[:300]}",
                url=self.settings.url,
            )
        if match:
            return self._translate_status(int(match.group(1)), str(exc)[:300], what)
        return RemoteRejectedError(
            f"MISP at {self.settings.url} rejected {what}: {exc}; check url and that the API key belongs to an "
            "enabled user",
            url=self.settings.url,
        )

    def _translate_status(self, status: int, body: Any, what: str) -> Exception:
        url = self.settings.url
        message = _error_message(body)
        if status == 429 or status >= 500:
            return TransientError(f"MISP at {url} returned {status} for {what}: {message}", url=url, status=status)
        hint = ""
        if status in (401, 403):
            hint = "; check the API key and that its user's role allows this"
        elif status == 404:
            hint = "; check url and the MISP version"
        return RemoteRejectedError(
            f"MISP at {url} rejected {what} with {status}: {message}{hint}", url=url, status=status
        )


def _error_message(body: Any) -> str:
    if isinstance(body, dict):
        for name in ("message", "name", "errors"):
            if body.get(name):
                return str(body[name])[:300]
    return str(body)[:300]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
