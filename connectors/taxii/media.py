"""TAXII and STIX media types, and a parser for the Content-Type header."""

from __future__ import annotations

from email.message import Message

# TAXII 2.1 (OASIS Standard, 2021): every request sends this Accept, and POST this Content-Type.
# medallion 3.0.0 responds with 406 to an Accept without the version parameter.
TAXII_21 = "application/taxii+json;version=2.1"
# TAXII 2.0 names its types in the vnd.oasis tree and serves objects as a STIX bundle.
TAXII_20 = "application/vnd.oasis.taxii+json; version=2.0"
STIX_20 = "application/vnd.oasis.stix+json; version=2.0"

# Media types whose bodies are TAXII or STIX JSON; other JSON labels are read with one warning per server.
EXPECTED_TYPES = frozenset(
    {"application/taxii+json", "application/vnd.oasis.taxii+json", "application/vnd.oasis.stix+json"}
)


def parse_media_type(header: str | None) -> tuple[str, dict[str, str]]:
    """Split a Content-Type into its lowercase type and parameters (names lowercase, values as sent).

    Type and parameter names are case-insensitive and whitespace around ``;`` is allowed (RFC 9110), so
    ``Application/TAXII+JSON ; Version=2.1`` is the TAXII 2.1 type. An empty header gives ``("", {})``.
    """
    if not header or not header.strip():
        return "", {}
    message = Message()
    message["content-type"] = header
    params = message.get_params() or []
    media = params[0][0].strip().lower() if params else ""
    values = {name.strip().lower(): str(value).strip() for name, value in params[1:]}
    return media, values


def is_json_type(media: str) -> bool:
    """Return True for ``application/json``, ``text/json`` and any ``+json`` type."""
    return media in ("application/json", "text/json") or media.endswith("+json")
