"""RFC 3339 timestamps as STIX uses them, parsed to timezone-aware UTC datetimes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp; see :func:`_parse_timestamp`. Repeated strings are served from a cache,
    because an indicator's ``created``, ``modified`` and ``valid_from`` are usually the same text."""
    if isinstance(text, str):
        return _cached_parse(text)
    return _parse_timestamp(text)


@lru_cache(maxsize=8192)
def _cached_parse(text: str) -> datetime:
    # datetime.fromisoformat (C, Python 3.11) is fast but also accepts forms RFC 3339 forbids, such as a
    # date alone or a time without an offset, so it is used only on text already shaped like RFC 3339.
    if len(text) >= 20 and text[10] == "T" and (text[-1] == "Z" or text[-6] in "+-") and len(text) <= 30:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return _parse_timestamp(text)
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    return _parse_timestamp(text)


def _parse_timestamp(text: str) -> datetime:
    """Parse an RFC 3339 timestamp with 0 to 9 fractional digits and ``Z`` or an offset.

    Digits past the sixth are dropped because ``datetime`` keeps microseconds; two timestamps that differ
    only in nanoseconds therefore compare equal.

    Raises:
        ValueError: the text is not an RFC 3339 timestamp; the message quotes it.
    """
    if not isinstance(text, str):
        raise ValueError(f"timestamp must be a string, got {type(text).__name__}: {text!r}")
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"invalid timestamp {text!r}: expected RFC 3339 such as '2024-05-02T08:00:00.000Z'")

    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if zone in ("Z", "z"):
        offset = timedelta(0)
    else:
        sign = 1 if zone[0] == "+" else -1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        local = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"invalid timestamp {text!r}: {exc}") from exc
    return local - offset


def format_timestamp(moment: datetime) -> str:
    """Format a datetime as STIX does: UTC, millisecond precision, ``Z`` suffix."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:23] + "Z"


def to_epoch(moment: datetime) -> float:
    """Return seconds since the Unix epoch."""
    return moment.timestamp()


def from_epoch(seconds: float) -> datetime:
    """Return the UTC datetime for seconds since the Unix epoch."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def utcnow() -> datetime:
    """Return the current time in UTC; the one clock the engine reads, so tests can replace it."""
    return datetime.now(tz=UTC)
