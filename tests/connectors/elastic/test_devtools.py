"""The Dev Tools text and the files under packaging/elastic, generated from the setup definitions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stixbridge.connectors.elastic.devtools import console_text, main, packaging_files, rule_ndjson
from stixbridge.connectors.elastic.rules import domain_rule
from stixbridge.connectors.elastic.templates import index_body, index_template

PACKAGING = Path(__file__).parents[3] / "packaging" / "elastic"


@pytest.mark.parametrize("relative", sorted(packaging_files()))
def test_packaging_file_matches_definitions(relative: str) -> None:
    path = PACKAGING / relative

    assert path.is_file(), f"{path} is missing; run: python -m stixbridge.connectors.elastic.devtools packaging/elastic"
    assert path.read_text(encoding="utf-8") == packaging_files()[relative], (
        f"{path} differs from the Python definitions; regenerate it with "
        "python -m stixbridge.connectors.elastic.devtools packaging/elastic"
    )


def parse_console(text: str) -> list[tuple[str, str, object]]:
    """Split Dev Tools console text into (method, path, JSON body or None) requests."""
    requests: list[tuple[str, str, object]] = []
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    position = 0
    while position < len(lines):
        line = lines[position]
        position += 1
        if not line.strip():
            continue
        method, path = line.split(" ", 1)
        body_lines = []
        while position < len(lines) and lines[position].strip():
            body_lines.append(lines[position])
            position += 1
        requests.append((method, path, json.loads("\n".join(body_lines)) if body_lines else None))
    return requests


def test_console_requests_equal_setup_bodies() -> None:
    requests = parse_console(console_text("acme-ti-000002", "logs-ti_acme.indicator"))

    assert requests == [
        ("PUT", "_index_template/acme-ti", index_template("acme-ti-000002")),
        ("PUT", "acme-ti-000002", index_body("logs-ti_acme.indicator")),
        ("GET", "_alias/logs-ti_acme.indicator", None),
    ]


def test_rule_file_is_one_json_line() -> None:
    text = rule_ndjson("logs-ti_acme.indicator")

    assert text.count("\n") == 1
    assert json.loads(text) == domain_rule("logs-ti_acme.indicator")


def test_main_writes_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 0

    for relative, text in packaging_files().items():
        assert (tmp_path / relative).read_text(encoding="utf-8") == text
    assert main([]) == 2
