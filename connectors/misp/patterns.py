"""STIX 2.1 patterns for MISP attributes, composite types split into their parts.

Every value placed in a pattern goes through the core's :func:`stixbridge.patterns.escape_literal`
(backslash first, then apostrophe), with no special case per type. misp-stix once built
``[file:name = 'eat at joe's']`` by plain string formatting, which every pattern parser rejects.

Composite MISP types hold two values separated by ``|``:

- ``ip-dst|port`` and ``ip-src|port`` split on the last ``|``, which leaves IPv6 colons alone;
- ``filename|<hash>`` and ``malware-sample`` split on the last ``|`` as well, because a hash never
  contains one;
- ``regkey|value`` and ``domain|ip`` split on the first ``|``, because registry value data may contain
  one.

The hash, address or domain is the matchable part. A port or a file name only narrows it, so the
normaliser keeps it as context of that atom.
"""

from __future__ import annotations

import ipaddress

from stixbridge.errors import InvalidInputError
from stixbridge.patterns import escape_literal

# Object paths of the hash types, with the hash names STIX 2.1 uses.
_HASH_NAMES = {
    "md5": "MD5",
    "sha1": "'SHA-1'",
    "sha256": "'SHA-256'",
    "sha512": "'SHA-512'",
    "sha3-256": "'SHA3-256'",
    "sha3-512": "'SHA3-512'",
    "ssdeep": "SSDEEP",
    "tlsh": "TLSH",
}
_HASH_NAME_TEXT = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512", "sha3-256": "SHA3-256",
                   "sha3-512": "SHA3-512", "ssdeep": "SSDEEP", "tlsh": "TLSH"}  # fmt: skip

_SINGLE_PATHS = {
    "domain": "domain-name:value",
    "hostname": "domain-name:value",
    "url": "url:value",
    "filename": "file:name",
    "regkey": "windows-registry-key:key",
    "mutex": "mutex:name",
    "email": "email-addr:value",
    "email-src": "email-message:from_ref.value",
    "email-dst": "email-message:to_refs[*].value",
    "x509-fingerprint-md5": "x509-certificate:hashes.MD5",
    "x509-fingerprint-sha1": "x509-certificate:hashes.'SHA-1'",
    "x509-fingerprint-sha256": "x509-certificate:hashes.'SHA-256'",
    **{name: f"file:hashes.{stix}" for name, stix in _HASH_NAMES.items()},
}

SUPPORTED_TYPES = frozenset(
    {
        *_SINGLE_PATHS,
        "ip-dst", "ip-src", "AS", "domain|ip", "ip-dst|port", "ip-src|port", "hostname|port", "regkey|value",
        "malware-sample", *(f"filename|{name}" for name in _HASH_NAMES),
    }
)  # fmt: skip
"""MISP types that become a STIX pattern; other types (text, yara, snort, ...) are not indicators here."""


def split_composite(misp_type: str, value: str) -> dict[str, str]:
    """Split a composite MISP value into named parts; a single-value type returns ``{"value": value}``.

    Raises:
        InvalidInputError: a composite type without its ``|``, an empty part, or a port that is not 1-65535.
    """
    if "|" not in misp_type and misp_type != "malware-sample":
        return {"value": value}
    if "|" not in value:
        raise InvalidInputError(
            f"MISP {misp_type} value {value!r} has no '|' between its two parts", reason_code="atom"
        )

    if misp_type in ("regkey|value", "domain|ip"):
        first, second = value.split("|", 1)
    else:
        first, second = value.rsplit("|", 1)
    if not first or not second:
        raise InvalidInputError(f"MISP {misp_type} value {value!r} has an empty part", reason_code="atom")

    if misp_type == "domain|ip":
        return {"domain": first, "ip": second}
    if misp_type in ("ip-dst|port", "ip-src|port"):
        side = "dest" if misp_type.startswith("ip-dst") else "src"
        return {f"{side}_ip": first, f"{side}_port": str(_port(second, value))}
    if misp_type == "hostname|port":
        return {"dest_host": first, "dest_port": str(_port(second, value))}
    if misp_type == "regkey|value":
        return {"registry_key": first, "registry_value_data": second}
    hash_type = "md5" if misp_type == "malware-sample" else misp_type.split("|", 1)[1]
    return {"file_name": first, "file_hash": second, "hash_type": _HASH_NAME_TEXT[hash_type]}


def pattern_of_attribute(misp_type: str, value: str) -> str:
    """Return the STIX 2.1 pattern for one MISP attribute.

    Raises:
        InvalidInputError: the type has no pattern here, or the value does not fit it.
    """
    if misp_type not in SUPPORTED_TYPES:
        raise InvalidInputError(f"MISP type {misp_type!r} has no STIX pattern in stixbridge", reason_code="atom")
    parts = split_composite(misp_type, value)

    if misp_type in _SINGLE_PATHS:
        return f"[{_SINGLE_PATHS[misp_type]} = {escape_literal(value)}]"
    if misp_type == "ip-dst":
        return f"[{_address_type(value)}:value = {escape_literal(value)}]"
    if misp_type == "ip-src":
        return _traffic("src", value)
    if misp_type == "AS":
        return f"[autonomous-system:number = {_as_number(value)}]"
    if misp_type == "domain|ip":
        return (
            f"[domain-name:value = {escape_literal(parts['domain'])} AND "
            f"domain-name:resolves_to_refs[*].value = {escape_literal(parts['ip'])}]"
        )
    if misp_type in ("ip-dst|port", "ip-src|port"):
        side = "dst" if misp_type.startswith("ip-dst") else "src"
        prefix = "dest" if side == "dst" else "src"
        return _traffic(side, parts[f"{prefix}_ip"], int(parts[f"{prefix}_port"]))
    if misp_type == "hostname|port":
        return (
            f"[network-traffic:dst_ref.type = 'domain-name' AND network-traffic:dst_ref.value = "
            f"{escape_literal(parts['dest_host'])} AND network-traffic:dst_port = {parts['dest_port']}]"
        )
    if misp_type == "regkey|value":
        return (
            f"[windows-registry-key:key = {escape_literal(parts['registry_key'])} AND "
            f"windows-registry-key:values[*].data = {escape_literal(parts['registry_value_data'])}]"
        )
    hash_type = "md5" if misp_type == "malware-sample" else misp_type.split("|", 1)[1]
    return (
        f"[file:name = {escape_literal(parts['file_name'])} AND "
        f"file:hashes.{_HASH_NAMES[hash_type]} = {escape_literal(parts['file_hash'])}]"
    )


def _traffic(side: str, address: str, port: int | None = None) -> str:
    text = (
        f"[network-traffic:{side}_ref.type = '{_address_type(address)}' AND "
        f"network-traffic:{side}_ref.value = {escape_literal(address)}"
    )
    if port is not None:
        text += f" AND network-traffic:{side}_port = {port}"
    return text + "]"


def _address_type(address: str) -> str:
    """Return ``ipv6-addr`` or ``ipv4-addr``; a value that is neither is left to the normaliser to reject."""
    try:
        network = ipaddress.ip_network(address, strict=False) if "/" in address else ipaddress.ip_address(address)
    except ValueError:
        return "ipv6-addr" if ":" in address else "ipv4-addr"
    return f"ipv{network.version}-addr"


def _port(text: str, value: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise InvalidInputError(
            f"port {text!r} in MISP value {value!r} is not a number from 1 to 65535", reason_code="atom"
        )
    return int(text)


def _as_number(value: str) -> int:
    text = value[2:] if value.upper().startswith("AS") else value
    if not text.isdigit():
        raise InvalidInputError(f"MISP AS value {value!r} is not an AS number", reason_code="atom")
    return int(text)
