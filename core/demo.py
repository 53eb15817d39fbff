"""``stixbridge demo``: the main job end to end on a generated feed, with no Splunk, Elastic or MISP.

The demo writes a sample alliance feed, serves it from a local TAXII 2.1 server (medallion, on 127.0.0.1)
when the ``demo`` extra is installed, or reads it from a file otherwise, and syncs it into the file sinks.
The same sync reads local sightings from ``sightings.jsonl`` and publishes them as STIX Sightings to a
second collection on the TAXII server, which the demo then reads back. A summary of each step is printed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .config import load_config
from .engine import Engine
from .samples import bundle, demo_sightings, generate_indicators
from .store.sqlite import SqliteStore
from .timeutil import utcnow

logger = logging.getLogger(__name__)
_USER_ENV = "STIXBRIDGE_DEMO_TAXII_USER"

CONFIG_TEMPLATE = """\
# A stixbridge configuration written by 'stixbridge demo'.
# {rerun}
[engine]
state = "state/stixbridge.db"

[identity]
name = "Demo SOC"

{source}

[[sinks]]
name = "splunk-lookups"
kind = "splunk-csv"
path = "out/splunk"

[[sinks]]
name = "elastic-bulk"
kind = "ecs-ndjson"
path = "out/elastic"

[[sinks]]
name = "misp-feed"
kind = "misp-feed"
path = "out/misp-feed"
org_name = "Demo SOC"
org_uuid = "5c6f4a8e-0d3b-4f7a-9b21-3e8d6c1a2f40"

# The sample feed uses only addresses and names reserved for documentation, which the trust guards
# quarantine unless a source is allowed to send them.
[[trust.sources]]
name = "alliance"
allow = ["documentation"]

# Hits of alliance atoms in our own telemetry, as a SIEM export would hold them.
[[sightings]]
name = "local"
kind = "file"
path = "sightings.jsonl"
{publish}"""

FILE_SOURCE = """[[sources]]
name = "alliance"
kind = "file"
path = "feed"
"""

TAXII_SOURCE = """[[sources]]
name = "alliance"
kind = "taxii"
url = "{url}"
collections = ["alliance-demo"]
limit = 100
username = "{username}"
password = {{ env = "STIXBRIDGE_DEMO_TAXII_PASSWORD" }}
"""

TAXII_PUBLISH = """
# Our Sightings go back to the alliance; the sample feed has TLP:AMBER indicators, so allow up to AMBER.
[[publish]]
name = "alliance-taxii"
kind = "taxii"
enabled = true
url = "{url}"
collection = "alliance-sightings"
username = "{username}"
password = {{ env = "STIXBRIDGE_DEMO_TAXII_PASSWORD" }}

[[sharing.targets]]
name = "alliance-taxii"
max_tlp = "amber"
"""

SIGHTINGS_COLLECTION = "alliance-sightings"


def run_demo(folder: Path, *, count: int = 500, use_taxii: bool = True, as_json: bool = False) -> int:
    """Write a sample feed and configuration under ``folder``, sync it, and print what happened."""
    folder.mkdir(parents=True, exist_ok=True)
    now = utcnow()
    objects = generate_indicators(count, now=now)
    feed_dir = folder / "feed"
    feed_dir.mkdir(exist_ok=True)
    (feed_dir / "alliance-sample.json").write_text(json.dumps(bundle(objects), indent=1), encoding="utf-8")
    (folder / "sightings.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in demo_sightings(objects, now)), encoding="utf-8"
    )

    read_back: list[dict[str, Any]] = []
    with _feed_server(objects, use_taxii) as url:
        username = os.environ.get(_USER_ENV, "")
        source = TAXII_SOURCE.format(url=url, username=username) if url else FILE_SOURCE
        publish = TAXII_PUBLISH.format(url=url, username=username) if url else ""
        config_path = folder / "stixbridge.toml"
        config_path.write_text(
            CONFIG_TEMPLATE.format(
                rerun=(
                    "Its TAXII server ran only during the demo; 'stixbridge demo --no-taxii' writes a "
                    "configuration that reads the feed file and can be run again."
                    if url
                    else f"Run it again with: stixbridge --config {config_path} sync"
                ),
                source=source,
                publish=publish,
            ),
            encoding="utf-8",
        )
        config = load_config(config_path)
        with SqliteStore(config.state_path) as store:
            engine = Engine(config, store)
            try:
                summary = engine.sync()
                status = store.status(utcnow())
                if url:
                    read_back = _read_back(config.base_dir, url)
            finally:
                config.close()

    report: dict[str, Any] = {
        "feed": "local TAXII 2.1 server (medallion)" if url else f"file {feed_dir}",
        "config": str(config_path),
        "pulled": summary.pulled,
        "expired": summary.expired,
        "live_atoms_by_type": status["atoms"]["by_type"],
        "composites": status["composites"],
        "quarantined": status["quarantine"],
        "sinks": {name: {k: v for k, v in counts.items() if k in ("written", "deleted", "skipped")}
                  for name, counts in summary.pushed.items()},  # fmt: skip
        "outputs": sorted(str(p.relative_to(folder)) for p in (folder / "out").rglob("*") if p.is_file())[:20],
        "sightings": summary.extra.get("sightings", {}),
        "published": summary.extra.get("published", {}),
        "read_back": _count_types(read_back) if url else {},
        "failures": summary.failures,
    }
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        _print_report(report)
    return summary.exit_code() if summary.failures else 0


@contextlib.contextmanager
def _feed_server(objects: list[dict[str, Any]], use_taxii: bool) -> Iterator[str | None]:
    """Serve the feed from a local medallion when it is installed; yield its URL, or None for the file."""
    if not use_taxii:
        yield None
        return
    missing = [name for name in ("medallion", "taxii2client") if importlib.util.find_spec(name) is None]
    if missing:
        logger.warning(
            "No local TAXII server for the demo (%s not installed); reading the feed from a file instead. "
            "Install it with: pip install 'stixbridge[demo]'",
            " and ".join(missing),
        )
        yield None
        return
    from .connectors.taxii.medallion_server import run_medallion

    with run_medallion({"alliance-demo": objects, SIGHTINGS_COLLECTION: []}) as server:
        os.environ[_USER_ENV] = server.username
        os.environ["STIXBRIDGE_DEMO_TAXII_PASSWORD"] = server.password
        yield server.url


def _count_types(objects: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for obj in objects:
        kind = str(obj.get("type"))
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def _read_back(base_dir: Path, url: str) -> list[dict[str, Any]]:
    """Read every object of the sightings collection back from the TAXII server, as an alliance member would."""
    from .connector import ConnectorContext
    from .connectors.taxii.settings import TaxiiSettings
    from .connectors.taxii.source import TaxiiSource
    from .settings import build_settings

    settings = build_settings(
        TaxiiSettings,
        {"url": url, "collections": [SIGHTINGS_COLLECTION], "username": os.environ[_USER_ENV],
         "password": {"env": "STIXBRIDGE_DEMO_TAXII_PASSWORD"}},
        "demo read-back",
    )  # fmt: skip
    with TaxiiSource("read-back", settings, ConnectorContext(base_dir=base_dir)) as reader:
        return [item.obj for page in reader.pull(None) for item in page.items if item.obj is not None]


def _print_report(report: dict[str, Any]) -> None:
    print("stixbridge demo")
    print(f"  feed:   {report['feed']}")
    print(f"  config: {report['config']}")
    for name, counts in report["pulled"].items():
        print(f"  pulled {name}: {counts['objects']} objects, {counts['indicators']} indicators "
              f"({counts['new']} new, {counts['revoked']} revoked), {counts['quarantined']} quarantined")  # fmt: skip
    print(f"  expired: {report['expired']} indicators left the live set (valid_until passed, or revoked)")
    atoms = report["live_atoms_by_type"]
    print(f"  live atoms: {sum(atoms.values())} (" + ", ".join(f"{k} {v}" for k, v in sorted(atoms.items())) + ")")
    print(f"  composite indicators: {report['composites']['with_reason']}")
    for name, counts in report["sinks"].items():
        skipped = sum(counts.get("skipped", {}).values())
        print(f"  sink {name}: {counts['written']} written, {counts['deleted']} deleted, {skipped} skipped")
    print("  files: " + ", ".join(report["outputs"]))
    sightings = report["sightings"]
    if sightings:
        print(f"  sightings read: {sightings.get('matched', 0)} matched live indicators, "
              f"{sightings.get('unmatched', 0)} did not, {sightings.get('windows', 0)} aggregates changed")  # fmt: skip
    for name, counts in report["published"].items():
        if "off" in counts:
            print(f"  publish {name}: off ({counts['off']})")
            continue
        types = ", ".join(f"{number} {kind}" for kind, number in sorted(counts["by_type"].items()))
        print(f"  published to {name}: {counts['published']} objects ({types}), {counts['refused']} refused, "
              f"{counts['failed']} failed")  # fmt: skip
    if report["read_back"]:
        found = ", ".join(f"{number} {kind}" for kind, number in report["read_back"].items())
        print(f"  read back from TAXII collection {SIGHTINGS_COLLECTION}: {found}")
    for failure in report["failures"]:
        print(f"  FAILED: {failure}")
