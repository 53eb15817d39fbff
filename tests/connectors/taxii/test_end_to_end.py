"""Real public STIX bundles served from medallion, each file its own collection, pulled back in pages of 50.

The files are the Unit 42 playbooks (STIX 2.0, 19 files) and the MVT indicators (STIX 2.1, 11 files) in the
shared data folder; the tests skip when it is absent. Files over 1,000 objects are split into equal parts,
because medallion's memory backend slows down with the square of a collection's size.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stixbridge.connectors.taxii.medallion_server import MedallionServer, run_medallion

from .conftest import SHARED, make_source, medallion_auth
from .test_paging import run_pull

DATA = SHARED / "data"
MAX_COLLECTION = 1000

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
