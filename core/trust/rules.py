"""stixbridge's own rules for atoms that must never be blocked, even when a feed lists them.

Each rule has a stable name that appears in quarantine reasons and that a source policy may list in
``allow``. The rules need no data files, so they run even without the ``trust`` extra.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from .warninglists import domain_of_url

RULE_NAMES = ("documentation", "non-public-address", "wide-network", "public-suffix", "reserved-name")

# RFC 5737 and RFC 3849 address blocks, reserved for documentation and examples.
DOCUMENTATION_NETWORKS = tuple(
    ipaddress.ip_network(text) for text in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)
# RFC 2606 second-level names and top-level names for documentation and testing.
DOCUMENTATION_DOMAINS = ("example.com", "example.net", "example.org")
DOCUMENTATION_TLDS = ("example", "test")

# Special-purpose blocks from the IANA IPv4 and IPv6 registries that never carry public traffic
# (private, shared, loopback, link-local, benchmarking, multicast, reserved), without the documentation ones.
NON_PUBLIC_NETWORKS = tuple(
    ipaddress.ip_network(text)
    for text in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "100::/64", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
    )
)  # fmt: skip

# Top-level names that are never delegated in the public DNS (RFC 6761, RFC 6762, ICANN's .internal).
RESERVED_TLDS = frozenset({"localhost", "invalid", "local", "internal", "arpa"})

_IP_TYPES = frozenset({"ipv4", "ipv6", "ipv4-cidr", "ipv6-cidr"})


@dataclass(frozen=True)
class RuleHit:
    """One rule that an atom breaks, with the reason in words."""

    name: str
    reason: str


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(value: str) -> Network | None:
    # Names never start with a digit and a colon, so most domains skip the costly failed parse.
    if not value or not (value[0].isdigit() or value[0] == "[" or ":" in value):
        return None
    try:
        return ipaddress.ip_network(value.strip("[]"), strict=False)
    except ValueError:
        return None


def _spans(networks: tuple[Network, ...]) -> tuple[tuple[int, int, int, str], ...]:
    return tuple(
        (n.version, int(n.network_address), int(n.broadcast_address), str(n)) for n in networks
    )


_DOCUMENTATION_SPANS = _spans(DOCUMENTATION_NETWORKS)
_NON_PUBLIC_SPANS = _spans(NON_PUBLIC_NETWORKS)


def _within(network: Network, spans: tuple[tuple[int, int, int, str], ...]) -> bool:
    first, last = int(network.network_address), int(network.broadcast_address)
    return any(v == network.version and low <= first and last <= high for v, low, high, _ in spans)


def _overlapping(network: Network, spans: tuple[tuple[int, int, int, str], ...]) -> str | None:
    first, last = int(network.network_address), int(network.broadcast_address)
    for version, low, high, text in spans:
        if version == network.version and first <= high and low <= last:
            return text
    return None


def _under(name: str, parent: str) -> bool:
    return name == parent or name.endswith("." + parent)


def is_documentation(atom_type: str, value: str) -> bool:
    """Return True for an address, network, name, URL or e-mail address reserved for documentation."""
    host = _host_of(atom_type, value)
    if host is None:
        return False
    return _is_documentation_host(host, _network(host))


def _is_documentation_host(host: str, network: Network | None) -> bool:
    if network is not None:
        return _within(network, _DOCUMENTATION_SPANS)
    name = host.lower().rstrip(".")
    if name.rsplit(".", 1)[-1] in DOCUMENTATION_TLDS:
        return True
    return any(_under(name, parent) for parent in DOCUMENTATION_DOMAINS)


def _host_of(atom_type: str, value: str) -> str | None:
    if atom_type in _IP_TYPES or atom_type == "domain":
        return value
    if atom_type == "url":
        return domain_of_url(value)[0] or None
    if atom_type == "email":
        return value.rpartition("@")[2] or None
    return None


class Rules:
    """The project's rules, with the network size limits from the ``[trust]`` table.

    Args:
        min_ipv4_prefix: IPv4 networks with a shorter prefix (more addresses) are held.
        min_ipv6_prefix: the same for IPv6.
        public_suffixes: returns top-level domains and public suffixes; without it only single-label
            names count as top-level domains.
    """

    def __init__(
        self,
        min_ipv4_prefix: int,
        min_ipv6_prefix: int,
        public_suffixes: Callable[[], frozenset[str]] | None = None,
    ) -> None:
        self.min_prefix = {4: min_ipv4_prefix, 6: min_ipv6_prefix}
        self._public_suffixes = public_suffixes

    def check(self, atom_type: str, value: str) -> list[RuleHit]:
        """Return the rules the atom breaks, documentation first."""
        host = _host_of(atom_type, value)
        if host is None:
            return []
        network = _network(host)
        hits: list[RuleHit] = []
        if _is_documentation_host(host, network):
            hits.append(RuleHit("documentation", f"{value} is reserved for documentation and examples"))

        if network is not None:
            hits.extend(self._check_network(atom_type, value, network))
            return hits

        name = host.lower().rstrip(".")
        if name.rsplit(".", 1)[-1] in RESERVED_TLDS:
            hits.append(RuleHit("reserved-name", f"{name} is under a top-level name that public DNS never serves"))
        if atom_type == "domain" or (atom_type == "url" and domain_of_url(value)[1]):
            if "." not in name or (self._public_suffixes is not None and name in self._public_suffixes()):
                hits.append(RuleHit("public-suffix", f"{name} is a top-level domain or public suffix"))
        return hits

    def _check_network(self, atom_type: str, value: str, network: Network) -> list[RuleHit]:
        hits = []
        minimum = self.min_prefix[network.version]
        if atom_type.endswith("-cidr") and network.prefixlen < minimum:
            hits.append(
                RuleHit(
                    "wide-network",
                    f"{value} covers {network.num_addresses:,} addresses, more than a /{minimum} "
                    f"(min_ipv{network.version}_prefix in [trust])",
                )
            )
        special = _overlapping(network, _NON_PUBLIC_SPANS)
        if special is not None:
            hits.append(RuleHit("non-public-address", f"{value} overlaps the non-public range {special}"))
        return hits
