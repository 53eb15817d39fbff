"""Refanging: undo the markers analysts put into network indicators so they cannot be clicked.

Reports and MISP events often carry ``hxxps://login.example[.]com`` instead of the live value. Such a
string can never match an event in a SIEM, so the network atoms (IP, domain, URL, email) are refanged
before they are validated. Other types are never refanged, because a bracket in a file name or a
registry key can be part of the real value.

Only markers that cannot be literal text are replaced:

* Square-bracket markers (``[.]``, ``[dot]``, ``[@]``, ``[at]``, ``[:]``, ``[://]``) anywhere, because
  RFC 3986 allows ``[`` and ``]`` only around an IPv6 host, and no domain, IP or email domain contains them.
* Parenthesis and brace markers (``(.)``, ``{.}``, ``(dot)``, ``{dot}``, ``(@)``, ``(at)``) only in
  the scheme and host part, because a URL path or query may contain these characters literally.
* A defanged scheme (``hxxp``, ``hxxps``, ``h[tt]p``, ``h[tt]ps``, ``fxp``) only at the start and
  only when a ``:`` or ``[:`` follows, so a host that merely starts with ``hxxp`` is left alone.

Backslash escapes such as ``example\\.com`` are not touched, because stripping backslashes damages
values that hold them on purpose.
"""

from __future__ import annotations

import re

__all__ = ["refang"]

# Markers are matched case-insensitively, because feeds write [DOT] and hXXp as often as [dot] and hxxp.
_BRACKET_MARKERS = {
    "[.]": ".",
    "[dot]": ".",
    "[@]": "@",
    "[at]": "@",
    "[:]": ":",
    "[://]": "://",
}
_HOST_MARKERS = {
    "(.)": ".",
    "{.}": ".",
    "(dot)": ".",
    "{dot}": ".",
    "(@)": "@",
    "(at)": "@",
}
_SCHEMES = {
    "hxxp": "http",
    "hxxps": "https",
    "h[tt]p": "http",
    "h[tt]ps": "https",
    "fxp": "ftp",
}

_BRACKET_RE = re.compile("|".join(re.escape(marker) for marker in _BRACKET_MARKERS), re.IGNORECASE)
_HOST_RE = re.compile("|".join(re.escape(marker) for marker in _HOST_MARKERS), re.IGNORECASE)
_SCHEME_RE = re.compile(r"(hxxps?|h\[tt\]ps?|fxp)(?=\[?:)", re.IGNORECASE)

# A value without '[', '(' or '{' that starts with none of these letters needs no work. Most values
# take that path, so it is checked before any regular expression runs.
_SCHEME_START_CHARS = ("h", "H", "f", "F")


def _replace_bracket_marker(match: re.Match[str]) -> str:
    return _BRACKET_MARKERS[match.group().lower()]


def _replace_host_marker(match: re.Match[str]) -> str:
    return _HOST_MARKERS[match.group().lower()]


def _host_part_end(value: str) -> int:
    """Return the index where the path, query or fragment of a URL-like value begins."""
    scheme_end = value.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0

    end = len(value)
    for separator in "/?#":
        position = value.find(separator, start)
        if 0 <= position < end:
            end = position
    return end


def refang(value: str) -> tuple[str, bool]:
    """Replace the defanging markers in a network indicator with the characters they stand for.

    Call this only for values already known to be a URL, domain, IP address or email address. The
    module docstring lists the markers and the reason each is safe to replace.

    Args:
        value: The indicator as the producer wrote it.

    Returns:
        The refanged value and whether it differs from ``value``.
    """
    if "[" not in value and "(" not in value and "{" not in value and value[:1] not in _SCHEME_START_CHARS:
        return value, False

    refanged = value
    if "[" in refanged:
        refanged = _BRACKET_RE.sub(_replace_bracket_marker, refanged)

    scheme = _SCHEME_RE.match(refanged)
    if scheme is not None:
        refanged = _SCHEMES[scheme.group(1).lower()] + refanged[scheme.end() :]

    if "(" in refanged or "{" in refanged:
        end = _host_part_end(refanged)
        refanged = _HOST_RE.sub(_replace_host_marker, refanged[:end]) + refanged[end:]

    return refanged, refanged != value
