"""Benchmark of the Splunk sink's request counts, counted on the fake splunkd of the test suite.

Usage::

    python benchmarks/splunk_push.py                 # 100,000 atoms, app and es targets
    python benchmarks/splunk_push.py --count 20000 --targets app

For each target it pushes ``--count`` atom rows (a mix of IPv4, domain, URL, SHA-256 and file-name
atoms) into an empty fake splunkd, then runs three more syncs and counts the requests that write KV store
data (batch saves and deletes; reads and the login are listed apart):

1. a sync with no change;
2. a sync after 1% of the rows changed (new digest, as when an indicator is updated);
3. a sync after 1% churn: 0.5% of the atoms expired and 0.5% new ones arrived.

Changes are computed with the engine's own ``diff_rows`` against the rows the previous push delivered,
and handed to the sink in batches of its ``batch_size``, as ``stixbridge sync`` does. The budgets checked
at the end: the first push needs at most 110 write requests per 100,000 atoms, the 1% update at most 5%
of that, and the sync without change none. The script exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.splunk.settings import SplunkSinkSettings
from stixbridge.connectors.splunk.sink import SplunkSink
from stixbridge.engine import diff_rows
from stixbridge.model import AtomRow, DeliveredRow, PushResult, row_key
from stixbridge.secrets import Secret
from tests.connectors.splunk.fake_splunk import FakeSplunk

NOW = datetime(2024, 5, 2, 8, 0, tzinfo=UTC)
TYPE_MIX = (("ipv4", 40), ("domain", 25), ("url", 15), ("sha256", 15), ("file-name", 5))


@dataclass
class SyncCount:
    """Requests and time of one sync."""

    name: str
    changes: int
    writes: int
    reads: int
    seconds: float
    written: int
    deleted: int
    failed: int


def make_rows(count: int, *, start: int = 0, version: str = "v1") -> list[AtomRow]:
    """Build ``count`` distinct atom rows of the type mix, numbered from ``start``."""
    rows = []
    total = sum(share for _, share in TYPE_MIX)
    for number in range(start, start + count):
        rows.append(_row(number, _type_of(number % total), version))
    return rows


def _type_of(slot: int) -> str:
    for atom_type, share in TYPE_MIX:
        if slot < share:
            return atom_type
        slot -= share
    raise ValueError(f"slot {slot} is past the type mix")


def _row(number: int, atom_type: str, version: str) -> AtomRow:
    value = {
        "ipv4": f"10.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}",
        "domain": f"host{number}.example.com",
        "url": f"http://host{number}.example.com/path/{number}",
        "sha256": f"{number:064x}",
        "file-name": f"dropper{number}.exe",
    }[atom_type]
    indicator = f"indicator--{number:08x}-0000-4000-8000-000000000000"
    return AtomRow(
        key=row_key(indicator, atom_type, value),
        type=atom_type,
        value=value,
        display=value,
        indicator_id=indicator,
        indicator_ids=(indicator,),
        name=f"Alliance indicator {number}",
        description="Seen in a phishing campaign against members",
        valid_from=NOW - timedelta(days=number % 30),
        valid_until=NOW + timedelta(days=90),
        modified=NOW,
        confidence=70,
        weight=70,
        tlp=1,
        labels=("malicious-activity",),
        sources=("alliance",),
        collections=("main",),
        created_by=("identity--8b3f6a7e-0b49-4bb3-a1c5-0a6fbb4d2c4f",),
        digest=f"{version}-{number}",
    )


class Bench:
    """One fake splunkd and the delivered state between syncs; each sync uses a new sink, as a new process."""

    def __init__(self, fake: FakeSplunk, targets: list[str]) -> None:
        self.settings = SplunkSinkSettings(
            url=fake.url, username="admin", password=Secret(fake.password), targets=targets
        )
        self.settings.validate("sinks[0]")
        self.fake = fake
        self.delivered: dict[str, DeliveredRow] = {}

    def sync(self, name: str, live: Iterable[AtomRow]) -> SyncCount:
        """Push what changed between ``live`` and the delivered rows, as the engine does."""
        rows = sorted(live, key=lambda row: row.key)
        self.fake.clear_log()
        started = time.perf_counter()
        totals = PushResult()
        changes_seen = 0

        sink = SplunkSink("bench", self.settings, ConnectorContext(base_dir=Path("."), clock=lambda: NOW))
        sink.begin()
        delivered = iter(sorted(self.delivered.values(), key=lambda d: d.key))
        for changes in diff_rows(iter(rows), delivered, sink, sink.batch_size):
            changes_seen += len(changes.upserts) + len(changes.deletes)
            result = sink.push(changes)
            by_key = {row.key: row for row in changes.upserts}
            for key in result.written:
                row = by_key[key]
                self.delivered[key] = DeliveredRow(row.key, row.type, row.value, row.digest, row.indicator_id)
            for key in result.deleted:
                self.delivered.pop(key, None)
            totals.written.extend(result.written)
            totals.deleted.extend(result.deleted)
            totals.failed.update(result.failed)
        sink.finish(True)
        sink.close()

        seconds = time.perf_counter() - started
        writes = len(self.fake.write_requests())
        reads = len(self.fake.log) - writes
        return SyncCount(name, changes_seen, writes, reads, seconds, len(totals.written), len(totals.deleted),
                         len(totals.failed))  # fmt: skip


def run(count: int, targets: list[str]) -> list[SyncCount]:
    """Run the four syncs for one target list and return their counts."""
    with FakeSplunk() as fake:
        if "es" in targets:
            fake.install_es()
        bench = Bench(fake, targets)
        live = make_rows(count)

        results = [bench.sync("first push", live)]
        results.append(bench.sync("no change", live))

        hundredth = count // 100
        updated = make_rows(hundredth, version="v2") + live[hundredth:]
        results.append(bench.sync("1% updated", updated))

        half = hundredth // 2
        churned = updated[half:] + make_rows(half, start=count)
        results.append(bench.sync("1% churn", churned))
        return results


def machine() -> str:
    """Describe the machine the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a Markdown table and JSON, and check the request budgets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="atom rows in the first push (default 100000)")
    parser.add_argument("--targets", default="app,es", help="comma-separated target lists to run, e.g. 'app,es'")
    args = parser.parse_args(argv)

    budget_first = 110 * args.count / 100_000
    ok = True
    report = {"count": args.count, "machine": machine(), "runs": {}}
    print("| targets | sync | changes | write requests | other requests | seconds |\n|---|---|---:|---:|---:|---:|")
    for target in args.targets.split(","):
        results = run(args.count, [target])
        report["runs"][target] = [vars(r) for r in results]
        for r in results:
            print(f"| {target} | {r.name} | {r.changes} | {r.writes} | {r.reads} | {r.seconds:.2f} |")
        first, unchanged, updated, _ = results
        checks = [
            (first.writes <= budget_first, f"{target}: first push {first.writes} > {budget_first:.0f}"),
            (updated.writes <= 0.05 * budget_first, f"{target}: 1% update {updated.writes} > {0.05 * budget_first}"),
            (unchanged.writes == 0, f"{target}: sync without change sent {unchanged.writes} writes"),
            (all(r.failed == 0 for r in results), f"{target}: some rows failed"),
        ]
        for passed, message in checks:
            if not passed:
                ok = False
                print(f"BUDGET MISSED: {message}", file=sys.stderr)

    print(json.dumps(report, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
