"""MISP warninglists as a fast lookup of atoms that should never be blocked.

The lists come from the ``pymispwarninglists`` package, which ships them as data files (no network at run
time). The files are read directly: importing the package's own module pulls in ``jsonschema`` and costs
about a second. Only the lists in :data:`WARNINGLIST_GROUPS` are loaded, and each is indexed once per
process: network lists as merged sorted ranges searched with ``bisect``, name and hash lists as sets.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import logging
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import MissingExtraError

logger = logging.getLogger(__name__)

# Groups of MISP warninglists by what a hit means. Names are the folder names in misp-warninglists.
WARNINGLIST_GROUPS: dict[str, tuple[str, ...]] = {
    "top-sites": ("tranco10k", "google", "microsoft", "microsoft-office365"),
    "public-dns": ("public-dns-v4", "public-dns-v6", "public-dns-hostname"),
    "cdn": ("akamai", "cloudflare", "fastly", "stackpath"),
    "cloud": (
        "amazon-aws", "google-gcp", "microsoft-azure", "microsoft-azure-china", "microsoft-azure-germany",
        "microsoft-azure-us-gov",
    ),
    "reserved-ranges": ("rfc1918", "rfc5735", "rfc6598", "rfc3849", "multicast", "ipv6-linklocal", "rfc6761"),
    "benign-hashes": ("empty-hashes", "common-ioc-false-positive", "ti-falsepositives"),
}  # fmt: skip

# Lists read for the public-suffix rule, not as warninglists of their own.
SUFFIX_LISTS = ("tlds", "second-level-tlds")

_HASH_TYPES = frozenset({"md5", "sha1", "sha256", "sha512"})
_IP_TYPES = frozenset({"ipv4", "ipv6", "ipv4-cidr", "ipv6-cidr"})

@dataclass(frozen=True)
class ListHit:
    """One warninglist that contains an atom."""

    name: str
    group: str
    description: str


@dataclass
class _Ranges:
    """Merged, sorted address ranges of one list and one address family, as integers."""

    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)

    def overlaps(self, first: int, last: int) -> bool:
        index = bisect_right(self.starts, last) - 1
        return index >= 0 and self.ends[index] >= first


@dataclass
class _IndexedList:
    name: str
    group: str
    description: str
    list_type: str
    names: frozenset[str] = frozenset()
    ranges: dict[int, _Ranges] = field(default_factory=dict)
    """Address ranges by IP version (4 or 6)."""


@cache
def lists_folder() -> Path:
    """Return the folder of list files shipped inside ``pymispwarninglists``, without importing it.

    Raises:
        MissingExtraError: the package is not installed (``pip install 'stixbridge[trust]'``).
    """
    spec = importlib.util.find_spec("pymispwarninglists")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("trust", "pymispwarninglists", "trust")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data" / "misp-warninglists" / "lists"
    if not folder.is_dir():
        raise MissingExtraError("trust", "pymispwarninglists", "trust")
    return folder


def _read_list(name: str) -> dict[str, Any]:
    path = lists_folder() / name / "list.json"
    with path.open(encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict) or not isinstance(data.get("list"), list) or data.get("type") not in _LIST_TYPES:
        raise ValueError(f"warninglist file {path} is not a MISP warninglist of a known type")
    return data


_LIST_TYPES = frozenset({"string", "substring", "hostname", "cidr", "regex"})


def _span(entry: str) -> tuple[int, int, int] | None:
    """Return (version, first, last) of an address or network, or None when it is neither."""
    if "/" not in entry and ":" not in entry:
        try:
            value = int(ipaddress.IPv4Address(entry))
        except ValueError:
            return None
        return 4, value, value
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None
    return network.version, int(network.network_address), int(network.broadcast_address)


def _merge(spans: list[tuple[int, int]]) -> _Ranges:
    ranges = _Ranges()
    for first, last in sorted(spans):
        if ranges.ends and first <= ranges.ends[-1] + 1:
            ranges.ends[-1] = max(ranges.ends[-1], last)
        else:
            ranges.starts.append(first)
            ranges.ends.append(last)
    return ranges


def _index(name: str, group: str) -> _IndexedList:
    data = _read_list(name)
    entries = [str(entry).strip() for entry in data["list"]]
    indexed = _IndexedList(name, group, str(data.get("description", "")), str(data["type"]))
    if indexed.list_type == "cidr":
        spans: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for entry in entries:
            span = _span(entry)
            if span is None:
                logger.debug("Warninglist %s has an entry that is not a network: %r", name, entry)
                continue
            spans[span[0]].append((span[1], span[2]))
        indexed.ranges = {version: _merge(found) for version, found in spans.items()}
    else:
        # MISP writes "every name under X" as ".X" in string lists; only the name itself is used here.
        indexed.names = frozenset(entry.lower().lstrip(".").rstrip(".") for entry in entries)
    return indexed


@cache
def _load(name: str, group: str) -> _IndexedList:
    return _index(name, group)


@cache
def public_suffixes() -> frozenset[str]:
    """Return top-level domains and public suffixes (``co.uk``, ``github.io``) in lower case."""
    names: set[str] = set()
    for name in SUFFIX_LISTS:
        names.update(_load(name, "public-suffix").names)
    return frozenset(names)


def domain_of_url(value: str) -> tuple[str, bool]:
    """Return (host, whole_site) of a canonical URL; whole_site is True when it has no path or query."""
    parts = urlsplit(value)
    host = (parts.hostname or "").rstrip(".")
    whole_site = parts.path in ("", "/") and not parts.query and not parts.fragment
    return host, whole_site


class WarningListIndex:
    """The loaded warninglists of some groups, with one lookup per atom.

    Args:
        groups: group names from :data:`WARNINGLIST_GROUPS` to load.

    Raises:
        MissingExtraError: ``pymispwarninglists`` is not installed.
    """

    def __init__(self, groups: list[str]) -> None:
        self.lists: list[_IndexedList] = []
        for group in groups:
            for name in WARNINGLIST_GROUPS[group]:
                self.lists.append(_load(name, group))
        self._network_lists = [item for item in self.lists if item.list_type == "cidr"]
        self._name_lists = [item for item in self.lists if item.group != "benign-hashes" and item.list_type != "cidr"]
        self._hash_lists = [item for item in self.lists if item.group == "benign-hashes"]

    def match(self, atom_type: str, value: str) -> list[ListHit]:
        """Return every loaded list that contains the atom.

        An address or network hits a network list when they overlap. A domain hits a name list when it is
        a listed name or ``www.`` and a listed name; a subdomain of a listed name does not, because shared
        hosting subdomains (``*.blogspot.com``) are often malicious and blocking one harms nobody else.
        A URL is checked by its host only when it names a whole site (no path and no query).
        """
        if atom_type in _IP_TYPES:
            return self._match_network(value)
        if atom_type == "domain":
            return self._match_name(value)
        if atom_type == "url":
            host, whole_site = domain_of_url(value)
            if _is_ip(host):
                return self._match_network(host.strip("[]"))
            return self._match_name(host) if whole_site else []
        if atom_type in _HASH_TYPES:
            return [_hit(item) for item in self._hash_lists if value.lower() in item.names]
        return []

    def _match_network(self, value: str) -> list[ListHit]:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return []
        first, last = int(network.network_address), int(network.broadcast_address)
        hits = []
        for item in self._network_lists:
            ranges = item.ranges.get(network.version)
            if ranges is not None and ranges.overlaps(first, last):
                hits.append(_hit(item))
        return hits

    def _match_name(self, name: str) -> list[ListHit]:
        name = name.lower().rstrip(".")
        bare = name[4:] if name.startswith("www.") else name
        return [_hit(item) for item in self._name_lists if name in item.names or bare in item.names]


def _hit(item: _IndexedList) -> ListHit:
    return ListHit(item.name, item.group, item.description)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
