"""Benchmark of the elastic sink through the engine, counted on the fake Elasticsearch of the test suite.

Usage (from the repository root, with the test extra installed)::

    python benchmarks/elastic_push.py --indicators 100000

It generates a feed with the sample mix of ``stixbridge.samples``, then runs three syncs through the
engine into an ``elastic`` sink that talks HTTP to the fake server on 127.0.0.1:

1. the first sync, which writes every live atom;
2. a sync after 1% of the indicators got a newer version with another confidence;
3. a sync with no change at all.

The fake records every request, so the figures are what went over the wire. The script exits with status
1 unless all three of these hold:

* no bulk request is larger than the chunk size (10 MB by default);
* the second sync sends less than 5% of the bytes of the first;
* the third sync sends no write request.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stixbridge.config import load_config  # noqa: E402
from stixbridge.connectors.elastic.setup import setup  # noqa: E402
from stixbridge.connectors.elastic.sink import ElasticSink  # noqa: E402
from stixbridge.engine import Engine  # noqa: E402
from stixbridge.samples import bundle, generate_indicators  # noqa: E402
from stixbridge.store.sqlite import SqliteStore  # noqa: E402
from stixbridge.timeutil import format_timestamp  # noqa: E402
from tests.connectors.elastic.fake_elasticsearch import FakeElasticsearch  # noqa: E402

NOW = datetime(2024, 6, 15, tzinfo=UTC)
NO_LOCAL_EXPIRY = "{ default = 0, ipv4 = 0, ipv6 = 0, ipv4-cidr = 0, ipv6-cidr = 0, domain = 0, url = 0 }"


def write_config(folder: Path, url: str, chunk_bytes: int) -> Path:
    config = folder / "stixbridge.toml"
    config.write_text(
        f"""
[engine]
state = "state.db"
lifetimes = {NO_LOCAL_EXPIRY}

[[sources]]
name = "alliance"
kind = "file"
path = "feed"

# The generated feed uses documentation addresses and hashes, which the trust guards hold back by default.
[[trust.sources]]
name = "alliance"
allow = ["documentation", "benign-hashes"]

[[sinks]]
name = "siem"
kind = "elastic"
hosts = ["{url}"]
chunk_bytes = {chunk_bytes}
timeout = 120.0
""",
        encoding="utf-8",
    )
    return config


def changed_versions(objects: list[dict[str, Any]], share: float) -> list[dict[str, Any]]:
    """Return a newer version, with another confidence, of every ``1/share``-th live indicator."""
    step = round(1 / share)
    newest = {obj["id"]: obj for obj in objects if obj["type"] == "indicator"}
    live = [
        obj
        for obj in newest.values()
        if not obj.get("revoked") and ("valid_until" not in obj or obj["valid_until"] > format_timestamp(NOW))
    ]
    changed = []
    for position, obj in enumerate(live):
        if position % step != 1:
            continue
        newer = dict(obj)
        newer["modified"] = format_timestamp(NOW + timedelta(hours=1))
        newer["confidence"] = 1 if obj.get("confidence") != 1 else 2
        changed.append(newer)
    return changed


def measure(fake: FakeElasticsearch, engine: Engine) -> dict[str, Any]:
    fake.clear_requests()
    started = time.perf_counter()
    summary = engine.sync()
    elapsed = time.perf_counter() - started
    writes = fake.write_requests()
    bulks = [record for record in writes if record.endpoint == "bulk"]
    return {
        "seconds": round(elapsed, 2),
        "requests": len(fake.requests),
        "write_requests": len(writes),
        "bulk_requests": len(bulks),
        "bytes_written": sum(record.body_bytes for record in writes),
        "largest_bulk_bytes": max((record.body_bytes for record in bulks), default=0),
        "pushed": summary.pushed.get("siem", {}),
        "failures": summary.failures,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--indicators", type=int, default=100_000, help="indicators in the generated feed")
    parser.add_argument("--chunk-bytes", type=int, default=10_000_000, help="the sink's chunk_bytes setting")
    parser.add_argument("--changed", type=float, default=0.01, help="share of indicators changed before sync 2")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stixbridge-elastic-bench-") as name, FakeElasticsearch() as fake:
        folder = Path(name)
        objects = generate_indicators(args.indicators, now=NOW)
        (folder / "feed").mkdir()
        (folder / "feed" / "bundle.json").write_text(json.dumps(bundle(objects)), encoding="utf-8")
        config = load_config(write_config(folder, fake.url, args.chunk_bytes))
        for entry in config.sinks:
            entry.connector.context.clock = lambda: NOW
        sink = config.sinks[0].connector
        assert isinstance(sink, ElasticSink)
        setup(sink.settings, base_dir=folder)

        with SqliteStore(config.state_path) as store:
            engine = Engine(config, store, clock=lambda: NOW)
            first = measure(fake, engine)
            atoms = len(fake.documents("logs-ti_stixbridge_latest.indicator"))

            changes = changed_versions(objects, args.changed)
            (folder / "feed" / "update.json").write_text(json.dumps(bundle(changes, "update")), encoding="utf-8")
            second = measure(fake, engine)
            third = measure(fake, engine)
        config.close()

    result = {
        "indicators": args.indicators,
        "documents_after_first_sync": atoms,
        "indicators_changed": len(changes),
        "chunk_bytes": args.chunk_bytes,
        "first_sync": first,
        "sync_after_change": second,
        "sync_without_change": third,
        "second_to_first_bytes": round(second["bytes_written"] / max(first["bytes_written"], 1), 4),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    print(json.dumps(result, indent=2))

    problems = []
    if first["largest_bulk_bytes"] > args.chunk_bytes:
        problems.append(f"a bulk request of {first['largest_bulk_bytes']} bytes exceeds {args.chunk_bytes}")
    if result["second_to_first_bytes"] > 0.05:
        problems.append(f"the sync after the change sent {result['second_to_first_bytes']:.1%} of the first")
    if third["write_requests"]:
        problems.append(f"the sync without change sent {third['write_requests']} write requests")
    if any(run["failures"] for run in (first, second, third)):
        problems.append("a sync reported failures")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
