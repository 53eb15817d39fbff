"""Finding the indicators a sighted value belongs to.

A value is canonicalised with :mod:`stixbridge.atoms` first, so ``HXXP://Evil.Example[.]com/`` finds the
indicator of ``http://evil.example.com/``. Without a type from the reader, the type is guessed from the
value's shape. An address also finds the live indicators of networks that contain it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..atoms import Atom, AtomError, atom_from_value
from ..sinks.mapping import LOWERCASE_TYPES
from ..store.sqlite import SqliteStore

_HEX = re.compile(r"[0-9a-fA-F]+")
_HASH_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}


@dataclass(frozen=True)
class LiveIndicator:
    """A live indicator that carries a sighted atom."""

    id: str
    tlp: int | None
    expires_at: float | None
    expiry_basis: str


def canonical_atom(value: str, atom_type: str | None = None) -> Atom | None:
    """Return the canonical atom of a sighted value, or None when it is no valid atom."""
    candidates = [atom_type] if atom_type else _guess_types(value.strip())
    for candidate in candidates:
        try:
            return atom_from_value(candidate, value)
        except AtomError:
            continue
    return None


def _guess_types(value: str) -> list[str]:
    if "://" in value or value.lower().startswith(("hxxp", "http")):
        return ["url"]
    if "@" in value:
        return ["email"]
    if _HEX.fullmatch(value) and len(value) in _HASH_BY_LENGTH:
        return [_HASH_BY_LENGTH[len(value)]]
    return ["ipv4", "domain"]


class IndicatorFinder:
    """Looks up live indicators by atom in one store.

    The live networks are read once per finder, because sightings of addresses are checked against
    every one of them.
    """

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self._networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] | None = None

    def live(self, atom: Atom) -> list[LiveIndicator]:
        """Return the live indicators with this atom as an exact atom, or with a network that contains it.

        A value of a type that Splunk lookups store in lower case (:data:`LOWERCASE_TYPES`, an e-mail
        address for one) also finds atoms that differ only in case, because a Splunk match reports the
        value as the lookup stores it. SQLite folds ASCII letters only.
        """
        ids = self._exact_ids(atom, "")
        if not ids and atom.type in LOWERCASE_TYPES:
            ids = self._exact_ids(atom, " COLLATE NOCASE")
        if atom.type in ("ipv4", "ipv6"):
            address = ipaddress.ip_address(atom.value)
            ids.extend(i for network, i in self._live_networks() if address in network and i not in ids)
        return [found for found in (self.indicator(i) for i in ids) if found is not None]

    def _exact_ids(self, atom: Atom, collation: str) -> list[str]:
        return [
            row[0]
            for row in self.store.db.execute(
                "SELECT DISTINCT a.indicator_id FROM indicator_atoms a JOIN indicators i ON i.id = a.indicator_id "
                f"WHERE a.type = ? AND a.value = ?{collation} AND a.role = 'exact' AND i.state = 'live' "
                "ORDER BY a.indicator_id",
                (str(atom.type), atom.value),
            )
        ]

    def indicator(self, indicator_id: str) -> LiveIndicator | None:
        """Return a live indicator by id, or None when it is not live."""
        row = self.store.db.execute(
            "SELECT id, tlp, expires_at, expiry_basis FROM indicators WHERE id = ? AND state = 'live'",
            (indicator_id,),
        ).fetchone()
        return None if row is None else LiveIndicator(row[0], row[1], row[2], row[3])

    def _live_networks(self) -> list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]]:
        if self._networks is None:
            self._networks = [
                (ipaddress.ip_network(value), indicator_id)
                for value, indicator_id in self.store.db.execute(
                    "SELECT a.value, a.indicator_id FROM indicator_atoms a JOIN indicators i ON i.id = a.indicator_id "
                    "WHERE a.type IN ('ipv4-cidr', 'ipv6-cidr') AND a.role = 'exact' AND i.state = 'live'"
                )
            ]
        return self._networks
