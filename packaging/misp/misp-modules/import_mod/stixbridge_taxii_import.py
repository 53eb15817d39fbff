"""misp-modules import module: pull an alliance TAXII collection into a MISP event with stixbridge.

In MISP, "Populate using" -> "stixbridge TAXII import" shows a form for a source, a collection and a start
time, then the collection's live indicators as attributes for review. The module follows the
misp-modules interface (``misperrors``, ``mispattributes``, ``moduleinfo``, ``moduleconfig``,
``handler``, ``introspection``, ``version``) and hands the work to
``stixbridge.connectors.misp.taxii_import``, so stixbridge must be installed in the Python environment
of misp-modules: ``pip install 'stixbridge[taxii,misp]'``.

The MISP administrator sets, under Server Settings -> Plugin -> Import:

- ``config_path``: the stixbridge TOML file whose ``[[sources]]`` describe the alliance TAXII servers.
  Its secrets are environment variables of the misp-modules service, never MISP settings.
- ``max_objects``: the most STIX objects one import reads (default 10000).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

misperrors = {"error": "Error"}

mispattributes = {
    "inputSource": [],
    "output": ["MISP Format"],
    "format": "misp_standard",
}

moduleinfo = {
    "version": "0.1",
    "author": "stixbridge developers",
    "description": "Pull one alliance TAXII collection with stixbridge and add its live indicators as attributes.",
    "module-type": ["import"],
    "name": "stixbridge TAXII import",
    "logo": "",
    "requirements": ["stixbridge[taxii,misp] installed in the misp-modules environment"],
    "features": (
        "Reads a TAXII 2.0 or 2.1 collection through a source of the stixbridge configuration (its server, "
        "credentials and TLS settings), normalises STIX patterns into atoms, leaves out revoked and expired "
        "indicators, and returns one attribute per atom with its TLP tag."
    ),
    "references": ["https://docs.oasis-open.org/cti/taxii/v2.1/os/taxii-v2.1-os.html"],
    "input": "A source name, a collection id or title and an optional start time, given in the import form.",
    "output": "MISP attributes (to_ids for exact atoms) and a tag naming the source.",
}

moduleconfig = ["config_path", "max_objects"]

userConfig = {
    "source": {
        "type": "String",
        "message": "Name of the stixbridge source to read (empty when the configuration has only one)",
    },
    "collection": {
        "type": "String",
        "message": "TAXII collection id or title (empty: the collections the source lists)",
    },
    "added_after": {
        "type": "String",
        "message": "Only objects added after this time, for example 2024-05-01T00:00:00Z",
    },
    "to_ids": {
        "type": "Boolean",
        "message": "Flag the attributes for detection (IDS)",
        "checked": "True",
    },
}

DEFAULT_MAX_OBJECTS = 10_000


def _error(message: str) -> dict[str, str]:
    """Return a misp-modules error result; ``misperrors`` itself is never changed."""
    return {**misperrors, "error": message}


def _flag(value: Any, default: bool) -> bool:
    """Read a checkbox value, which MISP sends as true/false, 1/0 or "1"/"0"."""
    if value in (None, ""):
        return default
    return value in (True, 1, "1", "true", "True", "on")


def handler(q: Any = False) -> Any:
    """Run one import request and return ``{"results": ...}`` or ``{"error": ...}``."""
    if q is False:
        return False
    try:
        request = json.loads(q) if isinstance(q, (str, bytes)) else q
        config = request.get("config") or {}
    except (ValueError, AttributeError):
        return _error("the request is not a JSON object with a 'config' member")

    config_path = str(config.get("config_path") or "").strip()
    if not config_path:
        return _error("config_path is not set: a MISP administrator sets it to the stixbridge configuration file "
                      "in Server Settings -> Plugin -> Import")  # fmt: skip
    try:
        max_objects = int(config.get("max_objects") or DEFAULT_MAX_OBJECTS)
    except ValueError:
        return _error(f"max_objects must be a whole number, got {config.get('max_objects')!r}")

    try:
        from stixbridge.connectors.misp.taxii_import import ImportRequest, import_collection
        from stixbridge.errors import StixbridgeError
    except ImportError as exc:
        return _error(f"stixbridge is not installed where misp-modules runs ({exc}); install it with "
                      "pip install 'stixbridge[taxii,misp]' in that environment")  # fmt: skip

    wanted = ImportRequest(
        config_path=Path(config_path),
        source=str(config.get("source") or "").strip(),
        collection=str(config.get("collection") or "").strip(),
        added_after=str(config.get("added_after") or "").strip(),
        max_objects=max_objects,
        to_ids=_flag(config.get("to_ids"), True),
    )
    try:
        return import_collection(wanted)
    except (StixbridgeError, OSError) as exc:
        logger.error("stixbridge TAXII import failed: %s", exc)
        return _error(str(exc))


def introspection() -> dict[str, Any]:
    """Return what the module takes and gives, with the import form's fields."""
    return {**mispattributes, "userConfig": userConfig}


def version() -> dict[str, Any]:
    """Return the module description with the names of its administrator settings."""
    return {**moduleinfo, "config": moduleconfig}
