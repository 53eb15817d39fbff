"""A strict fake MISP server for tests: real HTTP on 127.0.0.1, driven by the real PyMISP.

No MISP can run here (it needs PHP, MySQL and Redis), so this fake serves the endpoints stixbridge
uses, as MISP 2.5 documents them (``app/webroot/doc/openapi.yaml``) and as its controllers behave:

- ``GET servers/getVersion``, ``GET users/view/me``, ``GET attributes/describeTypes.json`` (PyMISP's
  constructor calls them);
- ``POST events/add``, ``events/edit/<id|uuid>``, ``events/index``, ``events/publish/<id>``,
  ``GET events/view/<id|uuid>``;
- ``POST attributes/add/<event>`` with one attribute or a list, ``attributes/restSearch`` (paged);
- ``POST sightings/add``, ``sightings/restSearch``; ``GET tags``.

It is strict where MISP is: attribute types and categories come from the same ``describeTypes`` data
PyMISP ships, values are normalised and checked with MISP's rules (an invalid IP for ``ip-dst`` or an
MD5 of the wrong length is rejected), a composite value needs exactly one ``|``, attribute UUIDs are
unique, a value is unique per event, ``events/add`` and ``events/edit`` drop invalid attributes
without saying so, sightings always get a new UUID, and edits are refused on events of another
organisation. It is stricter than MISP in one way: a restSearch filter unknown to MISP gets
a 400, so a misspelt filter fails a test instead of being ignored.

Failure injection: :meth:`FakeMisp.inject` makes matching requests fail with a status (403, 500, ...)
or wait before responding (a timeout, seen from a client with a shorter timeout).
"""

from __future__ import annotations

import ipaddress
import json
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

API_KEY = "fake-misp-key-0123456789abcdef0123456789abcdef"
MISP_VERSION = "2.5.1"

# Filters MISP's RestSearchComponent accepts for attributes (a subset is implemented below).
ATTRIBUTE_FILTERS = frozenset(
    {
        "returnFormat", "value", "value1", "value2", "type", "category", "org", "tags", "from", "to", "last",
        "eventid", "withAttachments", "uuid", "publish_timestamp", "published", "timestamp",
        "enforceWarninglist", "to_ids", "deleted", "includeEventUuid", "event_timestamp", "threat_level_id",
        "includeEventTags", "includeProposals", "limit", "page", "requested_attributes", "includeContext",
        "headerless", "includeWarninglistHits", "attackGalaxy", "object_relation", "includeSightings",
        "includeCorrelations", "includeDecayScore", "decayingModel", "excludeDecayed", "modelOverrides",
        "includeFullModel", "score", "attribute_timestamp", "first_seen", "last_seen", "eventinfo",
        "sharinggroup", "allow_proposal_blocking", "flatten", "list", "event_ids", "includeAllTags",
        "includeAttributeUuid", "includeGalaxy", "order",
    }
)  # fmt: skip
SIGHTING_FILTERS = frozenset(
    {"context", "returnFormat", "id", "uuid", "type", "from", "to", "last", "org_id", "source",
     "includeAttribute", "includeEvent", "includeUuid"}
)  # fmt: skip
# Endpoints that change nothing; every other POST is counted as a write.
READ_PATHS = re.compile(r"^/(attributes/restSearch|sightings/restSearch(/\w+)?|events/index)$")

_HASH_LENGTH = {
    "md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128, "sha512/224": 56,
    "sha512/256": 64, "sha3-224": 56, "sha3-256": 64, "sha3-384": 96, "sha3-512": 128, "imphash": 32,
    "authentihash": 64, "x509-fingerprint-md5": 32, "x509-fingerprint-sha1": 40, "x509-fingerprint-sha256": 64,
    "ja3-fingerprint-md5": 32, "hassh-md5": 32, "hasshserver-md5": 32, "pehash": 40,
}  # fmt: skip
_LOWERCASED = frozenset(
    {*_HASH_LENGTH, "hostname", "tlsh", "email", "email-src", "email-dst", "target-email", "vhash", "cdhash"}
)
_DOMAIN = re.compile(r"^[A-Z0-9.\-_]+\.[A-Z0-9\-]{2,}$", re.IGNORECASE)
_EMAIL = re.compile(r"^.[^\s]*@.*\..*$", re.IGNORECASE)
_SSDEEP = re.compile(r"^([0-9]+):([0-9a-zA-Z/+]*):([0-9a-zA-Z/+]*)$")
_NO_NEWLINE = frozenset(
    {"url", "uri", "user-agent", "regkey", "regkey|value", "filename", "pdb", "target-user", "email-subject",
     "windows-scheduled-task", "github-username", "named pipe"}
)  # fmt: skip


class MispError(Exception):
    """An error response: status and JSON body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _api_error(status: int, message: str, url: str) -> MispError:
    return MispError(status, {"name": message, "message": message, "url": url})


@dataclass
class Injection:
    """A failure to produce for requests whose method and path match."""

    pattern: re.Pattern[str]
    status: int | None
    delay: float
    times: int
    method: str | None
    body: Any
    text: str | None = None


@dataclass
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    status: int
    size: int
    write: bool
    body: Any = None


@dataclass
class DecayModel:
    """A polynomial decaying model as MISP stores one (its NIDS model by default)."""

    name: str = "NIDS Simple Decaying Model"
    lifetime: float = 120.0
    decay_speed: float = 2.0
    threshold: float = 30.0
    default_base_score: float = 80.0
    types: frozenset[str] = frozenset({"ip-dst", "ip-src", "domain", "hostname", "url", "domain|ip"})


@dataclass
class FakeMisp:
    """The fake server and its data; use as a context manager or call :meth:`start` and :meth:`stop`."""

    org_name: str = "Example Org"
    org_uuid: str = "5b9e2c3a-0f1d-4c6e-9a7b-1c2d3e4f5a6b"
    api_key: str = API_KEY
    perm_publish: bool = True
    keep_bodies: bool = False
    decay_model: DecayModel | None = None
    warninglists: dict[str, set[str]] = field(default_factory=dict)
    clock: Any = time.time
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.describe = json.loads((resources.files("pymisp") / "data" / "describeTypes.json").read_text())["result"]
        self.orgs: dict[int, dict[str, str]] = {
            1: {"id": "1", "name": self.org_name, "uuid": self.org_uuid, "local": True},
            2: {"id": "2", "name": "Example SOC", "uuid": "7f09444b-2404-426e-a06d-a1102df4156d", "local": True},
        }
        self.users: dict[str, int] = {self.api_key: 1}
        self.events: dict[int, dict[str, Any]] = {}
        self.attributes: dict[int, dict[str, Any]] = {}
        self.sightings: dict[int, dict[str, Any]] = {}
        self.tags: dict[int, dict[str, Any]] = {}
        self.sharing_groups = {1: "Alliance"}
        self.event_blocklist: set[str] = set()
        self.dropped: list[dict[str, Any]] = []
        """Attributes MISP would drop silently (events/add and events/edit), with the reason."""
        self._by_uuid: dict[str, int] = {}
        self._by_event: dict[int, list[int]] = {}
        self._event_by_uuid: dict[str, int] = {}
        self._values: dict[tuple[int, str, str, str], int] = {}
        self._next = {"event": 1, "attribute": 1, "sighting": 1, "tag": 1}
        self._last_uuid = ""
        self._injections: list[Injection] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifetime ------------------------------------------------------------------------------------

    def start(self) -> FakeMisp:
        """Listen on 127.0.0.1 on a free port."""
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-misp", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeMisp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:<port>``."""
        assert self._server is not None, "the fake MISP is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- test helpers --------------------------------------------------------------------------------

    def inject(
        self,
        path: str,
        *,
        status: int | None = None,
        delay: float = 0.0,
        times: int = 1,
        method: str | None = None,
        body: Any = None,
        text: str | None = None,
    ) -> None:
        """Make the next ``times`` requests whose path matches the regex ``path`` fail or wait.

        ``body`` replaces the JSON error body; ``text`` sends an HTML page instead of JSON.
        """
        with self._lock:
            self._injections.append(Injection(re.compile(path), status, delay, times, method, body, text))

    def writes(self) -> list[RecordedRequest]:
        """Return the requests that changed something."""
        return [r for r in self.requests if r.write]

    def reset_log(self) -> None:
        """Forget the recorded requests."""
        self.requests.clear()

    def attribute(self, attribute_uuid: str) -> dict[str, Any] | None:
        """Return the stored attribute with this UUID, its tags as names under ``tags``."""
        attribute_id = self._by_uuid.get(attribute_uuid)
        if attribute_id is None:
            return None
        stored = self.attributes[attribute_id]
        return {**stored, "tags": [self.tags[t]["name"] for t in stored["tag_ids"]]}

    def event(self, event_ref: str | int) -> dict[str, Any] | None:
        """Return the stored event by id or UUID."""
        event_id = self._event_id(str(event_ref))
        return None if event_id is None else self.events[event_id]

    def live_attributes(self) -> list[dict[str, Any]]:
        """Return every attribute that is not deleted."""
        return [a for a in self.attributes.values() if not a["deleted"]]

    def seed_event(self, event: dict[str, Any], *, org_id: int = 1, published: bool = True) -> dict[str, Any]:
        """Store an event directly, as if another tool had created it; returns the stored event."""
        with self._lock:
            data = json.loads(json.dumps(event))
            data.setdefault("published", published)
            stored, _ = self._create_event(data, org_id=org_id, keep_timestamps=True, drop_invalid=False)
            return stored

    def seed_sighting(
        self, attribute_uuid: str, *, type_: int = 0, source: str = "", when: int, org_id: int = 2
    ) -> dict[str, Any]:
        """Store a sighting directly, as if another organisation had added it."""
        with self._lock:
            attribute = self.attributes[self._by_uuid[attribute_uuid]]
            return self._store_sighting(attribute, type_, source, when, org_id)

    # -- request handling ----------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, headers: Any, body: bytes) -> tuple[int, Any, dict[str, str]]:
        """Handle one request; return the status, the JSON body and extra headers."""
        path = urlsplit(raw_path).path.rstrip("/") or "/"
        injection = self._take_injection(method, path)
        if injection is not None:
            if injection.delay:
                time.sleep(injection.delay)
            if injection.status is not None and injection.text is not None:
                return injection.status, _Html(injection.text), {}
            if injection.status is not None:
                payload = injection.body or {"name": "Injected failure", "message": "Injected failure", "url": path}
                return injection.status, payload, {}

        key = headers.get("Authorization") or headers.get("X-MISP-AUTH")
        if key not in self.users:
            message = ("Authentication failed. Please make sure you pass the API key of an API enabled user along "
                       "in the Authorization header.")  # fmt: skip
            return 403, {"name": message, "message": message, "url": path}, {}
        if "application/json" not in (headers.get("Accept") or ""):
            return 406, {"name": "Not acceptable", "message": "This fake only speaks JSON.", "url": path}, {}

        data: Any = None
        if body:
            try:
                data = json.loads(body)
            except ValueError:
                return 400, {"name": "Invalid JSON", "message": "The request body is not JSON.", "url": path}, {}

        with self._lock:
            try:
                return self._route(method, path, data)
            except MispError as exc:
                return exc.status, exc.body, {}

    def record(self, method: str, path: str, status: int, body: bytes) -> None:
        clean = urlsplit(path).path.rstrip("/")
        route = re.sub(r"/[A-Za-z]+:[^/]*", "", clean)
        write = method not in ("GET", "HEAD") and not READ_PATHS.match(route)
        parsed = None
        if self.keep_bodies and body:
            parsed = json.loads(body)
        self.requests.append(RecordedRequest(method, clean, status, len(body), write, parsed))

    def _take_injection(self, method: str, path: str) -> Injection | None:
        with self._lock:
            for injection in self._injections:
                if injection.times > 0 and injection.pattern.search(path):
                    if injection.method and injection.method != method:
                        continue
                    injection.times -= 1
                    return injection
        return None

    def _route(self, method: str, path: str, data: Any) -> tuple[int, Any, dict[str, str]]:
        segments = [s for s in path.split("/") if s]
        named = dict(s.split(":", 1) for s in segments if ":" in s)
        plain = [s for s in segments if ":" not in s]
        route = "/".join(plain[:2])
        argument = plain[2] if len(plain) > 2 else None
        user_org = 1

        if method == "GET" and route == "servers/getVersion":
            return 200, self._version(), {}
        if method == "GET" and route in ("servers/getPyMISPVersion.json", "servers/getPyMISPVersion"):
            return 200, {"version": self._version()["pymisp_recommended_version"]}, {}
        if method == "GET" and route == "users/view" and argument == "me":
            return 200, self._me(), {}
        if method == "GET" and route in ("attributes/describeTypes.json", "attributes/describeTypes"):
            return 200, {"result": self.describe}, {}
        if method in ("GET", "HEAD") and route == "events/view" and argument:
            return 200, {"Event": self._view(self._require_event(argument, path), metadata=False)}, {}
        if method == "GET" and route == "tags":
            return 200, {"Tag": list(self.tags.values())}, {}
        if method != "POST":
            raise _api_error(405, "Method Not Allowed", path)

        if route == "events/add":
            return 200, self._events_add(data, named, user_org, path), {}
        if route == "events/edit" and argument:
            return 200, self._events_edit(argument, data, named, user_org, path), {}
        if route == "events/index":
            return 200, self._events_index(data or {}), {}
        if route == "events/publish" and argument:
            return 200, self._publish(argument, path), {}
        if route == "attributes/add" and argument:
            return self._attributes_add(argument, data, named, user_org, path)
        if route == "attributes/restSearch":
            return self._attributes_search(data or {}, path)
        if route == "sightings/add":
            return 200, self._sightings_add(data or {}, argument, user_org, path), {}
        if route == "sightings/restSearch":
            return 200, {"response": self._sightings_search(data or {}, argument, path)}, {}
        raise _api_error(404, f"The requested address '{path}' was not found on this server.", path)

    # -- identity ------------------------------------------------------------------------------------

    def _version(self) -> dict[str, Any]:
        from pymisp import __version__ as pymisp_version

        return {
            "version": MISP_VERSION,
            "pymisp_recommended_version": pymisp_version,
            "perm_sync": False,
            "perm_sighting": True,
            "perm_galaxy_editor": False,
            "request_encoding": ["gzip", "br"],
            "filter_sightings": True,
        }

    def _me(self) -> dict[str, Any]:
        org = self.orgs[1]
        return {
            "User": {"id": "1", "org_id": "1", "email": "sync@example.org", "role_id": "3", "disabled": False,
                     "autoalert": False, "contactalert": False, "termsaccepted": True},
            "Role": {"id": "3", "name": "User", "perm_add": True, "perm_modify": True, "perm_modify_org": True,
                     "perm_publish": self.perm_publish, "perm_sighting": True, "perm_tagger": True,
                     "perm_tag_editor": True, "perm_sync": False, "perm_admin": False, "perm_site_admin": False},
            "UserSetting": {},
            "Organisation": org,
        }  # fmt: skip

    # -- events --------------------------------------------------------------------------------------

    def _event_id(self, ref: str) -> int | None:
        if ref.isdigit():
            return int(ref) if int(ref) in self.events else None
        return self._event_by_uuid.get(ref.lower())

    def _require_event(self, ref: str, path: str) -> dict[str, Any]:
        event_id = self._event_id(ref)
        if event_id is None:
            raise _api_error(404, "Invalid event", path)
        return self.events[event_id]

    def _create_event(
        self, data: dict[str, Any], *, org_id: int, keep_timestamps: bool = False, drop_invalid: bool = True
    ) -> tuple[dict[str, Any], list[Any]]:
        info = data.get("info")
        if not isinstance(info, str) or not info.strip():
            raise MispError(403, {"saved": False, "name": "Could not add Event", "message": "Could not add Event",
                                  "url": "/events/add", "errors": {"Event": {"info": ["Info cannot be empty."]}}})  # fmt: skip
        event_uuid = str(data.get("uuid") or uuid.uuid4()).lower()
        _check_uuid(event_uuid, "/events/add")
        if event_uuid in self.event_blocklist:
            raise _api_error(403, "Event blocked by event blocklist.", "/events/add")
        if event_uuid in self._event_by_uuid:
            raise _api_error(
                404, "Event already exists, if you would like to edit it, use the url in the location header.",
                "/events/add",
            )  # fmt: skip
        distribution = int(data.get("distribution", 0))
        if distribution not in range(0, 5):
            raise _api_error(403, "Invalid distribution.", "/events/add")
        sharing_group = int(data.get("sharing_group_id") or 0)
        if distribution == 4 and sharing_group not in self.sharing_groups:
            raise _api_error(405, "Invalid Sharing Group or not authorised.", "/events/add")

        now = int(self.clock())
        event_id = self._next["event"]
        self._next["event"] += 1
        orgc_id = org_id
        if keep_timestamps and isinstance(data.get("Orgc"), dict):
            orgc_id = self._org_for(data["Orgc"])
        orgc = self.orgs[orgc_id]
        event = {
            "id": event_id,
            "orgc_id": orgc_id,
            "org_id": org_id,
            "Orgc": {"id": orgc["id"], "name": orgc["name"], "uuid": orgc["uuid"]},
            "date": str(data.get("date") or datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")),
            "threat_level_id": int(data.get("threat_level_id", 4)),
            "info": info,
            "published": bool(data.get("published")) and self.perm_publish,
            "uuid": event_uuid,
            "analysis": int(data.get("analysis", 0)),
            "timestamp": int(data.get("timestamp") or now) if keep_timestamps else now,
            "distribution": distribution,
            "sharing_group_id": sharing_group if distribution == 4 else 0,
            "publish_timestamp": now if data.get("published") else 0,
            "tag_ids": [],
        }
        self.events[event_id] = event
        self._event_by_uuid[event_uuid] = event_id
        for tag in data.get("Tag") or []:
            self._attach_tag(event["tag_ids"], tag)

        errors = []
        for index, attribute in enumerate(data.get("Attribute") or []):
            problem = self._capture(attribute, event, keep_timestamp=keep_timestamps)
            if problem:
                if not drop_invalid:
                    raise MispError(400, {"seed": index, "errors": problem})
                self.dropped.append({"event": event_uuid, "attribute": attribute, "errors": problem})
                errors.append(problem)
        for obj in data.get("Object") or []:
            for attribute in obj.get("Attribute") or []:
                self._capture({**attribute, "object_id": 1, "object_relation": attribute.get("object_relation") or "x"},
                              event, keep_timestamp=keep_timestamps)  # fmt: skip
        return event, errors

    def _org_for(self, orgc: dict[str, Any]) -> int:
        for org_id, org in self.orgs.items():
            if org["uuid"] == orgc.get("uuid"):
                return org_id
        org_id = max(self.orgs) + 1
        self.orgs[org_id] = {"id": str(org_id), "name": str(orgc.get("name") or ""), "uuid": str(orgc.get("uuid") or uuid.uuid4()),
                             "local": False}  # fmt: skip
        return org_id

    def _events_add(self, data: Any, named: dict[str, str], org_id: int, path: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise _api_error(400, "The request body must be an event.", path)
        data = data.get("Event", data)
        if data.get("published") and not self.perm_publish:
            data = {**data, "published": False}
        event, _ = self._create_event(data, org_id=org_id)
        return {"Event": self._view(event, metadata=named.get("metadata") == "1")}

    def _events_edit(self, ref: str, data: Any, named: dict[str, str], org_id: int, path: str) -> dict[str, Any]:
        event = self._require_event(ref, path)
        if event["orgc_id"] != org_id:
            raise _api_error(403, "You are not authorised to do that.", path)
        if not isinstance(data, dict):
            raise _api_error(400, "The request body must be an event.", path)
        data = data.get("Event", data)
        if "timestamp" in data and int(data["timestamp"]) <= event["timestamp"]:
            raise MispError(403, {"saved": False, "name": "Could not edit Event", "message": "Could not edit Event",
                                  "url": path, "errors": "Event could not be saved: Event in the request not newer "
                                                         "than the local copy."})  # fmt: skip
        for name in ("info", "threat_level_id", "analysis", "date"):
            if name in data:
                event[name] = data[name]
        if "distribution" in data:
            event["distribution"] = int(data["distribution"])
        event["timestamp"] = max(int(self.clock()), event["timestamp"] + 1)
        event["published"] = bool(data.get("published")) and self.perm_publish

        for attribute in data.get("Attribute") or []:
            self._edit_attribute(attribute, event)
        for tag in data.get("Tag") or []:
            self._attach_tag(event["tag_ids"], tag)
        return {"Event": self._view(event, metadata=named.get("metadata") == "1")}

    def _events_index(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        wanted = filters.get("eventid")
        refs: list[str] | None = None
        if isinstance(wanted, list):
            refs = [str(x) for x in wanted]
        elif isinstance(wanted, str) and wanted:
            refs = wanted.split("|")
        events = []
        for event in self.events.values():
            if refs is not None and str(event["id"]) not in refs and event["uuid"] not in refs:
                continue
            view = self._view(event, metadata=True)
            view["attribute_count"] = str(self._attribute_count(event["id"]))
            view.pop("Tag", None)
            events.append(view)
        return events

    def _publish(self, ref: str, path: str) -> dict[str, Any]:
        event = self._require_event(ref, path)
        if not self.perm_publish:
            raise _api_error(403, "You do not have permission to do that.", path)
        event["published"] = True
        event["publish_timestamp"] = int(self.clock())
        return {"saved": True, "success": True, "name": "Job queued", "message": "Job queued",
                "url": f"/events/publish/{event['id']}", "id": str(event["id"])}  # fmt: skip

    def _event_attributes(self, event_id: int) -> list[dict[str, Any]]:
        return [self.attributes[i] for i in self._by_event.get(event_id, [])]

    def _attribute_count(self, event_id: int) -> int:
        return sum(1 for a in self._event_attributes(event_id) if not a["deleted"])

    def _view(self, event: dict[str, Any], *, metadata: bool) -> dict[str, Any]:
        view = {
            "id": str(event["id"]),
            "orgc_id": str(event["orgc_id"]),
            "org_id": str(event["org_id"]),
            "date": event["date"],
            "threat_level_id": str(event["threat_level_id"]),
            "info": event["info"],
            "published": event["published"],
            "uuid": event["uuid"],
            "attribute_count": str(self._attribute_count(event["id"])),
            "analysis": str(event["analysis"]),
            "timestamp": str(event["timestamp"]),
            "distribution": str(event["distribution"]),
            "sharing_group_id": str(event["sharing_group_id"]),
            "proposal_email_lock": False,
            "locked": False,
            "publish_timestamp": str(event["publish_timestamp"]),
            "sighting_timestamp": "0",
            "disable_correlation": False,
            "extends_uuid": "",
            "protected": None,
            "Org": self.orgs[event["org_id"]],
            "Orgc": event["Orgc"],
            "Tag": [self.tags[t] for t in event["tag_ids"]],
        }
        if not metadata:
            attributes = [a for a in self._event_attributes(event["id"]) if not a["deleted"]]
            view["Attribute"] = [self._attribute_view(a) for a in attributes if a["object_id"] == 0]
            view["Object"] = []
        return view

    # -- attributes ----------------------------------------------------------------------------------

    def _attributes_add(
        self, ref: str, data: Any, named: dict[str, str], org_id: int, path: str
    ) -> tuple[int, Any, dict[str, str]]:
        event = self._require_event(ref, path)
        if event["orgc_id"] != org_id:
            raise _api_error(403, "You do not have permission to do that.", path)
        if isinstance(data, dict) and "Attribute" in data:
            data = data["Attribute"]
        attributes = data if isinstance(data, list) else [data]
        break_on_duplicate = named.get("breakOnDuplicate", "1") != "0"

        fails: dict[str, Any] = {}
        saved: list[dict[str, Any]] = []
        for index, attribute in enumerate(attributes):
            if not isinstance(attribute, dict):
                fails[f"attribute_{index}"] = {"value": ["Attribute is not an object."]}
                continue
            problem = self._capture(attribute, event, break_on_duplicate=break_on_duplicate)
            if problem:
                fails[f"attribute_{index}"] = problem
            else:
                saved.append(self.attributes[self._by_uuid[self._last_uuid]])
        if saved:
            event["published"] = False
            event["timestamp"] = max(int(self.clock()), event["timestamp"])
        if not saved:
            errors = fails["attribute_0"] if len(attributes) == 1 else fails
            return 403, {"saved": False, "name": "Could not add Attribute", "message": "Could not add Attribute",
                         "url": path, "errors": errors}, {}  # fmt: skip
        if len(saved) == 1:
            body: dict[str, Any] = {"Attribute": self._attribute_view(saved[0])}
        else:
            body = {"Attribute": [self._attribute_view(a) for a in saved]}
        if fails:
            body["errors"] = fails
        return 200, body, {}

    def _normalise(self, attribute: dict[str, Any], event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Apply MISP's beforeValidate massaging and validation rules; return the values and the errors."""
        errors: dict[str, list[str]] = {}
        misp_type = attribute.get("type")
        if not misp_type:
            return {}, {"type": ["No type set."]}
        if misp_type not in self.describe["types"]:
            return {}, {"type": ["Invalid type."]}
        value = attribute.get("value")
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            return {}, {"value": ["Value is an array."] if isinstance(value, list) else ["Value is empty."]}
        value = _modify_before_validation(misp_type, str(value).strip())

        category = attribute.get("category") or self.describe["sane_defaults"][misp_type]["default_category"]
        if category not in self.describe["categories"]:
            errors["category"] = ["Options : Payload delivery, Antivirus detection, Payload installation, Files dropped ..."]
        elif misp_type not in self.describe["category_type_mappings"].get(category, []):
            errors["type"] = ["Options depend on the selected category."]

        composite = "|" in misp_type or misp_type == "malware-sample"
        if not value:
            errors.setdefault("value", []).append("Value is empty.")
        elif composite and value.count("|") != 1:
            errors.setdefault("value", []).append("Composite type found but the value not in the composite (value1|value2) format.")
        else:
            problem = _validate_value(misp_type, value)
            if problem is not True:
                errors.setdefault("value", []).append(problem)

        distribution = int(attribute.get("distribution", 5))
        if distribution not in range(0, 6):
            errors["distribution"] = ["Options: Your organisation only, This community only, Connected communities, All communities, Sharing group, Inherit event"]
        sharing_group = int(attribute.get("sharing_group_id") or 0)
        if distribution == 4 and sharing_group not in self.sharing_groups:
            errors["sharing_group_id"] = ["Invalid sharing group."]

        seen = {}
        for name in ("first_seen", "last_seen"):
            text = attribute.get(name)
            if text in (None, ""):
                seen[name] = None
                continue
            try:
                seen[name] = datetime.fromisoformat(str(text))
            except ValueError:
                errors[name] = ["Invalid ISO 8601 format"]
        if seen.get("first_seen") and seen.get("last_seen") and seen["last_seen"] < seen["first_seen"]:
            errors["last_seen"] = ["Last seen value should be greater than first seen value"]

        to_ids = attribute.get("to_ids", self.describe["sane_defaults"][misp_type]["to_ids"])
        clean = {
            "type": misp_type,
            "category": category,
            "value": value,
            "to_ids": bool(to_ids) and to_ids not in ("0", "false"),
            "distribution": distribution,
            "sharing_group_id": sharing_group if distribution == 4 else 0,
            "comment": str(attribute.get("comment") or ""),
            "first_seen": _iso(seen.get("first_seen")),
            "last_seen": _iso(seen.get("last_seen")),
            "deleted": bool(attribute.get("deleted")) and attribute.get("deleted") not in ("0", "false"),
            "disable_correlation": bool(attribute.get("disable_correlation")),
            "object_id": int(attribute.get("object_id") or 0),
            "object_relation": attribute.get("object_relation"),
        }
        return clean, errors

    def _capture(
        self, attribute: dict[str, Any], event: dict[str, Any], *, break_on_duplicate: bool = True,
        keep_timestamp: bool = False,
    ) -> dict[str, Any] | None:
        """Create (or, with ``break_on_duplicate`` false, update) one attribute; return errors or None."""
        clean, errors = self._normalise(attribute, event)
        if errors:
            return errors
        attribute_uuid = str(attribute.get("uuid") or uuid.uuid4()).lower()
        if not _is_uuid(attribute_uuid):
            return {"uuid": ["Please provide a valid RFC 4122 UUID"]}

        value_key = (event["id"], clean["type"], clean["category"], clean["value"])
        existing_id = self._values.get(value_key) if clean["object_id"] == 0 else None
        if existing_id is not None and self.attributes[existing_id]["deleted"]:
            existing_id = None
        if existing_id is not None and break_on_duplicate:
            return {"value": ["A similar attribute already exists for this event."]}
        if existing_id is None and attribute_uuid in self._by_uuid:
            return {"uuid": ["The UUID provided is not unique"]}

        now = int(self.clock())
        timestamp = int(attribute.get("timestamp") or now) if keep_timestamp else now
        if existing_id is not None:
            stored = self.attributes[existing_id]
            stored.update(clean, timestamp=timestamp)
        else:
            attribute_id = self._next["attribute"]
            self._next["attribute"] += 1
            stored = {"id": attribute_id, "event_id": event["id"], "uuid": attribute_uuid, "timestamp": timestamp,
                      "tag_ids": [], **clean}  # fmt: skip
            self.attributes[attribute_id] = stored
            self._by_event.setdefault(event["id"], []).append(attribute_id)
            self._by_uuid[attribute_uuid] = attribute_id
            if clean["object_id"] == 0:
                self._values[value_key] = attribute_id
        for tag in attribute.get("Tag") or []:
            self._attach_tag(stored["tag_ids"], tag)
        self._last_uuid = stored["uuid"]
        return None

    def _edit_attribute(self, attribute: dict[str, Any], event: dict[str, Any]) -> None:
        """Apply MISP's editAttribute: update by UUID when newer, else create; drop invalid ones silently."""
        attribute_uuid = str(attribute.get("uuid") or "").lower()
        existing_id = self._by_uuid.get(attribute_uuid) if attribute_uuid else None
        if existing_id is None:
            problem = self._capture(attribute, event)
            if problem:
                self.dropped.append({"event": event["uuid"], "attribute": attribute, "errors": problem})
            return

        stored = self.attributes[existing_id]
        if stored["event_id"] != event["id"]:
            self.dropped.append({"event": event["uuid"], "attribute": attribute,
                                 "errors": {"uuid": ["Duplicate UUID found in attribute"]}})  # fmt: skip
            return
        if "timestamp" in attribute and int(attribute["timestamp"]) <= stored["timestamp"]:
            return
        merged = {name: stored[name] for name in ("value", "to_ids", "distribution", "category", "type", "comment",
                                                  "sharing_group_id", "first_seen", "last_seen", "deleted")}  # fmt: skip
        merged.update({k: v for k, v in attribute.items() if k not in ("id", "uuid", "Tag", "timestamp")})
        clean, errors = self._normalise(merged, event)
        if errors:
            self.dropped.append({"event": event["uuid"], "attribute": attribute, "errors": errors})
            return
        stored.update(clean, timestamp=max(int(self.clock()), stored["timestamp"] + 1))
        for tag in attribute.get("Tag") or []:
            self._attach_tag(stored["tag_ids"], tag)

    def _attach_tag(self, tag_ids: list[int], tag: Any) -> None:
        name = tag.get("name") if isinstance(tag, dict) else None
        if not isinstance(name, str) or not name.strip():
            return
        tag_id = next((t["id"] for t in self.tags.values() if t["name"] == name), None)
        if tag_id is None:
            tag_id = self._next["tag"]
            self._next["tag"] += 1
            self.tags[tag_id] = {"id": tag_id, "name": name, "colour": "#ffffff", "exportable": True,
                                 "numerical_value": None}  # fmt: skip
        deleted = tag.get("deleted") in (True, 1, "1", "true")
        if deleted and tag_id in tag_ids:
            tag_ids.remove(tag_id)
        elif not deleted and tag_id not in tag_ids:
            tag_ids.append(tag_id)

    def _attribute_view(self, stored: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(stored["id"]),
            "event_id": str(stored["event_id"]),
            "object_id": str(stored["object_id"]),
            "object_relation": stored["object_relation"],
            "category": stored["category"],
            "type": stored["type"],
            "to_ids": stored["to_ids"],
            "uuid": stored["uuid"],
            "timestamp": str(stored["timestamp"]),
            "distribution": str(stored["distribution"]),
            "sharing_group_id": str(stored["sharing_group_id"]),
            "comment": stored["comment"],
            "deleted": stored["deleted"],
            "disable_correlation": stored["disable_correlation"],
            "first_seen": stored["first_seen"],
            "last_seen": stored["last_seen"],
            "value": stored["value"],
            "Tag": [self.tags[t] for t in stored["tag_ids"]],
        }

    # -- attribute search ----------------------------------------------------------------------------

    def _attributes_search(self, filters: dict[str, Any], path: str) -> tuple[int, Any, dict[str, str]]:
        unknown = sorted(set(filters) - ATTRIBUTE_FILTERS)
        if unknown:
            raise _api_error(400, f"Unknown restSearch filter(s): {', '.join(unknown)}", path)
        if filters.get("returnFormat", "json") != "json":
            raise _api_error(404, "Invalid output format.", path)

        matches = [a for a in self._candidates(filters) if self._attribute_matches(a, filters)]
        _order(matches, filters.get("order"))
        count = len(matches)
        limit = filters.get("limit")
        if limit is not None:
            page = int(filters.get("page") or 1)
            matches = matches[(page - 1) * int(limit) : page * int(limit)]
        result = [self._search_view(a, filters) for a in matches]
        return 200, {"response": {"Attribute": result}}, {"X-Result-Count": str(count)}

    def _candidates(self, filters: dict[str, Any]) -> Iterable[dict[str, Any]]:
        """Narrow a search by UUID to the attributes and events named, as MISP's database index does."""
        if not filters.get("uuid"):
            return self.attributes.values()
        found: dict[int, dict[str, Any]] = {}
        for ref in _as_list(filters["uuid"]):
            ref = str(ref).lower()
            if ref in self._by_uuid:
                found[self._by_uuid[ref]] = self.attributes[self._by_uuid[ref]]
            if ref in self._event_by_uuid:
                found.update((a["id"], a) for a in self._event_attributes(self._event_by_uuid[ref]))
        return [found[i] for i in sorted(found)]

    def _attribute_matches(self, stored: dict[str, Any], filters: dict[str, Any]) -> bool:
        event = self.events[stored["event_id"]]
        deleted = filters.get("deleted", 0)
        allowed_deleted = {bool(int(x)) for x in deleted} if isinstance(deleted, list) else {bool(int(deleted))}
        if stored["deleted"] not in allowed_deleted:
            return False
        if "uuid" in filters:
            wanted = {u.lower() for u in _as_list(filters["uuid"])}
            if stored["uuid"] not in wanted and event["uuid"] not in wanted:
                return False
        if "eventid" in filters:
            refs = {str(x).lower() for x in _as_list(filters["eventid"])}
            if str(event["id"]) not in refs and event["uuid"] not in refs:
                return False
        if "to_ids" in filters and filters["to_ids"] not in (None, ""):
            wanted_ids = {bool(int(x)) for x in _as_list(filters["to_ids"])}
            if stored["to_ids"] not in wanted_ids:
                return False
        if "published" in filters and filters["published"] not in (None, ""):
            if bool(int(filters["published"])) != event["published"]:
                return False
        if "type" in filters and stored["type"] not in _as_list(filters["type"]):
            return False
        if "value" in filters and stored["value"] not in _as_list(filters["value"]):
            return False
        if "timestamp" in filters and filters["timestamp"] not in (None, ""):
            low, high = _time_range(filters["timestamp"])
            if stored["timestamp"] < low or (high is not None and stored["timestamp"] > high):
                return False
        if "tags" in filters:
            names = {self.tags[t]["name"] for t in [*stored["tag_ids"], *event["tag_ids"]]}
            if not names & set(_as_list(filters["tags"])):
                return False
        return True

    def _search_view(self, stored: dict[str, Any], filters: dict[str, Any]) -> dict[str, Any]:
        event = self.events[stored["event_id"]]
        view = self._attribute_view(stored)
        if _flag(filters.get("includeContext")):
            context = self._view(event, metadata=True)
            context.pop("attribute_count", None)
            view["Event"] = context
        else:
            view["Event"] = {"org_id": str(event["org_id"]), "distribution": str(event["distribution"]),
                             "id": str(event["id"]), "info": event["info"], "orgc_id": str(event["orgc_id"]),
                             "uuid": event["uuid"], "publish_timestamp": str(event["publish_timestamp"])}  # fmt: skip
        if _flag(filters.get("includeEventUuid")):
            view["event_uuid"] = event["uuid"]
        if _flag(filters.get("includeEventTags")):
            view["Tag"] = [*view["Tag"], *({**self.tags[t], "inherited": 1} for t in event["tag_ids"])]
        if _flag(filters.get("includeWarninglistHits")) and stored["to_ids"]:
            hits = self._warnings(stored)
            if hits:
                view["warnings"] = hits
        if _flag(filters.get("includeDecayScore")) and self.decay_model is not None:
            scores = self._decay(stored, event, full=_flag(filters.get("includeFullModel")))
            if scores:
                view["decay_score"] = scores
        return view

    def _warnings(self, stored: dict[str, Any]) -> list[dict[str, Any]]:
        values = stored["value"].split("|", 1) if "|" in stored["type"] else [stored["value"]]
        hits = []
        for number, (name, entries) in enumerate(sorted(self.warninglists.items()), start=1):
            for value in values:
                if value in entries:
                    hits.append({"match": value, "value": stored["value"], "warninglist_id": str(number),
                                 "warninglist_name": name, "warninglist_category": "false_positive"})  # fmt: skip
                    break
        return hits

    def _decay(self, stored: dict[str, Any], event: dict[str, Any], *, full: bool) -> list[dict[str, Any]]:
        model = self.decay_model
        assert model is not None
        if stored["type"] not in model.types:
            return []
        last = max(
            [s["date_sighting"] for s in self.sightings.values() if s["attribute_id"] == stored["id"] and s["type"] == 0],
            default=None,
        )
        if last is None or last < stored["timestamp"]:
            last = stored["timestamp"]
        elapsed = max(0.0, self.clock() - last)
        lifetime = model.lifetime * 86_400
        score = max(0.0, model.default_base_score * (1 - (elapsed / lifetime) ** (1 / model.decay_speed)))
        description: dict[str, Any] = {"id": "1", "name": model.name}
        if full:
            description = {**description, "formula": "Polynomial", "enabled": True,
                           "parameters": {"lifetime": model.lifetime, "decay_speed": model.decay_speed,
                                          "threshold": model.threshold,
                                          "default_base_score": model.default_base_score}}  # fmt: skip
        return [{"score": score, "base_score": model.default_base_score, "decayed": score < model.threshold,
                 "DecayingModel": description}]  # fmt: skip

    # -- sightings -----------------------------------------------------------------------------------

    def _store_sighting(self, attribute: dict[str, Any], type_: int, source: str, when: int, org_id: int) -> dict[str, Any]:
        if type_ == 2:
            for sighting_id in [k for k, s in self.sightings.items()
                                if s["attribute_id"] == attribute["id"] and s["type"] == 2 and s["org_id"] == org_id]:  # fmt: skip
                del self.sightings[sighting_id]
        sighting_id = self._next["sighting"]
        self._next["sighting"] += 1
        sighting = {"id": sighting_id, "attribute_id": attribute["id"], "event_id": attribute["event_id"],
                    "org_id": org_id, "date_sighting": when, "uuid": str(uuid.uuid4()), "source": source,
                    "type": type_}  # fmt: skip
        self.sightings[sighting_id] = sighting
        return sighting

    def _sightings_add(self, data: dict[str, Any], argument: str | None, org_id: int, path: str) -> dict[str, Any]:
        if "request" in data:
            data = data["request"]
        data = data.get("Sighting", data)
        type_text = str(data.get("type", "0"))
        if type_text not in ("0", "1", "2"):
            raise MispError(200, {"message": "Could not add the Sighting. Reason: Invalid type, please change it "
                                             "before you POST 1000000 sightings."})  # fmt: skip
        when = int(data.get("timestamp") or self.clock())
        source = str(data.get("source") or "").strip()
        ref = argument or data.get("uuid") or data.get("id")

        targets: list[dict[str, Any]] = []
        if ref:
            ref = str(ref)
            if len(ref) == 36:
                found = self._by_uuid.get(ref.lower())
                targets = [self.attributes[found]] if found else []
            else:
                ids = [int(x) for x in ref.split("|") if x.isdigit()]
                targets = [self.attributes[i] for i in ids if i in self.attributes]
        elif data.get("values") or data.get("value"):
            values = _as_list(data.get("values") or data.get("value"))
            targets = [a for a in self.attributes.values()
                       if a["value"] in values or any(v in a["value"].split("|") for v in values)]  # fmt: skip
        else:
            raise MispError(200, {"message": "Could not add the Sighting. Reason: No valid attributes found."})
        if not targets:
            raise MispError(200, {"message": "Could not add the Sighting. Reason: No valid attributes found that "
                                             "match the criteria."})  # fmt: skip
        last = None
        for attribute in targets:
            last = self._store_sighting(attribute, int(type_text), source, when, org_id)
        assert last is not None
        return {"Sighting": _strings(last)}

    def _sightings_search(self, filters: dict[str, Any], context: str | None, path: str) -> list[dict[str, Any]]:
        unknown = sorted(set(filters) - SIGHTING_FILTERS)
        if unknown:
            raise _api_error(400, f"Unknown restSearch filter(s): {', '.join(unknown)}", path)
        context = context or filters.get("context")
        if context is not None and context not in ("event", "attribute"):
            raise _api_error(400, f"Invalid context {context}.", path)
        if context and not (filters.get("id") or filters.get("uuid")):
            raise _api_error(400, "An ID or UUID must be provided if the context is set.", path)

        if "from" in filters and "to" in filters:
            low, high = int(filters["from"]), int(filters["to"])
        elif "last" in filters:
            low, high = int(self.clock()) - _seconds(filters["last"]), None
        else:
            low, high = int(self.clock()) - 30 * 86_400, None
        types = {int(t) for t in _as_list(filters["type"])} if "type" in filters else None
        uuids = {u.lower() for u in _as_list(filters.get("uuid") or [])}

        results = []
        for sighting in sorted(self.sightings.values(), key=lambda s: s["id"]):
            attribute = self.attributes[sighting["attribute_id"]]
            event = self.events[sighting["event_id"]]
            if sighting["date_sighting"] < low or (high is not None and sighting["date_sighting"] > high):
                continue
            if types is not None and sighting["type"] not in types:
                continue
            if "source" in filters and sighting["source"] != filters["source"]:
                continue
            if context == "attribute" and attribute["uuid"] not in uuids:
                continue
            if context == "event" and event["uuid"] not in uuids:
                continue
            result = _strings(sighting)
            result["value"] = attribute["value"]
            if _flag(filters.get("includeUuid")):
                result["attribute_uuid"] = attribute["uuid"]
                result["event_uuid"] = event["uuid"]
            if _flag(filters.get("includeAttribute")):
                result["Attribute"] = {k: self._attribute_view(attribute)[k]
                                       for k in ("id", "value", "uuid", "type", "category", "to_ids")}  # fmt: skip
            if _flag(filters.get("includeEvent")):
                result["Event"] = {"id": str(event["id"]), "uuid": event["uuid"], "orgc_id": str(event["orgc_id"]),
                                   "org_id": str(event["org_id"]), "info": event["info"],
                                   "Orgc": {"name": event["Orgc"]["name"]}}  # fmt: skip
            org = self.orgs.get(sighting["org_id"])
            if org is not None:
                result["Organisation"] = {"id": org["id"], "uuid": org["uuid"], "name": org["name"]}
            results.append({"Sighting": result})
        return results


@dataclass
class _Html:
    """A page that is not JSON, such as the login page a misconfigured proxy returns."""

    text: str


class _Handler(BaseHTTPRequestHandler):
    fake: FakeMisp
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; without TCP_NODELAY each response waits for a delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, payload, extra = self.fake.handle(self.command, self.path, self.headers, body)
        self.fake.record(self.command, self.path, status, body)
        html = isinstance(payload, _Html)
        data = b"" if self.command == "HEAD" else (payload.text if html else json.dumps(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=UTF-8" if html else "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        if data:
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    do_GET = _serve
    do_POST = _serve
    do_HEAD = _serve
    do_PUT = _serve
    do_DELETE = _serve


# -- MISP's value rules (AttributeValidationTool) --------------------------------------------------------


def _modify_before_validation(misp_type: str, value: str) -> str:
    if misp_type in ("ip-src", "ip-dst"):
        return _normalise_ip(value)
    if misp_type == "domain":
        return value.lower().strip(".")
    if misp_type == "domain|ip":
        parts = value.lower().split("|")
        if len(parts) == 2:
            return f"{parts[0].strip('.')}|{_normalise_ip(parts[1])}"
        return value.lower()
    if misp_type in _LOWERCASED:
        text = value.lower()
        return text.replace(":", "") if misp_type.startswith("x509-fingerprint") else text
    if misp_type.startswith("filename|") and "|" in value:
        position = value.index("|")
        return value[:position] + value[position:].lower()
    if misp_type in ("ip-dst|port", "ip-src|port"):
        if value.count(":") >= 2 and "|" in value:
            address, port = value.rsplit("|", 1)
        elif "|" in value:
            address, port = value.split("|", 1)
        elif value.count(":") == 1:
            address, port = value.split(":", 1)
        else:
            return value
        return f"{_normalise_ip(address)}|{port}"
    if misp_type == "AS":
        return value[2:] if value.upper().startswith("AS") else value
    return value


def _normalise_ip(value: str) -> str:
    if "/" in value:
        address, prefix = value.split("/", 1)
        if ":" in address:
            try:
                address = str(ipaddress.IPv6Address(address))
            except ValueError:
                pass
        if (prefix == "32" and "." in value) or (prefix == "128" and ":" in value):
            return address
        return f"{address}/{prefix}"
    if ":" in value:
        try:
            return str(ipaddress.IPv6Address(value))
        except ValueError:
            return value
    return value


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _port_ok(text: str) -> bool:
    return text.isdigit() and 1 <= int(text) <= 65535


def _validate_value(misp_type: str, value: str) -> str | bool:
    """Return True when MISP accepts the value, else MISP's message."""
    if misp_type in _HASH_LENGTH:
        if len(value) == _HASH_LENGTH[misp_type] and all(c in "0123456789abcdefABCDEF" for c in value):
            return True
        return (f"Checksum has an invalid length or format (expected: {_HASH_LENGTH[misp_type]} hexadecimal "
                "characters). Please double check the value or select type \"other\".")  # fmt: skip
    if misp_type.startswith("filename|") and misp_type[9:] in _HASH_LENGTH:
        length = _HASH_LENGTH[misp_type[9:]]
        if re.fullmatch(r".+\|[0-9a-f]{" + str(length) + "}", value, re.DOTALL):
            return True
        return f"Checksum has an invalid length or format (expected: filename|{length} hexadecimal characters)."
    if misp_type == "malware-sample":
        return True
    if misp_type == "tlsh" or misp_type == "filename|tlsh":
        digest = value.split("|")[-1]
        digest = digest[1:] if digest.startswith("t") else digest
        return True if len(digest) > 35 and all(c in "0123456789abcdef" for c in digest) else "Invalid TLSH hash."
    if misp_type in ("ssdeep", "filename|ssdeep"):
        return True if _SSDEEP.match(value.split("|")[-1]) else "Invalid SSDeep hash. The format has to be blocksize:hash:hash"
    if misp_type in ("ip-src", "ip-dst"):
        if "/" in value:
            address, prefix = value.split("/", 1)
            if not prefix.isdigit():
                return "Invalid CIDR notation value found."
            if _valid_ip(address):
                limit = 32 if "." in address and ":" not in address else 128
                return True if int(prefix) <= limit else f"Invalid CIDR notation value found, must be lower or equal {limit}."
            return "IP address has an invalid format."
        return True if _valid_ip(value) else "IP address has an invalid format."
    if misp_type in ("ip-dst|port", "ip-src|port"):
        address, port = value.split("|", 1)
        if not _valid_ip(address):
            return "IP address has an invalid format."
        return True if _port_ok(port) else "Port numbers have to be integers between 1 and 65535."
    if misp_type in ("domain", "hostname"):
        return True if _DOMAIN.match(value) else f"{misp_type.capitalize()} has an invalid format."
    if misp_type == "hostname|port":
        host, port = value.split("|", 1)
        if not _DOMAIN.match(host):
            return "Hostname has an invalid format."
        return True if _port_ok(port) else "Port numbers have to be integers between 1 and 65535."
    if misp_type == "domain|ip":
        domain, address = value.split("|", 1)
        if not _DOMAIN.match(domain):
            return "Domain has an invalid format."
        return True if _valid_ip(address) else "IP address has an invalid format."
    if misp_type in ("email", "email-src", "email-dst", "target-email", "whois-registrant-email"):
        return True if _EMAIL.match(value) else "Email address has an invalid format."
    if misp_type == "AS":
        return True if value.isdigit() and int(value) <= 4_294_967_295 else "AS number have to be integer between 1 and 4294967295"
    if misp_type == "port":
        return True if _port_ok(value) else "Port numbers have to be integers between 1 and 65535."
    if misp_type in _NO_NEWLINE:
        return "Value must not contain new line character." if "\n" in value else True
    return True


# -- small helpers ----------------------------------------------------------------------------------------


def _check_uuid(text: str, path: str) -> None:
    if not _is_uuid(text):
        raise _api_error(403, "Please provide a valid RFC 4122 UUID", path)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.get("OR", []))
    return [value]


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true")


def _seconds(text: Any) -> int:
    text = str(text)
    units = {"d": 86_400, "h": 3600, "m": 60, "s": 1}
    if text[-1:] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


def _time_range(value: Any) -> tuple[int, int | None]:
    if isinstance(value, list):
        low, high = int(value[0]), int(value[1])
        return min(low, high), max(low, high)
    return int(value), None


def _order(items: list[dict[str, Any]], order: Any) -> None:
    if not order:
        items.sort(key=lambda a: -a["event_id"])  # MISP's default order: Attribute.event_id DESC
        return
    rules = [r.strip() for r in (order if isinstance(order, list) else str(order).split(",")) if r.strip()]
    for rule in reversed(rules):
        field_name, _, direction = rule.partition(" ")
        name = field_name.split(".")[-1].lower()
        if name not in ("id", "event_id", "timestamp", "type", "value"):
            raise _api_error(400, f"Invalid order field {field_name}", "/attributes/restSearch")
        items.sort(key=lambda a, n=name: a[n], reverse=direction.strip().lower() == "desc")


def _strings(record: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in record.items()}


def write_count(requests: Iterable[RecordedRequest]) -> int:
    """Return how many of ``requests`` changed something in the fake."""
    return sum(1 for r in requests if r.write)
