"""Tests of atomic file replacement."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stixbridge.config import build_config
from stixbridge.errors import ConfigError
from stixbridge.sinks import atomic
from stixbridge.sinks.atomic import (
    TEMP_SUFFIX,
    atomic_writer,
    folder_problems,
    make_folder,
    resolve_output_path,
    write_text_atomic,
)


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(TEMP_SUFFIX)]


def test_write_creates_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"

    write_text_atomic(target, "a\r\nb\n")

    assert target.read_bytes() == b"a\r\nb\n"
    assert stat.S_IMODE(target.stat().st_mode) == atomic.DEFAULT_MODE
    assert temp_files(tmp_path) == []


def test_write_keeps_existing_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    os.chmod(target, 0o640)

    write_text_atomic(target, "new")

    assert target.read_text(encoding="utf-8") == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_error_inside_block_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")

    with pytest.raises(RuntimeError, match="stop"), atomic_writer(target) as stream:
        stream.write("half of the new content")
        raise RuntimeError("stop")

    assert target.read_text(encoding="utf-8") == "old"
    assert temp_files(tmp_path) == []


def test_partial_file_never_visible(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")

    with atomic_writer(target) as stream:
        stream.write("new")
        stream.flush()
        assert target.read_text(encoding="utf-8") == "old"
        assert len(temp_files(tmp_path)) == 1

    assert target.read_text(encoding="utf-8") == "new"


def test_failed_rename_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")

    def broken_replace(source: object, destination: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(atomic.os, "replace", broken_replace)
    with pytest.raises(OSError, match="cross-device"):
        write_text_atomic(target, "new")

    assert target.read_text(encoding="utf-8") == "old"
    assert temp_files(tmp_path) == []


def test_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_text_atomic(tmp_path / "absent" / "out.txt", "x")


def test_resolve_output_path(tmp_path: Path) -> None:
    assert resolve_output_path(tmp_path, "out/a") == tmp_path / "out" / "a"
    assert resolve_output_path(tmp_path, "/srv/feed") == Path("/srv/feed")
    assert resolve_output_path(tmp_path, "~/feed") == Path.home() / "feed"


def test_folder_under_a_file_reported(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder", encoding="utf-8")

    problems = folder_problems(blocker / "sub", "splunk-csv sink 'csv'")

    assert problems == [
        f"splunk-csv sink 'csv': {blocker / 'sub'} cannot be a folder because {blocker} is a file; "
        "fix 'path' in its settings"
    ]


def test_missing_folder_is_fine(tmp_path):
    assert folder_problems(tmp_path / "a" / "b", "sink") == []


def test_make_folder_names_path(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder", encoding="utf-8")

    with pytest.raises(ConfigError, match="is a file; fix 'path'"):
        make_folder(blocker, "misp-feed sink 'feed'")


@pytest.mark.parametrize("kind", ["splunk-csv", "ecs-ndjson", "misp-feed"])
def test_file_sinks_preflight_path(tmp_path, kind):
    (tmp_path / "blocker").write_text("x", encoding="utf-8")
    extra = {"org_name": "Example SOC", "org_uuid": "5f3c1d2e-8a9b-4c7d-9e0f-1a2b3c4d5e6f"} if kind == "misp-feed" else {}
    config = build_config(
        {"sinks": [{"name": "out", "kind": kind, "path": "blocker", **extra}]}, base_dir=tmp_path
    )

    (problem,) = config.sinks[0].connector.preflight()

    assert "is a file; fix 'path'" in problem
