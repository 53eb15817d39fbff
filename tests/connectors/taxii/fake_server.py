"""A scripted TAXII server on 127.0.0.1 for replaying recorded exchanges against the TAXII connector.

Static routes (discovery, API root, collections) reply every time. Scripted exchanges reply in order: a
request whose path is that of the next exchange consumes it. A query or header that differs from the
script is recorded in ``mismatches`` and gets 418, which the connector does not retry.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

TAXII_21 = "application/taxii+json;version=2.1"
TAXII_20 = "application/vnd.oasis.taxii+json; version=2.0"
STIX_20 = "application/vnd.oasis.stix+json; version=2.0"


@dataclass
class Reply:
    """A response to send: status, body (dict/list as JSON, str or bytes as they are) and headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = TAXII_21


@dataclass
class Exchange:
    """One expected request and the reply to it."""

    path: str
    reply: Reply | Callable[[Recorded], Reply]
    query: dict[str, str] | None = None
    """The exact query parameters expected, or None to accept any."""
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    """Request headers that must be present with these values (names case-insensitive)."""


@dataclass
class Recorded:
    """A request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class FakeTaxiiServer:
    """The server; use :func:`fake_taxii_server` to run it."""

    def __init__(self) -> None:
        self.static: dict[tuple[str, str], Reply | Callable[[Recorded], Reply]] = {}
        self.script: list[Exchange] = []
        self.requests: list[Recorded] = []
        self.mismatches: list[str] = []
        self.require_accept: str | None = None
        """When set, a request whose Accept header lacks this text gets 406, as from a TAXII 2.0 server."""
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def route(self, path: str, reply: Reply | Callable[[Recorded], Reply], method: str = "GET") -> None:
        """Reply to every request for ``path`` with ``reply``."""
        self.static[(method, path)] = reply

    def expect(self, path: str, reply: Reply | Callable[[Recorded], Reply], query: dict[str, str] | None = None,
               *, method: str = "GET", headers: dict[str, str] | None = None) -> None:  # fmt: skip
        """Append one scripted exchange."""
        self.script.append(Exchange(path, reply, query, method, headers or {}))

    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def handle(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            if self.require_accept and self.require_accept not in recorded.headers.get("accept", ""):
                return Reply(406, {"title": "Not Acceptable"}, content_type=TAXII_20)
            if self.script and self.script[0].path == recorded.path and self.script[0].method == recorded.method:
                exchange = self.script.pop(0)
                problem = _mismatch(exchange, recorded)
                if problem:
                    self.mismatches.append(problem)
                    return Reply(418, {"title": "unexpected request", "description": problem})
                reply = exchange.reply
            elif (recorded.method, recorded.path) in self.static:
                reply = self.static[(recorded.method, recorded.path)]
            else:
                self.mismatches.append(f"no route for {recorded.method} {recorded.path}?{recorded.query}")
                return Reply(418, {"title": "no route"})
        return reply(recorded) if callable(reply) else reply


def _mismatch(exchange: Exchange, recorded: Recorded) -> str | None:
    if exchange.query is not None and exchange.query != recorded.query:
        return f"{recorded.path}: expected query {exchange.query}, got {recorded.query}"
    for name, value in exchange.headers.items():
        if recorded.headers.get(name.lower()) != value:
            return f"{recorded.path}: expected header {name}: {value!r}, got {recorded.headers.get(name.lower())!r}"
    return None


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        recorded = Recorded(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        reply = self.server.fake.handle(recorded)

        body = reply.body
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body or b""
        self.send_response_only(reply.status)
        headers = {"Content-Length": str(len(data)), **reply.headers}
        if reply.content_type is not None:
            headers.setdefault("Content-Type", reply.content_type)
        if "Date" not in headers:
            headers["Date"] = self.date_time_string()
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeTaxiiServer


@contextmanager
def fake_taxii_server() -> Iterator[FakeTaxiiServer]:
    """Run a :class:`FakeTaxiiServer` on a free port of 127.0.0.1 until the block ends."""
    fake = FakeTaxiiServer()
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.fake = fake
    fake._httpd = httpd
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def taxii21_layout(fake: FakeTaxiiServer, collections: list[dict[str, Any]], *, api_root: str = "/api1/",
                   max_content_length: int = 104857600) -> None:  # fmt: skip
    """Add discovery at ``/taxii2/``, an API root, its collections and their (empty) manifests, all TAXII 2.1."""
    fake.route("/taxii2/", Reply(body={"title": "Fake TAXII", "api_roots": [api_root], "default": api_root}))
    fake.route(api_root, Reply(body={"title": "API root", "versions": [TAXII_21],
                                     "max_content_length": max_content_length}))  # fmt: skip
    fake.route(f"{api_root}collections/", Reply(body={"collections": [_collection(c) for c in collections]}))
    for collection in collections:
        fake.route(f"{api_root}collections/{collection['id']}/manifest/", Reply(body={}))


def taxii20_layout(fake: FakeTaxiiServer, collections: list[dict[str, Any]], *, api_root: str = "/api1/") -> None:
    """Add discovery at ``/taxii/``, an API root and its collections, all TAXII 2.0."""
    fake.route("/taxii/", Reply(body={"title": "Fake TAXII 2.0", "api_roots": [api_root], "default": api_root},
                                content_type=TAXII_20))  # fmt: skip
    fake.route(api_root, Reply(body={"title": "API root", "versions": ["taxii-2.0"], "max_content_length": 9999999},
                               content_type=TAXII_20))  # fmt: skip
    fake.route(f"{api_root}collections/", Reply(body={"collections": [_collection(c) for c in collections]},
                                                content_type=TAXII_20))  # fmt: skip
    for collection in collections:
        fake.route(f"{api_root}collections/{collection['id']}/manifest/", Reply(body={}, content_type=TAXII_20))


def _collection(spec: dict[str, Any]) -> dict[str, Any]:
    return {"can_read": True, "can_write": False, "media_types": ["application/stix+json;version=2.1"], **spec}


def indicator(number: int, *, day: str = "2024-05-02", name: str = "p") -> dict[str, Any]:
    """Return a small STIX 2.1 indicator with an id derived from ``number``."""
    stamp = f"{day}T08:00:{number % 60:02d}.000Z"
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--00000000-0000-4000-8000-{number:012d}",
        "created": stamp,
        "modified": stamp,
        "indicator_types": ["malicious-activity"],
        "pattern_type": "stix",
        "pattern": f"[domain-name:value = '{name}{number}.example.com']",
        "valid_from": stamp,
    }
