"""Tests of the Elasticsearch bulk NDJSON sink, run on files in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stixbridge import plugins
from stixbridge.connector import ConnectorContext
from stixbridge.errors import ConfigError
from stixbridge.model import Changes
from stixbridge.settings import build_settings
from stixbridge.sinks import atomic
from stixbridge.sinks.ecs import ecs_document
from stixbridge.sinks.ecs_ndjson import DEFAULT_INDEX, EcsNdjsonSettings, EcsNdjsonSink
from tests.core.sinks.filesink_fixtures import Clock, age_files, build_row, delivered, read_mtimes


def make_sink(context: ConnectorContext, path: str = "bulk", index: str = DEFAULT_INDEX) -> EcsNdjsonSink:
    sink = EcsNdjsonSink("elastic-files", EcsNdjsonSettings(path=path, index=index), context)
    sink.begin()
    return sink


def read_actions(path: Path) -> list[tuple[str, dict, dict | None]]:
    """Parse a bulk file into (action, metadata, document) triples the way Elasticsearch reads it."""
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    lines = text.split("\n")[:-1]
    actions = []
    position = 0
    while position < len(lines):
        ((action, meta),) = json.loads(lines[position]).items()
        position += 1
        document = None
        if action == "index":
            document = json.loads(lines[position])
            position += 1
        actions.append((action, meta, document))
    return actions


def test_push_writes_numbered_bulk_file(context: ConnectorContext, tmp_path: Path, clock: Clock) -> None:
    sink = make_sink(context)
    rows = [build_row("ipv4"), build_row("url"), build_row("sha256")]

    result = sink.push(Changes(upserts=rows))

    assert result.written == [r.key for r in rows]
    assert [p.name for p in (tmp_path / "bulk").iterdir() if not p.name.startswith(".")] == ["bulk-000001.ndjson"]
    actions = read_actions(tmp_path / "bulk" / "bulk-000001.ndjson")
    assert [(a, m) for a, m, _ in actions] == [("index", {"_index": DEFAULT_INDEX, "_id": r.key}) for r in rows]
    assert actions[0][2] == ecs_document(rows[0], clock.now)


def test_deletes_become_delete_actions(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    old, new = build_row("ipv4", "203.0.113.9"), build_row("ipv4", "203.0.113.10")

    result = sink.push(Changes(upserts=[new], deletes=[delivered(old)]))

    assert result.deleted == [old.key]
    assert result.written == [new.key]
    actions = read_actions(tmp_path / "bulk" / "bulk-000001.ndjson")
    assert actions[0] == ("delete", {"_index": DEFAULT_INDEX, "_id": old.key}, None)
    assert actions[1][:2] == ("index", {"_index": DEFAULT_INDEX, "_id": new.key})


def test_push_without_changes_writes_no_file(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    sink.push(Changes(upserts=[build_row("ipv4")]))
    before = age_files(tmp_path / "bulk")

    result = sink.push(Changes())

    assert result.written == []
    assert read_mtimes(tmp_path / "bulk") == before


def test_each_push_gets_next_number(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)

    sink.push(Changes(upserts=[build_row("ipv4")]))
    sink.push(Changes(upserts=[build_row("domain")]))
    make_sink(context).push(Changes(upserts=[build_row("url")]))

    names = sorted(p.name for p in (tmp_path / "bulk").glob("*.ndjson"))
    assert names == ["bulk-000001.ndjson", "bulk-000002.ndjson", "bulk-000003.ndjson"]


def test_numbers_keep_rising_after_files_removed(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    sink.push(Changes(upserts=[build_row("ipv4")]))
    sink.push(Changes(upserts=[build_row("domain")]))
    for posted in (tmp_path / "bulk").glob("*.ndjson"):
        posted.unlink()

    sink.push(Changes(upserts=[build_row("url")]))

    assert [p.name for p in (tmp_path / "bulk").glob("*.ndjson")] == ["bulk-000003.ndjson"]


def test_file_path_names_the_batches(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context, path="out/intel.ndjson")

    sink.push(Changes(upserts=[build_row("ipv4")]))
    sink.push(Changes(upserts=[build_row("url")]))

    assert sorted(p.name for p in (tmp_path / "out").glob("*.ndjson")) == ["intel-000001.ndjson", "intel-000002.ndjson"]
    assert not (tmp_path / "out" / "intel.ndjson").exists()


def test_empty_index_leaves_index_out(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context, index="")
    row = build_row("ipv4")

    sink.push(Changes(upserts=[row], deletes=[delivered(build_row("domain"))]))

    actions = read_actions(tmp_path / "bulk" / "bulk-000001.ndjson")
    assert [m for _, m, _ in actions] == [{"_id": build_row("domain").key}, {"_id": row.key}]


def test_unsupported_types_skipped_and_counted(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    rows = [build_row("sha3-256"), build_row("x509-sha1"), build_row("future-type", "x")]

    result = sink.push(Changes(upserts=rows))

    assert result.written == []
    assert result.skipped == {
        "atom type sha3-256: ECS file.hash has no SHA3 field": 1,
        "atom type x509-sha1: ECS x509 has no certificate hash field": 1,
        "atom type future-type: no ECS field for this type": 1,
    }
    assert list((tmp_path / "bulk").glob("*.ndjson")) == []
    assert not any(sink.accepts(r) for r in rows)
    assert sink.accepts(build_row("ipv4-cidr"))


def test_registry_key_document_per_spelling(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context, index="")
    row = build_row("registry-key", "HKEY_CURRENT_USER\\Software\\Run")

    sink.push(Changes(upserts=[row]))
    sink.push(Changes(deletes=[delivered(row)]))

    written = read_actions(tmp_path / "bulk" / "bulk-000001.ndjson")
    paths = {meta["_id"]: doc["threat"]["indicator"]["registry"]["path"] for _, meta, doc in written if doc}
    assert paths == {row.key: "HKEY_CURRENT_USER\\Software\\Run", f"{row.key}-1": "HKCU\\Software\\Run"}
    removed = read_actions(tmp_path / "bulk" / "bulk-000002.ndjson")
    assert removed == [("delete", {"_id": row.key}, None), ("delete", {"_id": f"{row.key}-1"}, None)]


def test_cidr_document_has_no_ip(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)

    sink.push(Changes(upserts=[build_row("ipv4-cidr", "198.51.100.0/24")]))

    document = read_actions(tmp_path / "bulk" / "bulk-000001.ndjson")[0][2]
    assert document is not None
    assert "ip" not in document["threat"]["indicator"]
    assert document["stixbridge"]["ip_range"] == "198.51.100.0/24"


def test_line_breaks_stay_inside_one_line(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    row = build_row("file-name", "two\nlines.exe", description="a\r\nb\u2028c")

    sink.push(Changes(upserts=[row]))

    path = tmp_path / "bulk" / "bulk-000001.ndjson"
    assert path.read_text(encoding="utf-8").count("\n") == 2
    document = read_actions(path)[0][2]
    assert document is not None
    assert document["threat"]["indicator"]["file"]["name"] == "two\nlines.exe"


def test_keys_are_url_safe(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)

    sink.push(Changes(upserts=[build_row("url", "https://example.com/a/b"), build_row("registry-key")]))

    for _, meta, _ in read_actions(tmp_path / "bulk" / "bulk-000001.ndjson"):
        assert "/" not in meta["_id"]


def test_failed_write_leaves_no_file(context: ConnectorContext, tmp_path: Path, monkeypatch) -> None:
    sink = make_sink(context)
    row, gone = build_row("ipv4"), build_row("domain")

    def broken_replace(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    result = sink.push(Changes(upserts=[row], deletes=[delivered(gone)]))

    assert result.written == []
    assert result.deleted == []
    assert set(result.failed) == {row.key, gone.key}
    assert list((tmp_path / "bulk").iterdir()) == []

    monkeypatch.undo()
    assert sink.push(Changes(upserts=[row])).written == [row.key]
    assert (tmp_path / "bulk" / "bulk-000001.ndjson").exists()


@pytest.mark.parametrize("index", ["Upper", "-leading", "with space", "a/b", "a,b", "_x"])
def test_settings_reject_bad_index(index: str) -> None:
    with pytest.raises(ConfigError, match="invalid index name"):
        build_settings(EcsNdjsonSettings, {"path": "out", "index": index}, "sinks[1]")


def test_settings_require_path() -> None:
    with pytest.raises(ConfigError, match="path is missing"):
        build_settings(EcsNdjsonSettings, {}, "sinks[1]")
    assert build_settings(EcsNdjsonSettings, {"path": "out", "index": ""}, "sinks[1]").index == ""


def test_describe_names_files_and_index(context: ConnectorContext, tmp_path: Path) -> None:
    description = make_sink(context).describe()

    assert str(tmp_path / "bulk" / "bulk-NNNNNN.ndjson") in description
    assert DEFAULT_INDEX in description


def test_entry_point_names_the_sink() -> None:
    assert plugins.load("sink", "ecs-ndjson") is EcsNdjsonSink
