"""The hand-written files under packaging/elastic: configurations that load, jobs that run the right commands."""

from __future__ import annotations

import configparser
import tomllib
from pathlib import Path

import pytest

from stixbridge.config import build_config, load_config
from stixbridge.connectors.elastic.sightings import ElasticSightingsReader
from stixbridge.connectors.elastic.sink import ElasticSink

PACKAGING = Path(__file__).parents[3] / "packaging" / "elastic"
SECRETS = {"ALLIANCE_TAXII_PASSWORD": "x", "STIXBRIDGE_ES_API_KEY": "y"}


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def test_example_configuration_loads() -> None:
    config = load_config(PACKAGING / "stixbridge-elastic.example.toml")

    assert [entry.kind for entry in config.sources] == ["taxii"]
    assert isinstance(config.sinks[0].connector, ElasticSink)
    assert isinstance(config.sightings[0].connector, ElasticSightingsReader)
    config.close()


def test_cronjob_runs_sync() -> None:
    yaml = pytest.importorskip("yaml")
    documents = list(yaml.safe_load_all((PACKAGING / "kubernetes" / "cronjob.yaml").read_text(encoding="utf-8")))
    by_kind = {document["kind"]: document for document in documents}

    job = by_kind["CronJob"]["spec"]
    container = job["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    script = " ".join(container["args"])
    assert job["concurrencyPolicy"] == "Forbid"
    assert " sync;" in script
    assert "elastic refresh" not in script
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    text = by_kind["ConfigMap"]["data"]["stixbridge.toml"]
    config = build_config(tomllib.loads(text), base_dir=PACKAGING, text=text)
    assert config.engine.state == "/var/lib/stixbridge/stixbridge.db"
    assert config.sinks[0].kind == "elastic"
    config.close()


def test_systemd_units() -> None:
    service = configparser.ConfigParser(interpolation=None, strict=True)
    service.read(PACKAGING / "systemd" / "stixbridge-elastic.service", encoding="utf-8")
    timer = configparser.ConfigParser(interpolation=None, strict=True)
    timer.read(PACKAGING / "systemd" / "stixbridge-elastic.timer", encoding="utf-8")

    assert service["Service"]["Type"] == "oneshot"
    assert service["Service"]["ExecStart"].endswith(" sync")
    assert "ExecStartPost" not in service["Service"]
    assert service["Service"]["SuccessExitStatus"] == "1"
    assert "Install" not in service
    assert timer["Timer"]["OnCalendar"] == "*:0/30"
    assert timer["Install"]["WantedBy"] == "timers.target"
