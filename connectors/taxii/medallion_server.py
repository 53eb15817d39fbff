"""A local TAXII 2.1 server (medallion, the OASIS reference server) serving seeded collections.

Used by the TAXII tests and by ``stixbridge demo``. The server runs in a child process on a loopback
address, with medallion's in-memory backend and HTTP Basic authentication, and stops when the context
manager exits. It needs the ``medallion`` package (``pip install 'stixbridge[demo]'``).

medallion 3.0.0 quirks that shape this module and its callers:

- ``medallion.load_app`` works once per process (Flask refuses to register blueprints after the first
  request), so each server gets its own process instead of a thread.
- The discovery resource lists API roots as literal URLs, so the data is written after the port is bound.
- A client must send ``Accept: application/taxii+json;version=2.1``. Without ``version=2.1`` the server
  responds with 406.
- ``next`` tokens are server-side sessions that expire ``session_timeout`` seconds (30 by default) after
  the first page; the TAXII source then resumes from its checkpoint.
- Posting an object that is already stored (same id and ``modified``) is reported as a failure; the
  TAXII publisher checks such failures and counts them as successes.
- The memory backend compares every object with every other on the first page of each request, so
  time grows with the square of the collection size, and it deep-copies every stored object twice per
  request. The child process caches timestamp parsing and copies only collection metadata, which brings
  a pull of 26,648 objects in 46 collections from 8 minutes to 26 s on a 2-CPU machine, but the first
  page of a 1,000-object collection still takes about a second: keep collections near 1,000 objects.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib.util
import ipaddress
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from stixbridge.errors import MissingExtraError

from .media import TAXII_21

logger = logging.getLogger(__name__)

API_ROOT = "stixbridge"
USERNAME = "stixbridge"
# Collection ids are derived from titles, so a restarted server keeps them and stored cursors stay valid.
COLLECTION_NAMESPACE = uuid.UUID("0b3f2c9e-6a41-4d8e-9f57-1c2d3e4f5a6b")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
# Above this many objects a collection makes medallion's memory backend slow (see the module docstring).
LARGE_COLLECTION = 1000
DEFAULT_MAX_CONTENT_LENGTH = 10 * 1024 * 1024
READY_FILE = "ready.json"

# medallion parses versions and dates with "%Y-%m-%dT%H:%M:%S.%fZ" or "%Y-%m-%dT%H:%M:%SZ" only.
_MEDALLION_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


@dataclass
class MedallionServer:
    """A running medallion server."""

    url: str
    """Discovery URL, ``http://127.0.0.1:<port>/taxii2/``."""
    api_root_url: str
    collection_ids: dict[str, str]
    """Collection title to id."""
    username: str
    password: str
    log_path: Path
    """medallion's own log (its stderr), kept until the server stops."""
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def log_text(self) -> str:
        """Return what medallion logged so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


@contextlib.contextmanager
def run_medallion(
    collections: dict[str, list[dict[str, Any]]],
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    max_page_size: int = 1000,
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
    session_timeout: int = 30,
) -> Iterator[MedallionServer]:
    """Start medallion serving ``collections`` (title to STIX objects) and stop it on exit.

    Args:
        collections: collection title to the objects it holds; each object gets its own ``date_added``,
            increasing in list order and earlier than the start.
        port: TCP port, 0 for a free one.
        host: a loopback address; any other is rejected, because the server has a known password.
        max_page_size: most objects medallion returns per page, whatever ``limit`` requests.
        max_content_length: the API root's limit on POST bodies, in bytes.
        session_timeout: seconds a ``next`` token stays valid.

    Raises:
        ValueError: ``host`` is not loopback, or an object cannot be served by medallion.
        MissingExtraError: medallion is not installed.
        RuntimeError: the server did not start; the message holds the end of its log.
    """
    if not _is_loopback(host):
        raise ValueError(f"run_medallion listens on loopback only; host {host!r} is not a loopback address")
    if importlib.util.find_spec("medallion") is None:
        raise MissingExtraError("local TAXII server", "medallion", "demo")
    prepared = {title: _prepare_objects(title, objects) for title, objects in collections.items()}

    with tempfile.TemporaryDirectory(prefix="stixbridge-medallion-") as folder:
        workdir = Path(folder)
        password = secrets.token_urlsafe(18)
        collection_ids = {title: str(uuid.uuid5(COLLECTION_NAMESPACE, title)) for title in prepared}
        seed = {
            "host": host,
            "port": port,
            "username": USERNAME,
            "password": password,
            "max_page_size": max_page_size,
            "max_content_length": max_content_length,
            "session_timeout": session_timeout,
            "collections": [
                {"id": collection_ids[title], "title": title, "objects": objects} for title, objects in prepared.items()
            ],
        }
        seed_path = workdir / "seed.json"
        seed_path.write_text(json.dumps(seed), encoding="utf-8")
        log_path = workdir / "medallion.log"

        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(seed_path)],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            bound_port = _wait_for_port(process, workdir / READY_FILE, log_path)
            base = f"http://{_url_host(host)}:{bound_port}"
            server = MedallionServer(
                url=f"{base}/taxii2/",
                api_root_url=f"{base}/{API_ROOT}/",
                collection_ids=collection_ids,
                username=USERNAME,
                password=password,
                log_path=log_path,
                _process=process,
            )
            _wait_until_ready(server, process)
            logger.info("medallion serves %d collections at %s.", len(collection_ids), server.url)
            yield server
        finally:
            _stop(process)


def _prepare_objects(title: str, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy the objects and check that medallion can serve each of them."""
    if len(objects) > LARGE_COLLECTION:
        logger.warning(
            "Collection %r has %d objects; medallion's memory backend slows down with the square of that "
            "number, so requests may take seconds. Split it into collections of about %d.",
            title, len(objects), LARGE_COLLECTION,
        )  # fmt: skip
    prepared = []
    for position, obj in enumerate(objects):
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or "--" not in obj["id"]:
            raise ValueError(f"object {position} of collection {title!r} is not a STIX object with an id")
        for key in ("modified", "created"):
            value = obj.get(key)
            if value is not None and not (isinstance(value, str) and _MEDALLION_TIMESTAMP.match(value)):
                raise ValueError(
                    f"{obj['id']} in collection {title!r} has {key} {value!r}, which medallion cannot parse; "
                    "it takes UTC timestamps with at most 6 fraction digits and a Z suffix"
                )
        prepared.append(copy.deepcopy(obj))
    return prepared


def _wait_for_port(process: subprocess.Popen[bytes], ready: Path, log_path: Path) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if ready.exists():
            return int(json.loads(ready.read_text(encoding="utf-8"))["port"])
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"medallion did not start (exit code {process.poll()}); its log ends:\n{_tail(log_path)}")


def _wait_until_ready(server: MedallionServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last_error = "no response"
    with requests.Session() as session:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                response = session.get(
                    server.url,
                    headers={"Accept": TAXII_21},
                    auth=(server.username, server.password),
                    timeout=2,
                )
                if response.status_code == 200:
                    return
                last_error = f"HTTP {response.status_code}"
            except requests.RequestException as exc:
                last_error = str(exc)
            time.sleep(0.05)
    raise RuntimeError(f"medallion at {server.url} did not respond ({last_error}); its log ends:\n"
                       f"{_tail(server.log_path)}")  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


# -- the child process ---------------------------------------------------------------------------------------


def build_data(seed: dict[str, Any], base: str, now: datetime) -> dict[str, Any]:
    """Return medallion's memory-backend data for the seeded collections served at ``base``."""
    api_root_url = f"{base}/{API_ROOT}/"
    total = sum(len(c["objects"]) for c in seed["collections"])
    # One millisecond apart, all in the past, so objects posted later sort after every seeded one.
    moment = now - timedelta(milliseconds=total + 1)

    collections = []
    for collection in seed["collections"]:
        objects = collection["objects"]
        manifest = []
        for obj in objects:
            moment += timedelta(milliseconds=1)
            date_added = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            if "modified" not in obj and "created" not in obj:
                # medallion versions such objects (STIX 2.1 SCOs) by this hidden field and strips it on output.
                obj["_date_added"] = date_added
            spec = obj.get("spec_version") or ("2.1" if "created" not in obj else "2.0")
            manifest.append({
                "id": obj["id"],
                "date_added": date_added,
                "version": obj.get("modified", obj.get("created", date_added)),
                "media_type": f"application/stix+json;version={spec}",
            })  # fmt: skip
        media_types = sorted({entry["media_type"] for entry in manifest} or {"application/stix+json;version=2.1"})
        collections.append({
            "id": collection["id"],
            "title": collection["title"],
            "description": "Seeded by stixbridge",
            "can_read": True,
            "can_write": True,
            "media_types": media_types,
            "objects": objects,
            "manifest": manifest,
        })  # fmt: skip

    return {
        "/discovery": {
            "title": "stixbridge local TAXII server (medallion)",
            "description": "A medallion server started by stixbridge on a loopback address",
            "default": api_root_url,
            "api_roots": [api_root_url],
        },
        API_ROOT: {
            "information": {
                "title": "stixbridge",
                "description": "Seeded collections",
                "versions": [TAXII_21],
                "max_content_length": seed["max_content_length"],
            },
            # POST appends status resources here, so the list must exist.
            "status": [],
            "collections": collections,
        },
    }


def _serve(seed_path: Path) -> None:
    """Bind, write the data with the bound port, configure medallion and serve until terminated."""
    from medallion import application_instance, register_blueprints, set_config
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            """Skip werkzeug's line per request."""

    logging.getLogger("medallion").setLevel(logging.WARNING)
    _cache_timestamp_parsing()
    seed = json.loads(seed_path.read_text(encoding="utf-8"))
    workdir = seed_path.parent

    # Binding first gives the real port, which the discovery resource must name.
    server = make_server(seed["host"], seed["port"], application_instance, threaded=True,
                         request_handler=QuietHandler)  # fmt: skip
    base = f"http://{_url_host(seed['host'])}:{server.server_port}"
    data_path = workdir / "data.json"
    data_path.write_text(json.dumps(build_data(seed, base, datetime.now(tz=UTC))), encoding="utf-8")

    configuration = {
        "users": {seed["username"]: seed["password"]},
        "taxii": {"max_page_size": seed["max_page_size"]},
    }
    for section in ("users", "taxii"):
        set_config(application_instance, section, configuration)
    application_instance.medallion_backend = _metadata_copying_backend()(
        filename=str(data_path),
        # Seconds a ``next`` token lives, and how often expired ones are dropped.
        session_timeout=seed["session_timeout"],
        check_interval=10,
    )
    register_blueprints(application_instance)

    ready = workdir / READY_FILE
    partial = ready.with_suffix(".tmp")
    partial.write_text(json.dumps({"port": server.server_port}), encoding="utf-8")
    os.replace(partial, ready)
    server.serve_forever()


def _cache_timestamp_parsing() -> None:
    """Memoise medallion's timestamp parser in this child process.

    medallion 3.0.0 sorts the first page of a request by comparing every manifest entry with every object
    and parses both timestamps with ``strptime`` on each comparison: about 500,000 calls and 4 s for a
    1,000-object collection on a 2-CPU machine. The parser is a pure function returning immutable
    datetimes, so caching it changes no response. The loops stay quadratic, with a far smaller constant.
    """
    import medallion.common
    import medallion.filters.basic_filter

    cached = functools.lru_cache(maxsize=1 << 17)(medallion.common.string_to_datetime)
    medallion.common.string_to_datetime = cached
    medallion.filters.basic_filter.string_to_datetime = cached


def _metadata_copying_backend() -> type:
    """Return medallion's memory backend with collection lookups that copy metadata only.

    medallion 3.0.0 reads a collection's metadata twice per request (existence and permission checks)
    by deep-copying every collection of the API root, stored objects included, and then dropping the
    objects. With 26,000 seeded objects that took most of a second per request. These overrides return
    the same resources without copying the objects.
    """
    from medallion.backends.memory_backend import MemoryBackend
    from medallion.common import create_resource

    bulky = ("manifest", "responses", "objects")

    def metadata(collection: dict[str, Any]) -> dict[str, Any]:
        return {key: copy.deepcopy(value) for key, value in collection.items() if key not in bulky}

    class MetadataCopyingBackend(MemoryBackend):
        def get_collections(self, api_root: str) -> dict[str, Any] | None:
            if api_root not in self.data:
                return None
            collections = self._get(api_root).get("collections", [])
            return create_resource("collections", [metadata(c) for c in collections])

        def get_collection(self, api_root: str, collection_id: str) -> dict[str, Any] | None:
            if api_root not in self.data:
                return None
            for collection in self._get(api_root).get("collections", []):
                if collection_id == collection["id"]:
                    return metadata(collection)
            return None

    return MetadataCopyingBackend


if __name__ == "__main__":
    _serve(Path(sys.argv[1]))
