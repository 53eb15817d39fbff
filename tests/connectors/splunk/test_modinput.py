"""The app's modular input, run the way splunkd runs it, against the fake splunkd."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from splunklib import client
from splunklib.modularinput import EventWriter

from stixbridge.connectors.splunk.modinput import (
    SESSION_KEY_ENV,
    SyncOutcome,
    check_config,
    credentials_env,
    input_class,
    resolve_config,
    run_sync,
    status_event,
)
from tests.core.helpers import indicator, write_bundle

from .conftest import PASSWORD
from .fake_splunk import FakeSplunk


def service_for(fake: FakeSplunk) -> Any:
    port = int(fake.url.rsplit(":", 1)[1])
    service = client.Service(host="127.0.0.1", port=port, scheme="http", username="admin", password=PASSWORD)
    service.login()
    return service


def write_config(folder: Path, fake: FakeSplunk) -> Path:
    feed = write_bundle(
        folder / "feed" / "a.json",
        [indicator(1, "[domain-name:value = 'c2.example.com']", valid_until="2099-01-01T00:00:00.000Z")],
    )
    config = folder / "stixbridge.toml"
    config.write_text(
        f"""
[engine]
state = "state.db"

[[sources]]
name = "alliance"
kind = "file"
path = "{feed}"

# The feed uses a documentation domain, which the trust guards hold by default.
[[trust.sources]]
name = "alliance"
allow = ["documentation"]

[[sinks]]
name = "splunk"
kind = "splunk"
url = "{fake.url}"
session_key = {{ env = "{SESSION_KEY_ENV}" }}
""",
        encoding="utf-8",
    )
    return config


def run_script(args: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = input_class()().run_script(args, EventWriter(output=out, error=err), io.StringIO(stdin))
    return code, out.getvalue(), err.getvalue()


def input_definition(fake: FakeSplunk, session_key: str, config: Path, tmp_path: Path) -> str:
    return f"""<input>
  <server_host>fake-splunk</server_host>
  <server_uri>{fake.url}</server_uri>
  <session_key>{session_key}</session_key>
  <checkpoint_dir>{tmp_path}</checkpoint_dir>
  <configuration>
    <stanza name="stixbridge_sync://alliance">
      <param name="config_file">{config}</param>
      <param name="interval">3600</param>
    </stanza>
  </configuration>
</input>"""


def test_scheme_lists_arguments() -> None:
    code, out, _ = run_script(["stixbridge_sync.py", "--scheme"])

    scheme = ElementTree.fromstring(out)
    names = [arg.get("name") for arg in scheme.iter("arg")]
    assert code == 0
    assert scheme.findtext("title") == "stixbridge sync"
    assert names == ["config_file", "timeout"]
    assert scheme.findtext("use_external_validation") == "true"


def test_validation_rejects_missing_config(tmp_path: Path) -> None:
    definition = f"""<items>
  <server_host>h</server_host><server_uri>https://127.0.0.1:8089</server_uri>
  <session_key>k</session_key><checkpoint_dir>{tmp_path}</checkpoint_dir>
  <item name="alliance"><param name="config_file">{tmp_path / "missing.toml"}</param></item>
</items>"""

    code, out, _ = run_script(["stixbridge_sync.py", "--validate-arguments"], definition)

    assert code == 1
    assert "cannot read config_file" in ElementTree.fromstring(out).findtext("message", "")


def test_check_config_rules(tmp_path: Path) -> None:
    good = tmp_path / "ok.toml"
    good.write_text("[engine]\n", encoding="utf-8")
    broken = tmp_path / "broken.toml"
    broken.write_text("[engine\n", encoding="utf-8")

    check_config(good)
    with pytest.raises(ValueError, match="is not valid TOML"):
        check_config(broken)
    with pytest.raises(ValueError, match="must be a stixbridge TOML file"):
        check_config(tmp_path / "config.ini")


def test_relative_config_starts_in_local(tmp_path: Path) -> None:
    assert resolve_config("stixbridge.toml", tmp_path) == tmp_path / "local" / "stixbridge.toml"
    assert resolve_config("/etc/stixbridge.toml", tmp_path) == Path("/etc/stixbridge.toml")


def test_credentials_from_app_realm_only(fake: FakeSplunk) -> None:
    fake.passwords[("TA-stixbridge", "STIXBRIDGE_TAXII_PASSWORD")] = "fake-taxii-secret"
    fake.passwords[("TA-stixbridge", "not a variable")] = "x"
    fake.passwords[("TA-stixbridge", "PATH")] = "/tmp/evil"
    fake.passwords[("other_app", "OTHER_SECRET")] = "y"

    env = credentials_env(service_for(fake))

    assert env == {"STIXBRIDGE_TAXII_PASSWORD": "fake-taxii-secret"}


def test_run_sync_pushes_with_session_key(fake: FakeSplunk, tmp_path: Path) -> None:
    service = service_for(fake)
    session_key = service.token.removeprefix("Splunk ")

    outcome = run_sync(write_config(tmp_path, fake), {SESSION_KEY_ENV: session_key}, timeout=120)

    assert outcome.exit_code == 0, outcome.log_lines
    assert outcome.summary["pushed"]["splunk"]["written"] == 1
    assert [r["value"] for r in fake.rows("TA-stixbridge", "stixbridge_intel").values()] == ["c2.example.com"]
    assert any("Sink splunk done" in line for line in outcome.log_lines)


def test_run_sync_reports_config_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[[sinks]]\nkind = 'nope'\n", encoding="utf-8")

    outcome = run_sync(config, {}, timeout=120)

    assert outcome.status == "config-error"
    assert "unknown sink kind 'nope'" in outcome.error


def test_stream_events_indexes_log_and_status(fake: FakeSplunk, tmp_path: Path) -> None:
    fake.passwords[("TA-stixbridge", "STIXBRIDGE_UNUSED_SECRET")] = "sentinel-secret-value"
    session_key = service_for(fake).token.removeprefix("Splunk ")
    config = write_config(tmp_path, fake)

    code, out, err = run_script(["stixbridge_sync.py"], input_definition(fake, session_key, config, tmp_path))

    events = ElementTree.fromstring(f"<stream>{out.removeprefix('<stream>').removesuffix('</stream>')}</stream>")
    by_type: dict[str, list[str]] = {}
    for event in events.iter("event"):
        by_type.setdefault(event.findtext("sourcetype", ""), []).append(event.findtext("data", ""))
    (status_text,) = by_type["stixbridge:status"]
    status = json.loads(status_text)
    assert code == 0, err
    assert status["status"] == "ok"
    assert status["written"] == 1
    assert status["input"] == "stixbridge_sync://alliance"
    assert by_type["stixbridge:log"]
    assert "sentinel-secret-value" not in out + err
    assert "stixbridge sync for stixbridge_sync://alliance ended: ok" in err


def test_status_event_counts_sinks() -> None:
    outcome = SyncOutcome(
        3,
        1.5,
        summary={
            "pushed": {"a": {"written": 2, "deleted": 1, "failed": 0}, "b": {"written": 3, "failed": 4}},
            "sightings": {"read": {"splunk-hits": {"records": 5, "new": 3}, "file": {"records": 1, "new": 1}}},
            "published": {"taxii": {"built": 2, "published": 2, "failed": 0}, "misp": {"off": "set enabled"}},
        },
        error="sink b failed",
    )

    event = status_event("stixbridge_sync://x", Path("/c.toml"), outcome)

    assert (event["written"], event["deleted"], event["failed"]) == (5, 1, 4)
    assert (event["sightings_read"], event["sightings_published"]) == (4, 2)
    assert event["status"] == "failed"
    assert event["error"] == "sink b failed"


def test_modules_import_without_sdk() -> None:
    code = """
import sys
for name in ("splunklib", "splunklib.binding", "splunklib.client", "splunklib.modularinput", "splunklib.results"):
    sys.modules[name] = None
import stixbridge.connectors.splunk.modinput as modinput
import stixbridge.connectors.splunk.sightings
import stixbridge.connectors.splunk.sink
from stixbridge.errors import MissingExtraError
try:
    modinput.input_class()
except MissingExtraError as exc:
    print(exc)
"""

    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    assert completed.returncode == 0, completed.stderr
    assert "pip install 'stixbridge[splunk]'" in completed.stdout
