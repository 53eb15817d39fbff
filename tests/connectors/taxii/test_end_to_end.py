"""Real public STIX bundles served from medallion, each file its own collection, pulled back in pages of 50.

The files are the Unit 42 playbooks (STIX 2.0, 19 files) and the MVT indicators (STIX 2.1, 11 files), read
from the folder of public feeds beside the repository. The tests skip when that folder is absent. Files over 1,000 objects are split into equal parts,
because medallion's memory backend slows down with the square of a collection's size.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stixbridge.config import build_config
from stixbridge.connectors.taxii.medallion_server import MedallionServer, run_medallion
from stixbridge.engine import Engine, RunSummary
from stixbridge.store.sqlite import SqliteStore

from .conftest import SHARED, make_source, medallion_auth
from .test_paging import run_pull

DATA = SHARED / "data"
MAX_COLLECTION = 1000
PULLED_AT = datetime(2024, 6, 15, tzinfo=UTC)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not DATA.is_dir(), reason="the shared data folder with public STIX feeds is absent"),
]


def bundle_files() -> list[Path]:
    playbooks = sorted((DATA / "pan-unit42-playbook_viewer" / "playbook_json").glob("*.json"))
    mobile = sorted((DATA / "mvt-project-mvt-indicators").rglob("*.stix2"))
    return playbooks + mobile


def split_collections(files: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Return collection title to objects: one collection per file, bigger files in equal parts."""
    collections: dict[str, list[dict[str, Any]]] = {}
    for path in files:
        objects = json.loads(path.read_text(encoding="utf-8"))["objects"]
        parts = max(1, math.ceil(len(objects) / MAX_COLLECTION))
        size = math.ceil(len(objects) / parts)
        for part in range(parts):
            title = f"{path.parent.name}/{path.stem}" + (f" part {part + 1}" if parts > 1 else "")
            collections[title] = objects[part * size : (part + 1) * size]
    return collections


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[MedallionServer, dict[str, list[dict[str, Any]]]]]:
    collections = split_collections(bundle_files())
    with run_medallion(collections) as server:
        yield server, collections


def versions(objects: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    return Counter((obj["id"], obj.get("modified", obj.get("created", ""))) for obj in objects)


def test_files_split_into_collections() -> None:
    collections = split_collections(bundle_files())

    assert len(bundle_files()) == 30
    assert all(len(objects) <= MAX_COLLECTION for objects in collections.values())
    assert sum(len(objects) for objects in collections.values()) == sum(
        len(json.loads(path.read_text(encoding="utf-8"))["objects"]) for path in bundle_files()
    )


def test_pull_returns_every_file_object(served: tuple[MedallionServer, dict[str, list[dict[str, Any]]]]) -> None:
    server, collections = served
    source = make_source(server.url, limit=50, **medallion_auth(server))

    pages, error = run_pull(source)

    titles = {collection.id: collection.title for collection, _ in source.passes}
    pulled: dict[str, list[dict[str, Any]]] = {}
    for page in pages:
        for item in page.items:
            assert item.obj is not None
            pulled.setdefault(titles[item.provenance.collection], []).append(item.obj)
    assert error is None
    assert set(pulled) == set(collections)
    for title, objects in collections.items():
        assert versions(pulled[title]) == versions(objects), title
        by_key = {(o["id"], o.get("modified")): o for o in objects}
        assert all(by_key[(o["id"], o.get("modified"))] == o for o in pulled[title]), title
    assert max(len(page.items) for page in pages) == 50
    assert set(json.loads(pages[-1].cursor or "")) == set(server.collection_ids.values())
    assert pages[-1].complete


def store_snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Return what a store holds, without the columns that name the source, the collection or a time."""
    queries = {
        "indicators": "SELECT id, modified, spec_version, state, primary_type, valid_from, valid_until, confidence,"
        " tlp, name, labels, pattern, composite_reason, created_by FROM indicators",
        "atoms": "SELECT type, value, indicator_id, display, role, context FROM indicator_atoms",
        "versions": "SELECT id, modified FROM versions",
        "objects": "SELECT id, type, modified, spec_version, raw FROM objects",
        "quarantine": "SELECT object_id, reason_code FROM quarantine",
        "rows": "SELECT key, type, value FROM rows",
    }
    with sqlite3.connect(path) as db:
        snapshot = {name: sorted(db.execute(sql).fetchall(), key=repr) for name, sql in queries.items()}
    # medallion sends keys sorted, so the stored text differs from the file's while the object is the same.
    snapshot["objects"] = [(*row[:4], json.loads(row[4])) for row in snapshot["objects"]]
    return snapshot


def pull_into_store(config_data: dict[str, Any], tmp_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    config = build_config(config_data, base_dir=tmp_path)
    try:
        with SqliteStore(config.state_path) as store:
            engine = Engine(config, store, clock=lambda: PULLED_AT)
            summary = RunSummary()
            engine.pull(summary)
            store.refresh_rows(PULLED_AT)
    finally:
        config.close()
    assert summary.failures == []
    return store_snapshot(config.state_path)


def test_store_same_as_file_source_pull(
    served: tuple[MedallionServer, dict[str, list[dict[str, Any]]]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = served
    monkeypatch.setenv("STIXBRIDGE_TEST_TAXII_PASSWORD", server.password)
    taxii = {
        "engine": {"state": "taxii.db"},
        "sources": [{"name": "alliance", "kind": "taxii", "url": server.url, "limit": 50,
                     "username": server.username, "password": {"env": "STIXBRIDGE_TEST_TAXII_PASSWORD"}}],
    }  # fmt: skip
    files = {
        "engine": {"state": "files.db"},
        "sources": [
            {"name": "unit42", "kind": "file", "path": str(DATA / "pan-unit42-playbook_viewer" / "playbook_json")},
            {"name": "mvt", "kind": "file", "path": str(DATA / "mvt-project-mvt-indicators"), "patterns": ["*.stix2"]},
        ],
    }

    from_taxii = pull_into_store(taxii, tmp_path)
    from_files = pull_into_store(files, tmp_path)

    assert len(from_taxii["indicators"]) > 6000
    for table in from_files:
        assert from_taxii[table] == from_files[table], table
