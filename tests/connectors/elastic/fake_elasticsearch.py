"""A strict fake Elasticsearch 8 server on 127.0.0.1, for driving the real elasticsearch-py client in tests.

It is a fake: an in-memory imitation of the endpoints stixbridge uses, written from Elastic's REST API
specification (``elastic/elasticsearch-specification``, ``specification/_json_spec/*.json``) for paths,
methods and query parameters, and from Elasticsearch's documented behaviour for the rest. It is strict
where a lenient imitation would hide bugs:

* every response carries ``X-Elastic-Product: Elasticsearch`` (the client refuses servers without it), and a
  request for ``compatible-with=9`` media types is refused as an 8.x server refuses it;
* a query parameter outside the specification is refused as Elasticsearch refuses it, and one the
  specification lists but the fake does not implement is refused too, so no parameter is silently ignored;
* bulk bodies are parsed as NDJSON, and each item gets its own result;
* data streams accept only ``create``, and an alias with several indices and no write index rejects writes;
* ``require_alias`` is honoured;
* index templates are applied by pattern and priority, including a built-in ``logs`` template (priority
  100, ``logs-*-*``) that turns new indices into data streams, as Elasticsearch's does;
* documents are checked against their mappings (an ``ip`` field refuses a CIDR block), and dynamic fields
  are added as Elasticsearch adds them;
* searches support the queries in :mod:`fake_es_query`, ``sort`` (never on ``_id``), ``search_after`` and
  ``_source`` filtering, with nested fields visible only through ``nested`` queries;
* ``_update_by_query`` runs only scripts that assign ``params`` values to ``ctx._source`` fields.

Faults can be injected: whole-request errors (429, 503, ...), delays that make the client time out, and
per-item bulk rejections. Every request is recorded with its method, path and body size. Writes are
visible to searches at once, because the fake has no refresh interval.

The parts live in sibling modules: ``fake_es_state`` (indices, aliases, templates, data streams),
``fake_es_api`` (routing and one handler per endpoint), ``fake_es_mapping`` (mappings and field values)
and ``fake_es_query`` (queries, sorting, ``_source`` filtering). This module contains the HTTP server.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .fake_es_api import handle, route
from .fake_es_mapping import EsError
from .fake_es_state import ClusterState

DEFAULT_VERSION = "8.17.0"


@dataclass
class RequestRecord:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    body_bytes: int
    status: int = 0
    endpoint: str = ""

    @property
    def is_write(self) -> bool:
        """True for requests that can change data or metadata."""
        return self.method not in ("GET", "HEAD") and self.endpoint not in ("search", "count", "mget")


@dataclass
class _Fault:
    status: int = 0
    delay: float = 0.0
    times: int = 1
    method: str | None = None
    path: re.Pattern[str] | None = None
    error_type: str = ""
    retry_after: str | None = None

    def applies(self, method: str, path: str) -> bool:
        if self.times <= 0:
            return False
        if self.method is not None and self.method != method:
            return False
        return self.path is None or bool(self.path.search(path))


class FakeElasticsearch(ClusterState):
    """An in-memory fake of an Elasticsearch 8 cluster, served over HTTP on 127.0.0.1.

    Args:
        version: the version ``GET /`` reports; the major decides which compatibility media types pass.
        api_key: when set, requests must carry ``Authorization: ApiKey <api_key>`` (the encoded form).
        basic_auth: when set, a ``(user, password)`` pair that requests must carry as basic auth.
        builtin_templates: install Elastic's ``logs`` template (``logs-*-*``, priority 100, data streams).
    """

    def __init__(
        self,
        *,
        version: str = DEFAULT_VERSION,
        api_key: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        builtin_templates: bool = True,
    ) -> None:
        super().__init__(version=version, builtin_templates=builtin_templates)
        self._expected_auth: set[str] = set()
        if api_key is not None:
            self._expected_auth.add(f"ApiKey {api_key}")
        if basic_auth is not None:
            self._expected_auth.add("Basic " + base64.b64encode(":".join(basic_auth).encode()).decode())
        self.requests: list[RequestRecord] = []
        self._faults: list[_Fault] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> FakeElasticsearch:
        handler = type("FakeElasticsearchHandler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-elasticsearch", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeElasticsearch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake first"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    # -- fault injection ------------------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        error_type: str = "",
        retry_after: str | None = None,
    ) -> None:
        """Fail the next ``times`` matching requests with ``status`` instead of handling them."""
        with self.lock:
            self._faults.append(
                _Fault(
                    status=status,
                    times=times,
                    method=method,
                    path=re.compile(path) if path else None,
                    error_type=error_type,
                    retry_after=retry_after,
                )
            )

    def delay_next(self, seconds: float, *, times: int = 1, method: str | None = None, path: str | None = None) -> None:
        """Sleep ``seconds`` before handling the next ``times`` matching requests (to cause client timeouts)."""
        with self.lock:
            self._faults.append(
                _Fault(delay=seconds, times=times, method=method, path=re.compile(path) if path else None)
            )

    # -- test helpers-------------------------------------------------------------------------------------

    def write_requests(self) -> list[RequestRecord]:
        """Return the recorded requests that could change data, in order."""
        with self.lock:
            return [record for record in self.requests if record.is_write]

    def clear_requests(self) -> None:
        with self.lock:
            self.requests.clear()

    def handle(
        self, method: str, path: str, query: dict[str, str], body: bytes, headers: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        """Route one request to its endpoint; see :func:`fake_es_api.handle`."""
        return handle(self, method, path, query, body, headers)


# -- HTTP -------------------------------------------------------------------------------------------------

_MEDIA = re.compile(
    r"^application/(?:vnd\.elasticsearch\+)?(json|x-ndjson)\s*(?:;\s*compatible-with\s*=\s*(\d+))?\s*(?:;.*)?$"
)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeElasticsearch
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; don't wait for an ACK between

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet; requests are recorded in ``fake.requests``."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        fake = self.fake
        url = urlsplit(self.path)
        path = url.path
        query = {key: values[-1] for key, values in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        headers = {key.lower(): value for key, value in self.headers.items()}
        record = RequestRecord(method, path, query, len(body))
        with fake.lock:
            fake.requests.append(record)
            fault = next((f for f in fake._faults if f.applies(method, path)), None)
            if fault is not None:
                fault.times -= 1
        found = route(method, path)
        record.endpoint = found[0] if found else ""

        compat = self._compat_version(headers)
        try:
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.status:
                raise EsError(fault.status, fault.error_type or _fault_type(fault.status), "injected by the fake")
            self._check_media_types(headers)
            self._check_auth(headers, path)
            status, payload, extra = fake.handle(method, path, query, body, headers)
        except EsError as exc:
            status, payload, extra = exc.status, exc.body(), {}
            if fault is not None and fault.retry_after:
                extra = {"Retry-After": fault.retry_after}
        except Exception as exc:  # the fake itself failed: return 500 so that the test shows it
            status, payload, extra = 500, EsError(500, "fake_internal_error", repr(exc)).body(), {}
        record.status = status
        self._respond(method, status, payload, extra, compat)

    def _compat_version(self, headers: dict[str, str]) -> int | None:
        versions = []
        for name in ("accept", "content-type"):
            value = headers.get(name)
            if not value or value == "*/*":
                continue
            match = _MEDIA.match(value.strip())
            if match and match.group(2):
                versions.append(int(match.group(2)))
        return versions[0] if versions else None

    def _check_media_types(self, headers: dict[str, str]) -> None:
        versions = {}
        for name in ("accept", "content-type"):
            value = headers.get(name)
            if not value or value == "*/*":
                continue
            match = _MEDIA.match(value.strip())
            if match is None:
                raise EsError(
                    406,
                    "media_type_header_exception",
                    f"Content-Type header [{value}] is not supported"
                    if name == "content-type"
                    else f"Invalid media-type value on header [{name}]",
                )
            if match.group(2):
                versions[name] = int(match.group(2))
        allowed = {self.fake.major, self.fake.major - 1}
        for name, version in versions.items():
            if version not in allowed:
                raise EsError(
                    400,
                    "media_type_header_exception",
                    f"Invalid media-type value on headers [Accept, Content-Type]: {name.title()} version must be "
                    f"either version {self.fake.major} or {self.fake.major - 1}, but found {version}. "
                    f"{name.title()}={headers.get(name)}",
                )
        if len(set(versions.values())) > 1:
            raise EsError(
                400,
                "media_type_header_exception",
                "A compatible version is required on both Content-Type and Accept headers if either one has "
                "requested a compatible version and the compatible versions must match.",
            )

    def _check_auth(self, headers: dict[str, str], path: str) -> None:
        expected = self.fake._expected_auth
        if not expected:
            return
        given = headers.get("authorization")
        if given is None:
            raise EsError(
                401,
                "security_exception",
                f"missing authentication credentials for REST request [{path}]",
                header={"WWW-Authenticate": ['Basic realm="security", charset="UTF-8"', "ApiKey"]},
            )
        if given not in expected:
            raise EsError(
                401,
                "security_exception",
                "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
                header={"WWW-Authenticate": ['Basic realm="security", charset="UTF-8"', "ApiKey"]},
            )

    def _respond(self, method: str, status: int, payload: Any, extra: dict[str, str], compat: int | None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        content_type = f"application/vnd.elasticsearch+json;compatible-with={compat}" if compat else "application/json"
        self.send_header("Content-Type", content_type)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method != "HEAD":
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (an injected delay); nothing to tell it


def _fault_type(status: int) -> str:
    return {
        429: "es_rejected_execution_exception",
        502: "bad_gateway",
        503: "unavailable_shards_exception",
        504: "gateway_timeout",
        401: "security_exception",
        403: "security_exception",
    }.get(status, "illegal_state_exception")
