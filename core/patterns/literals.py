"""Decoding and encoding of STIX pattern literals (strings, timestamps, numbers, binary)."""

import base64
import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

#: The body of a timestamp literal as the STIX 2.1 grammar restricts it: UTC only, month 01-12,
#: day 01-31, hour 00-23, second 00-60 and any number of fraction digits.
TIMESTAMP_BODY = re.compile(
    r"([0-9]{4})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9]|60)(?:\.([0-9]+))?Z"
)

_ESCAPE_PAIR = re.compile(r"\\(.)", re.DOTALL)


class LiteralError(ValueError):
    """Raised for a literal that matches the grammar's shape but has no valid value."""


def escape_literal(value: str) -> str:
    """Quote ``value`` as a STIX string literal.

    Backslashes are doubled first, then apostrophes are escaped, so ``o'brien`` becomes
    ``'o\\'brien'`` and ``C:\\Temp`` becomes ``'C:\\\\Temp'``. These are the only two escapes the
    STIX grammar allows, so no other character needs treatment.

    Raises:
        TypeError: ``value`` is not a str.
    """
    if not isinstance(value, str):
        raise TypeError(f"a STIX string literal needs a str value, got {type(value).__name__}: {value!r}")

    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def find_invalid_escape(body: str) -> int:
    """Return the offset in ``body`` of the first backslash escape other than ``\\'`` and ``\\\\``, or -1.

    ``body`` is the text between the quotes. Escapes are read as pairs from the left, so the
    ``W`` in ``\\\\W`` follows an escaped backslash and is not an escape itself.
    """
    for match in _ESCAPE_PAIR.finditer(body):
        if match.group(1) not in ("'", "\\"):
            return match.start()
    return -1


def decode_string(body: str) -> str:
    """Resolve the escapes in the body of a string literal whose escapes were already checked."""
    if "\\" not in body:
        return body
    return _ESCAPE_PAIR.sub(r"\1", body)


def parse_timestamp(text: str) -> datetime:
    """Decode an RFC 3339 UTC timestamp written as the STIX grammar allows it.

    Fraction digits past microseconds are truncated. A leap second (``:60``) becomes the first
    instant of the next minute, because datetime cannot hold it.

    Raises:
        LiteralError: The text is not of that form, or names a date that does not exist
            (the grammar alone accepts ``2024-02-31``).
    """
    match = TIMESTAMP_BODY.fullmatch(text)
    if match is None:
        raise LiteralError(f"{text!r} is not a UTC timestamp of the form YYYY-MM-DDTHH:MM:SS[.fraction]Z")

    year, month, day, hour, minute, second, fraction = match.groups()
    leap = second == "60"
    microsecond = int((fraction or "")[:6].ljust(6, "0"))
    try:
        value = datetime(
            int(year), int(month), int(day), int(hour), int(minute), 59 if leap else int(second),
            microsecond, tzinfo=UTC,
        )
    except ValueError as exc:
        raise LiteralError(f"{text!r} is not a valid date and time: {exc}") from exc

    if leap:
        value = value.replace(microsecond=0) + timedelta(seconds=1)
    return value


def format_timestamp(value: datetime) -> str:
    """Write ``value`` as the body of a timestamp literal, converted to UTC.

    A naive datetime is taken to be UTC already. Microseconds are written only when not zero.
    """
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def decode_binary(body: str) -> bytes:
    """Decode the body of a ``b'...'`` literal whose characters the lexer already checked."""
    return base64.b64decode(body, validate=True)


def format_float(value: float) -> str:
    """Write ``value`` as a STIX float literal: positional digits, at least one after the point.

    Python's shortest round-trip digits are kept, so parsing the text gives the same float.

    Raises:
        ValueError: ``value`` is infinite or NaN, which STIX has no literal for.
    """
    if not math.isfinite(value):
        raise ValueError(f"STIX patterns have no literal for the float {value!r}")

    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if "." not in text:
        text += ".0"
    return text
