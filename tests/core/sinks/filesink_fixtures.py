"""Builders shared by the file-sink tests: atom rows, deletes, a settable clock and file times."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stixbridge.model import AtomRow, DeliveredRow, row_key

INDICATOR_ID = "indicator--4e5d0daf-60fb-4f23-ade8-be9703fa278e"
VALID_FROM = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
MODIFIED = datetime(2024, 5, 2, 9, 30, tzinfo=UTC)
NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)

# Every atom type the normaliser produces, with a documentation value of that type.
ATOM_EXAMPLES: dict[str, str] = {
    "ipv4": "198.51.100.7",
    "ipv6": "2001:db8::5",
    "ipv4-cidr": "198.51.100.0/24",
    "ipv6-cidr": "2001:db8:abcd::/48",
    "domain": "cdn.example.net",
    "url": "https://login.example.com/reset",
    "email": "billing@example.com",
    "md5": "d41d8cd98f00b204e9800998ecf8427e",
    "sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "sha512": "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
    "sha3-256": "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a",
    "sha3-512": "a69f73cca23a9ac5c8b567dc185a756e97c982164fe25859e0d1dcc1475c80a6"
    "15b2123af1f5f94c11e3e9402c3ac558f500199d95b6d3e301758586281dcd26",
    "ssdeep": "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C",
    "tlsh": "t1a5f0c0b4d2b5f2a1e3c4d5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8",
    "file-name": "invoice_2024.exe",
    "x509-serial": "0A1B2C3D",
    "x509-sha1": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "x509-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "x509-md5": "d41d8cd98f00b204e9800998ecf8427e",
    "registry-key": "HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Run",
    "mutex": "Global\\evil-mutex",
    "user-account": "svc-backup",
    "process-name": "evil.exe",
    "as-number": "64496",
}


class Clock:
    """A clock that tests move by hand."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def build_row(atom_type: str = "ipv4", value: str | None = None, **overrides: Any) -> AtomRow:
    """Return a live atom row with realistic defaults; ``overrides`` replace any field."""
    value = ATOM_EXAMPLES[atom_type] if value is None else value
    indicator_id = overrides.pop("indicator_id", INDICATOR_ID)
    row = AtomRow(
        key=row_key(indicator_id, atom_type, value),
        type=atom_type,
        value=value,
        display=value,
        indicator_id=indicator_id,
        indicator_ids=(indicator_id,),
        name="Phishing infrastructure",
        description="Seen in a phishing campaign",
        valid_from=VALID_FROM,
        valid_until=None,
        modified=MODIFIED,
        confidence=80,
        weight=70,
        tlp=1,
        labels=("malicious-activity",),
        sources=("alliance",),
        collections=("collection-a",),
        created_by=("identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",),
        digest="digest-1",
    )
    return dataclasses.replace(row, **overrides)


def delivered(row: AtomRow) -> DeliveredRow:
    """Return what the engine would hand a sink to delete ``row``."""
    return DeliveredRow(key=row.key, type=row.type, value=row.value, digest=row.digest, indicator_id=row.indicator_id)


def age_files(folder: Path) -> dict[str, int]:
    """Move every file's modification time into the past and return the times, in nanoseconds.

    Compare the result with :func:`read_mtimes` after a push: a rewritten file gets the current time,
    which stays visible even on file systems with coarse timestamps.
    """
    for path in folder.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    return read_mtimes(folder)


def read_mtimes(folder: Path) -> dict[str, int]:
    """Return every file's modification time in nanoseconds, keyed by its path inside ``folder``."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}
