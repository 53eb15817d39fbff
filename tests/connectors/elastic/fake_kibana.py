"""A fake Kibana detection-engine rules API on 127.0.0.1, for ``stixbridge elastic setup --rules`` tests.

Implements ``GET``, ``POST`` and ``PUT /api/detection_engine/rules`` (also under ``/s/<space>/``) as the
Kibana 8 documentation describes them: writes need the ``kbn-xsrf`` header, a ``threat_match`` rule needs
its query, indicator index, indicator query and mappings, and ``rule_id`` is unique per space.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

REQUIRED = ("name", "description", "risk_score", "severity", "type")
REQUIRED_THREAT_MATCH = ("query", "threat_index", "threat_query", "threat_mapping")
_PATH = re.compile(r"^(?:/s/(?P<space>[a-z0-9_-]+))?/api/detection_engine/rules/?$")


class FakeKibana:
    """An in-memory fake of Kibana's detection rules API.

    Args:
        api_key: when set, requests must carry ``Authorization: ApiKey <api_key>``.
        basic_auth: when set, a ``(user, password)`` pair requests must carry.
    """

    def __init__(self, *, api_key: str | None = None, basic_auth: tuple[str, str] | None = None) -> None:
        self.rules: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self._auth: set[str] = set()
        if api_key is not None:
            self._auth.add(f"ApiKey {api_key}")
        if basic_auth is not None:
            self._auth.add("Basic " + base64.b64encode(":".join(basic_auth).encode()).decode())
        self.fail_status: int | None = None
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> FakeKibana:
        handler = type("FakeKibanaHandler", (_Handler,), {"kibana": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-kibana", daemon=True
        ).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None, "enter the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        match = _PATH.match(path)
        if match is None:
            return 404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"}
        if self._auth and headers.get("authorization") not in self._auth:
            return 401, {"statusCode": 401, "error": "Unauthorized", "message": "Unauthorized"}
        if self.fail_status is not None:
            return self.fail_status, {
                "statusCode": self.fail_status,
                "error": "Injected",
                "message": "injected by the fake",
            }
        if method != "GET" and "kbn-xsrf" not in headers:
            return 400, {
                "statusCode": 400,
                "error": "Bad Request",
                "message": "Request must contain a kbn-xsrf header.",
            }
        space = match.group("space") or "default"

        if method == "GET":
            rule = self.rules.get((space, query.get("rule_id", "")))
            if rule is None:
                return 404, {"statusCode": 404, "message": f'rule_id: "{query.get("rule_id")}" not found'}
            return 200, rule

        try:
            rule = json.loads(body)
        except ValueError:
            return 400, {"statusCode": 400, "error": "Bad Request", "message": "Invalid JSON"}
        problem = _validate(rule)
        if problem:
            return 400, {"statusCode": 400, "error": "Bad Request", "message": problem}
        key = (space, rule["rule_id"])
        if method == "POST":
            if key in self.rules:
                return 409, {"statusCode": 409, "message": f'rule_id: "{rule["rule_id"]}" already exists'}
            self.rules[key] = {**rule, "id": str(uuid.uuid4()), "created_by": "fake"}
            return 200, self.rules[key]
        if method == "PUT":
            if key not in self.rules:
                return 404, {"statusCode": 404, "message": f'rule_id: "{rule["rule_id"]}" not found'}
            self.rules[key] = {**rule, "id": self.rules[key]["id"], "created_by": "fake"}
            return 200, self.rules[key]
        return 405, {"statusCode": 405, "message": "Method Not Allowed"}


def _validate(rule: Any) -> str:
    if not isinstance(rule, dict):
        return "rule must be an object"
    missing = [name for name in REQUIRED if name not in rule]
    if rule.get("type") == "threat_match":
        missing += [name for name in REQUIRED_THREAT_MATCH if name not in rule]
    if missing:
        return f"[request body]: {missing[0]}: Required"
    if not rule.get("rule_id"):
        return "[request body]: rule_id: Required (the fake needs it to find the rule again)"
    for mapping in rule.get("threat_mapping", []):
        for entry in mapping.get("entries", []):
            if set(entry) != {"field", "type", "value"} or entry["type"] != "mapping":
                return f"[request body]: threat_mapping entry {entry} is invalid"
    return ""


class _Handler(BaseHTTPRequestHandler):
    kibana: FakeKibana
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; don't wait for an ACK between

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet; requests are recorded in ``kibana.requests``."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {key.lower(): value for key, value in self.headers.items()}
        with self.kibana.lock:
            self.kibana.requests.append((method, url.path))
            status, payload = self.kibana.handle(method, url.path, query, headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
