import json
import logging
from datetime import UTC, datetime

import pytest

from stixbridge.config import build_config
from stixbridge.connector import ConnectorContext
from stixbridge.errors import ConfigError
from stixbridge.settings import build_settings
from stixbridge.sightings.file import FileSightingsReader, FileSightingsSettings
from stixbridge.store.sqlite import SqliteStore


def reader(tmp_path, **settings):
    built = build_settings(FileSightingsSettings, {"path": "sightings", **settings}, "sightings[0]")
    return FileSightingsReader("local", built, ConnectorContext(base_dir=tmp_path))


def read_all(r, cursor=None):
    records = []
    last = cursor
    for batch, batch_cursor in r.read(cursor):
        records.extend(batch)
        last = batch_cursor
    return records, last


def write_lines(path, rows, mode="w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode, encoding="utf-8") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")


def test_file_reader_reads_json_lines_with_context(tmp_path):
    write_lines(tmp_path / "sightings" / "a.jsonl", [
        {"value": "c2.example.com", "time": "2024-06-15T10:00:00Z", "host": "ws-001", "user": "alice"},
        {"value": "198.51.100.7", "time": 1718445600, "type": "ipv4", "count": 3, "kind": "false-positive"},
    ])  # fmt: skip
    records, cursor = read_all(reader(tmp_path))
    assert [r.value for r in records] == ["c2.example.com", "198.51.100.7"]
    assert records[0].context == (("host", "ws-001"), ("user", "alice"))
    assert records[0].seen_at == datetime(2024, 6, 15, 10, tzinfo=UTC)
    assert records[1].atom_type == "ipv4"
    assert records[1].count == 3
    assert records[1].kind == "false-positive"
    assert records[0].source == "local"
    assert records[0].external_id
    assert cursor is not None


def test_file_reader_reads_csv_with_header(tmp_path):
    write_lines(tmp_path / "sightings" / "hits.csv", [
        "value,time,host,src", "c2.example.com,2024-06-15T10:00:00Z,ws-002,10.0.0.8",
        '"http://dl.example.net/a,b",2024-06-15T10:05:00Z,ws-003,10.0.0.9',
    ])  # fmt: skip
    records, _ = read_all(reader(tmp_path))
    assert [r.value for r in records] == ["c2.example.com", "http://dl.example.net/a,b"]
    assert ("src", "10.0.0.8") in records[0].context


def test_file_reader_resumes_where_it_stopped(tmp_path):
    path = tmp_path / "sightings" / "a.jsonl"
    write_lines(path, [{"value": "a.example.com", "time": "2024-06-15T10:00:00Z"}])
    r = reader(tmp_path)
    first, cursor = read_all(r)
    assert len(first) == 1
    again, cursor = read_all(r, cursor)
    assert again == []

    write_lines(path, [{"value": "b.example.com", "time": "2024-06-15T10:01:00Z"}], mode="a")
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"value": "c.example.com", "ti')
    more, cursor = read_all(r, cursor)
    assert [x.value for x in more] == ["b.example.com"]

    with path.open("a", encoding="utf-8") as handle:
        handle.write('me": "2024-06-15T10:02:00Z"}\n')
    rest, _ = read_all(r, cursor)
    assert [x.value for x in rest] == ["c.example.com"]


def test_file_reader_rereads_replaced_file(tmp_path):
    path = tmp_path / "sightings" / "a.jsonl"
    write_lines(path, [{"value": "a.example.com", "time": "2024-06-15T10:00:00Z"}] * 3)
    r = reader(tmp_path)
    _, cursor = read_all(r)
    write_lines(path, [{"value": "z.example.com", "time": "2024-06-15T11:00:00Z"}])
    records, _ = read_all(r, cursor)
    assert [x.value for x in records] == ["z.example.com"]


def test_file_reader_skips_bad_rows_and_goes_on(tmp_path, caplog):
    write_lines(tmp_path / "sightings" / "a.jsonl", [
        "not json", "[1, 2]", {"time": "2024-06-15T10:00:00Z"}, {"value": "x.example.com", "time": "yesterday"},
        {"value": "x.example.com", "time": "2024-06-15T10:00:00Z", "kind": "expired"},
        {"value": "x.example.com", "time": "2024-06-15T10:00:00Z", "count": 0},
        {"value": "ok.example.com", "time": "2024-06-15T10:00:00Z"},
    ])  # fmt: skip
    with caplog.at_level(logging.WARNING):
        records, _ = read_all(reader(tmp_path))
    assert [r.value for r in records] == ["ok.example.com"]
    assert "no 'value' field" in caplog.text
    assert "invalid timestamp 'yesterday'" in caplog.text
    assert "kind is 'expired'" in caplog.text


def test_file_reader_batches_carry_cursor(tmp_path):
    write_lines(tmp_path / "sightings" / "a.jsonl",
                [{"value": f"h{n}.example.com", "time": "2024-06-15T10:00:00Z"} for n in range(5)])  # fmt: skip
    batches = list(reader(tmp_path, batch_size=2).read(None))
    assert [len(b) for b, _ in batches] == [2, 2, 1]
    assert all(cursor for _, cursor in batches)


def test_file_reader_missing_path_names_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match="fix 'path'"):
        read_all(reader(tmp_path))


def test_file_reader_settings_checked(tmp_path):
    with pytest.raises(ConfigError, match="path is required"):
        build_config({"sightings": [{"kind": "file"}]}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown key 'pth'"):
        build_config({"sightings": [{"kind": "file", "pth": "x"}]}, base_dir=tmp_path)


def test_store_drops_repeated_hits(tmp_path):
    write_lines(tmp_path / "sightings" / "a.jsonl", [
        {"value": "a.example.com", "time": "2024-06-15T10:00:00Z", "host": "ws-1"},
        {"value": "a.example.com", "time": "2024-06-15T10:00:00Z", "host": "ws-1"},
        {"value": "a.example.com", "time": "2024-06-15T10:00:00Z", "host": "ws-2"},
    ])  # fmt: skip
    r = reader(tmp_path)
    with SqliteStore(tmp_path / "state.db") as store:
        new = sum(store.add_sightings(batch, "sightings:local", cursor) for batch, cursor in r.read(None))
        assert new == 2
        # Reading everything again (a lost cursor) adds nothing.
        again = sum(store.add_sightings(batch, "sightings:local", cursor) for batch, cursor in r.read(None))
        assert again == 0
        assert store.count("sightings") == 2
