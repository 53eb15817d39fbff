"""HTTP for TAXII: one ``requests`` session with authentication, TLS, timeouts, bounded retries and
tolerant reading of what servers in the field send.

Every request has a timeout. Connection errors, timeouts, 408, 429 and 5xx (except 501 and 505) are
retried with tenacity, which honours ``Retry-After`` in seconds or as an HTTP date. Retries stop after
``retries`` attempts or ``max_retry_seconds`` of waiting, and then
:class:`~stixbridge.errors.TransientError` is raised. Every other failure raises
:class:`~stixbridge.errors.RemoteRejectedError` at once with its HTTP status, and the message for 401,
403 and 404 names what to check.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import requests.auth
import tenacity

from stixbridge import __version__
from stixbridge.errors import RemoteRejectedError, TransientError
from stixbridge.secrets import Secret
from stixbridge.timeutil import utcnow

from .media import EXPECTED_TYPES, is_json_type, parse_media_type
from .settings import TaxiiConnectionSettings, resolve_path

try:
    import orjson

    _fast_loads: Any = orjson.loads
except ImportError:  # the optional ``speed`` extra
    _fast_loads = json.loads

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
# How much of an unexpected body an error message quotes.
BODY_EXCERPT = 200

_HTML_START = re.compile(rb"^\s*(<!doctype|<html|<head|<body|<\?xml)", re.IGNORECASE)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass
class HttpStats:
    """Counters of one connection, for logs and benchmarks."""

    requests: int = 0
    retries: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    wait_seconds: float = 0.0
    """Seconds spent inside ``requests``: sending, waiting for the server and reading the body."""
    parse_seconds: float = 0.0
    """Seconds spent decoding JSON bodies."""


@dataclass(frozen=True)
class TaxiiResponse:
    """A successful (2xx) response with its JSON body decoded."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: Any
    size: int
    """Body size in bytes."""
    content: bytes = b""
    """The body as received."""


class TaxiiAuth(requests.auth.AuthBase):
    """Adds Basic or bearer ``Authorization`` and an API-key header to each request.

    Secrets are revealed only here, as each request is prepared, so no session attribute stores them.
    """

    def __init__(
        self,
        *,
        username: str | None = None,
        password: Secret | None = None,
        token: Secret | None = None,
        api_key_header: str | None = None,
        api_key: Secret | None = None,
    ) -> None:
        self._username = username
        self._password = password
        self._token = token
        self._api_key_header = api_key_header
        self._api_key = api_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self._username is not None and self._password is not None:
            request = requests.auth.HTTPBasicAuth(self._username, self._password.reveal())(request)
        elif self._token is not None:
            request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        if self._api_key_header and self._api_key is not None:
            request.headers[self._api_key_header] = self._api_key.reveal()
        return request


class _RetryableFailure(Exception):
    """Raised by one attempt that failed in a way worth retrying; callers get TransientError instead."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


class TaxiiHttp:
    """The HTTP connection of one TAXII source or publisher.

    Args:
        settings: connection settings; certificate paths are resolved against ``base_dir``.
        base_dir: folder of the configuration file.
        owner: names the connector in messages, for example ``TAXII source 'alliance'``.
    """

    sleep = staticmethod(time.sleep)
    """Pauses between retries; tests replace it to record the waits instead of sleeping."""

    def __init__(self, settings: TaxiiConnectionSettings, *, base_dir: Path, owner: str) -> None:
        self.owner = owner
        self.timeout = settings.timeouts()
        self.retries = settings.retries
        self.max_retry_seconds = settings.max_retry_seconds
        self.stats = HttpStats()
        self._warned_labels: set[str] = set()

        session = requests.Session()
        session.headers["User-Agent"] = f"stixbridge/{__version__}"
        if settings.username is not None or settings.token is not None or settings.api_key is not None:
            session.auth = TaxiiAuth(
                username=settings.username,
                password=settings.password,
                token=settings.token,
                api_key_header=settings.api_key_header,
                api_key=settings.api_key,
            )
        if settings.ca_bundle is not None:
            session.verify = str(resolve_path(settings.ca_bundle, base_dir))
        else:
            session.verify = settings.verify_tls
        if settings.client_cert is not None:
            cert = str(resolve_path(settings.client_cert, base_dir))
            if settings.client_key is not None:
                session.cert = (cert, str(resolve_path(settings.client_key, base_dir)))
            else:
                session.cert = cert
        self.session = session

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def get(
        self,
        url: str,
        *,
        accept: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> TaxiiResponse:
        """Send a GET and return the decoded 2xx response.

        Raises:
            TransientError: retries were used up on connection errors, timeouts, 429 or 5xx.
            RemoteRejectedError: any other failure, with ``status`` set when the server responded.
        """
        return self._request("GET", url, accept=accept, params=params, headers=headers)

    def post(self, url: str, *, body: bytes, content_type: str, accept: str) -> TaxiiResponse:
        """Send a POST of ``body`` and return the decoded 2xx response; raises as :meth:`get` does."""
        return self._request("POST", url, accept=accept, headers={"Content-Type": content_type}, data=body)

    # -- one request with retries ------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        accept: str,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> TaxiiResponse:
        request_headers = {"Accept": accept, **(headers or {})}
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_RetryableFailure),
            stop=self._should_stop,
            wait=self._wait_seconds,
            sleep=lambda seconds: type(self).sleep(seconds),
            before_sleep=lambda state: self._log_retry(method, url, state),
            reraise=True,
        )
        try:
            return retrying(self._attempt, method, url, accept, params, request_headers, data)
        except _RetryableFailure as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise TransientError(self._give_up_message(method, url, exc, attempts), url=url, status=exc.status) from exc

    def _should_stop(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number > self.retries:
            return True
        waited = max(state.idle_for, state.seconds_since_start or 0.0)
        return waited + state.upcoming_sleep > self.max_retry_seconds

    def _wait_seconds(self, state: tenacity.RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome is not None else None
        if isinstance(failure, _RetryableFailure) and failure.retry_after is not None:
            return failure.retry_after
        return float(_BACKOFF(state))

    def _log_retry(self, method: str, url: str, state: tenacity.RetryCallState) -> None:
        self.stats.retries += 1
        failure = state.outcome.exception() if state.outcome is not None else None
        logger.warning(
            "%s: %s %s failed (%s); retry %d of %d in %.1f s.",
            self.owner, method, url, failure, state.attempt_number, self.retries, state.upcoming_sleep,
        )  # fmt: skip

    def _give_up_message(self, method: str, url: str, failure: _RetryableFailure, attempts: int) -> str:
        message = f"{self.owner}: {method} {url} failed after {attempts} attempts: {failure.reason}"
        if failure.retry_after is not None and failure.retry_after > self.max_retry_seconds:
            message += (
                f"; the server asked to wait {failure.retry_after:.0f} s (Retry-After), more than "
                f"max_retry_seconds = {self.max_retry_seconds:g}"
            )
        return message + "; the next run tries again"

    def _attempt(
        self,
        method: str,
        url: str,
        accept: str,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
        data: bytes | None,
    ) -> TaxiiResponse:
        response = self._send(method, url, params, headers, data)
        status = response.status_code
        if 200 <= status < 300:
            body = self._decode(response, accept)
            return TaxiiResponse(response.url, status, response.headers, body, len(response.content), response.content)
        if status in RETRY_STATUSES:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"), response.headers.get("Date"))
            raise _RetryableFailure(
                f"HTTP {status}{_detail(response)}", status=status, retry_after=retry_after
            )
        raise RemoteRejectedError(self._rejection_message(method, response), url=response.url, status=status)

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
        data: bytes | None,
    ) -> requests.Response:
        """Send one request, following redirects only within the same scheme, host and port."""
        origin = origin_of(url)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send_once(method, url, params, headers, data)
            if response.status_code not in REDIRECT_STATUSES or "Location" not in response.headers:
                return response

            target = urljoin(response.url, response.headers["Location"])
            if origin_of(target) != origin:
                raise RemoteRejectedError(
                    f"{self.owner}: {method} {url} was redirected to another host ({target}); credentials are "
                    "not sent there, so set url to that address if it is the right server",
                    url=url,
                    status=response.status_code,
                )
            if method != "GET":
                raise RemoteRejectedError(
                    f"{self.owner}: {method} {url} was redirected to {target}; set url to that address",
                    url=url,
                    status=response.status_code,
                )
            # The target URL carries the query already.
            url, params = target, None
        raise RemoteRejectedError(f"{self.owner}: {method} {url} was redirected more than {MAX_REDIRECTS} times",
                                  url=url)  # fmt: skip

    def _send_once(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: dict[str, str],
        data: bytes | None,
    ) -> requests.Response:
        started = time.perf_counter()
        try:
            response = self.session.request(
                method, url, params=params, headers=headers, data=data, timeout=self.timeout, allow_redirects=False
            )
        except requests.exceptions.SSLError as exc:
            raise RemoteRejectedError(
                f"{self.owner}: TLS with {url} failed: {exc}; check ca_bundle, client_cert and client_key",
                url=url,
            ) from exc
        except requests.Timeout as exc:
            raise _RetryableFailure(f"timed out after {self.timeout[1]:g} s ({type(exc).__name__})") from exc
        except requests.ConnectionError as exc:
            raise _RetryableFailure(f"connection failed: {exc}") from exc
        except requests.RequestException as exc:
            raise RemoteRejectedError(f"{self.owner}: {method} {url} could not be sent: {exc}", url=url) from exc
        finally:
            self.stats.wait_seconds += time.perf_counter() - started

        self.stats.requests += 1
        self.stats.bytes_received += len(response.content)
        self.stats.bytes_sent += len(data or b"")
        logger.debug("%s %s -> HTTP %d, %d bytes.", method, response.url, response.status_code, len(response.content))
        return response

    # -- reading bodies ----------------------------------------------------------------------------------

    def _decode(self, response: requests.Response, accept: str) -> Any:
        content = response.content
        media, params = parse_media_type(response.headers.get("Content-Type"))
        if media == "text/html" or _HTML_START.match(content):
            raise RemoteRejectedError(
                f"{self.owner}: GET {response.url} returned an HTML page (HTTP {response.status_code}, Content-Type "
                f"{response.headers.get('Content-Type')!r}) instead of TAXII JSON: {_excerpt(content)!r}; a login "
                "page or a proxy may be in the way, so check url and the credentials",
                url=response.url,
                status=response.status_code,
            )
        if response.status_code == 204 or not content.strip():
            return {}

        started = time.perf_counter()
        try:
            body = _fast_loads(content)
        except ValueError:
            try:
                # The standard parser also reads UTF-16/32 bodies and integers beyond 64 bits.
                body = json.loads(content)
            except ValueError as exc:
                raise RemoteRejectedError(
                    f"{self.owner}: {response.url} returned a body that is not JSON (HTTP {response.status_code}, "
                    f"Content-Type {response.headers.get('Content-Type')!r}): {_excerpt(content)!r}",
                    url=response.url,
                    status=response.status_code,
                ) from exc
        finally:
            self.stats.parse_seconds += time.perf_counter() - started

        self._check_label(media, params, accept, response.url)
        return body

    def _check_label(self, media: str, params: dict[str, str], accept: str, url: str) -> None:
        """Accept the body whatever its JSON label, warning once per server and label when it is unexpected."""
        expected_media, expected_params = parse_media_type(accept)
        expected_version = expected_params.get("version")
        if media in EXPECTED_TYPES and params.get("version", expected_version) == expected_version:
            return

        label = f"{media};version={params.get('version')}" if media else "(none)"
        if label in self._warned_labels:
            return
        self._warned_labels.add(label)
        kind = "JSON" if is_json_type(media) else "non-JSON"
        logger.warning(
            "%s: the server labels its responses %s (a %s type) where %s was expected, first at %s; "
            "reading them as TAXII JSON anyway.",
            self.owner, label, kind, f"{expected_media};version={expected_version}", url,
        )  # fmt: skip

    def _rejection_message(self, method: str, response: requests.Response) -> str:
        status = response.status_code
        where = f"{self.owner}: {method} {response.url} returned HTTP {status}{_detail(response)}"
        if status == 401:
            return (
                f"{where}; the server did not accept the credentials: check username and password, token, "
                "or api_key_header and api_key, and the environment variables they are read from"
            )
        if status == 403:
            return (
                f"{where}; the account may not read or write this API root or collection: check the "
                "collection's permissions for this account with the server's operator"
            )
        if status == 404:
            return f"{where}; check url, api_root and the collection id or title"
        if status == 406:
            return f"{where}; the server may not speak this TAXII version: check the version setting"
        if status == 413:
            return f"{where}; the request or the response it asked for is too large"
        return where


def warn_about_transport(settings: TaxiiConnectionSettings, owner: str) -> None:
    """Log a warning at the start of every run that sends data without TLS protection."""
    if not settings.verify_tls:
        logger.warning(
            "%s: TLS certificate verification is off (verify_tls = false), so anyone on the network path "
            "can read and change what is exchanged with %s.",
            owner, settings.url,
        )  # fmt: skip
    parts = urlsplit(settings.url)
    has_credentials = settings.username is not None or settings.token is not None or settings.api_key is not None
    if parts.scheme == "http" and has_credentials and not _is_loopback(parts.hostname or ""):
        logger.warning("%s: credentials are sent without encryption to %s; use an https:// URL.", owner, settings.url)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_BACKOFF = tenacity.wait_exponential_jitter(initial=1, max=60, jitter=1)


def retry_after_seconds(value: str | None, date: str | None, now: datetime | None = None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait, or None when it is absent or invalid.

    An HTTP-date is measured from the response's own ``Date`` header when it has one, so a skewed local
    clock does not stretch or cut the wait; otherwise from ``now``.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)

    when = _http_date(value)
    if when is None:
        return None
    reference = _http_date(date) if date else None
    if reference is None:
        reference = now or utcnow()
    return max(0.0, (when - reference).total_seconds())


def _http_date(text: str) -> datetime | None:
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def origin_of(url: str) -> tuple[str, str, int | None]:
    """Return the scheme, lowercase host and port of a URL, with the scheme's default port filled in."""
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    return (parts.scheme, (parts.hostname or "").lower(), parts.port or default_port)


def _excerpt(content: bytes) -> str:
    text = content[: BODY_EXCERPT * 4].decode("utf-8", errors="replace")
    return " ".join(text.split())[:BODY_EXCERPT]


def _detail(response: requests.Response) -> str:
    """Return ``: <title>: <description>`` from a TAXII error body in any media type, or a short excerpt."""
    content = response.content
    if not content.strip():
        return ""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        parts = [str(body[key]) for key in ("title", "description") if body.get(key)]
        if parts:
            return ": " + ": ".join(parts)[:BODY_EXCERPT]
    text = content[: BODY_EXCERPT * 20].decode("utf-8", errors="replace")
    title = _HTML_TITLE.search(text)
    if title:
        return ": " + " ".join(title.group(1).split())[:BODY_EXCERPT]
    return f": {_excerpt(content)!r}"
