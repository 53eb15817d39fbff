"""The real public feeds beside the checkout, through the file source: counts that must not drift."""

import sqlite3

import pytest

from stixbridge.config import build_config
from stixbridge.engine import Engine, RunSummary
from stixbridge.store.sqlite import SqliteStore

# Every atom type with local expiry switched off, so the old public indicators stay live.
NO_EXPIRY = {
    name: 0
    for name in ("default", "ipv4", "ipv6", "ipv4-cidr", "ipv6-cidr", "domain", "url", "email", "md5", "sha1",
                 "sha256", "sha512", "file-name")
}


@pytest.fixture(scope="module")
def pulled(tmp_path_factory):
    from tests.conftest import SHARED_DATA

    unit42 = SHARED_DATA / "pan-unit42-playbook_viewer" / "playbook_json"
    mvt = SHARED_DATA / "mvt-project-mvt-indicators"
    if not (unit42.is_dir() and mvt.is_dir()):
        pytest.skip("../shared/data is absent; the end-to-end tests on real feeds need it")
    folder = tmp_path_factory.mktemp("feeds")
    config = build_config(
        {
            "engine": {"state": "state.db", "lifetimes": NO_EXPIRY},
            "sources": [
                {"name": "unit42", "kind": "file", "path": str(unit42)},
                {"name": "mvt", "kind": "file", "path": str(mvt)},
            ],
        },
        base_dir=folder,
    )
    store = SqliteStore(config.state_path)
    engine = Engine(config, store)
    summary = RunSummary()
    engine.pull(summary)
    engine.push(summary)
    yield summary, store
    store.close()


def test_feeds_indicator_counts(pulled):
    summary, store = pulled
    assert summary.pulled["unit42"]["indicators"] == 5214
    assert summary.pulled["mvt"]["indicators"] == 1439
    assert store.status(store_now())["indicators"]["by_source"] == {"unit42": 5134, "mvt": 1439}


def test_feeds_superseded_versions(pulled):
    _, store = pulled
    db: sqlite3.Connection = store.db
    ids_with_versions = db.execute("SELECT COUNT(*) FROM (SELECT id FROM versions GROUP BY id HAVING COUNT(*) > 1)")
    assert ids_with_versions.fetchone()[0] == 79


def test_feeds_atoms_and_composites(pulled):
    _, store = pulled
    status = store.status(store_now())
    assert status["atoms"]["total"] == 6338
    assert status["atoms"]["by_type"]["sha256"] == 3054
    assert status["atoms"]["by_type"]["domain"] == 2516
    assert status["composites"] == {"with_reason": 219, "without_exact_atom": 216}


def test_feeds_quarantine_with_reasons(pulled):
    _, store = pulled
    rows = store.quarantine_rows()
    reasons = {row["reason_code"]: row["reason"] for row in rows}
    assert set(reasons) == {"atom", "guard"}
    assert "fgr1w2gnsdvsb.xyz/x" in reasons["atom"]
    assert "public suffix" in reasons["guard"]


def store_now():
    from stixbridge.timeutil import utcnow

    return utcnow()
