from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stixbridge.config import ConnectorEntry, build_config
from stixbridge.connector import ConnectorContext
from stixbridge.engine import Engine, RunSummary
from stixbridge.model import Page, Provenance, RawItem
from stixbridge.settings import Settings
from stixbridge.sources.base import Source
from stixbridge.store.sqlite import SqliteStore
from tests.core.helpers import indicator

NOW = datetime(2024, 6, 15, tzinfo=UTC)
OBJECTS = [indicator(n, f"[domain-name:value = 'd{n}.update-check-{n}.net']") for n in range(1, 31)]


class PagedSource(Source):
    """Yields ten objects a page with the count delivered as cursor, and records the stored indicators per page."""

    kind = "paged"
    land_first = True

    def __init__(self, store_path: Path) -> None:
        super().__init__("paged", Settings(), ConnectorContext(base_dir=Path(".")))
        self.store_path = store_path
        self.seen_indicators: list[int] = []

    def pull(self, cursor: str | None) -> Iterator[Page]:
        start = int(cursor or 0)
        provenance = Provenance("paged", "collection-1")
        for offset in range(start, len(OBJECTS), 10):
            with SqliteStore(self.store_path) as store:
                self.seen_indicators.append(store.count("indicators"))
            items = [RawItem(obj, provenance) for obj in OBJECTS[offset : offset + 10]]
            yield Page(items, cursor=str(offset + len(items)), complete=offset + 10 >= len(OBJECTS))


def make_engine(tmp_path: Path, source: Source) -> Engine:
    config = build_config(
        {
            "engine": {"state": "state.db", "transaction_objects": 10},
        },
        base_dir=tmp_path,
    )
    config.sources.append(ConnectorEntry("source", "paged", "paged", True, source))
    return Engine(config, SqliteStore(config.state_path), clock=lambda: NOW)


def test_whole_pass_lands_before_storing(tmp_path):
    source = PagedSource(tmp_path / "state.db")
    engine = make_engine(tmp_path, source)

    summary = RunSummary()
    engine.pull(summary)

    assert source.seen_indicators == [0, 0, 0]
    assert summary.pulled["paged"]["indicators"] == 30
    assert engine.store.count("indicators") == 30
    assert engine.store.get_cursor("source:paged") == "30"


def test_landing_leaves_no_review(tmp_path):
    engine = make_engine(tmp_path, PagedSource(tmp_path / "state.db"))

    engine.pull(RunSummary())

    assert engine.store.count("reviews") == 0
    assert engine.store.count("review_pages") == 0


def test_crash_while_storing_landed_pages(tmp_path):
    source = PagedSource(tmp_path / "state.db")
    engine = make_engine(tmp_path, source)
    original = engine._ingest_page
    stored_pages = []

    def ingest_then_die(*args, **kwargs):
        if len(stored_pages) == 1:
            raise KeyboardInterrupt("killed while storing")
        original(*args, **kwargs)
        stored_pages.append(args[2])

    engine._ingest_page = ingest_then_die
    with pytest.raises(KeyboardInterrupt):
        engine.pull(RunSummary())
    assert engine.store.get_cursor("source:paged") == "10"
    engine.store.close()

    again = make_engine(tmp_path, PagedSource(tmp_path / "state.db"))
    summary = RunSummary()
    again.pull(summary)

    # The first page is stored once; the second run fetches only what came after its cursor.
    assert summary.pulled["paged"]["objects"] == 20
    assert again.store.count("indicators") == 30
    assert again.store.count("versions") == 30
    assert again.store.count("review_pages") == 0
