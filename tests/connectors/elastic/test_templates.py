"""The index template: explicit mappings for every field the sink writes, names and patterns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stixbridge.connectors.elastic.ecs import ECS_INDICATOR_TYPES, ecs_documents
from stixbridge.connectors.elastic.templates import (
    TEMPLATE_PRIORITY,
    index_body,
    index_mappings,
    index_template,
    template_name,
    template_pattern,
)

from .conftest import T0, make_row

SAMPLE_VALUES = {
    "ipv4": "198.51.100.7",
    "ipv6": "2001:db8::5",
    "ipv4-cidr": "198.51.100.0/24",
    "ipv6-cidr": "2001:db8::/32",
    "domain": "example.com",
    "url": "https://example.com/a",
    "email": "a@example.com",
    "registry-key": "HKEY_LOCAL_MACHINE\\Software\\X",
    "as-number": "AS64496",
}


def mapped_types(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    found = {}
    for name, node in properties.items():
        path = f"{prefix}{name}"
        if "properties" in node:
            found.update(mapped_types(node["properties"], f"{path}."))
        else:
            found[path] = node["type"]
    return found


def leaf_paths(document: Any, prefix: str = "") -> set[str]:
    if isinstance(document, dict):
        paths: set[str] = set()
        for key, value in document.items():
            paths |= leaf_paths(value, f"{prefix}{key}.")
        return paths
    return {prefix.rstrip(".")}


def full_row_documents(atom_type: str) -> list[dict[str, Any]]:
    row = make_row(
        SAMPLE_VALUES.get(atom_type, "value"),
        atom_type,
        description="d",
        valid_until=datetime(2025, 1, 1, tzinfo=UTC),
        context=(("dst_port", "443"),),
        direction="src",
    )
    return [document for _, document in ecs_documents(row, T0)]


@pytest.mark.parametrize("atom_type", sorted(ECS_INDICATOR_TYPES))
def test_every_written_field_is_mapped(atom_type: str) -> None:
    mapped = mapped_types(index_mappings()["properties"])

    for document in full_row_documents(atom_type):
        assert leaf_paths(document) - set(mapped) == set()


def test_field_types() -> None:
    mapped = mapped_types(index_mappings()["properties"])

    assert mapped["threat.indicator.ip"] == "ip"
    assert mapped["threat.indicator.url.full"] == "wildcard"
    assert mapped["threat.indicator.url.original"] == "wildcard"
    assert mapped["threat.indicator.url.domain"] == "keyword"
    assert mapped["stixbridge.ip_range"] == "ip_range"
    assert mapped["threat.indicator.as.number"] == "long"
    for name in (
        "@timestamp",
        "threat.indicator.first_seen",
        "threat.indicator.last_seen",
        "threat.indicator.modified_at",
        "stixbridge.valid_until",
    ):
        assert mapped[name] == "date"
    assert mapped["threat.indicator.id"] == "keyword"
    assert mapped["event.kind"] == "keyword"


def test_dynamic_strings_become_keywords_not_dates() -> None:
    mappings = index_mappings()

    assert mappings["date_detection"] is False
    assert mappings["dynamic_templates"][0]["strings_as_keyword"]["mapping"]["type"] == "keyword"


def test_template_outranks_builtin_logs() -> None:
    template = index_template("stixbridge-indicators-000001")

    assert template["priority"] == TEMPLATE_PRIORITY > 100
    assert "data_stream" not in template
    assert template["index_patterns"] == ["stixbridge-indicators-*"]


@pytest.mark.parametrize(
    ("index", "name", "pattern"),
    [
        ("stixbridge-indicators-000001", "stixbridge-indicators", "stixbridge-indicators-*"),
        (
            "logs-ti_acme_latest.dest_indicator-4",
            "logs-ti_acme_latest.dest_indicator",
            "logs-ti_acme_latest.dest_indicator-*",
        ),
        ("indicators", "indicators", "indicators"),
    ],
)
def test_template_name_and_pattern(index: str, name: str, pattern: str) -> None:
    assert template_name(index) == name
    assert template_pattern(index) == pattern


def test_index_body_sets_write_alias() -> None:
    assert index_body("logs-ti_x.indicator") == {"aliases": {"logs-ti_x.indicator": {"is_write_index": True}}}
