"""Count what the MISP sink sends for 100,000 atoms, for 1% of them changed, and for no change.

Run from the repository root::

    python benchmarks/misp_push.py [--atoms 100000] [--json benchmarks/out/misp_push.json]

The sink talks through the real PyMISP to the fake MISP of the test suite on 127.0.0.1; the fake
counts every request. Batches are cut by the engine's own ``diff_rows``, as a ``stixbridge sync`` does.
After the first push, three changes of 1% of the rows are pushed one after the other: edits spread
over every event, new rows, and expired rows (the default action: ``to_ids`` off and an expiration
sighting). Three limits are checked. The first push needs at most 60 write requests. Each 1% change
sends at most 5% of the rows and bytes of the first push. A push without change sends no request. The
exit status is 1 when a limit is exceeded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.misp.sink import MispSink
from stixbridge.engine import diff_rows
from stixbridge.model import AtomRow, DeliveredRow, row_key
from stixbridge.settings import build_settings
from tests.connectors.misp.fake_misp import API_KEY, FakeMisp

MAX_FIRST_WRITES = 60
MAX_CHANGE_SHARE = 0.05
COLLECTIONS = ("alliance-ip", "alliance-domains", "alliance-hashes", "alliance-urls")


def make_rows(count: int, start: int = 0) -> list[AtomRow]:
    """Build ``count`` live rows of four atom types spread over four collections."""
    rows = []
    for n in range(start, start + count):
        kind = n % 4
        if kind == 0:
            atom_type, value = "ipv4", f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        elif kind == 1:
            atom_type, value = "domain", f"host-{n}.example.com"
        elif kind == 2:
            atom_type, value = "sha256", f"{n:064x}"
        else:
            atom_type, value = "url", f"http://dl.example.net/{n}/payload.bin"
        indicator_id = f"indicator--00000000-0000-4000-8000-{n:012d}"
        rows.append(
            AtomRow(
                key=row_key(indicator_id, atom_type, value),
                type=atom_type,
                value=value,
                display=value,
                indicator_id=indicator_id,
                indicator_ids=(indicator_id,),
                name=f"Benchmark indicator {n}",
                description="",
                valid_from=datetime(2024, 5, 2, tzinfo=UTC),
                valid_until=datetime(2024, 9, 2, tzinfo=UTC),
                modified=datetime(2024, 5, 2, tzinfo=UTC),
                confidence=70,
                weight=70,
                tlp=2,
                labels=(),
                sources=("alliance",),
                collections=(COLLECTIONS[kind],),
                created_by=(),
                digest=f"d{n}",
            )
        )
    return sorted(rows, key=lambda row: row.key)


def delivered_of(rows: list[AtomRow]) -> list[DeliveredRow]:
    return [DeliveredRow(r.key, r.type, r.value, r.digest, r.indicator_id) for r in rows]


def push_all(sink: MispSink, rows: list[AtomRow], delivered: list[DeliveredRow], fake: FakeMisp) -> dict[str, Any]:
    """Push what differs between ``rows`` and ``delivered``; return what travelled."""
    fake.reset_log()
    started = time.perf_counter()
    written = deleted = failed = upserts = 0

    sink.begin()
    batches: Iterator = diff_rows(iter(rows), iter(delivered), sink, sink.batch_size)
    for changes in batches:
        upserts += len(changes.upserts)
        result = sink.push(changes)
        written += len(result.written)
        deleted += len(result.deleted)
        failed += len(result.failed)
    sink.finish(True)

    writes = fake.writes()
    return {
        "rows_changed": upserts,
        "written": written,
        "deleted": deleted,
        "failed": failed,
        "requests": len(fake.requests),
        "write_requests": len(writes),
        "bytes_sent": sum(r.size for r in fake.requests),
        "bytes_written": sum(r.size for r in writes),
        "seconds": round(time.perf_counter() - started, 2),
    }


def run(atoms: int) -> dict[str, Any]:
    os.environ["STIXBRIDGE_BENCH_MISP_KEY"] = API_KEY
    with FakeMisp() as fake, tempfile.TemporaryDirectory() as folder:
        context = ConnectorContext(base_dir=Path(folder), identity_id="identity--00000000-0000-4000-8000-00000000beef")
        table = {"url": fake.url, "key": {"env": "STIXBRIDGE_BENCH_MISP_KEY"}, "timeout": 120.0}
        sink = MispSink("bench", build_settings(MispSink.settings_class, table, "sinks[0]"), context)  # type: ignore[arg-type]

        rows = make_rows(atoms)
        report: dict[str, Any] = {"first": push_all(sink, rows, [], fake)}
        one_percent = atoms // 100
        picker = random.Random(7)

        # Edits of existing rows, spread over every event.
        edited_keys = set(picker.sample([r.key for r in rows], one_percent))
        edited = [
            dataclasses.replace(r, name="edited", digest=r.digest + "e") if r.key in edited_keys else r for r in rows
        ]
        report["one_percent_edited"] = push_all(sink, edited, delivered_of(rows), fake)

        added = sorted(edited + make_rows(one_percent, start=atoms), key=lambda row: row.key)
        report["one_percent_new"] = push_all(sink, added, delivered_of(edited), fake)

        expired_keys = set(picker.sample([r.key for r in added], one_percent))
        remaining = [r for r in added if r.key not in expired_keys]
        report["one_percent_expired"] = push_all(sink, remaining, delivered_of(added), fake)

        report["no_change"] = push_all(sink, remaining, delivered_of(remaining), fake)
        report["events"] = len(fake.events)
        report["attributes_in_misp"] = len(fake.attributes)

    return {
        "atoms": atoms,
        "chunk_size": sink.settings.chunk_size,
        "max_attributes_per_event": sink.settings.max_attributes_per_event,
        "batch_size": sink.batch_size,
        **report,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }


def check(report: dict[str, Any]) -> list[str]:
    """Return the limits the report exceeds."""
    problems = []
    first, unchanged = report["first"], report["no_change"]
    if first["write_requests"] > MAX_FIRST_WRITES:
        problems.append(f"first push used {first['write_requests']} write requests, limit {MAX_FIRST_WRITES}")
    if first["written"] != report["atoms"] or first["failed"]:
        problems.append(f"first push wrote {first['written']} of {report['atoms']} atoms")
    for name in ("one_percent_edited", "one_percent_new", "one_percent_expired"):
        change = report[name]
        if change["failed"]:
            problems.append(f"{name}: {change['failed']} rows failed")
        rows = change["rows_changed"] + change["deleted"]
        if rows > MAX_CHANGE_SHARE * first["rows_changed"]:
            problems.append(f"{name} sent {rows} rows, over 5% of {first['rows_changed']}")
        if change["bytes_sent"] > MAX_CHANGE_SHARE * first["bytes_sent"]:
            problems.append(f"{name} sent {change['bytes_sent']} bytes, over 5% of {first['bytes_sent']}")
    if unchanged["requests"]:
        problems.append(f"a push without change sent {unchanged['requests']} requests")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--atoms", type=int, default=100_000, help="number of atoms in the first push")
    parser.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    args = parser.parse_args()

    report = run(args.atoms)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")

    problems = check(report)
    for problem in problems:
        print(f"LIMIT EXCEEDED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
