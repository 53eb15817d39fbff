import json
from datetime import timedelta

import pytest

from stixbridge.sightings.stix import Window, marking_object, observed_objects, opinion_object, sighting_object
from stixbridge.tlp import Tlp
from tests.core.sightings.loop_fixtures import NOW, make_loop, write_sightings

stix2validator = pytest.importorskip("stix2validator")


def validate(obj):
    options = stix2validator.ValidationOptions(version="2.1")
    result = stix2validator.validate_instance(obj, options)
    return [str(error) for error in result.errors]


def test_every_published_object_passes_the_oasis_validator(tmp_path):
    sharing = {"targets": [{"name": "alliance-taxii", "max_tlp": "amber", "observed_fields": ["src", "host", "user"]}]}
    engine, (target,) = make_loop(tmp_path, sharing=sharing)
    when = (NOW - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_sightings(tmp_path / "sightings" / "hits.jsonl", [
        {"value": "c2.example.com", "time": when, "src": "10.1.2.3", "host": "ws-001.corp.example", "user": "alice"},
        {"value": "198.51.100.7", "time": when, "src": "2001:db8::5"},
        {"value": "amber.example.com", "time": when, "host": "10.1.2.4"},
        {"value": "http://dl.example.net/a.bin", "time": when, "kind": "false-positive"},
    ])  # fmt: skip
    engine.sync()

    published = target.sent()
    types = {obj["type"] for obj in published}
    assert types >= {"identity", "marking-definition", "sighting", "opinion", "observed-data", "ipv4-addr",
                     "ipv6-addr", "domain-name", "user-account"}  # fmt: skip
    for obj in published:
        assert validate(obj) == [], obj["id"]

    bundle = {"type": "bundle", "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d", "objects": published}
    results = stix2validator.validate_string(json.dumps(bundle), stix2validator.ValidationOptions(version="2.1"))
    assert results.is_valid


@pytest.mark.parametrize("level", [Tlp.CLEAR, Tlp.GREEN, Tlp.AMBER, Tlp.AMBER_STRICT, Tlp.RED])
def test_objects_of_every_level_are_valid(level):
    window = Window(
        object_id="sighting--8c9d2a3e-5f31-5d0e-9a55-4a4f1c0f3e21",
        object_type="sighting",
        indicator_id="indicator--00000000-0000-4000-8000-000000000001",
        window_start=NOW.timestamp() - 3600,
        tlp=int(level),
        count=1_000_000_001,
        first_seen=NOW.timestamp() - 60,
        last_seen=NOW.timestamp() - 60,
        context=(("src", "192.0.2.9"), ("user", "bob"), ("url", "http://x.example.com/")),
        created_ms=int(NOW.timestamp() * 1000),
        modified_ms=int(NOW.timestamp() * 1000) + 1,
    )
    identity = "identity--1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b"
    observed = observed_objects(window, ["src", "user", "url"], identity, level, "t")
    sighting = sighting_object(window, identity, level, observed[-1]["id"])
    assert sighting["count"] == 999_999_999
    opinion = opinion_object(
        Window(**{**window.__dict__, "object_id": "opinion--8c9d2a3e-5f31-5d0e-9a55-4a4f1c0f3e21"}), identity, level
    )
    for obj in [marking_object(level), sighting, opinion, *observed]:
        assert validate(obj) == [], obj["id"]
