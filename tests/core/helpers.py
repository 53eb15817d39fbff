"""Builders of STIX objects and configurations for core tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def indicator(
    n: int,
    pattern: str,
    *,
    spec: str | None = "2.1",
    modified: str = "2024-05-02T08:00:00.000Z",
    valid_from: str = "2024-05-02T08:00:00.000Z",
    **extra: Any,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "type": "indicator",
        "id": f"indicator--00000000-0000-4000-8000-{n:012d}",
        "created": "2024-05-02T08:00:00.000Z",
        "modified": modified,
        "pattern": pattern,
        "valid_from": valid_from,
    }
    if spec:
        obj["spec_version"] = spec
        obj["pattern_type"] = "stix"
        obj["indicator_types"] = ["malicious-activity"]
    else:
        obj["labels"] = ["malicious-activity"]
    obj.update(extra)
    return obj


def write_bundle(path: Path, objects: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--1", "objects": objects}), encoding="utf-8")
    return path


def write_config(folder: Path, feed: Path, extra: str = "", lifetimes: str = "") -> Path:
    config = folder / "stixbridge.toml"
    config.write_text(
        f"""
[engine]
state = "state.db"
{lifetimes}

[[sources]]
name = "feed"
kind = "file"
path = "{feed}"

[[sinks]]
name = "csv"
kind = "splunk-csv"
path = "out/splunk"
{extra}
""",
        encoding="utf-8",
    )
    return config
