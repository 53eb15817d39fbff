"""Tests of the misp-modules import module and the one-shot collection import behind it.

A local medallion TAXII 2.1 server on 127.0.0.1 serves the collection. The module is loaded from its
file and called through the misp-modules interface (``handler``, ``introspection``, ``version``). When
STIXBRIDGE_MISP_MODULES_BIN names a ``misp-modules`` executable whose environment has stixbridge
installed, the module is also queried through a misp-modules server on 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from stixbridge.connectors.misp.taxii_import import ImportRequest, import_collection
from stixbridge.errors import ConfigError
from stixbridge.tlp import TLP2_MARKING_IDS, Tlp
from tests.core.helpers import indicator

REPO = Path(__file__).resolve().parents[3]
MODULES_ROOT = REPO / "packaging" / "misp" / "misp-modules"
MODULE_FILE = MODULES_ROOT / "import_mod" / "stixbridge_taxii_import.py"
PASSWORD_VARIABLE = "STIXBRIDGE_TEST_TAXII_PASSWORD"
SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

COLLECTION = [
    indicator(1, "[ipv4-addr:value = '198.51.100.1']", object_marking_refs=[TLP2_MARKING_IDS[Tlp.AMBER]]),
    indicator(2, "[domain-name:value = 'c2.example.com']", name="C2 server"),
    indicator(3, f"[file:hashes.'SHA-256' = '{SHA256_EMPTY}' AND file:name = 'a.exe']"),
    indicator(4, "[network-traffic:src_ref.type = 'ipv4-addr' AND network-traffic:src_ref.value = '203.0.113.5']"),
    indicator(5, "[url:value = 'http://dl.example.net/a']", revoked=True),
    indicator(6, "[domain-name:value = 'old.example.com']", valid_until="2024-05-03T08:00:00.000Z"),
    indicator(7, "[x509-certificate:serial_number = '0a:1b']"),
]


@pytest.fixture(scope="module")
def taxii() -> Iterator[Any]:
    from stixbridge.connectors.taxii.medallion_server import run_medallion

    with run_medallion({"alliance-indicators": COLLECTION, "other": [indicator(9, "[ipv4-addr:value = '192.0.2.9']")]}) as server:
        yield server


@pytest.fixture
def config_path(taxii: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(PASSWORD_VARIABLE, taxii.password)
    path = tmp_path / "stixbridge.toml"
    path.write_text(
        f"""
[[sources]]
name = "alliance"
kind = "taxii"
url = "{taxii.url}"
username = "{taxii.username}"
password = {{ env = "{PASSWORD_VARIABLE}" }}
collections = ["alliance-indicators"]
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stixbridge_taxii_import", MODULE_FILE)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def _query(module: ModuleType, **config: Any) -> Any:
    return module.handler(json.dumps({"module": "stixbridge_taxii_import", "config": config}))


def _values(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["value"]: a for a in result["results"]["Attribute"]}


def test_introspection_describes_import_form(module: ModuleType) -> None:
    described = module.introspection()

    assert described["format"] == "misp_standard"
    assert described["inputSource"] == []
    assert sorted(described["userConfig"]) == ["added_after", "collection", "source", "to_ids"]


def test_version_names_admin_settings(module: ModuleType) -> None:
    described = module.version()

    assert described["module-type"] == ["import"]
    assert described["config"] == ["config_path", "max_objects"]
    assert described["name"] == "stixbridge TAXII import"


def test_handler_without_query(module: ModuleType) -> None:
    assert module.handler(False) is False


def test_handler_pulls_live_indicators(module: ModuleType, config_path: Path) -> None:
    result = _query(module, config_path=str(config_path))

    values = _values(result)
    assert sorted(values) == ["198.51.100.1", "203.0.113.5", "c2.example.com", SHA256_EMPTY]
    assert values["198.51.100.1"]["type"] == "ip-dst"
    assert values["203.0.113.5"]["type"] == "ip-src"
    assert values[SHA256_EMPTY]["type"] == "sha256"
    assert all(a["to_ids"] for a in values.values())
    assert values["198.51.100.1"]["Tag"] == [{"name": "tlp:amber"}]
    assert values["c2.example.com"]["comment"] == "indicator--00000000-0000-4000-8000-000000000002 C2 server"
    assert values["c2.example.com"]["category"] == "Network activity"
    assert result["results"]["Tag"] == [{"name": 'stixbridge:source="alliance"'}]
    assert result["results"]["Object"] == []


def test_handler_to_ids_off(module: ModuleType, config_path: Path) -> None:
    result = _query(module, config_path=str(config_path), to_ids="0")

    assert not any(a["to_ids"] for a in result["results"]["Attribute"])


def test_handler_other_collection(module: ModuleType, config_path: Path) -> None:
    result = _query(module, config_path=str(config_path), source="alliance", collection="other")

    assert sorted(_values(result)) == ["192.0.2.9"]


def test_handler_added_after_in_future(module: ModuleType, config_path: Path) -> None:
    result = _query(module, config_path=str(config_path), added_after="2999-01-01T00:00:00Z")

    assert result["results"]["Attribute"] == []


def test_handler_max_objects(module: ModuleType, config_path: Path) -> None:
    result = _query(module, config_path=str(config_path), max_objects="1")

    assert sorted(_values(result)) == ["198.51.100.1"]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "config_path is not set"),
        ({"config_path": "/nonexistent/stixbridge.toml"}, "cannot read configuration file"),
        ({"max_objects": "many"}, "max_objects must be a whole number"),
        ({"source": "nope"}, "no enabled source named 'nope'"),
        ({"added_after": "yesterday"}, "not an RFC 3339 timestamp"),
    ],
)
def test_handler_errors(module: ModuleType, config_path: Path, config: dict[str, str], message: str) -> None:
    values = {"config_path": str(config_path), **config}
    if config == {}:
        values = {}

    result = _query(module, **values)

    assert message in result["error"]
    assert module.misperrors == {"error": "Error"}


def test_handler_bad_json(module: ModuleType) -> None:
    assert "not a JSON object" in module.handler("{not json")["error"]


def test_import_needs_source_name_when_several(config_path: Path) -> None:
    text = config_path.read_text() + config_path.read_text().replace('name = "alliance"', 'name = "second"')
    config_path.write_text(text)

    with pytest.raises(ConfigError, match="2 enabled sources"):
        import_collection(ImportRequest(config_path=config_path))


def test_import_collection_for_file_source_rejected(tmp_path: Path) -> None:
    path = tmp_path / "stixbridge.toml"
    (tmp_path / "feed.json").write_text('{"type": "bundle", "id": "bundle--1", "objects": []}')
    path.write_text('[[sources]]\nname = "files"\nkind = "file"\npath = "feed.json"\n')

    with pytest.raises(ConfigError, match="has no collections"):
        import_collection(ImportRequest(config_path=path, collection="x"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def modules_server(taxii: Any) -> Iterator[str]:
    executable = os.environ.get("STIXBRIDGE_MISP_MODULES_BIN", "")
    if not executable:
        pytest.skip("set STIXBRIDGE_MISP_MODULES_BIN to a misp-modules executable to query a misp-modules server")
    port = _free_port()
    env = {**os.environ, PASSWORD_VARIABLE: taxii.password}
    process = subprocess.Popen(
        [executable, "-l", "127.0.0.1", "-p", str(port), "-c", str(MODULES_ROOT)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/healthcheck", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            pytest.fail("misp-modules did not start within 60 seconds")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_misp_modules_server_lists_module(modules_server: str) -> None:
    modules = requests.get(f"{modules_server}/modules", timeout=10).json()

    ours = [m for m in modules if m["name"] == "stixbridge_taxii_import"]
    assert len(ours) == 1
    assert ours[0]["type"] == "import_mod"
    assert ours[0]["mispattributes"]["format"] == "misp_standard"


def test_misp_modules_server_runs_import(modules_server: str, config_path: Path) -> None:
    query = {"module": "stixbridge_taxii_import", "config": {"config_path": str(config_path)}}

    answer = requests.post(f"{modules_server}/query", json=query, timeout=120).json()

    assert sorted(a["value"] for a in answer["results"]["Attribute"]) == [
        "198.51.100.1", "203.0.113.5", "c2.example.com", SHA256_EMPTY,
    ]  # fmt: skip
