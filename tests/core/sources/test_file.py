from pathlib import Path

from stixbridge.connector import ConnectorContext
from stixbridge.settings import build_settings
from stixbridge.sources.file import FileSource, FileSourceSettings
from tests.core.helpers import indicator, write_bundle


def _source(base: Path, path: str) -> FileSource:
    settings = build_settings(FileSourceSettings, {"path": path}, "sources[0] (feed)")
    return FileSource("feed", settings, ConnectorContext(base_dir=base))


def _collections(source: FileSource) -> set[str]:
    return {item.provenance.collection for page in source.pull(None) for item in page.items}


def test_folder_files_named_below_folder(tmp_path):
    write_bundle(tmp_path / "feeds" / "daily" / "a.json", [indicator(1, "[ipv4-addr:value = '198.51.100.1']")])
    write_bundle(tmp_path / "feeds" / "b.json", [indicator(2, "[ipv4-addr:value = '198.51.100.2']")])

    assert _collections(_source(tmp_path, "feeds")) == {"daily/a.json", "b.json"}


def test_single_file_named_by_file_name(tmp_path):
    feed = write_bundle(tmp_path / "private" / "folder" / "feed.json", [indicator(1, "[ipv4-addr:value = '198.51.100.1']")])

    assert _collections(_source(tmp_path, str(feed))) == {"feed.json"}
