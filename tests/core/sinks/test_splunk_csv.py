"""Tests of the Splunk ES lookup CSV sink, run on files in a temporary folder."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from stixbridge import plugins
from stixbridge.connector import ConnectorContext
from stixbridge.errors import ConfigError
from stixbridge.model import Changes
from stixbridge.settings import build_settings
from stixbridge.sinks import atomic
from stixbridge.sinks.mapping import ES_COLLECTION_FIELDS, ES_COLLECTIONS
from stixbridge.sinks.splunk_csv import SplunkCsvSettings, SplunkCsvSink
from tests.core.sinks.filesink_fixtures import (
    ATOM_EXAMPLES,
    MODIFIED,
    VALID_FROM,
    age_files,
    build_row,
    delivered,
    read_mtimes,
)


def make_sink(context: ConnectorContext, path: str = "lookups") -> SplunkCsvSink:
    sink = SplunkCsvSink("lookups", SplunkCsvSettings(path=path), context)
    sink.begin()
    return sink


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def rows_by_key(path: Path) -> dict[str, dict[str, str]]:
    return {row["_key"]: row for row in read_rows(path)}


def test_push_writes_each_type_to_its_collection(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    rows = [build_row(t) for t in ES_COLLECTIONS]

    result = sink.push(Changes(upserts=rows))

    assert sorted(result.written) == sorted(r.key for r in rows)
    assert result.failed == {}
    assert result.skipped == {}
    for row in rows:
        collection, field = ES_COLLECTIONS[row.type]
        written = rows_by_key(tmp_path / "lookups" / f"{collection}.csv")[row.key]
        assert written[field] == row.value.lower() or row.type == "url"
        assert written["threat_key"] == row.indicator_id


def test_push_creates_every_collection_file(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)

    sink.push(Changes(upserts=[build_row("ipv4")]))

    names = sorted(p.name for p in (tmp_path / "lookups").iterdir())
    assert names == sorted(f"{c}.csv" for c in ES_COLLECTION_FIELDS)
    with open(tmp_path / "lookups" / "user_intel.csv", encoding="utf-8") as stream:
        assert stream.read() == "_key,threat_key,time,description,weight,user,valid_until\n"


def test_header_follows_es_columns(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)

    sink.push(Changes(upserts=[build_row("domain")]))

    with open(tmp_path / "lookups" / "ip_intel.csv", encoding="utf-8") as stream:
        header = stream.readline()
    assert header == "_key,threat_key,time,description,weight,ip,domain,valid_until\n"


def test_common_fields(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    row = build_row("ipv4", valid_until=VALID_FROM.replace(year=2025))

    sink.push(Changes(upserts=[row]))

    written = rows_by_key(tmp_path / "lookups" / "ip_intel.csv")[row.key]
    assert written["_key"] == row.key
    assert written["threat_key"] == "indicator--4e5d0daf-60fb-4f23-ade8-be9703fa278e"
    assert written["time"] == str(int(VALID_FROM.timestamp()))
    assert written["weight"] == "70"
    assert written["description"] == "Phishing infrastructure: Seen in a phishing campaign"
    assert written["valid_until"] == str(int(VALID_FROM.replace(year=2025).timestamp()))
    assert written["domain"] == ""


def test_time_falls_back_to_modified(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    row = build_row("ipv4", valid_from=None)

    sink.push(Changes(upserts=[row]))

    assert rows_by_key(tmp_path / "lookups" / "ip_intel.csv")[row.key]["time"] == str(int(MODIFIED.timestamp()))


@pytest.mark.parametrize(("weight", "expected"), [(0, "1"), (1, "1"), (100, "100"), (250, "100")])
def test_weight_clamped_to_es_range(context: ConnectorContext, tmp_path: Path, weight: int, expected: str) -> None:
    sink = make_sink(context)
    row = build_row("ipv4", weight=weight)

    sink.push(Changes(upserts=[row]))

    assert rows_by_key(tmp_path / "lookups" / "ip_intel.csv")[row.key]["weight"] == expected


def test_keys_are_url_safe(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    rows = [build_row("url", "https://example.com/a/b?c=d/e"), build_row("registry-key"), build_row("ipv4-cidr")]

    sink.push(Changes(upserts=rows))

    for collection in ("http_intel", "registry_intel", "ip_intel"):
        for key in rows_by_key(tmp_path / "lookups" / f"{collection}.csv"):
            assert "/" not in key
            assert key.startswith("stixbridge-")


@pytest.mark.parametrize(
    ("atom_type", "value", "expected"),
    [
        ("domain", "CDN.Example.NET", "cdn.example.net"),
        ("sha256", ATOM_EXAMPLES["sha256"].upper(), ATOM_EXAMPLES["sha256"]),
        ("ipv6", "2001:DB8::5", "2001:db8::5"),
        ("ipv6-cidr", "2001:DB8:ABCD::/48", "2001:db8:abcd::/48"),
        ("email", "Billing@Example.com", "billing@example.com"),
        ("registry-key", "HKEY_LOCAL_MACHINE\\Software\\Run", "hkey_local_machine\\software\\run"),
        ("file-name", "Invoice.EXE", "invoice.exe"),
        ("url", "HTTPS://Login.Example.COM/Reset?Token=AbC", "https://login.example.com/Reset?Token=AbC"),
        ("url", "https://User:Pw@Example.COM/", "https://User:Pw@example.com/"),
    ],
)
def test_lower_casing(context: ConnectorContext, tmp_path: Path, atom_type: str, value: str, expected: str) -> None:
    sink = make_sink(context)
    row = build_row(atom_type, value)

    sink.push(Changes(upserts=[row]))

    collection, field = ES_COLLECTIONS[atom_type]
    assert rows_by_key(tmp_path / "lookups" / f"{collection}.csv")[row.key][field] == expected


def test_registry_key_row_per_hive_spelling(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    row = build_row("registry-key", "HKEY_LOCAL_MACHINE\\Software\\Evil")

    result = sink.push(Changes(upserts=[row]))

    assert result.written == [row.key]
    path = tmp_path / "lookups" / "registry_intel.csv"
    written = {r["_key"]: r["registry_path"] for r in read_rows(path)}
    assert written == {
        row.key: "hkey_local_machine\\software\\evil",
        f"{row.key}-1": "hklm\\software\\evil",
        f"{row.key}-2": "\\registry\\machine\\software\\evil",
    }

    result = sink.push(Changes(deletes=[delivered(row)]))

    assert result.deleted == [row.key]
    assert read_rows(path) == []


def test_cidr_goes_to_ip_field_with_prefix(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    host = build_row("ipv4", "203.0.113.9")
    network = build_row("ipv4-cidr", "198.51.100.0/24")

    sink.push(Changes(upserts=[host, network]))

    written = rows_by_key(tmp_path / "lookups" / "ip_intel.csv")
    assert written[network.key]["ip"] == "198.51.100.0/24"
    assert written[host.key]["ip"] == "203.0.113.9"


def test_push_without_changes_writes_nothing(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    rows = [build_row("ipv4"), build_row("url")]
    sink.push(Changes(upserts=rows))
    before = age_files(tmp_path / "lookups")

    result = sink.push(Changes())

    assert result.written == []
    assert result.deleted == []
    assert read_mtimes(tmp_path / "lookups") == before


def test_same_rows_again_rewrite_nothing(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    rows = [build_row("ipv4"), build_row("url")]
    sink.push(Changes(upserts=rows))
    before = age_files(tmp_path / "lookups")

    second = make_sink(context)
    result = second.push(Changes(upserts=rows))

    assert sorted(result.written) == sorted(r.key for r in rows)
    assert read_mtimes(tmp_path / "lookups") == before


def test_changed_row_rewrites_only_its_file(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    ip, url = build_row("ipv4"), build_row("url")
    sink.push(Changes(upserts=[ip, url]))
    before = age_files(tmp_path / "lookups")

    sink.push(Changes(upserts=[build_row("ipv4", weight=95, digest="digest-2")]))

    after = read_mtimes(tmp_path / "lookups")
    assert after.pop("ip_intel.csv") != before.pop("ip_intel.csv")
    assert after == before
    assert rows_by_key(tmp_path / "lookups" / "ip_intel.csv")[ip.key]["weight"] == "95"


def test_deletes_remove_rows(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    keep, drop = build_row("ipv4", "203.0.113.9"), build_row("ipv4", "203.0.113.10")
    sink.push(Changes(upserts=[keep, drop]))

    result = make_sink(context).push(Changes(deletes=[delivered(drop)]))

    assert result.deleted == [drop.key]
    assert list(rows_by_key(tmp_path / "lookups" / "ip_intel.csv")) == [keep.key]


def test_delete_of_absent_key_counts_as_deleted(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    sink.push(Changes(upserts=[build_row("ipv4")]))
    before = age_files(tmp_path / "lookups")
    absent = build_row("mutex")

    result = sink.push(Changes(deletes=[delivered(absent), delivered(build_row("domain"))]))

    assert sorted(result.deleted) == sorted([absent.key, build_row("domain").key])
    assert read_mtimes(tmp_path / "lookups") == before


def test_unsupported_types_skipped_and_counted(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    rows = [build_row("mutex"), build_row("as-number"), build_row("ssdeep"), build_row("tlsh"),
            build_row("x509-sha256"), build_row("x509-sha1"), build_row("future-type", "x")]

    result = sink.push(Changes(upserts=rows))

    assert result.written == []
    assert sum(result.skipped.values()) == 7
    assert result.skipped["atom type mutex: ES has no collection for mutexes"] == 1
    assert result.skipped["atom type future-type: no Splunk ES field for this type"] == 1
    assert not (tmp_path / "lookups" / "ip_intel.csv").exists()
    for row in rows:
        assert not sink.accepts(row)
    assert sink.accepts(build_row("ipv4-cidr"))


def test_csv_escaping_round_trips(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    tricky = 'a,"b" c.exe'
    row = build_row("file-name", tricky, name='Dropper, "stage 1"', description="line one\nline two\r\nthree")

    sink.push(Changes(upserts=[row]))

    path = tmp_path / "lookups" / "file_intel.csv"
    written = rows_by_key(path)[row.key]
    assert written["file_name"] == tricky
    assert written["description"] == 'Dropper, "stage 1": line one line two three'
    raw = path.read_text(encoding="utf-8")
    assert '"a,""b"" c.exe"' in raw
    assert raw.count("\n") == 2
    assert "\r" not in raw


def test_value_with_line_break_skipped(context: ConnectorContext) -> None:
    sink = make_sink(context)
    row = build_row("file-name", "two\nlines.exe")

    result = sink.push(Changes(upserts=[row]))

    assert result.written == []
    assert result.skipped == {"value contains a line break, which Splunk reads as a multivalue field": 1}
    assert not sink.accepts(row)


def test_long_description_truncated(context: ConnectorContext, tmp_path: Path) -> None:
    sink = make_sink(context)
    row = build_row("ipv4", name="", description="x" * 5000)

    sink.push(Changes(upserts=[row]))

    description = rows_by_key(tmp_path / "lookups" / "ip_intel.csv")[row.key]["description"]
    assert len(description) == 2000
    assert description.endswith("…")


def test_failed_write_keeps_old_file(context: ConnectorContext, tmp_path: Path, monkeypatch) -> None:
    sink = make_sink(context)
    first = build_row("ipv4", "203.0.113.9")
    sink.push(Changes(upserts=[first]))
    path = tmp_path / "lookups" / "ip_intel.csv"
    old_text = path.read_text(encoding="utf-8")

    def broken_fsync(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", broken_fsync)
    second = build_row("ipv4", "203.0.113.10")
    result = sink.push(Changes(upserts=[second], deletes=[delivered(first)]))

    assert result.written == []
    assert result.deleted == []
    assert set(result.failed) == {first.key, second.key}
    assert "No space left on device" in result.failed[second.key]
    assert path.read_text(encoding="utf-8") == old_text
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(atomic.TEMP_SUFFIX)] == []

    monkeypatch.undo()
    retry = sink.push(Changes(upserts=[second], deletes=[delivered(first)]))
    assert retry.failed == {}
    assert list(rows_by_key(path)) == [second.key]


def test_failure_in_one_file_spares_others(context: ConnectorContext, tmp_path: Path, monkeypatch) -> None:
    sink = make_sink(context)
    ip, url = build_row("ipv4"), build_row("url")
    real_replace = atomic.os.replace

    def replace_except_http(source: str, target: Path) -> None:
        if Path(target).name == "http_intel.csv":
            raise PermissionError(13, "Permission denied")
        real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", replace_except_http)
    result = sink.push(Changes(upserts=[ip, url]))

    assert result.written == [ip.key]
    assert list(result.failed) == [url.key]
    assert list(rows_by_key(tmp_path / "lookups" / "ip_intel.csv")) == [ip.key]


def test_foreign_rows_and_columns_kept(context: ConnectorContext, tmp_path: Path) -> None:
    folder = tmp_path / "lookups"
    folder.mkdir()
    (folder / "ip_intel.csv").write_text(
        "_key,threat_key,time,description,weight,ip,domain,valid_until,analyst\n"
        "manual|192.0.2.1,manual,1700000000,added by hand,90,192.0.2.1,,,alice\n"
        ",,1700000000,no key,50,192.0.2.2,,,bob\n",
        encoding="utf-8",
    )
    sink = make_sink(context)
    row = build_row("ipv4")

    sink.push(Changes(upserts=[row]))

    written = read_rows(folder / "ip_intel.csv")
    assert [r["_key"] for r in written] == ["manual|192.0.2.1", row.key, ""]
    assert written[0]["analyst"] == "alice"
    assert written[2]["ip"] == "192.0.2.2"


def test_file_without_key_column_rejected(context: ConnectorContext, tmp_path: Path) -> None:
    folder = tmp_path / "lookups"
    folder.mkdir()
    (folder / "ip_intel.csv").write_text("ip,comment\n192.0.2.1,someone else's lookup\n", encoding="utf-8")
    sink = make_sink(context)

    with pytest.raises(ConfigError, match="has no _key column"):
        sink.push(Changes(upserts=[build_row("ipv4")]))


def test_absolute_path_used_as_is(context: ConnectorContext, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "lookups"
    sink = make_sink(context, str(target))

    sink.push(Changes(upserts=[build_row("ipv4")]))

    assert (target / "ip_intel.csv").exists()
    assert str(target) in sink.describe()


def test_settings_require_path() -> None:
    with pytest.raises(ConfigError, match="path is missing"):
        build_settings(SplunkCsvSettings, {}, "sinks[0]")
    with pytest.raises(ConfigError, match="unknown key 'folder'"):
        build_settings(SplunkCsvSettings, {"folder": "x"}, "sinks[0]")
    assert build_settings(SplunkCsvSettings, {"path": "out"}, "sinks[0]").path == "out"


def test_entry_point_names_the_sink() -> None:
    assert plugins.load("sink", "splunk-csv") is SplunkCsvSink


def test_rows_merged_in_key_order(context: ConnectorContext, tmp_path: Path) -> None:
    rows = [build_row("ipv4", f"203.0.113.{i}") for i in range(1, 41)]
    sink = make_sink(context)
    for start in range(0, 40, 7):
        sink.push(Changes(upserts=rows[start:start + 7]))

    make_sink(context).push(Changes(upserts=[build_row("ipv4", "203.0.113.5", weight=99, digest="d2")],
                                    deletes=[delivered(rows[0]), delivered(rows[39])]))

    written = read_rows(tmp_path / "lookups" / "ip_intel.csv")
    keys = [r["_key"] for r in written]
    assert keys == sorted(r.key for r in rows[1:39])
    assert rows_by_key(tmp_path / "lookups" / "ip_intel.csv")[rows[4].key]["weight"] == "99"


def test_unsorted_file_gets_no_duplicates(context: ConnectorContext, tmp_path: Path) -> None:
    folder = tmp_path / "lookups"
    folder.mkdir()
    first, second = sorted([build_row("ipv4", "203.0.113.1"), build_row("ipv4", "203.0.113.2")], key=lambda r: r.key)
    (folder / "ip_intel.csv").write_text(
        "_key,threat_key,time,description,weight,ip,domain,valid_until\n"
        f"{second.key},x,1,old,1,{second.value},,\n"
        f"{first.key},x,1,old,1,{first.value},,\n",
        encoding="utf-8",
    )

    make_sink(context).push(Changes(upserts=[first, second]))

    written = read_rows(folder / "ip_intel.csv")
    assert sorted(r["_key"] for r in written) == [first.key, second.key]
    assert {r["description"] for r in written} == {"Phishing infrastructure: Seen in a phishing campaign"}


def test_unreadable_file_rejected(context: ConnectorContext, tmp_path: Path) -> None:
    folder = tmp_path / "lookups"
    folder.mkdir()
    path = folder / "ip_intel.csv"
    path.write_bytes(b"_key,ip\nstixbridge-1,\xff\xfe\n")

    with pytest.raises(ConfigError, match="cannot read Splunk lookup"):
        make_sink(context).push(Changes(upserts=[build_row("ipv4")]))

    assert path.read_bytes() == b"_key,ip\nstixbridge-1,\xff\xfe\n"
    assert [p.name for p in folder.iterdir()] == ["ip_intel.csv"]
