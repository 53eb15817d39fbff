"""Expiry states at a fixed time, and STIX versions decided per object, through the file source."""

import json
from datetime import UTC, datetime

from stixbridge.config import build_config
from stixbridge.engine import Engine
from tests.core.helpers import indicator, write_bundle

EVALUATED_AT = datetime(2024, 6, 15, tzinfo=UTC)


def _engine(tmp_path, feed, lifetimes):
    config = build_config(
        {
            "engine": {"state": "state.db", "lifetimes": lifetimes},
            "sources": [{"name": "feed", "kind": "file", "path": str(feed)}],
            "trust": {"sources": [{"name": "feed", "allow": ["documentation"]}]},
        },
        base_dir=tmp_path,
    )
    from stixbridge.store.sqlite import SqliteStore

    return Engine(config, SqliteStore(config.state_path), clock=lambda: EVALUATED_AT)


def _states(tmp_path, lifetimes):
    objects = [
        indicator(1, "[domain-name:value = 'no-expiry.example.com']", valid_from="2023-01-10T00:00:00.000Z"),
        indicator(2, "[domain-name:value = 'future-expiry.example.com']", valid_from="2024-05-01T00:00:00.000Z",
                  valid_until="2024-08-01T00:00:00.000Z"),
        indicator(3, "[domain-name:value = 'expired.example.com']", valid_from="2024-01-01T00:00:00.000Z",
                  valid_until="2024-02-01T00:00:00.000Z"),
        indicator(4, "[domain-name:value = 'not-yet-valid.example.com']", valid_from="2024-07-01T00:00:00.000Z"),
    ]
    engine = _engine(tmp_path, write_bundle(tmp_path / "feed" / "b.json", objects), lifetimes)
    engine.sync()
    return engine, [engine.store.indicator_state(o["id"]) for o in objects]


def test_expiry_missing_valid_until_is_not_expired(tmp_path):
    _, (no_expiry, future, expired, pending) = _states(tmp_path, {"domain": 0})
    assert no_expiry["state"] == "live"
    assert no_expiry["expires_at"] is None
    assert future["state"] == "live"
    assert future["expires_at"] == datetime(2024, 8, 1, tzinfo=UTC)
    assert expired["state"] == "expired"
    assert expired["reason"] == "expired:valid_until"
    assert pending["state"] == "pending"


def test_expiry_local_lifetime_is_a_separate_policy(tmp_path):
    engine, (no_expiry, *_rest) = _states(tmp_path, {"domain": 90})
    # 2023-01-10 plus 90 days has passed: the local policy retires it, naming itself as the reason.
    assert no_expiry["state"] == "expired"
    assert no_expiry["reason"] == "expired:lifetime:domain"
    stored = engine.store.expired_entry("indicator--00000000-0000-4000-8000-000000000001")
    assert stored is not None
    assert stored.valid_until is None


def test_version_decided_per_object_in_both_bundle_forms(tmp_path):
    mixed = {
        "type": "bundle",
        "id": "bundle--be49f8c1-aa1e-40dd-8203-f0070b7439ee",
        "objects": [
            indicator(1, "[domain-name:value = 'mixed.example.com']"),
            indicator(2, "[url:value = 'http://mixed.example.com/gate.php']", spec=None),
        ],
    }
    old_style = {
        "type": "bundle",
        "id": "bundle--a581bec5-6d2e-4d68-a64b-e13cf69f8188",
        "spec_version": "2.1",
        "objects": [indicator(3, "[ipv4-addr:value = '203.0.113.61']", spec=None, labels=["anomalous-activity", "example-feed"])],
    }
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "a.json").write_text(json.dumps(mixed), encoding="utf-8")
    (feed / "b.json").write_text(json.dumps(old_style), encoding="utf-8")
    engine = _engine(tmp_path, feed, {"default": 0, "domain": 0, "url": 0, "ipv4": 0})
    summary = engine.sync()
    assert summary.quarantined == 0
    versions = dict(engine.store.db.execute("SELECT id, spec_version FROM indicators").fetchall())
    assert versions == {
        "indicator--00000000-0000-4000-8000-000000000001": "2.1",
        "indicator--00000000-0000-4000-8000-000000000002": "2.0",
        "indicator--00000000-0000-4000-8000-000000000003": "2.0",
    }
    labels = engine.store.db.execute("SELECT labels FROM indicators WHERE id LIKE '%0003'").fetchone()[0]
    assert json.loads(labels) == ["anomalous-activity", "example-feed"]
