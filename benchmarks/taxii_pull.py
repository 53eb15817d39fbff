"""Benchmark of the TAXII source: a pull over loopback from a minimal TAXII 2.1 responder, and from medallion.

Usage::

    python benchmarks/taxii_pull.py --count 100000
    python benchmarks/taxii_pull.py --count 100000 --limit 1000 --skip-medallion

In one run it:

1. generates the sample feed of ``stixbridge.samples`` (fixed clock, so runs are repeatable) and cuts it into
   TAXII 2.1 envelopes of ``--limit`` objects, with ``more``/``next`` and date headers;
2. serves those pages from memory in a child process on 127.0.0.1 (HTTP/1.1 keep-alive), so the server's
   work does not share the client's interpreter lock;
3. pulls them with ``TaxiiSource`` alone, nothing stored, and splits the time into waiting inside
   ``requests`` (send, server, transfer, HTTP parsing), JSON decoding and our own paging;
4. pulls them again through the engine into a fresh SQLite store: the pass lands first (each page's raw
   objects stored with its cursor), then it is normalised and stored as indicators; both are timed;
5. decodes the same page bytes with a bare ``json.loads``, the baseline of step 3;
6. pulls 1,000 objects from medallion (``run_medallion``) with the default limit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

GENERATED_AT = datetime(2024, 6, 15, tzinfo=UTC)
COLLECTION = "9f7a1c2e-3b4d-4e5f-8a6b-7c8d9e0f1a2b"
TAXII_21 = "application/taxii+json;version=2.1"


# -- the responder (child process) --------------------------------------------------------------------------


def serve(pages_dir: Path, ready_file: Path) -> None:
    """Serve discovery, one API root, one collection and the prepared object pages until killed."""
    pages = [path.read_bytes() for path in sorted(pages_dir.glob("page-*.json"))]
    headers = json.loads((pages_dir / "headers.json").read_text(encoding="utf-8"))
    static = {
        "/taxii2/": {"title": "bench", "api_roots": ["/api1/"], "default": "/api1/"},
        "/api1/": {"title": "bench", "versions": [TAXII_21], "max_content_length": 104857600},
        "/api1/collections/": {"collections": [{"id": COLLECTION, "title": "bench", "can_read": True,
                                                "can_write": False, "media_types": [TAXII_21]}]},
    }  # fmt: skip
    objects_path = f"/api1/collections/{COLLECTION}/objects/"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the benchmark output clean."""

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            extra: dict[str, str] = {}
            if path == objects_path:
                token = dict(part.split("=", 1) for part in query.split("&") if "=" in part).get("next", "0")
                body = pages[int(token)]
                extra = headers[int(token)]
            elif path in static:
                body = json.dumps(static[path]).encode()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", TAXII_21)
            self.send_header("Content-Length", str(len(body)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ready_file.write_text(str(server.server_address[1]), encoding="utf-8")
    server.serve_forever()


# -- preparing pages ------------------------------------------------------------------------------------------


def prepare_pages(count: int, limit: int, folder: Path) -> tuple[int, list[bytes]]:
    """Write TAXII envelopes of ``limit`` objects and their date headers; return object count and pages."""
    from stixbridge.samples import generate_indicators

    objects = generate_indicators(count, now=GENERATED_AT)
    pages: list[bytes] = []
    headers: list[dict[str, str]] = []
    added = GENERATED_AT - timedelta(days=1)
    for number, start in enumerate(range(0, len(objects), limit)):
        chunk = objects[start : start + limit]
        more = start + limit < len(objects)
        envelope: dict[str, Any] = {"more": more, "objects": chunk}
        if more:
            envelope["next"] = str(number + 1)
        first = added + timedelta(milliseconds=start)
        last = added + timedelta(milliseconds=start + len(chunk) - 1)
        headers.append({
            "X-TAXII-Date-Added-First": first.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "X-TAXII-Date-Added-Last": last.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        })  # fmt: skip
        body = json.dumps(envelope, separators=(",", ":")).encode()
        (folder / f"page-{number:06d}.json").write_bytes(body)
        pages.append(body)
    (folder / "headers.json").write_text(json.dumps(headers), encoding="utf-8")
    return len(objects), pages


def start_responder(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    ready = folder / "port"
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(folder), "--ready-file", str(ready)])
    deadline = time.monotonic() + 30
    while not ready.exists() or not ready.read_text(encoding="utf-8"):
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the benchmark responder did not start")
        time.sleep(0.02)
    return process, f"http://127.0.0.1:{ready.read_text(encoding='utf-8')}/taxii2/"


# -- measurements -----------------------------------------------------------------------------------------------


def make_source(url: str, limit: int, **auth: Any) -> Any:
    from stixbridge.connector import ConnectorContext
    from stixbridge.connectors.taxii.settings import TaxiiSettings
    from stixbridge.connectors.taxii.source import TaxiiSource

    settings = TaxiiSettings(url=url, limit=limit, min_limit=min(50, limit), **auth)
    settings.validate("benchmark")
    return TaxiiSource("bench", settings, ConnectorContext(base_dir=Path.cwd()))


def pull_source_only(url: str, limit: int, **auth: Any) -> dict[str, Any]:
    """Pull every page without storing; split the time into waiting, decoding and our own work."""
    source = make_source(url, limit, **auth)
    source.api_root()
    source.http.stats.wait_seconds = source.http.stats.parse_seconds = 0.0

    started = time.perf_counter()
    objects = sum(len(page.items) for page in source.pull(None))
    total = time.perf_counter() - started
    stats = source.http.stats
    source.close()
    ours = total - stats.wait_seconds
    return {
        "objects": objects,
        "pages": sum(result.pages for _, result in source.passes),
        "seconds": round(total, 3),
        "objects_per_second": round(objects / total),
        "waiting_in_requests_seconds": round(stats.wait_seconds, 3),
        "json_decoding_seconds": round(stats.parse_seconds, 3),
        "paging_and_items_seconds": round(total - stats.wait_seconds - stats.parse_seconds, 3),
        "our_seconds": round(ours, 3),
        "share_waiting": round(stats.wait_seconds / total, 3),
        "share_ours": round(ours / total, 3),
        "megabytes": round(stats.bytes_received / 1e6, 1),
    }


def pull_through_engine(url: str, limit: int, folder: Path, run: int = 0) -> dict[str, Any]:
    """Pull every page through the engine into a fresh store, timing the landing and the normalising apart.

    The TAXII source lands first: the engine reads the whole pass and stores each (coalesced) page's raw
    objects before it normalises any of them. Landing is the pull proper (requests, JSON decoding,
    paging, storing); what follows is normalising, the trust guards and the indicator tables.
    """
    from stixbridge.config import build_config
    from stixbridge.engine import Engine, RunSummary
    from stixbridge.store.sqlite import SqliteStore
    from stixbridge.trust.review import Stager

    config = build_config(
        {"engine": {"state": f"engine-{run}.db"},
         "sources": [{"name": "bench", "kind": "taxii", "url": url, "limit": limit}],
         "trust": {"sources": [{"name": "bench", "allow": ["documentation", "benign-hashes"]}]}},
        base_dir=folder,
    )  # fmt: skip
    source: Any = config.sources[0].connector
    inside_source = 0.0
    storing = 0.0
    landing_ended = 0.0
    original_pull = source.pull
    original_stage = Stager.stage
    original_flush = Stager.flush

    def timed_pull(cursor: str | None) -> Iterator[Any]:
        nonlocal inside_source
        pages = original_pull(cursor)
        while True:
            started = time.perf_counter()
            try:
                page = next(pages)
            except StopIteration:
                inside_source += time.perf_counter() - started
                return
            inside_source += time.perf_counter() - started
            yield page

    def timed_stage(self: Stager, page: Any) -> None:
        nonlocal storing
        started = time.perf_counter()
        original_stage(self, page)
        storing += time.perf_counter() - started

    def timed_flush(self: Stager) -> None:
        # The landing ends when the last page is in the store, after the writer thread is done.
        nonlocal storing, landing_ended
        started = time.perf_counter()
        original_flush(self)
        landing_ended = time.perf_counter()
        storing += landing_ended - started

    source.pull = timed_pull
    Stager.stage = timed_stage  # type: ignore[method-assign]
    Stager.flush = timed_flush  # type: ignore[method-assign]
    try:
        with SqliteStore(config.state_path) as store:
            engine = Engine(config, store, clock=lambda: GENERATED_AT)
            summary = RunSummary()
            source.api_root()
            source.http.stats.wait_seconds = source.http.stats.parse_seconds = 0.0
            started = time.perf_counter()
            engine.pull(summary)
            total = time.perf_counter() - started
    finally:
        Stager.stage = original_stage  # type: ignore[method-assign]
        Stager.flush = original_flush  # type: ignore[method-assign]
    stats = source.http.stats
    config.close()
    counts = summary.pulled.get("bench", {})
    landing = landing_ended - started
    ours = landing - stats.wait_seconds
    return {
        "objects": counts.get("objects"),
        "failures": summary.failures,
        "seconds": round(total, 3),
        "landing_seconds": round(landing, 3),
        "landing_objects_per_second": round(counts.get("objects", 0) / landing),
        "waiting_in_requests_seconds": round(stats.wait_seconds, 3),
        "json_decoding_seconds": round(stats.parse_seconds, 3),
        # Encoding and queueing each page, and the wait for the writer thread at the end.
        "storing_landed_pages_seconds": round(storing, 3),
        "paging_and_items_seconds": round(inside_source - stats.wait_seconds - stats.parse_seconds, 3),
        "our_landing_seconds": round(ours, 3),
        "normalise_and_store_seconds": round(total - landing, 3),
        "objects_per_second": round(counts.get("objects", 0) / total),
    }


def baseline(pages: list[bytes]) -> dict[str, Any]:
    started = time.perf_counter()
    objects = sum(len(json.loads(page)["objects"]) for page in pages)
    seconds = time.perf_counter() - started
    return {"objects": objects, "seconds": round(seconds, 3), "objects_per_second": round(objects / seconds)}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the run with the median total time, with the number of runs it was chosen from."""
    ordered = sorted(runs, key=lambda run: run["seconds"])
    return {**ordered[len(ordered) // 2], "runs": len(runs)}


def pull_medallion(limit: int) -> dict[str, Any]:
    from stixbridge.connectors.taxii.medallion_server import run_medallion
    from stixbridge.samples import generate_indicators
    from stixbridge.secrets import Secret

    # Three identities and 997 indicators: 1,000 objects, the size medallion is comfortable with.
    objects = generate_indicators(997, now=GENERATED_AT, versions_every=0)
    with run_medallion({"bench": objects}) as server:
        result = pull_source_only(server.url, limit, username=server.username, password=Secret(server.password))
    return result


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory_kb = int(Path("/proc/meminfo").read_text(encoding="utf-8").split()[1])
    except (OSError, ValueError, IndexError):
        memory_kb = 0
    try:
        import orjson  # noqa: F401

        decoder = "orjson"
    except ImportError:
        decoder = "json"
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "decoder": decoder,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="indicators to generate (default 100000)")
    parser.add_argument("--limit", type=int, default=500, help="objects per page (default 500, the source default)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of the source-only pull and of the baseline; the median is reported (default 3)")
    parser.add_argument("--skip-engine", action="store_true", help="skip the pull through the engine")
    parser.add_argument("--skip-medallion", action="store_true", help="skip the pull from medallion")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ready-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.ready_file)
        return

    result: dict[str, Any] = {"machine": machine(), "indicators": args.count, "limit": args.limit}
    with tempfile.TemporaryDirectory(prefix="stixbridge-taxii-bench-") as tmp:
        folder = Path(tmp)
        pages_dir = folder / "pages"
        pages_dir.mkdir()
        objects, pages = prepare_pages(args.count, args.limit, pages_dir)
        result["objects"] = objects
        result["pages_megabytes"] = round(sum(len(p) for p in pages) / 1e6, 1)

        process, url = start_responder(pages_dir)
        try:
            result["source_only"] = median_run([pull_source_only(url, args.limit) for _ in range(args.repeat)])
            if not args.skip_engine:
                runs = [pull_through_engine(url, args.limit, folder, run) for run in range(args.repeat)]
                result["through_engine"] = median_run(runs)
        finally:
            process.kill()
            process.wait()

        result["json_loads_baseline"] = median_run([baseline(pages) for _ in range(args.repeat)])
        baseline_seconds = result["json_loads_baseline"]["seconds"]
        result["our_time_over_json_loads"] = round(result["source_only"]["our_seconds"] / baseline_seconds, 2)
        if not args.skip_engine:
            result["our_landing_time_over_json_loads"] = round(
                result["through_engine"]["our_landing_seconds"] / baseline_seconds, 2
            )
    if not args.skip_medallion:
        result["medallion_1000"] = pull_medallion(args.limit)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
