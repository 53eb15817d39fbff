"""Atomic file replacement for the file sinks.

A reader of a sink's output (Splunk reading a lookup, ``curl`` posting a bulk file, MISP fetching a feed)
must see either the old file or the new one, never a half-written one. Each write goes to a temporary
file in the target's own folder (so the final rename stays on one file system), is flushed and
fsync'ed, and then replaces the target with :func:`os.replace`, which is atomic on POSIX and Windows.
The folder is fsync'ed afterwards so the rename itself survives a power cut (POSIX only).
"""

from __future__ import annotations

import contextlib
import filecmp
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..errors import ConfigError

logger = logging.getLogger(__name__)

TEMP_SUFFIX = ".stixbridge-tmp"
"""Suffix of temporary files; a crash between writing and renaming leaves one behind with this suffix."""

DEFAULT_MODE = 0o644
"""Permissions of a new file: the SIEM or web server that reads it usually runs as another user."""


@contextlib.contextmanager
def atomic_writer(path: Path, *, newline: str | None = None, keep_if_same: bool = False) -> Iterator[IO[str]]:
    """Open a UTF-8 text stream whose content replaces ``path`` when the ``with`` block ends without error.

    An exception inside the block deletes the temporary file and leaves ``path`` as it was. An existing
    target keeps its permission bits; a new one gets :data:`DEFAULT_MODE`.

    Args:
        path: the file to create or replace; its folder must exist.
        newline: passed to :func:`open`; use ``""`` for the ``csv`` module.
        keep_if_same: compare the written bytes with ``path`` and leave ``path`` untouched (same
            modification time) when they are equal. The comparison reads both files in chunks, so it
            suits files too large to hold in memory.

    Raises:
        OSError: the temporary file could not be written, synced or renamed.
    """
    folder = path.parent
    descriptor, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    temp_path = Path(temp_name)
    try:
        with open(descriptor, "w", encoding="utf-8", newline=newline) as stream:
            yield stream
            stream.flush()
            if keep_if_same and _same_content(temp_path, path):
                temp_path.unlink()
                return
            os.fsync(stream.fileno())
        os.chmod(temp_path, _mode_of(path))
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp_path.unlink()
        raise
    _sync_folder(folder)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8, newlines written as given) in one atomic step.

    Raises:
        OSError: the file could not be written or renamed; ``path`` is unchanged.
    """
    with atomic_writer(path, newline="") as stream:
        stream.write(text)


def folder_problems(folder: Path, owner: str) -> list[str]:
    """Return why files cannot be written in ``folder`` (created if missing), for ``config check``."""
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        return [f"{owner}: {folder} cannot be a folder because {existing} is a file; fix 'path' in its settings"]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"{owner}: this user cannot write in {existing}; fix 'path' in its settings or the permissions"]
    return []


def make_folder(folder: Path, owner: str) -> None:
    """Create ``folder`` and its parents if missing.

    Raises:
        ConfigError: the path names a file, or the folder cannot be created; the message names ``path``.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problems = folder_problems(folder, owner)
        reason = problems[0] if problems else f"{owner}: cannot create {folder} ({exc}); fix 'path' in its settings"
        raise ConfigError(reason) from exc


def resolve_output_path(base_dir: Path, configured: str) -> Path:
    """Return ``configured`` as an absolute path, relative paths taken from the configuration's folder."""
    path = Path(configured).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return path


def _same_content(first: Path, second: Path) -> bool:
    try:
        return filecmp.cmp(first, second, shallow=False)
    except FileNotFoundError:
        return False


def _mode_of(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return DEFAULT_MODE


def _sync_folder(folder: Path) -> None:
    # Windows cannot open a folder for fsync; the rename is still atomic there.
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as exc:
        logger.warning("Could not sync folder %s after a rename: %s; the new file may not survive a power cut.",
                       folder, exc)
    finally:
        os.close(descriptor)
