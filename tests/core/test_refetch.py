"""``stixbridge refetch`` and the refetch of expired intel that a sighting triggers."""

import json
from pathlib import Path

import pytest

from stixbridge.cli import main
from stixbridge.connector import ConnectorContext
from stixbridge.engine import RunSummary
from stixbridge.errors import TransientError
from stixbridge.model import Provenance, RawItem
from stixbridge.refetch import FETCHED, INVALID_ID, NO_SOURCE, NOT_SUPPORTED, UNKNOWN_ID, refetch
from stixbridge.settings import Settings
from stixbridge.sources.base import Source
from tests.core.helpers import indicator, write_bundle
from tests.core.sightings.loop_fixtures import make_loop, write_sightings

C2 = "indicator--00000000-0000-4000-8000-000000000001"
NOT_STORED = "indicator--ffffffff-ffff-4fff-bfff-ffffffffffff"
OLD = indicator(1, "[domain-name:value = 'c2.example.com']", valid_until="2024-06-01T00:00:00.000Z")


class ByIdSource(Source):
    """A source that can fetch by id and returns fixed objects, or raises."""

    kind = "by-id"

    def __init__(self, objects=(), error=None):
        super().__init__("alliance", Settings(), ConnectorContext(base_dir=Path(".")))
        self.objects = list(objects)
        self.error = error
        self.requested = []

    def pull(self, cursor):
        return iter(())

    def fetch_by_id(self, object_id, provenance):
        self.requested.append(object_id)
        if self.error is not None:
            raise self.error
        return [RawItem(obj, Provenance("alliance", "renewed")) for obj in self.objects]


def expired_engine(tmp_path):
    engine, _ = make_loop(tmp_path, objects=[OLD])
    engine.pull(RunSummary())
    engine.expire(RunSummary())
    assert engine.store.indicator_state(C2)["state"] == "expired"
    return engine


@pytest.mark.parametrize(
    ("value", "fault"),
    [
        ("garbage", "is not of the form '<object-type>--<UUID>'"),
        ("indicator--not-a-uuid", "is not a UUID in the form 8-4-4-4-12"),
        ("indicator--00000000-0000-0000-0000-00000000000e", "is not an RFC 4122 UUID"),
        ("malware--6ba7b810-9dad-11d1-80b4-00c04fd430c8", "it is not an indicator id"),
    ],
)
def test_refetch_invalid_id_not_looked_up(tmp_path, value, fault):
    engine = expired_engine(tmp_path)
    result = refetch(engine, value)
    assert result["status"] == INVALID_ID
    assert result["found"] is False
    assert f"{value!r} is not a valid indicator id" in result["reason"]
    assert fault in result["reason"]


def test_refetch_unknown_id(tmp_path):
    engine = expired_engine(tmp_path)
    result = refetch(engine, NOT_STORED)
    assert result["status"] == UNKNOWN_ID
    assert f"{NOT_STORED} is neither live nor in the expired index" in result["reason"]


def test_refetch_file_source_not_supported(tmp_path):
    engine = expired_engine(tmp_path)
    result = refetch(engine, C2)
    assert result["status"] == NOT_SUPPORTED
    assert "came from source alliance, which cannot fetch it again" in result["reason"]
    assert "source kind 'file' cannot fetch objects by id" in result["reason"]


def test_refetch_source_no_longer_configured(tmp_path):
    engine = expired_engine(tmp_path)
    engine.config.sources.clear()
    result = refetch(engine, C2)
    assert result["status"] == NO_SOURCE
    assert "no source named 'alliance'" in result["reason"]


def test_refetch_newer_version_revives(tmp_path):
    engine = expired_engine(tmp_path)
    source = ByIdSource([dict(OLD, modified="2024-06-10T00:00:00.000Z", valid_until="2024-12-01T00:00:00.000Z")])
    engine.config.sources[0].connector = source
    result = refetch(engine, C2)
    assert result["status"] == FETCHED
    assert result["found"] is True
    assert result["revived"] == 1
    assert source.requested == [C2]
    assert engine.store.indicator_state(C2)["state"] == "live"


def test_refetch_source_without_object(tmp_path):
    engine = expired_engine(tmp_path)
    engine.config.sources[0].connector = ByIdSource([])
    result = refetch(engine, C2)
    assert result["status"] == FETCHED
    assert result["found"] is False
    assert result["reason"] == "source alliance no longer has it"


def test_refetch_source_error_raised(tmp_path):
    engine = expired_engine(tmp_path)
    engine.config.sources[0].connector = ByIdSource(error=TransientError("connection refused by 127.0.0.1"))
    with pytest.raises(TransientError):
        refetch(engine, C2)


def hit_c2(tmp_path):
    write_sightings(
        tmp_path / "sightings" / "hits.jsonl", [{"value": "c2.example.com", "time": "2024-06-15T11:50:00Z"}]
    )


def test_sighting_refetch_counted_only_when_fetched(tmp_path):
    engine = expired_engine(tmp_path)
    hit_c2(tmp_path)
    summary = RunSummary()
    engine.read_sightings(summary)
    assert summary.extra["sightings"]["refetched"] == 0
    assert summary.extra["sightings"]["unmatched"] == 1
    reason = engine.store.db.execute("SELECT reason FROM sightings").fetchone()[0]
    assert "cannot fetch objects by id" in reason


def test_sighting_refetch_counted_when_served(tmp_path):
    engine = expired_engine(tmp_path)
    engine.config.sources[0].connector = ByIdSource([])
    hit_c2(tmp_path)
    summary = RunSummary()
    engine.read_sightings(summary)
    assert summary.extra["sightings"]["refetched"] == 1
    assert summary.extra["sightings"]["unmatched"] == 1


# -- command line --------------------------------------------------------------------------------------


def cli_config(tmp_path):
    feed = write_bundle(tmp_path / "feed.json", [indicator(1, "[ipv4-addr:value = '198.51.100.1']")])
    path = tmp_path / "stixbridge.toml"
    path.write_text(
        f'[engine]\nstate = "s.db"\n[[sources]]\nname = "a"\nkind = "file"\npath = "{feed}"\n'
        '[[trust.sources]]\nname = "a"\nallow = ["documentation"]\n',
        encoding="utf-8",
    )
    assert main(["--config", str(path), "-q", "sync"]) == 0
    return str(path)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("garbage", "error: 'garbage' is not a valid indicator id"),
        (NOT_STORED, f"error: {NOT_STORED} is neither live nor in the expired index"),
        (C2, f"error: {C2} came from source a, which cannot fetch it again"),
    ],
)
def test_cli_refetch_usage_errors_exit_two(tmp_path, capsys, value, message):
    config = cli_config(tmp_path)
    capsys.readouterr()
    assert main(["--config", config, "refetch", value]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message)
    assert captured.out == ""


def test_cli_refetch_json_keeps_status(tmp_path, capsys):
    config = cli_config(tmp_path)
    capsys.readouterr()
    assert main(["--config", config, "--json", "refetch", C2]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == NOT_SUPPORTED
    assert "cannot fetch objects by id" in captured.err
