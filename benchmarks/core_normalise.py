"""Benchmark of the core: normalisation throughput against stix2, peak memory of a sync, and a no-op resync.

Usage::

    python benchmarks/core_normalise.py --count 100000
    python benchmarks/core_normalise.py --count 1000000 --skip-baseline

It generates a feed with the sample mix (every atom type, 10% compound patterns, versions, revocations),
then, in one run:

1. streams and normalises every object with stixbridge, then normalises the same objects already decoded
   from JSON, and reports objects a second for each;
2. parses a sample of the same decoded objects with ``stix2.parse`` plus stix2-patterns validation (the
   baseline; a sample, because the baseline is slow) and reports the ratio of the two decoded rates;
3. runs ``stixbridge sync`` on the bundle into the three file sinks in a child process and reports its
   time and peak RSS;
4. runs the same sync again and counts files the sinks wrote (expected: none).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _generate(count: int, folder: Path) -> Path:
    from stixbridge.samples import bundle, generate_indicators

    objects = generate_indicators(count)
    path = folder / "feed" / "bundle.json"
    path.parent.mkdir(parents=True)
    with path.open("w", encoding="utf-8") as handle:
        json.dump(bundle(objects), handle)
    return path


def _normalise_dicts_rate(path: Path) -> tuple[int, float]:
    """Normalise objects already decoded from JSON, as the baseline gets them."""
    from stixbridge.jsonstream import iter_bundle_objects
    from stixbridge.model import Provenance, RawItem
    from stixbridge.normalise import FeedContext, normalise_item

    provenance = Provenance("bench", str(path))
    with path.open(encoding="utf-8") as handle:
        items = [RawItem(e.value, provenance, size=len(e.text)) for e in iter_bundle_objects(handle)]
    feed = FeedContext()
    started = time.perf_counter()
    for item in items:
        normalise_item(item, feed)
    return len(items), time.perf_counter() - started


def _normalise_rate(path: Path) -> tuple[int, float]:
    from stixbridge.jsonstream import iter_bundle_objects
    from stixbridge.model import Provenance, RawItem
    from stixbridge.normalise import FeedContext, normalise_item

    provenance = Provenance("bench", str(path))
    feed = FeedContext()
    count = 0
    started = time.perf_counter()
    with path.open(encoding="utf-8") as handle:
        for element in iter_bundle_objects(handle):
            normalise_item(RawItem(element.value, provenance, size=len(element.text)), feed)
            count += 1
    return count, time.perf_counter() - started


def _baseline_rate(path: Path, sample: int) -> tuple[int, float]:
    import stix2
    from stix2patterns.validator import run_validator

    from stixbridge.jsonstream import iter_bundle_objects

    objects = []
    with path.open(encoding="utf-8") as handle:
        for element in iter_bundle_objects(handle):
            objects.append(element.value)
            if len(objects) >= sample:
                break
    started = time.perf_counter()
    for obj in objects:
        parsed = stix2.parse(obj, allow_custom=True)
        if obj.get("type") == "indicator":
            run_validator(parsed["pattern"])
    return len(objects), time.perf_counter() - started


def _sync(folder: Path, feed: Path) -> dict[str, float]:
    config = folder / "stixbridge.toml"
    config.write_text(
        f"""
[engine]
state = "state.db"
[engine.lifetimes]
default = 0
ipv4 = 0
ipv6 = 0
domain = 0
url = 0
[[sources]]
name = "bench"
kind = "file"
path = "{feed}"
page_size = 2000
# The generated feed uses documentation ranges and example domains, which the guards hold by default.
[[trust.sources]]
name = "bench"
allow = ["documentation", "benign-hashes"]
[[sinks]]
name = "splunk-csv"
kind = "splunk-csv"
path = "out/splunk"
[[sinks]]
name = "ecs"
kind = "ecs-ndjson"
path = "out/elastic"
[[sinks]]
name = "misp-feed"
kind = "misp-feed"
path = "out/misp"
org_name = "Benchmark"
org_uuid = "5c6f4a8e-0d3b-4f7a-9b21-3e8d6c1a2f40"
""",
        encoding="utf-8",
    )
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across fork and exec, so a child would report the
    # benchmark process's own peak (the generated feed) instead of the sync's.
    script = (
        "import sys, time\n"
        "from stixbridge.cli import main\n"
        "t = time.perf_counter()\n"
        "code = main(['--config', sys.argv[1], '-q', 'sync'])\n"
        "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(time.perf_counter() - t, hwm, code)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(config)], capture_output=True, text=True, check=False)
    seconds, rss_kb, code = out.stdout.split()[-3:]
    return {"seconds": float(seconds), "peak_rss_mb": int(rss_kb) / 1024, "exit_code": int(code)}


def _files(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in (folder / "out").rglob("*") if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="indicators to generate (default 100000)")
    parser.add_argument("--baseline-sample", type=int, default=3000, help="objects parsed with stix2 (default 3000)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-sync", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stixbridge-bench-") as tmp:
        folder = Path(tmp)
        feed = _generate(args.count, folder)
        result: dict[str, object] = {
            "indicators": args.count,
            "bundle_mb": round(feed.stat().st_size / 1e6, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        }

        objects, seconds = _normalise_rate(feed)
        result["normalise_objects"] = objects
        result["stream_and_normalise_per_second"] = round(objects / seconds)
        objects, seconds = _normalise_dicts_rate(feed)
        rate = objects / seconds
        result["normalise_decoded_per_second"] = round(rate)

        if not args.skip_baseline:
            sample, base_seconds = _baseline_rate(feed, args.baseline_sample)
            base_rate = sample / base_seconds
            result["stix2_parse_plus_patterns_per_second"] = round(base_rate)
            result["speedup_on_decoded_objects"] = round(rate / base_rate, 1)

        if not args.skip_sync:
            first = _sync(folder, feed)
            before = _files(folder)
            second = _sync(folder, feed)
            after = _files(folder)
            result["sync_first"] = first
            result["sync_second"] = second
            result["files_written_by_second_sync"] = sum(1 for p, m in after.items() if before.get(p) != m)

        result["benchmark_process_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
