"""One splunkd connection through splunk-sdk: retries, request counts and translated errors.

Every request of the Splunk connectors goes through :class:`SplunkClient`, so the rules live in one place:
a bounded number of retries for transient failures (HTTP 429/5xx, timeouts, refused connections),
``Retry-After`` honoured, and splunklib exceptions turned into :mod:`stixbridge.errors` classes that name
what to check. Only APIs that splunk-sdk 2.x and 3.x share are used.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from stixbridge.errors import RemoteRejectedError, TransientError
from stixbridge.plugins import require

from .settings import SplunkConnectionSettings

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_WAIT = 120.0
"""Longest pause before a retry, in seconds, even when the server requests more with Retry-After."""


class SplunkTransientError(TransientError):
    """Raised when splunkd may accept a request later; carries the wait it requested, if any."""

    def __init__(
        self, message: str, *, url: str | None = None, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after


class SplunkClient:
    """A lazily built ``splunklib.client.Service`` with retries and error translation.

    Building the object touches no network; the first request logs in (for username and password).
    ``requests`` and ``bytes_sent`` count every HTTP request that reached the wire, retries included.
    ``sleep`` waits between retries; tests replace it to run without pauses.
    """

    def __init__(
        self,
        settings: SplunkConnectionSettings,
        *,
        connector: str = "splunk",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.connector = connector
        self.requests = 0
        self.bytes_sent = 0
        self.sleep = sleep
        self._service: Any = None

    def reset(self) -> None:
        """Drop the connection and session; the next request connects and logs in again."""
        self._service = None

    @property
    def service(self) -> Any:
        """The ``splunklib.client.Service``, built on first use."""
        if self._service is None:
            self._service = self._build_service()
        return self._service

    def _build_service(self) -> Any:
        binding = require("splunklib.binding", self.connector, "splunk")
        client = require("splunklib.client", self.connector, "splunk")
        settings = self.settings
        parts = urlsplit(settings.url)
        scheme = parts.scheme
        port = parts.port or 8089

        context = None
        if scheme == "https" and settings.verify_tls:
            context = _tls_context(settings.ca_bundle, settings.tls_hostname)
        elif scheme == "https":
            logger.warning(
                "TLS certificate verification is off for %s (verify_tls = false); anyone on the network path "
                "can impersonate splunkd and read the credentials. Set ca_bundle instead.",
                settings.url,
            )

        handler = binding.handler(timeout=settings.timeout, verify=settings.verify_tls, context=context)
        kwargs: dict[str, Any] = {
            "host": parts.hostname,
            "port": port,
            "scheme": scheme,
            "owner": settings.owner,
            "app": settings.app,
            "handler": handler,
            "verify": settings.verify_tls,
            "autologin": True,
        }
        if settings.password is not None:
            kwargs["username"] = settings.username
            kwargs["password"] = settings.password.reveal()
        elif settings.token is not None:
            kwargs["splunkToken"] = settings.token.reveal()
        elif settings.session_key is not None:
            kwargs["token"] = settings.session_key.reveal()
        return client.Service(**kwargs)

    def get_json(
        self, path: str, *, operation: str, owner: str | None = None, app: str | None = None, **query: Any
    ) -> Any:
        """GET a REST path with ``output_mode=json`` and return the decoded body."""
        response = self.call(
            operation, path, lambda: self.service.get(path, owner=owner, app=app, output_mode="json", **query)
        )
        return _decode_json(response, operation, path)

    def post_json(
        self, path: str, payload: Any, *, operation: str, owner: str | None = None, app: str | None = None
    ) -> Any:
        """POST a JSON document to a REST path and return the decoded response.

        The body is sent as ASCII-only bytes, because splunklib counts ``Content-Length`` in characters.
        """
        body = json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        return self.post_bytes(path, body, operation=operation, owner=owner, app=app)

    def post_bytes(
        self, path: str, body: bytes, *, operation: str, owner: str | None = None, app: str | None = None
    ) -> Any:
        """POST an already encoded JSON body and return the decoded response."""
        headers = [("Content-Type", "application/json")]
        response = self.call(
            operation,
            path,
            lambda: self.service.post(path, owner=owner, app=app, headers=list(headers), body=body, output_mode="json"),
            size=len(body),
        )
        return _decode_json(response, operation, path)

    def post_form(
        self, path: str, *, operation: str, owner: str | None = None, app: str | None = None, **form: Any
    ) -> Any:
        """POST form fields to a REST path with ``output_mode=json`` and return the decoded response."""
        response = self.call(
            operation, path, lambda: self.service.post(path, owner=owner, app=app, output_mode="json", **form)
        )
        return _decode_json(response, operation, path)

    def delete(
        self, path: str, *, operation: str, owner: str | None = None, app: str | None = None, **query: Any
    ) -> None:
        """DELETE a REST path; the response body is read and dropped."""
        response = self.call(
            operation, path, lambda: self.service.delete(path, owner=owner, app=app, output_mode="json", **query)
        )
        response.body.read()

    def call(self, operation: str, path: str, request: Callable[[], Any], *, size: int = 0) -> Any:
        """Run one request with bounded retries; ``operation`` names it in errors and logs.

        Raises:
            TransientError: the request still failed for a transient reason after the last retry.
            RemoteRejectedError: splunkd rejected the request; ``status`` contains the HTTP status.
        """
        retrying = Retrying(
            stop=stop_after_attempt(1 + self.settings.retries),
            wait=self._wait,
            retry=retry_if_exception_type(TransientError),
            reraise=True,
            sleep=self.sleep,
            before_sleep=self._log_retry,
        )
        return retrying(self._attempt, operation, path, request, size)

    def _attempt(self, operation: str, path: str, request: Callable[[], Any], size: int) -> Any:
        self.requests += 1
        self.bytes_sent += size
        try:
            return request()
        except Exception as exc:
            raise translate_error(exc, operation=operation, url=self.settings.url + "/" + path.lstrip("/")) from exc

    @staticmethod
    def _wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        requested = getattr(exc, "retry_after", None)
        if requested is not None:
            return float(min(max(requested, 0.0), MAX_RETRY_WAIT))
        return float(wait_random_exponential(multiplier=1, max=60)(state))

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        logger.warning("Splunk request failed (attempt %d): %s; retrying in %.1f s.", state.attempt_number, exc, pause)


class _ExpectedNameContext(ssl.SSLContext):
    """A TLS client context that checks the certificate against a fixed name instead of the URL's host."""

    expected_name = ""

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["server_hostname"] = self.expected_name
        return super().wrap_socket(sock, *args, **kwargs)


def _tls_context(ca_bundle: str, expected_name: str) -> ssl.SSLContext:
    """Return a verifying TLS context trusting ``ca_bundle`` (or the system store) and checking the name."""
    if not expected_name:
        return ssl.create_default_context(cafile=ca_bundle or None)
    context = _ExpectedNameContext(ssl.PROTOCOL_TLS_CLIENT)
    context.expected_name = expected_name
    if ca_bundle:
        context.load_verify_locations(cafile=ca_bundle)
    else:
        context.load_default_certs()
    return context


def translate_error(exc: BaseException, *, operation: str, url: str) -> Exception:
    """Return the stixbridge error for a splunklib, socket or TLS failure during ``operation``."""
    binding = require("splunklib.binding", "splunk", "splunk")

    if isinstance(exc, binding.HTTPError):
        return _translate_http_error(exc, operation=operation, url=url)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return RemoteRejectedError(
            f"the TLS certificate of {url} could not be verified while {operation}: {exc.verify_message}; set "
            "ca_bundle to the PEM file of the CA that signed splunkd's certificate",
            url=url,
        )
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return SplunkTransientError(f"Splunk did not respond in time while {operation} ({url}): {exc}", url=url)
    if isinstance(exc, (OSError, http.client.HTTPException)):
        return SplunkTransientError(f"connection to Splunk failed while {operation} ({url}): {exc!r}", url=url)
    if isinstance(exc, (ValueError, ElementTree.ParseError)):
        return RemoteRejectedError(
            f"Splunk sent a response that could not be read while {operation} ({url}): {exc}", url=url
        )
    return RemoteRejectedError(f"Splunk request failed while {operation} ({url}): {exc!r}", url=url)


def _translate_http_error(exc: Any, *, operation: str, url: str) -> Exception:
    status = int(exc.status)
    detail = error_text(getattr(exc, "body", b""))
    headers = dict((str(k).lower(), str(v)) for k, v in (exc.headers or []))
    suffix = f": {detail}" if detail else ""

    if status == 401:
        return RemoteRejectedError(
            f"Splunk rejected the credentials (HTTP 401) while {operation}{suffix}; check username and password, "
            "token or session_key, that the account may log in, and that the token has not expired",
            url=url,
            status=status,
        )
    if status == 403:
        return RemoteRejectedError(
            f"Splunk rejected the request (HTTP 403) while {operation}{suffix}; the account lacks a capability or "
            "write access to the app (ES collections need edit_threat_intel_collections)",
            url=url,
            status=status,
        )
    if status in TRANSIENT_STATUSES:
        return SplunkTransientError(
            f"Splunk is busy or unavailable (HTTP {status}) while {operation}{suffix}",
            url=url,
            status=status,
            retry_after=parse_retry_after(headers.get("retry-after"), headers.get("date")),
        )
    return RemoteRejectedError(
        f"Splunk rejected the request (HTTP {status}) while {operation}{suffix}", url=url, status=status
    )


def error_text(body: bytes | str | None) -> str:
    """Return the messages of a splunkd error body, JSON (``output_mode=json``) or XML, or the raw text."""
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        return "; ".join(str(m.get("text", "")) for m in data["messages"] if isinstance(m, dict))

    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        return text.strip()[:500]
    return "; ".join((msg.text or "").strip() for msg in root.iter("msg"))


def parse_retry_after(value: str | None, date: str | None) -> float | None:
    """Return the seconds a ``Retry-After`` header requests, or None when it is absent or unreadable.

    An HTTP-date is measured against the response's ``Date`` header, not the local clock, so a skewed
    local clock does not change the wait.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        until = parsedate_to_datetime(value)
        now = parsedate_to_datetime(date) if date else datetime.now(tz=until.tzinfo)
    except (TypeError, ValueError):
        return None
    return max((until - now).total_seconds(), 0.0)


def _decode_json(response: Any, operation: str, path: str) -> Any:
    raw = response.body.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise RemoteRejectedError(
            f"Splunk returned text that is not JSON for {path} while {operation}: {raw[:200]!r}"
        ) from exc
