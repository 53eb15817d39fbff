"""Tests of the MISP sync module's packaging: example configurations, systemd units, cron line."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stixbridge.config import load_config

PACKAGING = Path(__file__).resolve().parents[3] / "packaging" / "misp"


@pytest.fixture
def secrets_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MISP_KEY", "ALLIANCE_TAXII_PASSWORD"):
        monkeypatch.setenv(name, "example-secret")


def test_sync_example_builds(secrets_set: None) -> None:
    config = load_config(PACKAGING / "misp-sync.example.toml")

    assert [(e.kind, e.name) for e in config.sources] == [("taxii", "alliance")]
    assert [(e.kind, e.name) for e in config.sinks] == [("misp", "misp")]
    assert [(e.kind, e.name) for e in config.sightings] == [("misp", "misp")]
    sink = config.sinks[0].connector
    assert sink.settings.publish is False
    assert sink.settings.distribution == 0
    assert not sink.client.connected
    config.close()


def test_import_example_builds(secrets_set: None) -> None:
    config = load_config(PACKAGING / "misp-import.example.toml")

    assert [(e.kind, e.name) for e in config.sources] == [("taxii", "alliance")]
    assert config.sinks == []
    config.close()


@pytest.mark.parametrize("name", ["misp-sync.env.example", "misp-import.env.example"])
def test_env_examples_hold_no_values(name: str) -> None:
    lines = [line for line in (PACKAGING / name).read_text().splitlines() if line and not line.startswith("#")]

    assert lines
    assert all(re.fullmatch(r"[A-Z_]+=", line) for line in lines)


def test_cron_line_runs_sync_under_lock() -> None:
    lines = [line for line in (PACKAGING / "stixbridge-misp-sync.cron").read_text().splitlines()
             if line and not line.startswith("#")]  # fmt: skip

    assert len(lines) == 1
    fields = lines[0].split(None, 6)
    assert fields[:5] == ["*/15", "*", "*", "*", "*"]
    assert fields[5] == "stixbridge"
    assert fields[6].startswith("flock -n ")
    assert "--config /etc/stixbridge/misp-sync.toml --quiet sync" in fields[6]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_units_verify(tmp_path: Path) -> None:
    for unit in ("stixbridge-misp-sync.service", "stixbridge-misp-sync.timer"):
        text = (PACKAGING / "systemd" / unit).read_text()
        # The installed path does not exist here; any executable lets systemd check the rest of the unit.
        (tmp_path / unit).write_text(text.replace("/opt/stixbridge/venv/bin/stixbridge", shutil.which("true") or "/bin/true"))

    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "stixbridge-misp-sync.service", "stixbridge-misp-sync.timer"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
