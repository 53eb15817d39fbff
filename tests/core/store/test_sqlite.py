from datetime import UTC, datetime, timedelta

import pytest

from stixbridge.model import AtomLink, IndicatorRecord, Provenance, QuarantineItem
from stixbridge.store.sqlite import SqliteStore

NOW = datetime(2024, 6, 15, tzinfo=UTC)
LIFETIMES = {"ipv4": timedelta(days=30), "domain": timedelta(days=90), "default": timedelta(days=90)}


def record(
    indicator_id="indicator--00000000-0000-4000-8000-000000000001",
    modified=NOW - timedelta(days=1),
    value="198.51.100.7",
    atom_type="ipv4",
    source="alliance",
    created_by="identity--a",
    valid_from=NOW - timedelta(days=1),
    valid_until=None,
    revoked=False,
    confidence=50,
):
    return IndicatorRecord(
        id=indicator_id,
        modified=modified,
        created=modified,
        spec_version="2.1",
        valid_from=valid_from,
        valid_until=valid_until,
        revoked=revoked,
        confidence=confidence,
        tlp=1,
        name="test",
        description="",
        labels=("malicious-activity",),
        pattern=f"[ipv4-addr:value = '{value}']",
        pattern_type="stix",
        provenance=Provenance(source, "collection-1", created_by),
        atoms=[AtomLink(atom_type, value, value, "exact")],
    )


@pytest.fixture
def store(tmp_path):
    with SqliteStore(tmp_path / "state.db") as s:
        yield s


def ingest(store, *records, cursor=None, name="source:alliance"):
    return store.ingest_page(name, list(records), [], [], cursor, LIFETIMES, NOW)


def test_store_ingest_new_and_repeat_is_idempotent(store):
    stats = ingest(store, record())
    assert stats.new == 1
    stats = ingest(store, record())
    assert stats.unchanged == 1
    assert store.count("indicators") == 1


def test_store_highest_modified_wins_any_order(store):
    old = record(modified=NOW - timedelta(days=3), value="198.51.100.1")
    new = record(modified=NOW - timedelta(days=1), value="198.51.100.2")
    ingest(store, new)
    stats = ingest(store, old)
    assert stats.unchanged == 1
    assert store.indicator_atoms(new.id) == [("ipv4", "198.51.100.2", "exact")]
    assert store.count("versions") == 2


def test_store_revoked_version_retires_indicator(store):
    ingest(store, record())
    revoked = record(modified=NOW - timedelta(hours=1), revoked=True)
    stats = ingest(store, revoked)
    assert stats.revoked == 1
    assert store.count("indicators") == 0
    entry = store.expired_entry(revoked.id)
    assert entry is not None
    assert entry.reason == "revoked"


def test_store_expire_keeps_compact_index_and_revives(store):
    ingest(store, record(valid_until=NOW - timedelta(hours=1), valid_from=NOW - timedelta(days=2)))
    stats = store.expire(NOW, LIFETIMES)
    assert stats.expired == 1
    entry = store.expired_entry(record().id)
    assert entry is not None
    assert entry.reason == "expired:valid_until"
    assert entry.provenance.source == "alliance"
    assert len(entry.atom_digests) == 1

    same = ingest(store, record(valid_until=NOW - timedelta(hours=1), valid_from=NOW - timedelta(days=2)))
    assert same.unchanged == 1
    newer = ingest(store, record(modified=NOW, valid_until=NOW + timedelta(days=5)))
    assert newer.revived == 1
    assert store.indicator_state(record().id)["state"] == "live"
    assert store.expired_entry(record().id) is None


def test_store_missing_valid_until_uses_lifetime_not_expired(store):
    ingest(store, record(valid_from=NOW - timedelta(days=10)))
    assert store.expire(NOW, LIFETIMES).expired == 0
    state = store.indicator_state(record().id)
    assert state["basis"] == "lifetime:ipv4"
    assert state["expires_at"] == NOW + timedelta(days=20)


def test_store_zero_lifetime_means_no_local_expiry(store):
    ingest(store, record(valid_from=NOW - timedelta(days=1000)))
    assert store.expire(NOW, {"ipv4": timedelta(0)}).expired == 0
    assert store.indicator_state(record().id)["basis"] == "none"


def test_store_lifetime_change_recomputes_expiry(store):
    ingest(store, record(valid_from=NOW - timedelta(days=10)))
    store.expire(NOW, LIFETIMES)
    stats = store.expire(NOW, {**LIFETIMES, "ipv4": timedelta(days=5)})
    assert stats.expired == 1


def test_store_future_valid_from_is_pending_until_it_arrives(store):
    ingest(store, record(valid_from=NOW + timedelta(days=1)))
    store.refresh_rows(NOW)
    assert store.indicator_state(record().id)["state"] == "pending"
    assert list(store.iter_rows()) == []
    stats = store.expire(NOW + timedelta(days=2), LIFETIMES)
    assert stats.activated == 1
    store.refresh_rows(NOW)
    assert len(list(store.iter_rows())) == 1


def test_store_same_atom_three_members_one_row(store):
    for n, member in enumerate(("identity--a", "identity--b", "identity--c")):
        ingest(store, record(indicator_id=f"indicator--00000000-0000-4000-8000-00000000000{n}", created_by=member))
    store.refresh_rows(NOW)
    rows = list(store.iter_rows())
    assert len(rows) == 1
    assert len(rows[0].indicator_ids) == 3
    assert rows[0].created_by == ("identity--a", "identity--b", "identity--c")
    assert rows[0].weight == 70
    assert "/" not in rows[0].key
    assert rows[0].key.startswith("stixbridge-")


def test_store_refresh_reports_no_change_second_time(store):
    ingest(store, record())
    assert store.refresh_rows(NOW) == 1
    generation = store.generation()
    assert store.refresh_rows(NOW) == 0
    assert store.generation() == generation


def test_store_cursor_committed_with_page(store):
    ingest(store, record(), cursor="page-1")
    assert store.get_cursor("source:alliance") == "page-1"


def test_store_failed_page_keeps_old_cursor(store, monkeypatch):
    ingest(store, record(), cursor="page-1")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "_write_quarantine", broken)
    with pytest.raises(RuntimeError):
        ingest(store, record(indicator_id="indicator--00000000-0000-4000-8000-000000000009"), cursor="page-2")
    assert store.get_cursor("source:alliance") == "page-1"
    assert store.indicator_state("indicator--00000000-0000-4000-8000-000000000009") is None


def test_store_quarantine_keeps_reason_and_raw(store):
    item = QuarantineItem(Provenance("alliance", "f.json"), "invalid pattern", "indicator--x", '{"id": 1}', "pattern")
    store.ingest_page("source:alliance", [], [], [item], None, LIFETIMES, NOW)
    (row,) = store.quarantine_rows()
    assert row["reason_code"] == "pattern"
    assert store.quarantine_raw(row["qid"]) == '{"id": 1}'


def test_store_reopen_keeps_schema(tmp_path):
    path = tmp_path / "state.db"
    with SqliteStore(path) as first:
        ingest(first, record())
    with SqliteStore(path) as second:
        assert second.count("indicators") == 1


def _held(store):
    return store.db.execute(
        "SELECT qid, object_id, reason_code, reason, at, status FROM quarantine ORDER BY qid"
    ).fetchall()


def test_quarantine_repeat_refreshes_held_row(store):
    first = QuarantineItem(Provenance("alliance", "f.json"), "pattern has no value", "indicator--x", '{"a": 1}', "pattern")
    store.add_quarantine([first], NOW)
    later = QuarantineItem(Provenance("alliance", "f.json"), "pattern ends early", "indicator--x", '{"a": 2}', "pattern")
    store.add_quarantine([later], NOW + timedelta(hours=1))

    rows = _held(store)
    assert len(rows) == 1
    assert rows[0][3] == "pattern ends early"
    assert rows[0][4] == (NOW + timedelta(hours=1)).timestamp()
    assert store.quarantine_raw(rows[0][0]) == '{"a": 2}'


def test_quarantine_rows_differ_by_key_parts(store):
    base = QuarantineItem(Provenance("alliance", "f.json"), "bad", "indicator--x", "{}", "pattern")
    items = [
        base,
        QuarantineItem(Provenance("other", "f.json"), "bad", "indicator--x", "{}", "pattern"),
        QuarantineItem(Provenance("alliance", "f.json"), "bad", "indicator--x", "{}", "timestamp"),
        QuarantineItem(Provenance("alliance", "f.json"), "bad", "indicator--y", "{}", "pattern"),
    ]
    store.add_quarantine(items, NOW)
    store.add_quarantine(items, NOW)
    assert len(_held(store)) == 4


def test_quarantine_without_id_keyed_by_text(store):
    def element(text, reason="element 19 of 20 is not a JSON object"):
        return QuarantineItem(Provenance("alliance", "f.json"), reason, None, text, "not-object")

    store.add_quarantine([element("42"), element("[1, 2]")], NOW)
    store.add_quarantine([element("42", "element 21 of 22 is not a JSON object"), element("[1, 2]")], NOW)
    rows = _held(store)
    assert len(rows) == 2
    assert rows[0][3] == "element 21 of 22 is not a JSON object"

    # Without id and text, the reason text separates the objects.
    unreadable = [QuarantineItem(Provenance("alliance", "f.json"), f"file {n} is not JSON", None, None, "not-json")
                  for n in (1, 2)]  # fmt: skip
    store.add_quarantine(unreadable, NOW)
    store.add_quarantine(unreadable, NOW)
    assert len(_held(store)) == 4


def test_quarantine_repeat_after_release_adds_row(store):
    item = QuarantineItem(Provenance("alliance", "f.json"), "bad created", "indicator--x", "{}", "timestamp")
    store.add_quarantine([item], NOW)
    assert store.mark_quarantine(1, "released", NOW)

    store.add_quarantine([item], NOW + timedelta(hours=1))
    store.add_quarantine([item], NOW + timedelta(hours=2))

    rows = _held(store)
    assert [(row[0], row[5]) for row in rows] == [(1, "released"), (2, "held")]
    assert rows[1][4] == (NOW + timedelta(hours=2)).timestamp()
