"""A fake splunkd: a strict in-memory stand-in for the REST endpoints the Splunk connectors use.

It is a fake, not Splunk. It listens on 127.0.0.1 over plain HTTP (HTTPS with a test certificate) and responds the way the Splunk REST API
reference describes, so the real splunk-sdk client can drive it:

- ``POST /services/auth/login`` returns a session key (XML, or JSON with ``output_mode=json``); every other
  call needs ``Authorization: Splunk <session key>`` or ``Authorization: Bearer <token>``.
- ``GET /services/server/info`` returns an Atom feed (or JSON), which splunk-sdk reads to pick the
  ``search/v2/jobs`` endpoints.
- ``storage/collections/config[/<name>]`` lists, reads and creates collections; unknown ones get 404.
- ``storage/collections/data/<name>`` reads with ``query``, ``sort``, ``skip``, ``limit`` and ``fields`` and
  silently cuts the answer at ``max_rows_per_query``; ``batch_save`` refuses more documents or bytes than
  the limits with HTTP 400 "Request exceeds API limits"; ``DELETE`` removes by key or by query (documented
  operators only). A key containing ``/`` can be inserted but not reached by key afterwards, as in splunkd.
- ``configs/conf-limits/kvstore`` returns the KV store limits, or 403 when ``expose_limits`` is False.
- ``search/jobs/export`` streams results and ``search/jobs`` runs jobs whose results are read in pages. The
  search language is a small subset: ``search`` with ``index=`` and ``field=value`` terms, then ``fields``,
  ``table``, ``sort`` (without a count it keeps 10000 results, like Splunk) and ``head``; anything else is
  rejected with HTTP 400 "Unknown search command".
- ``storage/passwords`` lists and creates stored credentials.

Success bodies are Atom XML by default and JSON with ``output_mode=json`` (KV store data is always JSON);
error bodies are XML ``<response><messages><msg>`` or JSON ``{"messages": [...]}`` in the same way.
Failures can be injected: an HTTP status (401, 503 with ``Retry-After``...) or a delay longer than the
client's timeout, for the next N matching requests.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

MB = 1024 * 1024
DEFAULT_LIMITS = {
    "max_documents_per_batch_save": 1000,
    "max_size_per_batch_save_mb": 50,
    "max_rows_per_query": 50000,
    "max_queries_per_batch": 1000,
    "max_size_per_result_mb": 50,
}
SORT_DEFAULT_LIMIT = 10000
JOB_RESULTS_DEFAULT_COUNT = 100
KV_OPERATORS = {"$gt", "$gte", "$lt", "$lte", "$ne", "$and", "$or", "$not"}


@dataclass
class RequestRecord:
    """One request the fake received."""

    method: str
    path: str
    params: dict[str, str]
    body_size: int
    status: int = 0
    raw_target: str = ""
    """The request target as sent, still percent-encoded, with its query string."""


@dataclass
class Injection:
    """A failure injected into the next ``times`` requests that match ``match`` and ``method``."""

    status: int | None
    delay: float = 0.0
    times: int = 1
    match: str = ""
    method: str | None = None
    retry_after: str | None = None


@dataclass
class Job:
    """A finished search job."""

    sid: str
    results: list[dict[str, Any]]
    cancelled: bool = False


class FakeSplunkError(Exception):
    """An HTTP error response of the fake."""

    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers or {}


@dataclass
class FakeSplunk:
    """The fake server and its state; use as a context manager or call :meth:`start` and :meth:`stop`."""

    username: str = "admin"
    password: str = "fake-password"
    token: str = ""
    version: str = "9.3.1"
    limits: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    expose_limits: bool = True
    apps: set[str] = field(default_factory=lambda: {"search", "TA-stixbridge"})
    collections: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    indexes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    passwords: dict[tuple[str, str], str] = field(default_factory=dict)
    log: list[RequestRecord] = field(default_factory=list)
    certificate: tuple[str, str] | None = None
    """PEM certificate chain and key files; when set, the fake speaks HTTPS instead of HTTP."""

    def __post_init__(self) -> None:
        self._sessions: set[str] = set()
        self._injections: list[Injection] = []
        self._jobs: dict[str, Job] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._serial = 0

    # Lifetime -------------------------------------------------------------------------------------------

    def start(self) -> FakeSplunk:
        """Listen on a free port of 127.0.0.1 in a background thread."""
        handler = type("BoundHandler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        if self.certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.certificate)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-splunk", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSplunk:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL of the fake's management port."""
        assert self._server is not None, "start the fake first"
        scheme = "https" if self.certificate else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    # Setup and inspection -------------------------------------------------------------------------------

    def install_es(self) -> None:
        """Add the ES threat-intel app and its collections, empty."""
        self.apps.add("DA-ESS-ThreatIntelligence")
        for name in (
            "ip_intel",
            "http_intel",
            "file_intel",
            "email_intel",
            "certificate_intel",
            "registry_intel",
            "process_intel",
            "service_intel",
            "user_intel",
        ):
            self.add_collection("DA-ESS-ThreatIntelligence", name)

    def add_collection(self, app: str, name: str) -> None:
        """Define an empty collection in an app."""
        self.apps.add(app)
        self.collections.setdefault((app, name), {})

    def rows(self, app: str, name: str) -> dict[str, dict[str, Any]]:
        """Return the rows of a collection by key."""
        return self.collections[(app, name)]

    def add_events(self, index: str, events: list[dict[str, Any]]) -> None:
        """Index events; each needs ``_time`` as epoch seconds."""
        with self._lock:
            bucket = self.indexes.setdefault(index, [])
            for event in events:
                self._serial += 1
                stored = dict(event)
                stored.setdefault("index", index)
                stored.setdefault("_bkt", f"{index}~0~FAKE-GUID")
                stored.setdefault("_cd", f"0:{self._serial}")
                bucket.append(stored)

    def inject(
        self,
        status: int | None = None,
        *,
        delay: float = 0.0,
        times: int = 1,
        match: str = "",
        method: str | None = None,
        retry_after: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests whose path contains ``match`` with ``status`` after ``delay``.

        With ``status`` None the request is served normally after the delay. A client with a shorter
        timeout then gets a timeout although the fake did the work.
        """
        with self._lock:
            self._injections.append(Injection(status, delay, times, match, method, retry_after))

    def expire_sessions(self) -> None:
        """Forget every session key, as a splunkd restart or session timeout does."""
        with self._lock:
            self._sessions.clear()

    def requests_to(self, *, method: str | None = None, contains: str = "") -> list[RequestRecord]:
        """Return the logged requests with this method whose path contains ``contains``."""
        with self._lock:
            return [r for r in self.log if (method is None or r.method == method) and contains in r.path]

    def write_requests(self) -> list[RequestRecord]:
        """Return the requests that change KV store data: batch saves, inserts, updates and deletes."""
        with self._lock:
            return [
                r
                for r in self.log
                if "/storage/collections/data/" in r.path
                and r.method in ("POST", "DELETE")
                and not r.path.endswith("/batch_find")
            ]

    def clear_log(self) -> None:
        """Forget the logged requests."""
        with self._lock:
            self.log.clear()

    # Request handling ------------------------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Serve one request and return (status, headers, body)."""
        parts = urlsplit(raw_path)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        content_type = headers.get("content-type", "")
        # splunkd reads a POST body as form fields unless it is declared JSON (KV store data).
        if body and method == "POST" and "application/json" not in content_type:
            params.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()})
        record = RequestRecord(method, unquote(parts.path), params, len(body), raw_target=raw_path)
        with self._lock:
            self.log.append(record)
        json_mode = params.get("output_mode") == "json"

        try:
            self._apply_injection(method, record.path)
            status, answer_headers, answer = self._route(method, parts.path, params, headers, body)
        except FakeSplunkError as exc:
            status, answer_headers, answer = exc.status, dict(exc.headers), _error_body(exc.text, json_mode)
            answer_headers.setdefault("Content-Type", "application/json" if json_mode else "text/xml; charset=utf-8")
        record.status = status
        return status, answer_headers, answer

    def _apply_injection(self, method: str, path: str) -> None:
        with self._lock:
            chosen = None
            for injection in self._injections:
                if injection.match in path and (injection.method is None or injection.method == method):
                    chosen = injection
                    break
            if chosen is None:
                return
            chosen.times -= 1
            if chosen.times <= 0:
                self._injections.remove(chosen)
        if chosen.delay:
            time.sleep(chosen.delay)
        if chosen.status is not None:
            headers = {"Date": _http_date()}
            if chosen.retry_after is not None:
                headers["Retry-After"] = chosen.retry_after
            raise FakeSplunkError(chosen.status, _STATUS_TEXT.get(chosen.status, "injected failure"), headers)

    def _route(
        self, method: str, path: str, params: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        json_mode = params.get("output_mode") == "json"
        if path == "/services/auth/login":
            return self._login(method, params, json_mode)

        segments = [unquote(s) for s in path.split("/") if s]
        if segments[:1] == ["services"]:
            app, rest = "system", segments[1:]
        elif segments[:1] == ["servicesNS"] and len(segments) >= 3:
            app, rest = segments[2], segments[3:]
        else:
            raise FakeSplunkError(404, f"Not Found: {path}")

        if rest == ["server", "info"] and method == "GET":
            return _ok(_entity_body("server-info", "/services/server/info", self._server_info(), json_mode), json_mode)

        self._authenticate(headers)
        # Splunk decodes %2F before it splits the path, so a key containing "/" cannot be addressed.
        rest = "/".join(rest).split("/")

        if rest[:3] == ["storage", "collections", "config"]:
            return self._collections_config(method, app, rest[3:], params, json_mode)
        if rest[:3] == ["storage", "collections", "data"] and len(rest) >= 4:
            return self._collections_data(method, app, rest[3], rest[4:], params, body)
        if rest[:2] == ["configs", "conf-limits"] and method == "GET":
            return self._limits_conf(rest[2:], json_mode)
        if rest[:2] == ["storage", "passwords"]:
            return self._storage_passwords(method, rest[2:], params, json_mode)
        if rest[:2] == ["search", "jobs"] or rest[:3] == ["search", "v2", "jobs"]:
            tail = rest[3:] if rest[1] == "v2" else rest[2:]
            return self._search_jobs(method, tail, params, json_mode, v2=rest[1] == "v2")
        raise FakeSplunkError(404, f"Not Found: {path} (the fake does not serve this endpoint)")

    # Authentication ---------------------------------------------------------------------------------------

    def _login(self, method: str, params: dict[str, str], json_mode: bool) -> tuple[int, dict[str, str], bytes]:
        if method != "POST":
            raise FakeSplunkError(405, "Method Not Allowed")
        if params.get("username") != self.username or params.get("password") != self.password:
            raise FakeSplunkError(401, "Login failed")
        key = secrets.token_hex(16)
        with self._lock:
            self._sessions.add(key)
        if json_mode:
            return _ok(json.dumps({"sessionKey": key}).encode(), True)
        xml = (
            f"<response>\n  <sessionKey>{key}</sessionKey>\n"
            '  <messages>\n    <msg code=""></msg>\n  </messages>\n</response>\n'
        )
        return _ok(xml.encode(), False)

    def _authenticate(self, headers: dict[str, str]) -> None:
        value = headers.get("authorization", "")
        if value.startswith("Splunk ") and value[len("Splunk ") :] in self._sessions:
            return
        if self.token and value == f"Bearer {self.token}":
            return
        raise FakeSplunkError(401, "call not properly authenticated")

    def _server_info(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "build": "fake",
            "serverName": "fake-splunk",
            "product_type": "enterprise",
            "kvStoreStatus": "ready",
        }

    # KV store -------------------------------------------------------------------------------------------------

    def _collections_config(
        self, method: str, app: str, tail: list[str], params: dict[str, str], json_mode: bool
    ) -> tuple[int, dict[str, str], bytes]:
        if app not in self.apps:
            raise FakeSplunkError(404, f"Application does not exist: {app}")
        if method == "GET" and tail:
            name = tail[0]
            if (app, name) not in self.collections:
                raise FakeSplunkError(404, f"Could not find object id={name}")
            return _ok(
                _entity_body(name, f"/servicesNS/nobody/{app}/storage/collections/config/{name}", {}, json_mode, app),
                json_mode,
            )
        if method == "GET":
            names = sorted(n for (a, n) in self.collections if a == app)
            return _ok(_feed_body("collections-conf", [(n, {}) for n in names], json_mode, app), json_mode)
        if method == "POST" and not tail:
            name = params.get("name", "")
            if not name:
                raise FakeSplunkError(400, 'Argument "name" is not supplied.')
            for key, value in params.items():
                if key.startswith("field.") and value not in ("number", "bool", "string", "time", "array", "cidr"):
                    raise FakeSplunkError(400, f"Invalid type {value!r} for {key}")
            if (app, name) in self.collections:
                raise FakeSplunkError(409, f"An object with name={name} already exists")
            self.collections[(app, name)] = {}
            return (
                201,
                {"Content-Type": "application/json" if json_mode else "text/xml"},
                _entity_body(name, f"/servicesNS/nobody/{app}/storage/collections/config/{name}", {}, json_mode, app),
            )
        raise FakeSplunkError(405, f"Method {method} not allowed on collection config")

    def _collection(self, app: str, name: str) -> dict[str, dict[str, Any]]:
        if (app, name) not in self.collections:
            raise FakeSplunkError(404, f"Collection does not exist: app={app} collection={name}")
        return self.collections[(app, name)]

    def _collections_data(
        self, method: str, app: str, name: str, tail: list[str], params: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            rows = self._collection(app, name)
            if tail == ["batch_save"] and method == "POST":
                return _ok_json(self._batch_save(rows, body))
            if len(tail) > 1:
                raise FakeSplunkError(404, f"Could not find object id={'/'.join(tail)}")
            if tail:
                return self._by_key(method, rows, tail[0], body)
            if method == "GET":
                return _ok_json(self._query(rows, params))
            if method == "POST":
                document = _parse_json_body(body, dict)
                key = self._store(rows, document)
                return 201, {"Content-Type": "application/json"}, json.dumps({"_key": key}).encode()
            if method == "DELETE":
                if "query" in params:
                    condition = _parse_query(params["query"])
                    for key in _matching_keys(rows, condition):
                        del rows[key]
                else:
                    rows.clear()
                return 200, {"Content-Type": "application/json"}, b""
        raise FakeSplunkError(405, f"Method {method} not allowed on collection data")

    def _batch_save(self, rows: dict[str, dict[str, Any]], body: bytes) -> list[str]:
        documents = _parse_json_body(body, list)
        max_docs = self.limits["max_documents_per_batch_save"]
        if len(documents) > max_docs:
            raise FakeSplunkError(
                400,
                "Request exceeds API limits - see limits.conf for details. (Too many documents for a single "
                f"batch save, max_documents_per_batch_save={max_docs})",
            )
        max_mb = self.limits["max_size_per_batch_save_mb"]
        if len(body) > max_mb * MB:
            raise FakeSplunkError(
                400,
                "Request exceeds API limits - see limits.conf for details. (Batch save size exceeds "
                f"max_size_per_batch_save_mb={max_mb})",
            )
        for document in documents:
            if not isinstance(document, dict):
                raise FakeSplunkError(400, "Each document in a batch save must be a JSON object")
            _check_field_names(document)
        return [self._store(rows, document) for document in documents]

    def _store(self, rows: dict[str, dict[str, Any]], document: dict[str, Any]) -> str:
        _check_field_names(document)
        key = str(document.get("_key") or uuid.uuid4().hex)
        stored = dict(document)
        stored["_key"] = key
        stored["_user"] = "nobody"
        rows[key] = stored
        return key

    def _by_key(
        self, method: str, rows: dict[str, dict[str, Any]], key: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if method == "POST":
            document = _parse_json_body(body, dict)
            document["_key"] = key
            self._store(rows, document)
            return _ok_json({"_key": key})
        if key not in rows:
            raise FakeSplunkError(404, f"Could not find object id={key}")
        if method == "GET":
            return _ok_json(rows[key])
        if method == "DELETE":
            del rows[key]
            return 200, {"Content-Type": "application/json"}, b""
        raise FakeSplunkError(405, f"Method {method} not allowed on a collection record")

    def _query(self, rows: dict[str, dict[str, Any]], params: dict[str, str]) -> list[dict[str, Any]]:
        condition = _parse_query(params["query"]) if params.get("query") else {}
        found = [row for row in rows.values() if _matches(row, condition)]

        for spec in reversed([s for s in params.get("sort", "").split(",") if s]):
            name, _, direction = spec.partition(":")
            found.sort(key=lambda row: _sort_key(row.get(name)), reverse=direction.strip() == "-1")

        skip = _int_param(params, "skip", 0)
        limit = _int_param(params, "limit", 0)
        found = found[skip:]
        if limit:
            found = found[:limit]
        # Splunk drops rows past max_rows_per_query without any error or flag.
        found = found[: self.limits["max_rows_per_query"]]

        if params.get("fields"):
            wanted = {f.strip() for f in params["fields"].split(",")} | {"_key", "_user"}
            found = [{k: v for k, v in row.items() if k in wanted} for row in found]
        return [dict(row) for row in found]

    def _limits_conf(self, tail: list[str], json_mode: bool) -> tuple[int, dict[str, str], bytes]:
        if not self.expose_limits:
            raise FakeSplunkError(403, "You (user=admin) do not have permission to perform this operation")
        if tail != ["kvstore"]:
            raise FakeSplunkError(404, f"Could not find object id={'/'.join(tail)}")
        content = {k: str(v) for k, v in self.limits.items()}
        return _ok(
            _entity_body("kvstore", "/servicesNS/nobody/system/configs/conf-limits/kvstore", content, json_mode),
            json_mode,
        )

    # Stored credentials ---------------------------------------------------------------------------------------

    def _storage_passwords(
        self, method: str, tail: list[str], params: dict[str, str], json_mode: bool
    ) -> tuple[int, dict[str, str], bytes]:
        if method == "GET" and not tail:
            entries = [
                (
                    f"{realm}:{user}:",
                    {"realm": realm, "username": user, "clear_password": secret, "encr_password": "$7$fake"},
                )
                for (realm, user), secret in sorted(self.passwords.items())
            ]
            return _ok(_feed_body("passwords", entries, json_mode), json_mode)
        if method == "POST" and not tail:
            realm, user = params.get("realm", ""), params.get("name", "")
            if not user or "password" not in params:
                raise FakeSplunkError(400, "name and password are required")
            if (realm, user) in self.passwords:
                raise FakeSplunkError(409, f"An object with name={realm}:{user}: already exists")
            self.passwords[(realm, user)] = params["password"]
            return (
                201,
                {"Content-Type": "text/xml"},
                _entity_body(f"{realm}:{user}:", "/services/storage/passwords", {}, json_mode),
            )
        raise FakeSplunkError(405, f"Method {method} not allowed on storage/passwords")

    # Search -------------------------------------------------------------------------------------------------

    def _search_jobs(
        self, method: str, tail: list[str], params: dict[str, str], json_mode: bool, *, v2: bool
    ) -> tuple[int, dict[str, str], bytes]:
        if tail == ["export"] and method in ("GET", "POST"):
            results = self._run_search(params)
            return self._export_body(results, json_mode)
        if not tail and method == "POST":
            if params.get("exec_mode") == "oneshot":
                return _results_body(self._run_search(params), 0, len(self._run_search(params)), json_mode)
            sid = f"fake-{uuid.uuid4().hex[:12]}"
            with self._lock:
                self._jobs[sid] = Job(sid, self._run_search(params))
            if json_mode:
                return 201, {"Content-Type": "application/json"}, json.dumps({"sid": sid}).encode()
            return (
                201,
                {"Content-Type": "text/xml"},
                f'<?xml version="1.0"?>\n<response>\n  <sid>{sid}</sid>\n</response>\n'.encode(),
            )
        if tail:
            job = self._jobs.get(tail[0])
            if job is None or job.cancelled:
                raise FakeSplunkError(404, f"Unknown sid: {tail[0]}")
            if len(tail) == 1 and method == "GET":
                return _ok(_job_entry(job), False)
            if tail[1:] == ["results"] and (method == "POST" if v2 else method == "GET"):
                offset = _int_param(params, "offset", 0)
                count = _int_param(params, "count", JOB_RESULTS_DEFAULT_COUNT)
                return _results_body(job.results, offset, count, json_mode)
            if tail[1:] == ["control"] and method == "POST":
                if params.get("action") == "cancel":
                    job.cancelled = True
                return _ok_json({"messages": [{"type": "INFO", "text": "Search job cancelled."}]})
        raise FakeSplunkError(404, f"Not Found: search jobs {'/'.join(tail)}")

    def _run_search(self, params: dict[str, str]) -> list[dict[str, Any]]:
        query = params.get("search", "")
        earliest = _time_param(params.get("earliest_time"), "earliest_time", 0.0)
        latest = _time_param(params.get("latest_time"), "latest_time", float("inf"))
        commands = _split_pipeline(query)
        first = commands[0]
        if not first or first[0] != "search":
            raise FakeSplunkError(400, f"Unknown search command '{first[0] if first else ''}'.")

        terms = _parse_terms(" ".join(first[1:]))
        indexes = [value for name, value in terms if name == "index"]
        events: list[dict[str, Any]] = []
        with self._lock:
            for index in indexes:
                events.extend(dict(e) for e in self.indexes.get(index, []))
        events = [e for e in events if earliest <= float(e["_time"]) < latest]
        events = [e for e in events if all(_field_matches(e, n, v) for n, v in terms if n != "index")]
        events.sort(key=lambda e: -float(e["_time"]))  # search returns newest first

        for command in commands[1:]:
            events = _apply_command(command, events)
        return [_render_event(e) for e in events]

    def _export_body(self, results: list[dict[str, Any]], json_mode: bool) -> tuple[int, dict[str, str], bytes]:
        if not json_mode:
            return _results_body(results, 0, 0, False)
        lines = []
        for offset, result in enumerate(results):
            line: dict[str, Any] = {"preview": False, "offset": offset, "result": result}
            if offset == len(results) - 1:
                line["lastrow"] = True
            lines.append(json.dumps(line))
        return 200, {"Content-Type": "application/json"}, ("\n".join(lines) + "\n").encode() if lines else b""


# HTTP plumbing --------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    fake: FakeSplunk
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, answer_headers, answer = self.fake.handle(self.command, self.path, headers, body)
        except Exception as exc:  # a bug in the fake must show up as a 500, not a hung client
            status, answer_headers, answer = 500, {"Content-Type": "text/plain"}, repr(exc).encode()
        try:
            self.send_response(status)
            for name, value in answer_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)
        self.close_connection = True

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass


_STATUS_TEXT = {
    401: "call not properly authenticated",
    403: "insufficient permission",
    500: "Internal Server Error",
    503: "KV Store is initializing. Please try again later.",
}


def _ok(body: bytes, json_mode: bool) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json" if json_mode else "text/xml; charset=utf-8"}, body


def _ok_json(payload: Any) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()


def _http_date() -> str:
    return datetime.now(tz=UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def _error_body(text: str, json_mode: bool) -> bytes:
    if json_mode:
        return json.dumps({"messages": [{"type": "ERROR", "text": text}]}).encode()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<response>\n  <messages>\n'
        f'    <msg type="ERROR">{escape(text)}</msg>\n  </messages>\n</response>\n'
    ).encode()


def _atom_value(value: Any, indent: str) -> str:
    if isinstance(value, dict):
        inner = "".join(
            f'{indent}  <s:key name="{escape(str(k))}">{_atom_value(v, indent + "  ")}</s:key>\n'
            for k, v in value.items()
        )
        return f"\n{indent}<s:dict>\n{inner}{indent}</s:dict>\n{indent}"
    if isinstance(value, list):
        inner = "".join(f"{indent}  <s:item>{_atom_value(v, indent + '  ')}</s:item>\n" for v in value)
        return f"\n{indent}<s:list>\n{inner}{indent}</s:list>\n{indent}"
    return escape(str(value))


def _acl(app: str) -> dict[str, Any]:
    return {"app": app, "owner": "nobody", "sharing": "app" if app != "system" else "system", "can_write": "1"}


def _atom_entry(name: str, path: str, content: dict[str, Any], root: bool = False, app: str = "system") -> str:
    content = {**content, "eai:acl": _acl(app)}
    namespaces = ' xmlns="http://www.w3.org/2005/Atom" xmlns:s="http://dev.splunk.com/ns/rest"' if root else ""
    return (
        f"<entry{namespaces}>\n  <title>{escape(name)}</title>\n  <id>{escape(path)}</id>\n"
        f"  <updated>{datetime.now(tz=UTC).isoformat()}</updated>\n"
        f'  <link href="{escape(path)}" rel="alternate"/>\n  <author>\n    <name>nobody</name>\n  </author>\n'
        f'  <content type="text/xml">{_atom_value(content, "    ")}</content>\n</entry>\n'
    )


def _feed_body(title: str, entries: list[tuple[str, dict[str, Any]]], json_mode: bool, app: str = "system") -> bytes:
    if json_mode:
        return json.dumps(
            {
                "links": {},
                "origin": title,
                "updated": datetime.now(tz=UTC).isoformat(),
                "generator": {"build": "fake", "version": "fake"},
                "entry": [
                    {"name": name, "id": name, "author": "nobody", "acl": {}, "content": content}
                    for name, content in entries
                ],
                "paging": {"total": len(entries), "perPage": 30, "offset": 0},
                "messages": [],
            }
        ).encode()
    body = "".join(_atom_entry(name, f"/{title}/{name}", content, app=app) for name, content in entries)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:s="http://dev.splunk.com/ns/rest" xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">\n'
        f"<title>{escape(title)}</title>\n<opensearch:totalResults>{len(entries)}</opensearch:totalResults>\n"
        f"{body}</feed>\n"
    ).encode()


def _entity_body(name: str, path: str, content: dict[str, Any], json_mode: bool, app: str = "system") -> bytes:
    return _feed_body(name, [(name, content)], json_mode, app)


def _job_entry(job: Job) -> bytes:
    content = {
        "sid": job.sid,
        "dispatchState": "DONE",
        "isDone": "1",
        "isFailed": "0",
        "resultCount": str(len(job.results)),
        "eventCount": str(len(job.results)),
        "doneProgress": "1.00000",
    }
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + _atom_entry(job.sid, f"/services/search/jobs/{job.sid}", content, root=True)
    ).encode()


def _results_body(
    results: list[dict[str, Any]], offset: int, count: int, json_mode: bool
) -> tuple[int, dict[str, str], bytes]:
    page = results[offset : offset + count] if count else results[offset:]
    names: list[str] = []
    for result in page:
        names.extend(k for k in result if k not in names)
    if json_mode:
        payload = {
            "preview": False,
            "init_offset": offset,
            "messages": [],
            "fields": [{"name": n} for n in names],
            "results": page,
            "highlighted": {},
        }
        return _ok_json(payload)
    rows = []
    for number, result in enumerate(page, start=offset):
        fields = "".join(
            f"<field k='{escape(k)}'><value><text>{escape(str(v))}</text></value></field>" for k, v in result.items()
        )
        rows.append(f"<result offset='{number}'>{fields}</result>")
    order = "".join(f"<field>{escape(n)}</field>" for n in names)
    xml = (
        "<?xml version='1.0' encoding='UTF-8'?>\n<results preview='0'>\n"
        f"<meta><fieldOrder>{order}</fieldOrder></meta>\n{''.join(rows)}\n</results>\n"
    )
    return _ok(xml.encode(), False)


# KV store query language ------------------------------------------------------------------------------------------


def _parse_json_body(body: bytes, expected: type) -> Any:
    try:
        value = json.loads(body or b"null")
    except ValueError as exc:
        raise FakeSplunkError(400, f"Invalid JSON in request body: {exc}") from None
    if not isinstance(value, expected):
        raise FakeSplunkError(400, f"Request body must be a JSON {'array' if expected is list else 'object'}")
    return value


def _check_field_names(document: dict[str, Any]) -> None:
    for name in document:
        if "." in name or name.startswith("$"):
            raise FakeSplunkError(
                400, f"Invalid field name {name!r}: field names must not contain '.' or start with '$'"
            )


def _parse_query(text: str) -> dict[str, Any]:
    try:
        query = json.loads(text)
    except ValueError:
        raise FakeSplunkError(400, f"Invalid query: {text[:100]}") from None
    if not isinstance(query, dict):
        raise FakeSplunkError(400, "Invalid query: must be a JSON object")
    _check_operators(query)
    return query


def _check_operators(node: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("$") and key not in KV_OPERATORS:
                raise FakeSplunkError(400, f"Invalid query: unsupported operator {key}")
            _check_operators(value)
    elif isinstance(node, list):
        for item in node:
            _check_operators(item)


def _matching_keys(rows: dict[str, dict[str, Any]], condition: dict[str, Any]) -> list[str]:
    # A list of keys joined by $or is looked up directly; the answer is the same as the full scan.
    alternatives = condition.get("$or") if list(condition) == ["$or"] else None
    if isinstance(alternatives, list) and all(
        isinstance(c, dict) and list(c) == ["_key"] and isinstance(c["_key"], str) for c in alternatives
    ):
        return [c["_key"] for c in alternatives if c["_key"] in rows]
    return [key for key, row in rows.items() if _matches(row, condition)]


def _matches(row: dict[str, Any], condition: dict[str, Any]) -> bool:
    for key, expected in condition.items():
        if key == "$and":
            if not all(_matches(row, c) for c in expected):
                return False
        elif key == "$or":
            if not any(_matches(row, c) for c in expected):
                return False
        elif key == "$not":
            if _matches(row, expected):
                return False
        elif isinstance(expected, dict):
            if not all(_compare(row.get(key), op, operand) for op, operand in expected.items()):
                return False
        elif row.get(key) != expected:
            return False
    return True


def _compare(value: Any, op: str, operand: Any) -> bool:
    if op == "$ne":
        return value != operand
    if value is None or type(value) is not type(operand) and not (_is_number(value) and _is_number(operand)):
        return False
    if op == "$gt":
        return bool(value > operand)
    if op == "$gte":
        return bool(value >= operand)
    if op == "$lt":
        return bool(value < operand)
    if op == "$lte":
        return bool(value <= operand)
    raise FakeSplunkError(400, f"Invalid query: unsupported operator {op}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if _is_number(value):
        return (1, value)
    return (2, str(value))


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    if name not in params:
        return default
    try:
        return int(params[name])
    except ValueError:
        raise FakeSplunkError(400, f"Invalid value for {name}: {params[name]!r}") from None


# Search language subset ---------------------------------------------------------------------------------------------


def _time_param(value: str | None, name: str, default: float) -> float:
    if value is None or value == "":
        return default
    if value == "now":
        return time.time()
    try:
        return float(value)
    except ValueError:
        raise FakeSplunkError(400, f"Invalid {name} '{value}' (the fake accepts epoch seconds and 'now')") from None


def _split_pipeline(query: str) -> list[list[str]]:
    commands: list[list[str]] = []
    current = ""
    quoted = False
    for ch in query:
        if ch == '"':
            quoted = not quoted
        if ch == "|" and not quoted:
            commands.append(_tokens(current))
            current = ""
        else:
            current += ch
    commands.append(_tokens(current))
    return commands


def _tokens(text: str) -> list[str]:
    return re.findall(r'[^\s"=]+="[^"]*"|"[^"]*"|\S+', text.strip())


def _parse_terms(text: str) -> list[tuple[str, str]]:
    terms = []
    for token in _tokens(text):
        name, sep, value = token.partition("=")
        if not sep:
            raise FakeSplunkError(400, f"The fake only understands field=value terms, got {token!r}")
        terms.append((name, value.strip('"')))
    return terms


def _field_matches(event: dict[str, Any], name: str, pattern: str) -> bool:
    if name not in event:
        return False
    if pattern == "*":
        return True
    regex = "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"
    return re.match(regex, str(event[name]), re.IGNORECASE) is not None


def _field_list(args: list[str]) -> list[str]:
    return [name for arg in args for name in arg.split(",") if name]


def _apply_command(command: list[str], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    name, args = command[0], command[1:]
    if name == "fields":
        if args and args[0] == "-":
            drop = set(_field_list(args[1:]))
            return [{k: v for k, v in e.items() if k not in drop} for e in events]
        keep = set(_field_list(args[1:] if args and args[0] == "+" else args)) | {"_time", "_bkt", "_cd"}
        return [{k: v for k, v in e.items() if k in keep} for e in events]
    if name == "table":
        wanted = _field_list(args)
        return [{k: e[k] for k in wanted if k in e} for e in events]
    if name == "sort":
        limit = SORT_DEFAULT_LIMIT
        if args and args[0].isdigit():
            limit = int(args[0]) or len(events)
            args = args[1:]
        for spec in reversed(_field_list(args)):
            descending = spec.startswith("-")
            field_name = spec.lstrip("+-")
            events = sorted(events, key=lambda e: _sort_key(e.get(field_name)), reverse=descending)
        return events[:limit]
    if name == "head":
        return events[: int(args[0]) if args else 10]
    raise FakeSplunkError(400, f"Unknown search command '{name}'.")


def _render_event(event: dict[str, Any]) -> dict[str, Any]:
    rendered = {k: v for k, v in event.items() if k != "_time"}
    if "_time" in event:
        moment = datetime.fromtimestamp(float(event["_time"]), tz=UTC)
        rendered = {"_time": moment.isoformat(timespec="milliseconds"), **rendered}
    return {k: v if isinstance(v, list) else str(v) for k, v in rendered.items()}


def iter_chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """Yield consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
