"""The index template and the index that contain stixbridge indicator documents.

The documents live in a regular index behind an alias, not in a data stream, because data streams accept
only ``create`` operations and the sink replaces and deletes documents by ``_id``. Elastic's built-in
``logs`` template (priority 100) turns any new ``logs-*-*`` index into a data stream, so our template sits
above it. Its explicit mappings matter too: without them ``threat.indicator.ip`` would be mapped as text.
"""

from __future__ import annotations

import re
from typing import Any

TEMPLATE_VERSION = 1
"""Raised whenever the template body changes, so that ``setup`` installs it again."""

TEMPLATE_PRIORITY = 501
"""Above Elastic's built-in templates (``logs`` is 100, Fleet packages go up to 200) and above 500, the
level Elastic's documentation names for overriding them without Fleet."""

_KEYWORD = {"type": "keyword", "ignore_above": 1024}
_DATE = {"type": "date"}
_LONG = {"type": "long"}


def _keywords(*names: str) -> dict[str, Any]:
    return {name: dict(_KEYWORD) for name in names}


def _indicator_properties() -> dict[str, Any]:
    return {
        **_keywords("type", "name", "id", "description", "confidence", "provider", "reference"),
        "ip": {"type": "ip"},
        "port": dict(_LONG),
        "first_seen": dict(_DATE),
        "last_seen": dict(_DATE),
        "modified_at": dict(_DATE),
        "sightings": dict(_LONG),
        "scanner_stats": dict(_LONG),
        "marking": {"properties": _keywords("tlp", "tlp_version")},
        "email": {"properties": _keywords("address")},
        "url": {
            "properties": {
                "full": {"type": "wildcard"},
                "original": {"type": "wildcard"},
                **_keywords(
                    "domain",
                    "registered_domain",
                    "top_level_domain",
                    "subdomain",
                    "scheme",
                    "path",
                    "query",
                    "fragment",
                    "extension",
                    "username",
                ),
                "port": dict(_LONG),
            }
        },
        "file": {
            "properties": {
                **_keywords("name"),
                "hash": {"properties": _keywords("md5", "sha1", "sha256", "sha384", "sha512", "ssdeep", "tlsh")},
            }
        },
        "registry": {"properties": _keywords("path", "key", "hive", "value")},
        "x509": {"properties": _keywords("serial_number")},
        "as": {"properties": {"number": dict(_LONG), "organization": {"properties": _keywords("name")}}},
    }


def index_mappings() -> dict[str, Any]:
    """Return the mappings of the indicator index: ECS types for every field the sink writes."""
    return {
        "dynamic": True,
        "date_detection": False,
        "dynamic_templates": [
            {"strings_as_keyword": {"match_mapping_type": "string", "mapping": dict(_KEYWORD)}},
        ],
        "properties": {
            "@timestamp": dict(_DATE),
            "tags": dict(_KEYWORD),
            "ecs": {"properties": _keywords("version")},
            "event": {"properties": _keywords("kind", "category", "type", "module", "dataset")},
            "threat": {
                "properties": {
                    "feed": {"properties": _keywords("name", "description", "reference", "dashboard_id")},
                    "indicator": {"properties": _indicator_properties()},
                }
            },
            "stixbridge": {
                "properties": {
                    **_keywords(
                        "atom_type", "indicator_ids", "sources", "collections", "created_by", "context", "direction"
                    ),
                    "ip_range": {"type": "ip_range"},
                    "valid_until": dict(_DATE),
                    "weight": dict(_LONG),
                }
            },
        },
    }


def index_base(index: str) -> str:
    """Return the index name without its generation suffix.

    ``stixbridge-indicators-000001`` becomes ``stixbridge-indicators``.
    """
    return re.sub(r"-\d+$", "", index)


def template_name(index: str) -> str:
    """Return the name of the index template for ``index``."""
    return index_base(index)


def template_pattern(index: str) -> str:
    """Return the index pattern the template applies to: every generation of ``index``."""
    base = index_base(index)
    return f"{base}-*" if base != index else index


def index_template(index: str) -> dict[str, Any]:
    """Return the body of ``PUT _index_template/<template_name(index)>``."""
    return {
        "index_patterns": [template_pattern(index)],
        "priority": TEMPLATE_PRIORITY,
        "version": TEMPLATE_VERSION,
        "_meta": {
            "managed_by": "stixbridge",
            "description": "ECS indicator documents written by the stixbridge elastic sink",
        },
        "template": {
            "settings": {"index": {"number_of_shards": 1}},
            "mappings": index_mappings(),
        },
    }


def index_body(alias: str) -> dict[str, Any]:
    """Return the body of ``PUT <index>``: the mappings come from the template, the alias from here."""
    return {"aliases": {alias: {"is_write_index": True}}}
