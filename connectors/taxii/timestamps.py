"""TAXII ``date_added`` values as servers send them, turned into the UTC form a server accepts back."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?\s*([Zz]|[+-]\d{2}:?\d{2})$"
)


def normalise_timestamp(text: object) -> str | None:
    """Return an RFC 3339 timestamp converted to UTC with a ``Z`` suffix, or None when it is not one.

    The fraction digits are kept as the server sent them, because an ``added_after`` with fewer digits
    than the server's own ``date_added`` could select an object again or skip one. Servers in the field
    send ``+00:00`` instead of ``Z``, other offsets, or ``undefined``; the last gives None.
    """
    if not isinstance(text, str):
        return None
    match = _TIMESTAMP.match(text.strip())
    if match is None:
        return None

    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError:
        return None

    if zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        moment = moment - offset if zone[0] == "+" else moment + offset
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (fraction or "") + "Z"


def later_timestamp(first: str | None, second: str | None) -> str | None:
    """Return the later of two normalised timestamps, or the one that is set."""
    if first is None or second is None:
        return first or second
    return max(first, second, key=_sort_key)


def _sort_key(text: str) -> tuple[str, str]:
    # Normalised timestamps differ only in their fraction, which compares as digits padded to nanoseconds.
    whole, _, rest = text.rstrip("Z").partition(".")
    return (whole, rest.ljust(9, "0"))
