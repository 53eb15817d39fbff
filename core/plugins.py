"""Finds connector classes through the ``stixbridge.connectors`` entry-point group.

Entry names are ``<role>.<kind>``: ``source.taxii``, ``sink.splunk``, ``sightings.elastic``. A package of
its own can add connectors by declaring entries in that group; nothing is discovered by importing modules.
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from .connector import Connector
from .errors import ConfigError, MissingExtraError

ENTRY_POINT_GROUP = "stixbridge.connectors"
ROLES = ("source", "sink", "sightings", "publish")


@cache
def _entries() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available(role: str) -> list[str]:
    """Return the kinds registered for a role, sorted."""
    prefix = f"{role}."
    return sorted(name.removeprefix(prefix) for name in _entries() if name.startswith(prefix))


def load(role: str, kind: str) -> type[Connector]:
    """Return the connector class registered as ``<role>.<kind>``.

    Raises:
        ConfigError: no connector has that name; the message lists the ones that exist.
        MissingExtraError: the connector's module needs a package that is not installed.
    """
    entry = _entries().get(f"{role}.{kind}")
    if entry is None:
        known = ", ".join(available(role)) or "none"
        raise ConfigError(f"unknown {role} kind {kind!r}; installed {role} kinds: {known}", key="kind")

    try:
        cls = entry.load()
    except ModuleNotFoundError as exc:
        module = (exc.name or "").split(".")[0]
        if module and not module.startswith("stixbridge"):
            raise MissingExtraError(kind, module, _EXTRA_OF_KIND.get(kind, "all")) from exc
        raise

    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise ConfigError(f"entry point {entry.name} does not name a connector class: {entry.value}")
    return cls


# Where a connector's own module does not import its SDK lazily, the loader still names the extra.
_EXTRA_OF_KIND = {"taxii": "taxii", "splunk": "splunk", "elastic": "elastic", "misp": "misp"}


def require(module: str, connector: str, extra: str) -> Any:
    """Import and return an optional SDK module, or raise MissingExtraError naming the extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingExtraError(connector, module.split(".")[0], extra) from exc
