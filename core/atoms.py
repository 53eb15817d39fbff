"""Canonical atoms: the single values a SIEM can match, one (type, value) pair each.

A STIX comparison such as ``[file:hashes.SHA256 = 'E3B0...']`` becomes the atom
``Atom(AtomType.SHA256, 'e3b0...')``. Every spelling of the same indicator gives the same canonical
value, so the store deduplicates on ``(type, value)`` and the sinks write values that can match.
docs/atoms.md lists the canonical form of each type and the reason for it.

Exceptions:
    AtomError (InvalidInputError, ValueError): a value is invalid for its atom type. The caller skips
    that comparison, quarantines it with reason code ``atom``, and goes on with the batch.

The functions here run once per comparison on feeds of millions of indicators, so they use
precompiled expressions and cheap checks before ``ipaddress`` or ``idna``. The only caches are the
bounded ones for internationalised domain labels.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache, partial

import idna

from .errors import InvalidInputError
from .refang import refang

__all__ = [
    "ATOM_TYPES",
    "Atom",
    "AtomError",
    "AtomType",
    "atom_from_comparison",
    "atom_from_value",
    "canonical_hash_algorithm",
    "refang",
    "registry_key_aliases",
]

logger = logging.getLogger(__name__)


class AtomType(StrEnum):
    """Kind of atom. The values are stored in the database and named in configuration, so they stay fixed."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"
    IPV4_CIDR = "ipv4-cidr"
    IPV6_CIDR = "ipv6-cidr"
    DOMAIN = "domain"
    URL = "url"
    EMAIL = "email"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA512 = "sha512"
    SHA3_256 = "sha3-256"
    SHA3_512 = "sha3-512"
    SSDEEP = "ssdeep"
    TLSH = "tlsh"
    FILE_NAME = "file-name"
    X509_SERIAL = "x509-serial"
    X509_SHA1 = "x509-sha1"
    X509_SHA256 = "x509-sha256"
    X509_MD5 = "x509-md5"
    REGISTRY_KEY = "registry-key"
    MUTEX = "mutex"
    USER_ACCOUNT = "user-account"
    PROCESS_NAME = "process-name"
    AS_NUMBER = "as-number"


ATOM_TYPES: frozenset[str] = frozenset(atom_type.value for atom_type in AtomType)


@dataclass(frozen=True, slots=True)
class Atom:
    """One matchable indicator value in canonical form.

    Two atoms are equal when type and value are equal: ``display`` and ``original`` record how the
    value was written and take no part in comparison or hashing, so ``bücher.example`` and
    ``xn--bcher-kva.example`` are the same atom.

    Attributes:
        type: The kind of value.
        value: The canonical form, which the store deduplicates on and the sinks match on.
        display: The form for people: the Unicode spelling of an internationalised domain, or the
            registry key as the producer wrote it. Equal to ``value`` when nothing differs.
        original: The raw value when refanging or IDNA encoding changed it, else None.
    """

    type: AtomType
    value: str
    display: str = field(compare=False)
    original: str | None = field(default=None, compare=False)


class AtomError(InvalidInputError, ValueError):
    """Raised when a value is invalid for the atom type it must become.

    Attributes:
        atom_type: The type the value was checked against, or None when no type applies.
        value: The rejected value as it was given.
    """

    def __init__(self, message: str, *, atom_type: AtomType | None = None, value: object = None) -> None:
        super().__init__(message, reason_code="atom")
        self.atom_type = atom_type
        self.value = value


# Maximum length of a value quoted in full in an error message. Longer values are cut, so one bad row
# cannot flood a log.
_MAX_QUOTED_CHARS = 200


def _quote(value: object) -> str:
    text = repr(value)
    if len(text) <= _MAX_QUOTED_CHARS:
        return text
    return f"{text[:_MAX_QUOTED_CHARS]}... ({len(text)} characters)"


def _text(value: object, atom_type: AtomType) -> str:
    if isinstance(value, str):
        return value
    raise AtomError(
        f"{atom_type.value} value must be a string, got {type(value).__name__}: {_quote(value)}",
        atom_type=atom_type,
        value=value,
    )


def _stripped(value: object, atom_type: AtomType, what: str) -> str:
    text = _text(value, atom_type).strip()
    if not text:
        raise AtomError(f"{what} is empty: {_quote(value)}", atom_type=atom_type, value=value)
    return text


# --- IP addresses -------------------------------------------------------------------------------------

# Octets with leading zeros are rejected because inet_aton and many tools read '010' as octal 8, and
# others read it as decimal 10.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_IPV4_PREFIX_RE = re.compile(r"3[0-2]|[12]?[0-9]")
# Only text of hex digits, colons and dots, with an optional prefix length or zone index, goes to ipaddress.
_IPV6_LIKE_RE = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:/[0-9]+)?(?:%.*)?", re.DOTALL)
_DOTTED_DIGITS_RE = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_MAX_IPV4_OCTET = 255


def _ipv4_octet_problem(text: str) -> str:
    """Describe why four dot-separated digit groups are not an IPv4 address."""
    parts = text.split(".")
    if len(parts) != 4:
        return f"an IPv4 address has 4 octets, this has {len(parts)}"
    for part in parts:
        if len(part) > 1 and part.startswith("0"):
            return f"octet {part!r} has a leading zero, which some tools read as octal; write it without"
        if int(part) > _MAX_IPV4_OCTET:
            return f"{part} is not a valid octet (0 to 255)"
    return "invalid IPv4 address"


def _format_ipv6(address: ipaddress.IPv6Address) -> str:
    # RFC 5952 section 5 writes IPv4-mapped addresses with a dotted tail. Python 3.11 prints
    # '::ffff:c633:6405' instead, so the form is built here to be the same on every Python version.
    mapped = address.ipv4_mapped
    if mapped is not None:
        return f"::ffff:{mapped}"
    return address.compressed


def _ipv4_cidr_atom(text: str, raw: str, original: str | None) -> Atom:
    address, _, prefix_text = text.partition("/")
    if not _IPV4_RE.fullmatch(address):
        raise AtomError(
            f"invalid IPv4 CIDR block {_quote(raw)}: {_ipv4_octet_problem(address)}",
            atom_type=AtomType.IPV4_CIDR,
            value=raw,
        )
    if not _IPV4_PREFIX_RE.fullmatch(prefix_text):
        raise AtomError(
            f"invalid IPv4 CIDR block {_quote(raw)}: the prefix length must be 0 to 32",
            atom_type=AtomType.IPV4_CIDR,
            value=raw,
        )

    prefix = int(prefix_text)
    if prefix == 32:
        return Atom(AtomType.IPV4, address, address, original)

    octets = address.split(".")
    number = (int(octets[0]) << 24) | (int(octets[1]) << 16) | (int(octets[2]) << 8) | int(octets[3])
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    if number & ~mask & 0xFFFFFFFF:
        network = ipaddress.IPv4Address(number & mask)
        raise AtomError(
            f"IPv4 CIDR block {_quote(raw)} has host bits set: write the network {network}/{prefix}, "
            f"or the single address {address} without a prefix",
            atom_type=AtomType.IPV4_CIDR,
            value=raw,
        )
    return Atom(AtomType.IPV4_CIDR, text, text, original)


def _ipv6_atom(text: str, raw: str, original: str | None) -> Atom:
    if "%" in text:
        raise AtomError(
            f"IPv6 address {_quote(raw)} has a zone index ('%...'), which only has meaning on one host. Remove it",
            atom_type=AtomType.IPV6,
            value=raw,
        )

    if "/" not in text:
        try:
            address = ipaddress.IPv6Address(text)
        except ValueError as exc:
            raise AtomError(f"invalid IPv6 address {_quote(raw)}: {exc}", atom_type=AtomType.IPV6, value=raw) from exc
        canonical = _format_ipv6(address)
        return Atom(AtomType.IPV6, canonical, canonical, original)

    try:
        network = ipaddress.IPv6Network(text, strict=False)
    except ValueError as exc:
        raise AtomError(
            f"invalid IPv6 CIDR block {_quote(raw)}: {exc}", atom_type=AtomType.IPV6_CIDR, value=raw
        ) from exc

    given_address = ipaddress.IPv6Address(text.partition("/")[0])
    if network.prefixlen == 128:
        canonical = _format_ipv6(given_address)
        return Atom(AtomType.IPV6, canonical, canonical, original)
    if given_address != network.network_address:
        raise AtomError(
            f"IPv6 CIDR block {_quote(raw)} has host bits set: write the network "
            f"{_format_ipv6(network.network_address)}/{network.prefixlen}, or the single address "
            f"{_format_ipv6(given_address)} without a prefix",
            atom_type=AtomType.IPV6_CIDR,
            value=raw,
        )
    canonical = f"{_format_ipv6(network.network_address)}/{network.prefixlen}"
    return Atom(AtomType.IPV6_CIDR, canonical, canonical, original)


def _ip_from_text(text: str, raw: str, original: str | None) -> Atom | None:
    """Build an IP atom typed by the value itself, or return None when ``text`` is no IP address.

    Raises:
        AtomError: ``text`` looks like an address (digits and dots, or a colon) but is invalid.
    """
    if _IPV4_RE.fullmatch(text):
        return Atom(AtomType.IPV4, text, text, original)
    if ":" in text and _IPV6_LIKE_RE.fullmatch(text):
        return _ipv6_atom(text, raw, original)
    if "/" in text and _DOTTED_DIGITS_RE.fullmatch(text.partition("/")[0]):
        return _ipv4_cidr_atom(text, raw, original)
    if _DOTTED_DIGITS_RE.fullmatch(text) and "." in text:
        raise AtomError(
            f"invalid IPv4 address {_quote(raw)}: {_ipv4_octet_problem(text)}",
            atom_type=AtomType.IPV4,
            value=raw,
        )
    return None


def _network_text(value: object, atom_type: AtomType, what: str) -> tuple[str, str, str | None]:
    """Return the stripped, refanged text of a network value, the raw string and the original if changed."""
    raw = _text(value, atom_type)
    text, changed = refang(raw.strip())
    if not text:
        raise AtomError(f"{what} is empty: {_quote(raw)}", atom_type=atom_type, value=raw)
    return text, raw, raw if changed else None


def _ip_atom(value: object) -> Atom:
    """Build an IPv4, IPv6 or CIDR atom, typed by the value whatever object type the pattern names."""
    text, raw, original = _network_text(value, AtomType.IPV4, "IP address")
    atom = _ip_from_text(text, raw, original)
    if atom is None:
        raise AtomError(
            f"invalid IP address {_quote(raw)}: expected an IPv4 or IPv6 address or CIDR block",
            atom_type=AtomType.IPV4,
            value=raw,
        )
    return atom


# --- Domain names -----------------------------------------------------------------------------------

# Underscores are allowed because DNS carries them (_dmarc, service labels) and malware hosts use them,
# although RFC 952 host names may not contain them.
_ASCII_NAME_RE = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*")
_ASCII_LABEL_RE = re.compile(r"[a-z0-9_-]+")
_MAX_NAME_OCTETS = 253
_MAX_LABEL_OCTETS = 63
# UTS #46 maps these full stops to '.'. They are replaced before the name is split into labels.
_UNICODE_FULL_STOPS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
# Each IDNA conversion takes about 17 µs (idna 3.20, CPython 3.11.7, timeit), and names repeat in a feed.
_IDNA_CACHE_SIZE = 4096


@lru_cache(maxsize=_IDNA_CACHE_SIZE)
def _label_to_ascii(label: str) -> str:
    return idna.encode(label, uts46=True).decode("ascii")


@lru_cache(maxsize=_IDNA_CACHE_SIZE)
def _label_to_unicode(label: str) -> str:
    return idna.decode(label)


def _domain_problem(name: str) -> str:
    """Describe why a lower-case ASCII name failed the fast check."""
    if len(name) > _MAX_NAME_OCTETS:
        return f"the name is {len(name)} characters long, the maximum is {_MAX_NAME_OCTETS}"
    for label in name.split("."):
        if not label:
            return "it has an empty label ('..' or a leading dot)"
        if len(label) > _MAX_LABEL_OCTETS:
            return f"label {label[:20]!r}... is {len(label)} characters long, the maximum is {_MAX_LABEL_OCTETS}"
        if not _ASCII_LABEL_RE.fullmatch(label):
            bad = next(char for char in label if not _ASCII_LABEL_RE.fullmatch(char))
            return f"character {bad!r} is not allowed in a domain name"
    return "invalid domain name"


def _canonical_domain(text: str, raw: str, atom_type: AtomType) -> tuple[str, str]:
    """Return the canonical ASCII form of a domain name and its Unicode display form.

    The name is lower-cased, one trailing dot is removed, and labels with non-ASCII characters are
    converted with IDNA 2008 (UTS #46 mapping) to their ``xn--`` form.

    Raises:
        AtomError: the name is not a valid domain name, with the reason.
    """
    name = text[:-1] if text.endswith(".") else text

    if name.isascii():
        name = name.lower()
        if not _ASCII_NAME_RE.fullmatch(name) or len(name) > _MAX_NAME_OCTETS:
            raise AtomError(
                f"invalid domain name {_quote(raw)}: {_domain_problem(name)}", atom_type=atom_type, value=raw
            )
        if "xn--" not in name:
            return name, name
        return name, _unicode_display(name, raw, atom_type)

    return _idna_domain(name, raw, atom_type)


def _unicode_display(name: str, raw: str, atom_type: AtomType) -> str:
    labels = name.split(".")
    try:
        return ".".join(_label_to_unicode(label) if label.startswith("xn--") else label for label in labels)
    except idna.IDNAError as exc:
        raise AtomError(
            f"invalid domain name {_quote(raw)}: a punycode ('xn--') label is invalid: {exc}",
            atom_type=atom_type,
            value=raw,
        ) from exc


def _idna_domain(name: str, raw: str, atom_type: AtomType) -> tuple[str, str]:
    if any(char.isspace() for char in name):
        raise AtomError(f"invalid domain name {_quote(raw)}: it contains white space", atom_type=atom_type, value=raw)

    name = name.translate(_UNICODE_FULL_STOPS)
    labels = (name[:-1] if name.endswith(".") else name).split(".")
    try:
        ascii_labels = [label.lower() if label.isascii() else _label_to_ascii(label) for label in labels]
    except idna.IDNAError as exc:
        raise AtomError(
            f"invalid internationalised domain name {_quote(raw)}: {exc}", atom_type=atom_type, value=raw
        ) from exc

    ascii_name = ".".join(ascii_labels)
    if not _ASCII_NAME_RE.fullmatch(ascii_name) or len(ascii_name) > _MAX_NAME_OCTETS:
        raise AtomError(
            f"invalid domain name {_quote(raw)}: {_domain_problem(ascii_name)}",
            atom_type=atom_type,
            value=raw,
        )
    return ascii_name, _unicode_display(ascii_name, raw, atom_type)


def _domain_atom_from_text(text: str, raw: str, original: str | None) -> Atom:
    ascii_name, display = _canonical_domain(text, raw, AtomType.DOMAIN)

    last_label = ascii_name.rpartition(".")[2]
    if last_label.isdigit():
        raise AtomError(
            f"invalid domain name {_quote(raw)}: the last label is all digits, so it is neither a domain "
            "name nor a valid IP address",
            atom_type=AtomType.DOMAIN,
            value=raw,
        )

    if original is None and not text.isascii():
        original = raw
    return Atom(AtomType.DOMAIN, ascii_name, display, original)


def _domain_atom(value: object) -> Atom:
    """Build a domain atom, or an IP atom when a domain-name object contains an IP address."""
    text, raw, original = _network_text(value, AtomType.DOMAIN, "domain name")
    ip_atom = _ip_from_text(text, raw, original)
    if ip_atom is not None:
        logger.debug("Typed domain-name value %r as %s because it is an IP address.", raw, ip_atom.type)
        return ip_atom
    return _domain_atom_from_text(text, raw, original)


# MAC-48 addresses appear in network-traffic src_ref and dst_ref, and no atom type matches them.
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5}")


def _host_atom(value: object) -> Atom | None:
    """Build an IP or domain atom from a reference that may point at either, or return None for a MAC."""
    text, raw, original = _network_text(value, AtomType.DOMAIN, "host")
    if _MAC_RE.fullmatch(text):
        return None
    ip_atom = _ip_from_text(text, raw, original)
    if ip_atom is not None:
        return ip_atom
    return _domain_atom_from_text(text, raw, original)


# --- URLs -------------------------------------------------------------------------------------------

_URL_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.DOTALL)
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_PORT_RE = re.compile(r"[0-9]{0,5}")
_MAX_PORT = 65535
_SCHEMES_NEEDING_HOST = frozenset({"http", "https", "ftp", "ftps", "ws", "wss"})


def _split_host_port(host_port: str, raw: str) -> tuple[str, str]:
    """Split ``host[:port]`` or ``[ipv6][:port]``. The port is '' when absent."""
    if host_port.startswith("["):
        end = host_port.find("]")
        if end < 0:
            raise AtomError(
                f"invalid URL {_quote(raw)}: the IPv6 host has no closing ']'",
                atom_type=AtomType.URL,
                value=raw,
            )
        rest = host_port[end + 1 :]
        if rest and not rest.startswith(":"):
            raise AtomError(
                f"invalid URL {_quote(raw)}: unexpected text after the IPv6 host",
                atom_type=AtomType.URL,
                value=raw,
            )
        return host_port[: end + 1], rest[1:]

    host, _, port = host_port.partition(":")
    return host, port


def _canonical_port(port: str, scheme: str, raw: str) -> str:
    if not _PORT_RE.fullmatch(port) or (port and int(port) > _MAX_PORT):
        raise AtomError(
            f"invalid URL {_quote(raw)}: port {port!r} is not a number from 0 to {_MAX_PORT}",
            atom_type=AtomType.URL,
            value=raw,
        )
    if not port:
        return ""
    number = str(int(port))
    if _DEFAULT_PORTS.get(scheme) == number:
        return ""
    return number


def _canonical_host(host: str, raw: str) -> tuple[str, str]:
    """Return the canonical and display form of a URL host (domain, IPv4 or bracketed IPv6).

    Raises:
        AtomError: the host is invalid. The message quotes the whole URL.
    """
    try:
        if host.startswith("["):
            address = _ipv6_atom(host[1:-1], host, None)
            if address.type is not AtomType.IPV6:
                raise AtomError(f"{host!r} is an IPv6 network, not an address")
            return f"[{address.value}]", f"[{address.value}]"

        ip_atom = _ip_from_text(host, host, None)
        if ip_atom is not None:
            return ip_atom.value, ip_atom.value
        return _canonical_domain(host, host, AtomType.URL)
    except AtomError as exc:
        raise AtomError(
            f"invalid URL {_quote(raw)}: the host is invalid: {exc}", atom_type=AtomType.URL, value=raw
        ) from exc


def _url_atom(value: object) -> Atom:
    """Build a URL atom: scheme and host lower-cased, IDN host in punycode, default port dropped.

    Userinfo, path, query and fragment are kept exactly as given, because servers may treat them
    case-sensitively. A value without ``scheme://`` is kept as given, except that a leading host that
    parses as a domain or IP address is lower-cased.
    """
    text, raw, original = _network_text(value, AtomType.URL, "URL")

    match = _URL_RE.fullmatch(text)
    if match is None:
        return _schemeless_url_atom(text, raw, original)

    scheme, authority, rest = match.groups()
    scheme = scheme.lower()
    userinfo, at_sign, host_port = authority.rpartition("@")
    host, port = _split_host_port(host_port, raw)
    if not host:
        if scheme in _SCHEMES_NEEDING_HOST:
            raise AtomError(f"invalid URL {_quote(raw)}: it has no host", atom_type=AtomType.URL, value=raw)
        canonical = f"{scheme}://{authority}{rest}"
        return Atom(AtomType.URL, canonical, canonical, original)

    canonical_host, display_host = _canonical_host(host, raw)
    port = _canonical_port(port, scheme, raw)
    prefix = f"{scheme}://{userinfo}{at_sign}"
    suffix = f":{port}{rest}" if port else rest

    if original is None and not host.isascii():
        original = raw
    return Atom(AtomType.URL, f"{prefix}{canonical_host}{suffix}", f"{prefix}{display_host}{suffix}", original)


def _schemeless_url_atom(text: str, raw: str, original: str | None) -> Atom:
    end = len(text)
    for separator in "/?#":
        position = text.find(separator)
        if 0 <= position < end:
            end = position
    host, _, port = text[:end].partition(":")

    if not host or not _PORT_RE.fullmatch(port):
        return Atom(AtomType.URL, text, text, original)
    try:
        canonical_host, display_host = _canonical_host(host, raw)
    except AtomError:
        return Atom(AtomType.URL, text, text, original)

    suffix = text[len(host) :]
    if original is None and not host.isascii():
        original = raw
    return Atom(AtomType.URL, canonical_host + suffix, display_host + suffix, original)


# --- Email addresses ----------------------------------------------------------------------------------


def _email_atom(value: object) -> Atom:
    """Build an email atom: the local part as given, the domain canonical (lower-case, punycode)."""
    text, raw, original = _network_text(value, AtomType.EMAIL, "email address")

    local, at_sign, domain = text.rpartition("@")
    if not at_sign or not local or not domain:
        raise AtomError(
            f"invalid email address {_quote(raw)}: expected local-part@domain",
            atom_type=AtomType.EMAIL,
            value=raw,
        )
    if any(char.isspace() for char in local):
        raise AtomError(
            f"invalid email address {_quote(raw)}: the local part contains white space",
            atom_type=AtomType.EMAIL,
            value=raw,
        )

    try:
        ascii_domain, display_domain = _canonical_domain(domain, domain, AtomType.EMAIL)
    except AtomError as exc:
        raise AtomError(
            f"invalid email address {_quote(raw)}: the domain is invalid: {exc}",
            atom_type=AtomType.EMAIL,
            value=raw,
        ) from exc
    if original is None and not domain.isascii():
        original = raw
    return Atom(AtomType.EMAIL, f"{local}@{ascii_domain}", f"{local}@{display_domain}", original)


# --- Hashes -------------------------------------------------------------------------------------------

# Names from the STIX 2.1 hash-algorithm-ov vocabulary, keyed by themselves (the common case) and by
# the spelling with quotes, hyphens, underscores and spaces removed and letters upper-cased.
_HASH_ALGORITHMS = {
    "SHA-1": "SHA-1",
    "SHA-256": "SHA-256",
    "SHA-512": "SHA-512",
    "SHA3-256": "SHA3-256",
    "SHA3-512": "SHA3-512",
    "MD5": "MD5",
    "SHA1": "SHA-1",
    "SHA256": "SHA-256",
    "SHA2256": "SHA-256",
    "SHA512": "SHA-512",
    "SHA2512": "SHA-512",
    "SHA3256": "SHA3-256",
    "SHA3512": "SHA3-512",
    "SSDEEP": "SSDEEP",
    "TLSH": "TLSH",
}
_HASH_KEY_JUNK = str.maketrans("", "", "'\"-_ ")

_FILE_HASH_TYPES = {
    "MD5": AtomType.MD5,
    "SHA-1": AtomType.SHA1,
    "SHA-256": AtomType.SHA256,
    "SHA-512": AtomType.SHA512,
    "SHA3-256": AtomType.SHA3_256,
    "SHA3-512": AtomType.SHA3_512,
    "SSDEEP": AtomType.SSDEEP,
    "TLSH": AtomType.TLSH,
}
_X509_HASH_TYPES = {
    "MD5": AtomType.X509_MD5,
    "SHA-1": AtomType.X509_SHA1,
    "SHA-256": AtomType.X509_SHA256,
}

# Hex digits per algorithm, and the algorithm name used in messages.
_HEX_DIGESTS = {
    AtomType.MD5: ("MD5", 32),
    AtomType.SHA1: ("SHA-1", 40),
    AtomType.SHA256: ("SHA-256", 64),
    AtomType.SHA512: ("SHA-512", 128),
    AtomType.SHA3_256: ("SHA3-256", 64),
    AtomType.SHA3_512: ("SHA3-512", 128),
    AtomType.X509_MD5: ("MD5", 32),
    AtomType.X509_SHA1: ("SHA-1", 40),
    AtomType.X509_SHA256: ("SHA-256", 64),
}
_HEX_RE = re.compile(r"[0-9a-fA-F]+")

# ssdeep: blocksize:hash:hash, each hash in base64 letters, at most 64 characters (spamsum length).
# Both hashes may be empty: the ssdeep of empty input is "3::".
_SSDEEP_RE = re.compile(r"([0-9]{1,10}):([A-Za-z0-9/+]{0,64}):([A-Za-z0-9/+]{0,64})")
_SSDEEP_MIN_BLOCKSIZE = 3
# TLSH with the default 128 buckets and 1-byte checksum: 35 bytes as 70 hex digits. Since TLSH 4.5 the
# digest starts with the version prefix 'T1' (72 characters); older tools print it without.
_TLSH_RE = re.compile(r"(?:[Tt]1)?[0-9A-Fa-f]{70}")


def canonical_hash_algorithm(key: str) -> str | None:
    """Map a producer's spelling of a hash name to its STIX hash-algorithm-ov name.

    ``"SHA-256"``, ``"SHA256"``, ``"sha256"``, ``"sha-256"`` and ``"'SHA-256'"`` all give ``"SHA-256"``.

    Returns:
        One of MD5, SHA-1, SHA-256, SHA-512, SHA3-256, SHA3-512, SSDEEP or TLSH, or None when the key
        names another algorithm.
    """
    canonical = _HASH_ALGORITHMS.get(key)
    if canonical is not None:
        return canonical
    return _HASH_ALGORITHMS.get(key.translate(_HASH_KEY_JUNK).upper())


def _hex_digest_atom(atom_type: AtomType, value: object) -> Atom:
    raw = _text(value, atom_type)
    text = raw.strip()
    if atom_type in (AtomType.X509_MD5, AtomType.X509_SHA1, AtomType.X509_SHA256):
        # Certificate fingerprints are often printed with colons between bytes (openssl x509 -fingerprint).
        text = text.replace(":", "")

    algorithm, length = _HEX_DIGESTS[atom_type]
    if len(text) == length and _HEX_RE.fullmatch(text):
        canonical = text.lower()
        return Atom(atom_type, canonical, canonical)

    if text and not _HEX_RE.fullmatch(text):
        bad = next(char for char in text if not _HEX_RE.fullmatch(char))
        problem = f"{algorithm} needs {length} hex characters, found {bad!r}"
    else:
        problem = f"{algorithm} needs {length} hex characters, got {len(text)}"
    raise AtomError(f"{problem}: {_quote(raw)}", atom_type=atom_type, value=raw)


def _ssdeep_atom(value: object) -> Atom:
    raw = _text(value, AtomType.SSDEEP)
    text = raw.strip()

    match = _SSDEEP_RE.fullmatch(text)
    if match is None:
        raise AtomError(
            f"SSDEEP needs blocksize:hash:hash with base64 hashes of at most 64 characters: {_quote(raw)}",
            atom_type=AtomType.SSDEEP,
            value=raw,
        )
    blocksize = int(match.group(1))
    multiple, remainder = divmod(blocksize, _SSDEEP_MIN_BLOCKSIZE)
    if remainder or multiple == 0 or multiple & (multiple - 1):
        raise AtomError(
            f"SSDEEP blocksize {blocksize} is not 3 times a power of two: {_quote(raw)}",
            atom_type=AtomType.SSDEEP,
            value=raw,
        )
    return Atom(AtomType.SSDEEP, text, text)


def _tlsh_atom(value: object) -> Atom:
    raw = _text(value, AtomType.TLSH)
    text = raw.strip()

    if not _TLSH_RE.fullmatch(text):
        raise AtomError(
            f"TLSH needs 70 hex characters, optionally after the prefix 'T1', got {len(text)} characters: "
            f"{_quote(raw)}",
            atom_type=AtomType.TLSH,
            value=raw,
        )
    # Hex case carries no meaning, and TLSH implementations print upper case (T1F7D0...), so feeds that
    # lower-case the digest still give the same atom.
    canonical = text.upper()
    return Atom(AtomType.TLSH, canonical, canonical)


# --- Certificates, registry keys, names and numbers ---------------------------------------------------

_SERIAL_SEPARATORS = str.maketrans("", "", ": -")


def _x509_serial_atom(value: object) -> Atom:
    """Build a certificate serial atom in upper-case hex without separators, as ECS recommends.

    A serial of digits only is taken as hex digits, because the STIX 2.1 example bundles write serials
    as colon-separated hex. A producer that prints serials in decimal therefore gives a different atom
    for the same certificate.
    """
    raw = _text(value, AtomType.X509_SERIAL)
    text = raw.strip()
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    text = text.translate(_SERIAL_SEPARATORS)

    if not text or not _HEX_RE.fullmatch(text):
        raise AtomError(
            f"certificate serial number needs hex digits, optionally separated by ':': {_quote(raw)}",
            atom_type=AtomType.X509_SERIAL,
            value=raw,
        )
    canonical = text.upper()
    return Atom(AtomType.X509_SERIAL, canonical, canonical)


# Hive spellings, upper-cased, mapped to full names. The STIX 2.1 JSON schema (as bundled with
# stix2-validator 3.3.2) rejects a windows-registry-key:key that starts with HKLM, HKCC, HKCR, HKCU or HKU.
_REGISTRY_HIVES = {
    "HKEY_LOCAL_MACHINE": "HKEY_LOCAL_MACHINE",
    "HKLM": "HKEY_LOCAL_MACHINE",
    "HKEY_CURRENT_USER": "HKEY_CURRENT_USER",
    "HKCU": "HKEY_CURRENT_USER",
    "HKEY_USERS": "HKEY_USERS",
    "HKU": "HKEY_USERS",
    "HKEY_CLASSES_ROOT": "HKEY_CLASSES_ROOT",
    "HKCR": "HKEY_CLASSES_ROOT",
    "HKEY_CURRENT_CONFIG": "HKEY_CURRENT_CONFIG",
    "HKCC": "HKEY_CURRENT_CONFIG",
    "HKEY_PERFORMANCE_DATA": "HKEY_PERFORMANCE_DATA",
    "HKPD": "HKEY_PERFORMANCE_DATA",
    "HKEY_DYN_DATA": "HKEY_DYN_DATA",
    "HKDD": "HKEY_DYN_DATA",
}
# Kernel object paths, which some Windows event sources write in place of hive names.
_KERNEL_HIVES = {
    "\\REGISTRY\\MACHINE": "HKEY_LOCAL_MACHINE",
    "\\REGISTRY\\USER": "HKEY_USERS",
}
_HIVE_ABBREVIATIONS = {
    "HKEY_LOCAL_MACHINE": "HKLM",
    "HKEY_CURRENT_USER": "HKCU",
    "HKEY_USERS": "HKU",
    "HKEY_CLASSES_ROOT": "HKCR",
    "HKEY_CURRENT_CONFIG": "HKCC",
}


def _split_hive(key: str) -> tuple[str | None, str]:
    """Return the full name of the key's hive and the rest of the key from its first backslash."""
    head, separator, rest = key.partition("\\")
    hive = _REGISTRY_HIVES.get(head.upper())
    if hive is not None:
        return hive, separator + rest

    upper = key.upper()
    for kernel_prefix, kernel_hive in _KERNEL_HIVES.items():
        if upper.startswith(kernel_prefix) and key[len(kernel_prefix) : len(kernel_prefix) + 1] in ("", "\\"):
            return kernel_hive, key[len(kernel_prefix) :]
    return None, key


def _registry_key_atom(value: object) -> Atom:
    """Build a registry key atom: the hive spelled out in full, the rest with its case preserved.

    The STIX 2.1 JSON schema rejects abbreviated hives in ``windows-registry-key:key``. Windows
    compares keys without regard to case, but Elasticsearch keyword fields compare with it, so
    lower-casing here would stop Elastic matches. A sink that matches without case (a Splunk lookup
    with ``case_sensitive_match = false``) lower-cases on write instead.

    Trailing backslashes are removed. Reports write ``...\\Services\\Name\\`` to mark a key, but a key
    name cannot contain a backslash (Windows registry rules), so a path that ends in one names no key.
    """
    text = _stripped(value, AtomType.REGISTRY_KEY, "registry key")

    hive, rest = _split_hive(text)
    if hive is None:
        key = text.rstrip("\\")
    else:
        key = hive + rest.rstrip("\\")
    if not key:
        raise AtomError(f"registry key {_quote(value)} has no key name", atom_type=AtomType.REGISTRY_KEY, value=value)
    # NOTE: a key without a known hive is kept as given, so it can only match events written the same way.
    return Atom(AtomType.REGISTRY_KEY, key, text)


def registry_key_aliases(key: str) -> tuple[str, ...]:
    """List the spellings under which event sources may report a canonical registry key.

    The ECS examples write abbreviated hives (``HKLM\\SOFTWARE\\...``), and some Windows event sources
    write kernel paths (``\\REGISTRY\\MACHINE\\...``). Sinks that match exactly write one row per
    spelling.

    Args:
        key: The ``value`` of a REGISTRY_KEY atom.

    Returns:
        The key itself first, then the abbreviated and kernel forms that exist for its hive.
    """
    hive, separator, rest = key.partition("\\")
    aliases = [key]

    abbreviation = _HIVE_ABBREVIATIONS.get(hive)
    if abbreviation is not None:
        aliases.append(f"{abbreviation}{separator}{rest}")
    for kernel_prefix, kernel_hive in _KERNEL_HIVES.items():
        if kernel_hive == hive:
            aliases.append(f"{kernel_prefix}{separator}{rest}")
    return tuple(aliases)


def _name_atom(atom_type: AtomType, what: str) -> Callable[[object], Atom]:
    """Make a builder for free-form names, kept exactly as given because spaces and case may be real."""

    def build(value: object) -> Atom:
        text = _text(value, atom_type)
        if not text.strip():
            raise AtomError(f"{what} is empty: {_quote(value)}", atom_type=atom_type, value=value)
        return Atom(atom_type, text, text)

    return build


_MAX_AS_NUMBER = 2**32 - 1
_AS_NUMBER_RE = re.compile(r"(?:AS)?([0-9]{1,10})", re.IGNORECASE)


def _as_number_atom(value: object) -> Atom:
    """Build an autonomous system atom: the number in decimal, from an integer, '64496' or 'AS64496'."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        match = _AS_NUMBER_RE.fullmatch(value.strip())
        if match is not None:
            number = int(match.group(1))

    if number is None or not 0 <= number <= _MAX_AS_NUMBER:
        raise AtomError(
            f"autonomous system number must be an integer from 0 to {_MAX_AS_NUMBER}, got {_quote(value)}",
            atom_type=AtomType.AS_NUMBER,
            value=value,
        )
    canonical = str(number)
    return Atom(AtomType.AS_NUMBER, canonical, canonical)


# --- Dispatch -----------------------------------------------------------------------------------------

_Builder = Callable[[object], Atom | None]

_BUILDERS: dict[AtomType, Callable[[object], Atom]] = {
    AtomType.IPV4: _ip_atom,
    AtomType.IPV6: _ip_atom,
    AtomType.IPV4_CIDR: _ip_atom,
    AtomType.IPV6_CIDR: _ip_atom,
    AtomType.DOMAIN: _domain_atom,
    AtomType.URL: _url_atom,
    AtomType.EMAIL: _email_atom,
    AtomType.SSDEEP: _ssdeep_atom,
    AtomType.TLSH: _tlsh_atom,
    AtomType.FILE_NAME: _name_atom(AtomType.FILE_NAME, "file name"),
    AtomType.X509_SERIAL: _x509_serial_atom,
    AtomType.REGISTRY_KEY: _registry_key_atom,
    AtomType.MUTEX: _name_atom(AtomType.MUTEX, "mutex name"),
    AtomType.USER_ACCOUNT: _name_atom(AtomType.USER_ACCOUNT, "user account"),
    AtomType.PROCESS_NAME: _name_atom(AtomType.PROCESS_NAME, "process name"),
    AtomType.AS_NUMBER: _as_number_atom,
}
for _digest_type in _HEX_DIGESTS:
    _BUILDERS[_digest_type] = partial(_hex_digest_atom, _digest_type)


def atom_from_value(atom_type: AtomType | str, value: object) -> Atom:
    """Canonicalise a value already known to be of ``atom_type``, such as a typed MISP attribute.

    IP types are re-typed by the value (an IPv6 address given as IPV4 becomes IPV6, a CIDR block
    becomes IPV4_CIDR or IPV6_CIDR), and a DOMAIN that holds an IP address becomes an IP atom.

    Raises:
        AtomError: ``value`` is invalid for the type, or ``atom_type`` is not an AtomType value.
    """
    try:
        builder = _BUILDERS[AtomType(atom_type)]
    except ValueError as exc:
        raise AtomError(
            f"unknown atom type {_quote(atom_type)}: expected one of {', '.join(sorted(ATOM_TYPES))}",
            value=value,
        ) from exc
    return builder(value)


# STIX object paths with list indexes removed ('to_refs[*].value' is ('to_refs', 'value')).
_PROPERTY_BUILDERS: dict[tuple[str, tuple[str | int, ...]], _Builder] = {
    ("ipv4-addr", ("value",)): _ip_atom,
    ("ipv6-addr", ("value",)): _ip_atom,
    ("domain-name", ("value",)): _domain_atom,
    ("domain-name", ("resolves_to_refs", "value")): _host_atom,
    ("url", ("value",)): _url_atom,
    ("email-addr", ("value",)): _email_atom,
    ("email-message", ("from_ref", "value")): _email_atom,
    ("email-message", ("sender_ref", "value")): _email_atom,
    ("email-message", ("to_refs", "value")): _email_atom,
    ("email-message", ("to_ref", "value")): _email_atom,
    ("email-message", ("cc_refs", "value")): _email_atom,
    ("email-message", ("bcc_refs", "value")): _email_atom,
    ("file", ("name",)): _BUILDERS[AtomType.FILE_NAME],
    ("x509-certificate", ("serial_number",)): _x509_serial_atom,
    ("windows-registry-key", ("key",)): _registry_key_atom,
    ("mutex", ("name",)): _BUILDERS[AtomType.MUTEX],
    ("user-account", ("user_id",)): _BUILDERS[AtomType.USER_ACCOUNT],
    ("user-account", ("account_login",)): _BUILDERS[AtomType.USER_ACCOUNT],
    # process:name exists in STIX 2.0 only; 2.1 names the executable through image_ref (2.0: binary_ref).
    ("process", ("name",)): _BUILDERS[AtomType.PROCESS_NAME],
    ("process", ("image_ref", "name")): _BUILDERS[AtomType.PROCESS_NAME],
    ("process", ("binary_ref", "name")): _BUILDERS[AtomType.PROCESS_NAME],
    ("autonomous-system", ("number",)): _as_number_atom,
    ("network-traffic", ("dst_ref", "value")): _host_atom,
    ("network-traffic", ("src_ref", "value")): _host_atom,
}

# Paths whose next element is a hash algorithm, and the atom type for each algorithm.
_HASH_PROPERTIES: dict[tuple[str, tuple[str | int, ...]], dict[str, AtomType]] = {
    ("file", ("hashes",)): _FILE_HASH_TYPES,
    ("artifact", ("hashes",)): _FILE_HASH_TYPES,
    ("process", ("image_ref", "hashes")): _FILE_HASH_TYPES,
    ("process", ("binary_ref", "hashes")): _FILE_HASH_TYPES,
    ("x509-certificate", ("hashes",)): _X509_HASH_TYPES,
}


def atom_from_comparison(object_type: str, path: tuple[str | int, ...], value: object) -> Atom | None:
    """Turn one STIX comparison ``[object_type:path = value]`` into an atom.

    Args:
        object_type: The STIX cyber-observable type, e.g. ``"file"``.
        path: The property path after the colon. List indexes may be ints or ``"*"`` and are ignored,
            so ``("to_refs", "*", "value")`` and ``("to_refs", 0, "value")`` mean the same. Hash names
            may be in any spelling that canonical_hash_algorithm accepts.
        value: The comparison's value with STIX quoting already removed.

    Returns:
        The atom, typed by the value where STIX types disagree with it (an IPv6 address under
        ``ipv4-addr`` gives an IPV6 atom). None when the property is not one a SIEM matches on
        (``file:size``, ``network-traffic:dst_port``, ``directory:path``), when the hash algorithm
        has no atom type, or when a network-traffic reference holds a MAC address. Callers that
        report re-typed values compare ``atom.type`` with ``object_type`` themselves.

    Raises:
        AtomError: The property is matchable but the value is invalid for its type.
    """
    if not isinstance(path, tuple):
        path = tuple(path)

    builder = _PROPERTY_BUILDERS.get((object_type, path))
    if builder is None:
        builder = _resolve_builder(object_type, path)
        if builder is None:
            return None
    return builder(value)


# Real feeds use a few dozen distinct (object type, path) pairs. The bound stops a feed full of custom
# properties from growing the cache.
_RESOLVED_PATHS_CACHE_SIZE = 1024


@lru_cache(maxsize=_RESOLVED_PATHS_CACHE_SIZE)
def _resolve_builder(object_type: str, path: tuple[str | int, ...]) -> _Builder | None:
    """Find the builder for a path that has list indexes or a hash key, or None when none applies."""
    names = tuple(part for part in path if isinstance(part, str) and part != "*")
    builder = _PROPERTY_BUILDERS.get((object_type, names))
    if builder is not None or not names:
        return builder

    hash_types = _HASH_PROPERTIES.get((object_type, names[:-1]))
    if hash_types is None:
        return None
    algorithm = canonical_hash_algorithm(names[-1])
    if algorithm is None or algorithm not in hash_types:
        return None
    return _BUILDERS[hash_types[algorithm]]
