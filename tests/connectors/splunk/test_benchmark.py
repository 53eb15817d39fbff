"""The Splunk push benchmark runs and counts requests (a small run; the full one is benchmarks/splunk_push.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "splunk_push.py"


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("splunk_push_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the class is built.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_benchmark_counts_requests() -> None:
    bench = load_benchmark()

    first, unchanged, updated, churn = bench.run(3000, ["app"])

    assert (first.changes, first.writes, first.failed) == (3000, 3, 0)
    assert (unchanged.changes, unchanged.writes, unchanged.reads) == (0, 0, 0)
    assert (updated.changes, updated.writes) == (30, 1)
    assert churn.changes == 30
    assert churn.deleted == 15
    assert churn.written == 15


def test_type_mix_covers_all_slots() -> None:
    bench = load_benchmark()

    rows = bench.make_rows(100)

    assert len({row.key for row in rows}) == 100
    assert {row.type for row in rows} == {"ipv4", "domain", "url", "sha256", "file-name"}
