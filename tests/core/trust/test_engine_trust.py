import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stixbridge.cli import main
from stixbridge.config import ConnectorEntry, build_config
from stixbridge.connector import ConnectorContext
from stixbridge.engine import EXIT_HELD, EXIT_OK, EXIT_QUARANTINED, Engine, RunSummary
from stixbridge.errors import NotFoundError, StixbridgeError
from stixbridge.model import Changes, PushResult
from stixbridge.quarantine import release
from stixbridge.settings import Settings
from stixbridge.sinks.base import Sink
from stixbridge.store.sqlite import SqliteStore
from tests.core.helpers import indicator, write_bundle

NOW = datetime(2024, 6, 15, tzinfo=UTC)
NO_LIFETIMES = {"default": 0, "ipv4": 0, "ipv4-cidr": 0, "domain": 0, "url": 0, "sha256": 0}

POISONED = [
    indicator(1, "[ipv4-addr:value = '8.8.8.8']", name="public resolver"),
    indicator(2, "[domain-name:value = 'cloudflare.com']", name="big CDN domain"),
    indicator(3, "[ipv4-addr:value = '45.0.0.0/8']", name="a whole /8"),
    indicator(4, "[ipv4-addr:value = '104.16.0.1']", name="CDN address"),
    indicator(5, "[domain-name:value = 'evil-update.ru' OR ipv4-addr:value = '8.8.4.4']", name="mixed"),
    indicator(6, "[domain-name:value = 'c2-panel.ru']"),
    indicator(7, "[ipv4-addr:value = '45.9.148.3']"),
    indicator(8, "[file:hashes.'SHA-256' = '" + "ab" * 32 + "']"),
    indicator(9, "[ipv4-addr:value = '3.5.140.2']", name="cloud address"),
]


class MemorySink(Sink):
    kind = "memory"

    def __init__(self):
        super().__init__("memory", Settings(), ConnectorContext(base_dir=Path(".")))
        self.rows = {}

    def push(self, changes: Changes) -> PushResult:
        result = PushResult()
        for row in changes.upserts:
            self.rows[row.key] = row
            result.written.append(row.key)
        for held in changes.deletes:
            self.rows.pop(held.key, None)
            result.deleted.append(held.key)
        return result

    def values(self):
        return {row.value: row for row in self.rows.values()}


def make_engine(tmp_path, sources, trust=None, sink=None):
    config = build_config(
        {
            "engine": {"state": "state.db", "lifetimes": NO_LIFETIMES},
            "sources": [{"name": name, "kind": "file", "path": str(path)} for name, path in sources.items()],
            "trust": trust or {},
        },
        base_dir=tmp_path,
    )
    if sink is not None:
        config.sinks.append(ConnectorEntry("sink", "memory", "memory", True, sink))
    return Engine(config, SqliteStore(config.state_path), clock=lambda: NOW)


def held_rows(engine):
    return engine.store.db.execute(
        "SELECT qid, object_id, held_atoms, matched, status FROM quarantine WHERE reason_code = 'guard' ORDER BY qid"
    ).fetchall()


def test_poisoned_feed_held_with_list_names_rest_arrives(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", POISONED)
    sink = MemorySink()
    engine = make_engine(tmp_path, {"alliance": feed}, sink=sink)

    summary = engine.sync()

    assert summary.exit_code() == EXIT_QUARANTINED
    assert summary.quarantined == 5
    values = sink.values()
    assert set(values) == {"evil-update.ru", "c2-panel.ru", "45.9.148.3", "ab" * 32, "3.5.140.2"}
    assert "warninglist:amazon-aws" in values["3.5.140.2"].labels
    matched = {json.loads(atoms)[0][1]: names for _, _, atoms, names, _ in held_rows(engine)}
    assert "public-dns-v4" in matched["8.8.8.8"]
    assert "tranco10k" in matched["cloudflare.com"]
    assert "wide-network" in matched["45.0.0.0/8"]
    assert "cloudflare" in matched["104.16.0.1"]
    assert "public-dns-v4" in matched["8.8.4.4"]


def test_mixed_indicator_atom_held_alone(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", POISONED)
    engine = make_engine(tmp_path, {"alliance": feed})
    engine.sync()
    mixed = "indicator--00000000-0000-4000-8000-000000000005"
    assert engine.store.indicator_atoms(mixed) == [("domain", "evil-update.ru", "exact")]
    rows = [row for row in held_rows(engine) if row[1] == mixed]
    assert len(rows) == 1
    assert json.loads(rows[0][2]) == [["ipv4", "8.8.4.4"]]


def test_release_stores_whole_hold_now(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", POISONED)
    sink = MemorySink()
    engine = make_engine(tmp_path, {"alliance": feed}, sink=sink)
    engine.sync()
    qid = next(qid for qid, object_id, _, _, _ in held_rows(engine) if object_id.endswith("000000000001"))

    message = release(engine, qid)
    assert "stored now" in message
    engine.push(RunSummary())
    assert "8.8.8.8" in sink.values()

    # The feed file changes and is read again: the released atom passes, the held ones add no second row.
    write_bundle(feed, [*POISONED, indicator(20, "[domain-name:value = 'new-c2.ru']")])
    before = len(held_rows(engine))
    summary = engine.sync()
    assert summary.quarantined == 0
    assert len(held_rows(engine)) == before
    assert {"8.8.8.8", "new-c2.ru"} <= set(sink.values())
    assert "already released" in release(engine, qid)


def test_release_adds_single_atom(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", POISONED)
    sink = MemorySink()
    engine = make_engine(tmp_path, {"alliance": feed}, sink=sink)
    engine.sync()
    mixed = "indicator--00000000-0000-4000-8000-000000000005"
    qid = next(qid for qid, object_id, _, _, _ in held_rows(engine) if object_id == mixed)

    assert "released 1 atom(s)" in release(engine, qid)
    engine.push(RunSummary())
    assert sink.values()["8.8.4.4"].indicator_id == mixed


def test_release_of_invalid_object_keeps_it_out(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", [indicator(1, "[ipv4-addr:value = ")])
    engine = make_engine(tmp_path, {"alliance": feed})
    engine.sync()
    qid = engine.store.quarantine_rows()[0]["qid"]
    assert "stays out of the store" in release(engine, qid)
    with pytest.raises(NotFoundError, match="no quarantined object with id 999"):
        release(engine, 999)


def test_source_allow_lets_listed_values_through(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", POISONED[:2])
    trust = {"sources": [{"name": "alliance", "allow": ["public-dns", "top-sites"]}]}
    engine = make_engine(tmp_path, {"alliance": feed}, trust)
    summary = engine.sync()
    assert summary.quarantined == 0
    assert engine.store.count("indicators") == 2


def test_policy_skips_count_in_summary(tmp_path):
    objects = [
        indicator(1, "[domain-name:value = 'a-c2.ru']", confidence=20),
        indicator(2, "[domain-name:value = 'b-c2.ru']", confidence=80),
        indicator(3, "[ipv4-addr:value = '45.9.148.3']", confidence=80),
    ]
    feed = write_bundle(tmp_path / "feed.json", objects)
    trust = {"sources": [{"name": "alliance", "min_confidence": 50, "atom_types": ["domain"]}]}
    engine = make_engine(tmp_path, {"alliance": feed}, trust)
    summary = engine.sync()
    assert summary.pulled["alliance"]["skipped_by_policy"] == 2
    assert summary.exit_code() == EXIT_OK
    assert engine.store.count("indicators") == 1


def bulk(count, start=0):
    return [indicator(n, f"[domain-name:value = 'c2-{n}.ru']") for n in range(start, start + count)]


def test_blast_radius_holds_mass_revocation_until_approved(tmp_path):
    write_bundle(tmp_path / "feed" / "a.json", bulk(600))
    sink = MemorySink()
    trust = {"review_min_live": 100}
    engine = make_engine(tmp_path, {"alliance": tmp_path / "feed"}, trust, sink)
    assert engine.sync().exit_code() == EXIT_OK
    assert len(sink.rows) == 600

    revoked = [dict(obj, modified="2024-05-03T08:00:00.000Z", revoked=True) for obj in bulk(400)]
    write_bundle(tmp_path / "feed" / "b.json", revoked)
    summary = engine.sync()
    assert summary.exit_code() == EXIT_HELD
    assert "held for review" in summary.held[0]
    assert len(sink.rows) == 600
    assert engine.store.count("indicators") == 600

    # While held, the source is not pulled again and nothing more is staged.
    again = engine.sync()
    assert again.pulled["alliance"]["held_for_review"] == summary.pulled["alliance"]["held_for_review"]
    assert engine.store.db.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 1

    review_id = summary.pulled["alliance"]["held_for_review"]
    counts = engine.approve_review(review_id)
    assert counts["revoked"] == 400
    engine.push(RunSummary())
    assert len(sink.rows) == 200
    assert engine.sync().exit_code() == EXIT_OK
    with pytest.raises(StixbridgeError, match="is applied"):
        engine.approve_review(review_id)


def test_blast_radius_reject_drops_pull_and_moves_on(tmp_path):
    write_bundle(tmp_path / "feed" / "a.json", bulk(200))
    trust = {"review_min_live": 100, "max_change_share": 0.25}
    engine = make_engine(tmp_path, {"alliance": tmp_path / "feed"}, trust)
    engine.sync()
    write_bundle(tmp_path / "feed" / "b.json", bulk(100, start=1000))
    summary = engine.sync()
    review_id = summary.pulled["alliance"]["held_for_review"]
    assert review_id

    assert engine.reject_review(review_id) is not None
    assert engine.store.count("indicators") == 200
    after = engine.sync()
    assert after.exit_code() == EXIT_OK
    assert after.pulled["alliance"]["objects"] == 0
    assert engine.store.count("indicators") == 200


def test_blast_radius_small_changes_apply_at_once(tmp_path):
    write_bundle(tmp_path / "feed" / "a.json", bulk(200))
    engine = make_engine(tmp_path, {"alliance": tmp_path / "feed"}, {"review_min_live": 100})
    engine.sync()
    write_bundle(tmp_path / "feed" / "b.json", bulk(20, start=1000))
    summary = engine.sync()
    assert summary.exit_code() == EXIT_OK
    assert summary.pulled["alliance"]["new"] == 20
    assert engine.store.db.execute("SELECT status FROM reviews").fetchall() == [("applied",)]
    assert engine.store.db.execute("SELECT COUNT(*) FROM review_pages").fetchone()[0] == 0


def test_retired_atom_limit_small_source(tmp_path):
    write_bundle(tmp_path / "feed" / "a.json", bulk(30))
    engine = make_engine(tmp_path, {"alliance": tmp_path / "feed"}, {"max_retired_atoms": 10})
    engine.sync()
    gone = [dict(obj, modified="2024-05-03T08:00:00.000Z", valid_until="2024-06-01T00:00:00.000Z") for obj in bulk(11)]
    write_bundle(tmp_path / "feed" / "b.json", gone)
    summary = engine.sync()
    assert summary.exit_code() == EXIT_HELD
    reason = engine.store.db.execute("SELECT reason FROM reviews").fetchone()[0]
    assert "retire 11 atoms" in reason


# Producer identities; ids must be valid, because an invalid created_by_ref is dropped.
MEMBER_A = "identity--00000000-0000-4000-8000-00000000000a"
MEMBER_B = "identity--00000000-0000-4000-8000-00000000000b"


def test_source_weights_scale_row_weight(tmp_path):
    a = write_bundle(tmp_path / "a.json", [indicator(1, "[domain-name:value = 'shared-c2.ru']", confidence=80,
                                                    created_by_ref=MEMBER_A)])  # fmt: skip
    b = write_bundle(tmp_path / "b.json", [indicator(2, "[domain-name:value = 'shared-c2.ru']", confidence=80,
                                                    created_by_ref=MEMBER_B)])  # fmt: skip
    sink = MemorySink()
    trust = {"sources": [{"name": "a", "weight": 0.5}, {"name": "b", "weight": 0.25}]}
    engine = make_engine(tmp_path, {"a": a, "b": b}, trust, sink)
    engine.sync()
    # Best report 80 x 0.5 = 40, plus 10 x 0.25 for the second, independent reporter.
    assert sink.values()["shared-c2.ru"].weight == 42


def test_changed_weights_rebuild_rows(tmp_path):
    a = write_bundle(tmp_path / "a.json", [indicator(1, "[domain-name:value = 'c2.ru']", confidence=80)])
    sink = MemorySink()
    engine = make_engine(tmp_path, {"a": a}, {}, sink)
    engine.sync()
    assert sink.values()["c2.ru"].weight == 80
    engine.store.close()
    engine = make_engine(tmp_path, {"a": a}, {"sources": [{"name": "a", "weight": 0.5}]}, sink)
    engine.sync()
    assert sink.values()["c2.ru"].weight == 40


def test_status_shows_revocation_conflict(tmp_path, capsys):
    a = write_bundle(tmp_path / "a.json", [indicator(1, "[domain-name:value = 'disputed.ru']",
                                                    created_by_ref=MEMBER_A)])  # fmt: skip
    b = write_bundle(tmp_path / "b.json", [indicator(2, "[domain-name:value = 'disputed.ru']",
                                                    created_by_ref=MEMBER_B, revoked=True)])  # fmt: skip
    engine = make_engine(tmp_path, {"a": a, "b": b})
    engine.sync()
    conflicts = engine.trust.status()["conflicts"]
    assert conflicts["count"] == 1
    example = conflicts["examples"][0]
    assert example["atom"] == "domain disputed.ru"
    assert example["revoked_by"] == MEMBER_B
    assert example["still_asserted_by"] == MEMBER_A


def write_cli_config(tmp_path, feed, extra=""):
    config = tmp_path / "stixbridge.toml"
    config.write_text(
        f'[engine]\nstate = "s.db"\nlifetimes = {{ default = 0, domain = 0, ipv4 = 0 }}\n'
        f'[[sources]]\nname = "alliance"\nkind = "file"\npath = "{feed}"\n'
        f"[trust]\nreview_min_live = 10\n{extra}",
        encoding="utf-8",
    )
    return str(config)


def test_cli_review_and_quarantine_release(tmp_path, capsys):
    write_bundle(tmp_path / "feed" / "a.json", [*bulk(20), indicator(99, "[ipv4-addr:value = '8.8.8.8']")])
    config = write_cli_config(tmp_path, tmp_path / "feed")
    assert main(["--config", config, "-q", "sync"]) == EXIT_QUARANTINED
    capsys.readouterr()

    assert main(["--config", config, "--json", "quarantine", "list"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert "public-dns-v4" in rows[0]["reason"]
    assert main(["--config", config, "quarantine", "release", str(rows[0]["qid"])]) == 0
    assert "stored now" in capsys.readouterr().out

    write_bundle(tmp_path / "feed" / "b.json", [dict(o, modified="2024-05-03T08:00:00.000Z", revoked=True)
                                               for o in bulk(15)])  # fmt: skip
    assert main(["--config", config, "-q", "sync"]) == EXIT_HELD
    assert "held for review" in capsys.readouterr().out
    assert main(["--config", config, "--json", "review", "list"]) == 0
    reviews = json.loads(capsys.readouterr().out)
    assert reviews[0]["change"]["removed"] == 15
    assert main(["--config", config, "--json", "status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["trust"]["held_reviews"][0]["review"] == reviews[0]["review"]
    assert main(["--config", config, "review", "approve", str(reviews[0]["review"])]) == 0
    capsys.readouterr()
    assert main(["--config", config, "review", "approve", str(reviews[0]["review"])]) == 2
    assert "is applied" in capsys.readouterr().err
