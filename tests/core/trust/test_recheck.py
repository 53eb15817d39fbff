"""A changed [[trust.sources]] policy reaches the indicators already stored from that source."""

from datetime import UTC, datetime

from stixbridge.cli import main
from stixbridge.engine import EXIT_OK, EXIT_QUARANTINED, RunSummary
from stixbridge.quarantine import release
from stixbridge.trust.policy import SourcePolicy
from stixbridge.trust.recheck import policy_fingerprint
from tests.core.helpers import indicator, write_bundle
from tests.core.trust.test_engine_trust import MemorySink, make_engine

RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
RED_ID = "indicator--00000000-0000-4000-8000-000000000001"

FEED = [
    indicator(1, "[ipv4-addr:value = '45.95.147.12']", object_marking_refs=[RED], confidence=90),
    indicator(2, "[domain-name:value = 'c2-panel.ru']", object_marking_refs=[AMBER], confidence=40),
    indicator(3, "[domain-name:value = 'loader-cdn.ru' OR ipv4-addr:value = '45.9.148.3']", confidence=80),
]


def policy(**settings):
    return {"sources": [{"name": "alliance", **settings}]}


def run(tmp_path, feed, trust=None, sink=None):
    """Sync once with a fresh engine on the same state file, as a new run with an edited config does."""
    sink = sink or MemorySink()
    engine = make_engine(tmp_path, {"alliance": feed}, trust, sink=sink)
    summary = engine.sync()
    return engine, summary, sink


def test_lower_max_tlp_removes_stored_red_from_sink(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", FEED)
    engine, _, sink = run(tmp_path, feed)
    assert "45.95.147.12" in sink.values()
    engine.store.close()

    engine, summary, sink = run(tmp_path, feed, policy(max_tlp="amber"), sink)

    assert "45.95.147.12" not in sink.values()
    assert "c2-panel.ru" in sink.values()
    assert summary.pushed["memory"]["deleted"] == 1
    change = summary.extra["policy_changes"]["alliance"]
    assert change["withheld"] == 1
    assert change["withheld_by_reason"] == {"TLP:RED is above max_tlp amber": 1}
    state = engine.store.indicator_state(RED_ID)
    assert state is not None
    assert state["state"] == "withheld"
    assert state["withheld_reason"] == "TLP:RED is above max_tlp amber"
    assert engine.trust.status()["withheld_by_policy"] == {"alliance": {"TLP:RED is above max_tlp amber": 1}}
    assert summary.exit_code() == EXIT_OK


def test_raised_max_tlp_brings_red_back(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", FEED)
    engine, _, sink = run(tmp_path, feed)
    engine.store.close()
    engine, _, sink = run(tmp_path, feed, policy(max_tlp="green"), sink)
    assert "45.95.147.12" not in sink.values()
    assert "c2-panel.ru" not in sink.values()
    engine.store.close()

    engine, summary, sink = run(tmp_path, feed, policy(max_tlp="red"), sink)

    assert {"45.95.147.12", "c2-panel.ru"} <= set(sink.values())
    assert summary.extra["policy_changes"]["alliance"]["restored"] == 2
    assert engine.store.indicator_state(RED_ID)["state"] == "live"
    assert engine.trust.status()["withheld_by_policy"] == {}


def test_min_confidence_change_applies_both_ways(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", FEED)
    engine, _, sink = run(tmp_path, feed)
    engine.store.close()

    engine, summary, sink = run(tmp_path, feed, policy(min_confidence=50), sink)
    assert "c2-panel.ru" not in sink.values()
    assert summary.extra["policy_changes"]["alliance"]["withheld_by_reason"] == {
        "confidence below min_confidence 50": 1
    }
    engine.store.close()

    engine, summary, sink = run(tmp_path, feed, policy(min_confidence=40), sink)
    assert "c2-panel.ru" in sink.values()
    assert summary.extra["policy_changes"]["alliance"]["restored"] == 1


def test_narrowed_atom_types_drop_atoms_and_widen_back(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", FEED)
    engine, _, sink = run(tmp_path, feed)
    engine.store.close()

    engine, summary, sink = run(tmp_path, feed, policy(atom_types=["domain"]), sink)
    assert set(sink.values()) == {"c2-panel.ru", "loader-cdn.ru"}
    assert summary.extra["policy_changes"]["alliance"]["withheld_by_reason"] == {
        "atom types not taken from this source": 1
    }
    engine.store.close()

    engine, _, sink = run(tmp_path, feed, policy(), sink)
    assert set(sink.values()) == {"45.95.147.12", "c2-panel.ru", "loader-cdn.ru", "45.9.148.3"}


def test_widened_atom_types_still_pass_guards(tmp_path):
    # 8.8.8.8 was never checked by the guards, because the first pull dropped every ipv4 atom.
    objects = [indicator(5, "[domain-name:value = 'evil-update.ru' OR ipv4-addr:value = '8.8.8.8']")]
    feed = write_bundle(tmp_path / "feed.json", objects)
    engine, _, sink = run(tmp_path, feed, policy(atom_types=["domain"]))
    assert set(sink.values()) == {"evil-update.ru"}
    engine.store.close()

    engine, summary, sink = run(tmp_path, feed, policy(), sink)

    assert set(sink.values()) == {"evil-update.ru"}
    assert summary.quarantined == 1
    assert summary.exit_code() == EXIT_QUARANTINED
    rows = engine.store.quarantine_rows()
    assert [(row["reason_code"], row["object_id"]) for row in rows] == [("guard", objects[0]["id"])]
    engine.store.close()

    # The next run neither checks again nor adds a second row.
    engine, summary, _ = run(tmp_path, feed, policy(), sink)
    assert "policy_changes" not in summary.extra
    assert len(engine.store.quarantine_rows()) == 1


def test_skipped_new_version_is_withheld_and_returns(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", FEED)
    engine, _, sink = run(tmp_path, feed, policy(max_tlp="amber"))
    engine.store.close()
    later = indicator(
        2, "[domain-name:value = 'c2-panel.ru']", object_marking_refs=[RED], modified="2024-05-03T08:00:00.000Z"
    )
    write_bundle(feed, [FEED[1] | later, FEED[2]])

    engine, summary, sink = run(tmp_path, feed, policy(max_tlp="amber"), sink)
    assert "c2-panel.ru" not in sink.values()
    assert summary.pulled["alliance"]["skipped_by_policy"] == 1
    state = engine.store.indicator_state(later["id"])
    assert state["state"] == "withheld"
    assert state["modified"].startswith("2024-05-03")
    engine.store.close()

    engine, _, sink = run(tmp_path, feed, policy(), sink)
    assert sink.values()["c2-panel.ru"].tlp == 4


def test_skipped_at_first_pull_needs_new_pull(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", FEED)
    engine, _, sink = run(tmp_path, feed, policy(max_tlp="amber"))
    # A first pull under the strict policy never stores the RED indicator, so relaxing has nothing to restore.
    assert engine.store.indicator_state(RED_ID) is None
    engine.store.close()

    engine, _, sink = run(tmp_path, feed, sink=sink)
    assert "45.95.147.12" not in sink.values()
    engine.store.close()

    # The file source reads the file again when it changes, and then the indicator is taken.
    feed.write_text(feed.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    engine, _, sink = run(tmp_path, feed, sink=sink)
    assert "45.95.147.12" in sink.values()


def test_withheld_indicator_that_expires_is_gone(tmp_path):
    objects = [indicator(1, "[ipv4-addr:value = '45.95.147.12']", object_marking_refs=[RED],
                         valid_until="2024-06-20T00:00:00.000Z")]  # fmt: skip
    feed = write_bundle(tmp_path / "feed.json", objects)
    engine, _, sink = run(tmp_path, feed)
    engine.store.close()
    engine = make_engine(tmp_path, {"alliance": feed}, policy(max_tlp="amber"), sink=sink)
    engine.clock = lambda: datetime(2024, 6, 21, tzinfo=UTC)
    engine.sync()
    engine.store.close()

    engine = make_engine(tmp_path, {"alliance": feed}, policy(), sink=sink)
    summary = engine.sync()

    # Only the compact expired index remains, so nothing can come back without a newer version.
    assert sink.values() == {}
    assert engine.store.indicator_state(RED_ID)["state"] == "expired"
    assert "policy_changes" not in summary.extra


def test_disabled_source_policy_still_applies(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", FEED)
    engine, _, sink = run(tmp_path, feed)
    engine.store.close()
    engine = make_engine(tmp_path, {"alliance": feed}, policy(max_tlp="amber"), sink=sink)
    engine.config.sources[0].enabled = False

    summary = engine.sync()

    assert "alliance" not in summary.pulled
    assert "45.95.147.12" not in sink.values()


def test_unchanged_policy_is_not_checked_again(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", FEED)
    engine, _, _ = run(tmp_path, feed, policy(max_tlp="amber", weight=0.5))
    assert engine.trust.recheck_policy("alliance", datetime(2024, 6, 16, tzinfo=UTC)) is None
    engine.store.close()

    # Weight and blast-radius limits do not decide what is taken, so changing them checks nothing.
    engine, summary, _ = run(tmp_path, feed, policy(max_tlp="amber", weight=0.9, max_change_share=0.9))
    assert "policy_changes" not in summary.extra


def test_policy_fingerprint_follows_taking_settings():
    base = policy_fingerprint(SourcePolicy(name="a"))
    assert policy_fingerprint(SourcePolicy(name="a", weight=0.2, allow=["cdn"])) == base
    assert policy_fingerprint(SourcePolicy(name="a", max_tlp="amber")) != base
    assert policy_fingerprint(SourcePolicy(name="a", min_confidence=1)) != base
    assert policy_fingerprint(SourcePolicy(name="a", atom_types=["url", "domain"])) == policy_fingerprint(
        SourcePolicy(name="a", atom_types=["domain", "url"])
    )


def test_cli_status_shows_withheld(tmp_path, capsys):
    feed = write_bundle(tmp_path / "feed.json", FEED)
    config = tmp_path / "stixbridge.toml"
    base = (
        '[engine]\nstate = "state.db"\n[engine.lifetimes]\ndefault = 0\nipv4 = 0\ndomain = 0\n\n'
        f'[[sources]]\nname = "alliance"\nkind = "file"\npath = "{feed}"\n'
    )
    config.write_text(base, encoding="utf-8")
    assert main(["-q", "-c", str(config), "sync"]) == EXIT_OK
    config.write_text(base + '\n[[trust.sources]]\nname = "alliance"\nmax_tlp = "amber"\n', encoding="utf-8")

    assert main(["-q", "-c", str(config), "sync"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "withheld_by_reason" in out
    assert main(["-c", str(config), "status"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "withheld_by_policy" in out
    assert "TLP:RED is above max_tlp amber: 1" in out


def test_expiry_window_unchanged_by_recheck(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", FEED)
    engine, _, _ = run(tmp_path, feed)
    before = engine.store.db.execute("SELECT id, expires_at FROM indicators ORDER BY id").fetchall()
    engine.store.close()
    engine, _, _ = run(tmp_path, feed, policy(max_tlp="amber"))
    engine.store.close()
    engine, _, _ = run(tmp_path, feed, policy())
    after = engine.store.db.execute("SELECT id, expires_at FROM indicators ORDER BY id").fetchall()
    assert after == before


def test_indicator_without_text_checks_tlp_only(tmp_path, caplog):
    feed = write_bundle(tmp_path / "feed.json", FEED)
    engine, _, sink = run(tmp_path, feed)
    engine.store.db.execute("UPDATE indicators SET raw = NULL")
    engine.store.close()

    engine, summary, sink = run(tmp_path, feed, policy(max_tlp="amber", atom_types=["domain"]), sink)

    # Without the object text the atom types cannot be worked out again, so the mixed indicator keeps its ipv4.
    assert set(sink.values()) == {"c2-panel.ru", "loader-cdn.ru", "45.9.148.3"}
    assert summary.extra["policy_changes"]["alliance"]["withheld"] == 1
    assert "have no readable object text" in caplog.text
    engine.store.close()

    engine, _, sink = run(tmp_path, feed, policy(), sink)
    assert "45.95.147.12" in sink.values()


def test_release_into_withheld_indicator_waits(tmp_path):
    objects = [indicator(5, "[domain-name:value = 'evil-update.ru' OR ipv4-addr:value = '8.8.4.4']",
                         object_marking_refs=[RED])]  # fmt: skip
    feed = write_bundle(tmp_path / "feed.json", objects)
    engine, _, sink = run(tmp_path, feed)
    engine.store.close()
    engine, _, sink = run(tmp_path, feed, policy(max_tlp="amber"), sink)
    qid = engine.store.quarantine_rows()[0]["qid"]

    message = release(engine, qid)
    engine.push(RunSummary())

    assert "withheld by the trust policy of source alliance" in message
    assert sink.values() == {}
    engine.store.close()
    engine, _, sink = run(tmp_path, feed, policy(), sink)
    assert set(sink.values()) == {"evil-update.ru", "8.8.4.4"}
