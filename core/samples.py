"""Generates realistic sample STIX 2.1 feeds for the demo and the benchmarks.

Every value comes from ranges reserved for documentation (RFC 5737 and RFC 3849 addresses, example.com,
example.net and example.org names), so sample data can never match real traffic.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from .timeutil import format_timestamp
from .tlp import TLP2_MARKING_IDS, Tlp

SAMPLE_NAMESPACE = uuid.UUID("0b6c3f5e-4a8e-4f0e-9a55-1d2b6c7e8f90")
DOC_NETS4 = ("192.0.2.", "198.51.100.", "203.0.113.")


def _uid(kind: str, *parts: object) -> str:
    return f"{kind}--{uuid.uuid5(SAMPLE_NAMESPACE, '|'.join(map(str, parts)))}"


def _hex(seed: str, length: int) -> str:
    digest = hashlib.sha512(seed.encode()).hexdigest()
    while len(digest) < length:
        digest += hashlib.sha512(digest.encode()).hexdigest()
    return digest[:length]


def sample_identity(name: str) -> dict[str, Any]:
    """Return an identity object for an alliance member."""
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": _uid("identity", name),
        "created": "2024-01-01T00:00:00.000Z",
        "modified": "2024-01-01T00:00:00.000Z",
        "name": name,
        "identity_class": "organization",
    }


def _pattern(kind: str, n: int, rng: random.Random) -> str:
    if kind == "ipv4":
        return f"[ipv4-addr:value = '{DOC_NETS4[n % 3]}{n % 250 + 1}']"
    if kind == "ipv6":
        return f"[ipv6-addr:value = '2001:db8::{n % 65535:x}:{(n // 65535) % 65535:x}']"
    if kind == "cidr":
        return f"[ipv4-addr:value = '{DOC_NETS4[n % 3]}{(n % 63) * 4}/30']"
    if kind == "domain":
        return f"[domain-name:value = 'c2-{n}.example.com']"
    if kind == "url":
        return f"[url:value = 'http://dl-{n}.example.net/payload/{n}.bin']"
    if kind == "email":
        return f"[email-addr:value = 'phish-{n}@example.org']"
    if kind == "md5":
        return f"[file:hashes.MD5 = '{_hex(f'md5{n}', 32)}']"
    if kind == "sha1":
        return f"[file:hashes.'SHA-1' = '{_hex(f'sha1{n}', 40)}']"
    if kind == "sha256":
        return f"[file:hashes.'SHA-256' = '{_hex(f'sha256{n}', 64)}']"
    if kind == "registry":
        return f"[windows-registry-key:key = 'HKEY_LOCAL_MACHINE\\\\Software\\\\Example\\\\Run{n}']"
    if kind == "compound-or":
        return f"[domain-name:value = 'a-{n}.example.com' OR domain-name:value = 'b-{n}.example.com']"
    if kind == "compound-file":
        return f"[file:name = 'setup-{n}.exe' AND file:hashes.'SHA-256' = '{_hex(f'cf{n}', 64)}']"
    if kind == "compound-followedby":
        return (
            f"([file:hashes.'SHA-256' = '{_hex(f'fb{n}', 64)}'] FOLLOWEDBY "
            f"[domain-name:value = 'beacon-{n}.example.org']) WITHIN 600 SECONDS"
        )
    if kind == "compound-traffic":
        return f"[network-traffic:dst_ref.value = '{DOC_NETS4[n % 3]}{n % 250 + 1}' AND network-traffic:dst_port = 443]"
    raise ValueError(f"unknown sample kind {kind!r}")


# The mix of a realistic alliance feed: mostly single atoms, 10% compound patterns.
MIX: list[tuple[str, int]] = [
    ("ipv4", 22), ("ipv6", 3), ("cidr", 2), ("domain", 20), ("url", 14), ("email", 4), ("md5", 5),
    ("sha1", 5), ("sha256", 13), ("registry", 2), ("compound-or", 4), ("compound-file", 3),
    ("compound-followedby", 1), ("compound-traffic", 2),
]  # fmt: skip


def generate_indicators(
    count: int,
    *,
    seed: int = 7,
    now: datetime | None = None,
    members: tuple[str, ...] = ("Alliance Member A", "Alliance Member B", "Alliance Member C"),
    versions_every: int = 20,
    revoke_every: int = 100,
) -> list[dict[str, Any]]:
    """Return identities plus ``count`` indicators with a realistic mix, versions and revocations.

    Every ``versions_every``-th indicator also appears in a newer version, and every ``revoke_every``-th
    is revoked in its newest version, so the output has more objects than ``count``.
    """
    rng = random.Random(seed)
    now = now or datetime.now(tz=UTC)
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    identities = [sample_identity(name) for name in members]
    objects: list[dict[str, Any]] = list(identities)
    levels = [Tlp.CLEAR, Tlp.GREEN, Tlp.GREEN, Tlp.AMBER]

    for n in range(count):
        kind = kinds[n % len(kinds)]
        created = now - timedelta(days=rng.randint(1, 20), seconds=n % 86400)
        member = identities[n % len(identities)]
        indicator: dict[str, Any] = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": _uid("indicator", seed, n),
            "created": format_timestamp(created),
            "modified": format_timestamp(created),
            "created_by_ref": member["id"],
            "name": f"sample {kind} {n}",
            "indicator_types": ["malicious-activity"],
            "pattern_type": "stix",
            "pattern": _pattern(kind, n, rng),
            "valid_from": format_timestamp(created),
            "confidence": rng.choice((15, 50, 70, 85, 100)),
            "object_marking_refs": [TLP2_MARKING_IDS[levels[n % len(levels)]]],
        }
        if n % 3 == 0:
            indicator["valid_until"] = format_timestamp(created + timedelta(days=rng.choice((7, 60, 180))))
        objects.append(indicator)
        if versions_every and n % versions_every == 0:
            newer = dict(indicator)
            newer["modified"] = format_timestamp(created + timedelta(hours=1))
            newer["confidence"] = 100
            if revoke_every and n % revoke_every == 0:
                newer["revoked"] = True
            objects.append(newer)
    return objects


def bundle(objects: list[dict[str, Any]], seed: str = "sample") -> dict[str, Any]:
    """Wrap objects in a STIX 2.1 bundle."""
    return {"type": "bundle", "id": _uid("bundle", seed), "objects": objects}


def demo_sightings(objects: list[dict[str, Any]], now: datetime, limit: int = 5) -> list[dict[str, str]]:
    """Return a few local sightings (value, time, host) of sample atoms, as a SOC's SIEM would find them."""
    rows: list[dict[str, str]] = []
    for obj in objects:
        pattern = obj.get("pattern", "")
        if obj.get("type") != "indicator" or obj.get("revoked") or " OR " in pattern or " AND " in pattern:
            continue
        if obj.get("valid_until") and obj["valid_until"] <= format_timestamp(now):
            continue
        if not pattern.startswith(("[domain-name:value", "[ipv4-addr:value = '1", "[url:value")):
            continue
        value = pattern.split("'")[1]
        rows.append({"value": value, "time": format_timestamp(now - timedelta(minutes=10 * len(rows))),
                     "host": f"ws-{len(rows) + 1:03d}.corp.example"})  # fmt: skip
        if len(rows) >= limit:
            break
    return rows
