"""A STIX file or folder as a feed source, so the main job runs on any bundle a user has."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..jsonstream import StreamError, iter_bundle_objects
from ..model import Page, Provenance, RawItem
from ..settings import Settings
from .base import Source

logger = logging.getLogger(__name__)


@dataclass
class FileSourceSettings(Settings):
    """Settings of ``kind = "file"``."""

    path: str = ""
    """A bundle file or a folder; relative paths are resolved against the configuration file."""
    patterns: list[str] = field(default_factory=lambda: ["*.json", "*.stix2", "*.stix"])
    """Glob patterns of files to read in a folder (searched recursively)."""
    page_size: int = 1000
    """Objects per stored page."""

    def validate(self, where: str) -> None:
        from ..errors import ConfigError

        if not self.path:
            raise ConfigError(f"{where}.path is required: the STIX file or folder to read", key=f"{where}.path")
        if self.page_size < 1:
            raise ConfigError(f"{where}.page_size must be at least 1, got {self.page_size}", key=f"{where}.page_size")


class FileSource(Source):
    """Reads STIX 2.0 and 2.1 bundles from a file or a folder of files.

    The cursor records a digest of each file already read completely, so an unchanged file is not read
    again and a changed one is read whole (the store drops versions it already has). A file that is not
    JSON is quarantined as one item with the reason, and the other files are still read.
    """

    kind = "file"
    settings_class = FileSourceSettings
    settings: FileSourceSettings

    def _root(self) -> Path:
        path = Path(self.settings.path).expanduser()
        return path if path.is_absolute() else self.context.base_dir / path

    def preflight(self) -> list[str]:
        problems = super().preflight()
        if not self._root().exists():
            problems.append(f"file source {self.name!r}: {self._root()} does not exist; fix 'path' in its settings")
        return problems

    def describe(self) -> str:
        return f"file source {self.name!r} reading {self._root()}"

    def files(self) -> list[Path]:
        """Return the files this source reads, sorted so runs are repeatable."""
        root = self._root()
        if root.is_file():
            return [root]
        if not root.is_dir():
            raise FileNotFoundError(f"file source {self.name!r}: {root} does not exist; fix 'path' in its settings")
        found: set[Path] = set()
        for pattern in self.settings.patterns:
            found.update(p for p in root.rglob(pattern) if p.is_file())
        return sorted(found)

    def _collection(self, path: Path) -> str:
        """Name a file as a collection: its path below the configured folder, or its name.

        The name travels to sinks that other organisations read (MISP feed events, ECS documents), so it
        never contains the folders above ``path`` of the settings.
        """
        root = self._root()
        if root.is_dir():
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                pass
        return path.name

    def pull(self, cursor: str | None) -> Iterator[Page]:
        done: dict[str, str] = json.loads(cursor) if cursor else {}
        files = self.files()
        logger.info("File source %s: %d files to check.", self.name, len(files))

        for path in files:
            digest = _file_digest(path)
            if done.get(str(path)) == digest:
                continue
            provenance = Provenance(source=self.name, collection=self._collection(path))
            batch: list[RawItem] = []
            for item in self._read(path, provenance):
                batch.append(item)
                if len(batch) >= self.settings.page_size:
                    yield Page(batch)
                    batch = []
            done[str(path)] = digest
            yield Page(batch, cursor=json.dumps(done, sort_keys=True))
        if files:
            logger.info("File source %s: finished.", self.name)

    def _read(self, path: Path, provenance: Provenance) -> Iterator[RawItem]:
        count = 0
        try:
            with path.open(encoding="utf-8-sig") as handle:
                for element in iter_bundle_objects(handle):
                    count += 1
                    size = len(element.text.encode()) if element.text else 0
                    if isinstance(element.value, dict):
                        yield RawItem(element.value, provenance, raw_text=element.text, size=size)
                    else:
                        yield RawItem(
                            None,
                            provenance,
                            raw_text=element.text,
                            error=f"element {count} of {path} is not a JSON object",
                        )
        except (StreamError, UnicodeDecodeError) as exc:
            # Not logged here: the engine logs the quarantined item once, with this reason.
            yield RawItem(
                None,
                provenance,
                raw_text=_head(path),
                error=f"{path} is not a valid STIX bundle after {count} objects: {exc}",
            )
        except OSError as exc:
            logger.error("Cannot read %s: %s", path, exc)
            yield RawItem(None, provenance, error=f"cannot read {path}: {exc}")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _head(path: Path, limit: int = 4096) -> str:
    with path.open("rb") as handle:
        return handle.read(limit).decode("utf-8", errors="replace")
