"""The Splunk app package built by packaging/splunk/build.py, and Splunk AppInspect's verdict on it.

Building downloads the app's pure-Python dependencies with pip, so these tests skip when the package
index cannot be reached. The AppInspect test runs when ``splunk-appinspect`` is found: on the PATH, at
``$STIXBRIDGE_APPINSPECT``, or in ``/tmp/appinspect-venv`` (it pins old libraries, so it lives in a
virtual environment of its own).
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO / "packaging" / "splunk" / "build.py"

pytestmark = pytest.mark.slow


def load_build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("stixbridge_app_build", BUILD_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build the app once for this module; skip when the dependencies cannot be downloaded."""
    out = tmp_path_factory.mktemp("app")
    completed = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--out", str(out)], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        if re.search(
            r"(No matching distribution|Could not find a version|connection|Network is unreachable)",
            completed.stderr,
            re.I,
        ):
            pytest.skip(f"could not download the app's dependencies: {completed.stderr.strip()[-300:]}")
        pytest.fail(f"build failed:\n{completed.stdout}\n{completed.stderr}")
    packages = [Path(line) for line in completed.stdout.split()]
    return {"app": out / "TA-stixbridge", "tgz": packages[0], "spl": packages[1]}


def read_conf(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    # .conf files allow continuation lines ending in a backslash; join them before parsing.
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    parser.read_string(text)
    return parser


def test_build_number_grows_with_version() -> None:
    build = load_build_module()

    assert build.build_number("0.1.0") == 100
    assert build.build_number("1.2.3") == 10203
    assert build.build_number("1.10.0") > build.build_number("1.9.9")


def test_package_has_one_top_folder(built: dict[str, Path]) -> None:
    with tarfile.open(built["tgz"]) as archive:
        names = archive.getnames()

    assert {name.split("/")[0] for name in names} == {"TA-stixbridge"}
    assert built["spl"].read_bytes() == built["tgz"].read_bytes()
    assert not any("/local/" in name or name.endswith((".pyc", ".pyo", ".so")) for name in names)
    assert not any("__pycache__" in name for name in names)


def test_app_conf_identity(built: dict[str, Path]) -> None:
    app_conf = read_conf(built["app"] / "default" / "app.conf")
    from stixbridge import __version__

    assert app_conf.get("package", "id") == "TA-stixbridge"
    assert app_conf.get("id", "version") == __version__
    assert app_conf.get("launcher", "version") == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", app_conf.get("launcher", "version"))
    assert app_conf.getint("install", "build") > 0
    assert 5 <= len(app_conf.get("ui", "label")) <= 80
    assert "@" not in (built["app"] / "default" / "app.conf").read_text(encoding="utf-8")


def test_modular_input_runs_python_313(built: dict[str, Path]) -> None:
    inputs = read_conf(built["app"] / "default" / "inputs.conf")

    for stanza in inputs.sections():
        assert inputs.get(stanza, "python.required") == "3.13"
    assert "stixbridge_sync" in inputs.sections()
    assert (built["app"] / "README" / "inputs.conf.spec").exists()
    assert os.access(built["app"] / "bin" / "stixbridge_sync.py", os.X_OK)


def test_lookups_and_saved_search(built: dict[str, Path]) -> None:
    default = built["app"] / "default"
    collections = read_conf(default / "collections.conf")
    transforms = read_conf(default / "transforms.conf")
    searches = read_conf(default / "savedsearches.conf")

    assert "stixbridge_intel" in collections.sections()
    assert {transforms.get(s, "collection") for s in transforms.sections()} == {"stixbridge_intel"}
    assert transforms.get("stixbridge_cidr_lookup", "match_type") == "CIDR(value)"
    assert transforms.get("stixbridge_intel_lookup", "case_sensitive_match") == "false"
    assert searches.get("stixbridge - threat match", "action.summary_index") == "1"
    for kind in set(dict(collections.items("stixbridge_intel"))):
        if kind.startswith("field."):
            assert collections.get("stixbridge_intel", kind) in ("number", "bool", "string", "time")


def test_collection_fields_match_sink(built: dict[str, Path]) -> None:
    from stixbridge.connectors.splunk.mapping import APP_COLLECTION_FIELDS

    collections = read_conf(built["app"] / "default" / "collections.conf")
    declared = {k.removeprefix("field."): v for k, v in collections.items("stixbridge_intel") if k.startswith("field.")}

    assert declared == APP_COLLECTION_FIELDS


def test_vendored_libraries_are_pure_and_listed(built: dict[str, Path]) -> None:
    lib = built["app"] / "bin" / "lib"
    dist_infos = {p.name.split("-")[0].lower() for p in lib.glob("*.dist-info")}

    assert {"stixbridge", "splunk_sdk", "tenacity", "taxii2_client", "stix2", "pymispwarninglists"} <= dist_infos
    assert (lib / "stixbridge" / "connectors" / "splunk" / "modinput.py").exists()
    assert not [p for p in lib.rglob("*") if p.suffix in (".so", ".pyd", ".dll", ".pyc")]
    (sdk,) = lib.glob("splunk_sdk-*.dist-info")
    assert int(sdk.name.split("-")[1].split(".")[0]) >= 3


def test_input_script_prints_scheme(built: dict[str, Path]) -> None:
    completed = subprocess.run(
        [sys.executable, "-I", str(built["app"] / "bin" / "stixbridge_sync.py"), "--scheme"],
        capture_output=True,
        text=True,
        check=False,
        cwd=built["app"],
    )

    assert completed.returncode == 0, completed.stderr
    assert "<title>stixbridge sync</title>" in completed.stdout


def find_appinspect() -> str | None:
    for candidate in (os.environ.get("STIXBRIDGE_APPINSPECT"), shutil.which("splunk-appinspect"),
                      "/tmp/appinspect-venv/bin/splunk-appinspect"):  # fmt: skip
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.mark.skipif(
    find_appinspect() is None, reason="splunk-appinspect is not installed (see docs/connectors/splunk.md)"
)
def test_appinspect_finds_no_failures(built: dict[str, Path], tmp_path: Path) -> None:
    report = tmp_path / "appinspect.json"
    command = [str(find_appinspect()), "inspect", str(built["tgz"]), "--mode", "precert", "--included-tags", "cloud",
               "--data-format", "json", "--output-file", str(report)]  # fmt: skip

    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)

    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    results = json.loads(report.read_text(encoding="utf-8"))
    bad = [
        (check["result"], check["name"])
        for entry in results["reports"]
        for group in entry["groups"]
        for check in group["checks"]
        if check["result"] in ("failure", "error")
    ]
    assert bad == []


def test_views_are_simple_xml_1_1(built: dict[str, Path]) -> None:
    from xml.etree import ElementTree

    views = sorted((built["app"] / "default" / "data" / "ui" / "views").glob("*.xml"))

    assert [view.stem for view in views] == ["stixbridge_overview", "stixbridge_setup"]
    for view in views:
        root = ElementTree.parse(view).getroot()
        assert root.tag == "dashboard"
        assert root.get("version") == "1.1"
    ElementTree.parse(built["app"] / "default" / "data" / "ui" / "nav" / "default.xml")
