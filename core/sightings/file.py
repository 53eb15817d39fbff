"""Local sightings from CSV or JSON-lines files, such as an export of SIEM matches.

Each row holds a ``value`` that was seen, the ``time`` it was seen (RFC 3339, or seconds since the epoch)
and optional fields: ``type`` (an atom type, guessed when absent), ``kind`` (``seen`` or
``false-positive``), ``count``, ``indicator_id``, and any context such as ``host``, ``user``, ``src`` or
``dest``. Context stays local unless a publish target enables some of its fields.

The cursor records, per file, the byte offset read so far and a digest of the file's first line, so a
file that grows is read from where the last run stopped and a file that was replaced or truncated is read
again from the start (the store drops rows it already holds). Only complete lines are read: a last line
without its newline is left for the next run, as a writer may still be appending to it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..model import SightingRecord
from ..settings import Settings
from ..timeutil import from_epoch, parse_timestamp
from .base import SightingsReader

logger = logging.getLogger(__name__)

KINDS = ("seen", "false-positive")
_HEAD_BYTES = 4096


@dataclass
class FileSightingsSettings(Settings):
    """Settings of ``[[sightings]] kind = "file"``."""

    path: str = ""
    """A file or a folder of files; relative paths are resolved against the configuration file."""
    patterns: list[str] = field(default_factory=lambda: ["*.csv", "*.jsonl", "*.ndjson"])
    """Glob patterns of files to read in a folder; ``.csv`` files are CSV with a header, others JSON lines."""
    value_field: str = "value"
    time_field: str = "time"
    type_field: str = "type"
    kind_field: str = "kind"
    count_field: str = "count"
    indicator_field: str = "indicator_id"
    batch_size: int = 1000
    """Rows stored per transaction with the cursor."""

    def validate(self, where: str) -> None:
        if not self.path:
            raise ConfigError(f"{where}.path is required: the sightings file or folder to read", key=f"{where}.path")
        if self.batch_size < 1:
            raise ConfigError(f"{where}.batch_size must be at least 1, got {self.batch_size}",
                              key=f"{where}.batch_size")  # fmt: skip


class RowError(ValueError):
    """Raised for one row that cannot become a sighting; the reader logs it and goes on."""


class FileSightingsReader(SightingsReader):
    """Reads sightings from CSV or JSON-lines files, resuming each file where the last run stopped."""

    kind = "file"
    settings_class = FileSightingsSettings
    settings: FileSightingsSettings

    def _root(self) -> Path:
        path = Path(self.settings.path).expanduser()
        return path if path.is_absolute() else self.context.base_dir / path

    def describe(self) -> str:
        return f"file sightings reader {self.name!r} reading {self._root()}"

    def files(self) -> list[Path]:
        """Return the files to read, sorted so runs are repeatable.

        Raises:
            FileNotFoundError: the configured path does not exist.
        """
        root = self._root()
        if root.is_file():
            return [root]
        if not root.is_dir():
            raise FileNotFoundError(
                f"file sightings reader {self.name!r}: {root} does not exist; fix 'path' in its settings"
            )
        found: set[Path] = set()
        for pattern in self.settings.patterns:
            found.update(p for p in root.rglob(pattern) if p.is_file())
        return sorted(found)

    def read(self, cursor: str | None) -> Iterator[tuple[list[SightingRecord], str | None]]:
        state: dict[str, dict[str, Any]] = json.loads(cursor) if cursor else {}
        for path in self.files():
            yield from self._read_file(path, state)

    def _read_file(
        self, path: Path, state: dict[str, dict[str, Any]]
    ) -> Iterator[tuple[list[SightingRecord], str | None]]:
        key = str(path)
        with path.open("rb") as handle:
            head = _head_digest(handle)
            mark = state.get(key, {})
            offset = int(mark.get("offset", 0))
            size = path.stat().st_size
            if mark.get("head") != head or offset > size:
                if mark:
                    logger.info("Sightings file %s was replaced or truncated; reading it from the start.", path)
                offset = 0
            if offset == size:
                return

            header = _csv_header(handle) if path.suffix.lower() == ".csv" else None
            handle.seek(offset)
            batch: list[SightingRecord] = []
            bad = 0
            for line in iter(handle.readline, b""):
                if not line.endswith(b"\n"):
                    break
                start = offset
                offset += len(line)
                if start == 0 and header is not None:
                    continue
                try:
                    record = self._record(line, header)
                except RowError as exc:
                    bad += 1
                    if bad <= 10:
                        logger.warning("Sightings file %s, byte %d: skipped a row: %s", path, start, exc)
                    continue
                if record is not None:
                    batch.append(record)
                if len(batch) >= self.settings.batch_size:
                    state[key] = {"offset": offset, "head": head}
                    yield batch, json.dumps(state, sort_keys=True)
                    batch = []

        if bad > 10:
            logger.warning("Sightings file %s: %d rows skipped in all.", path, bad)
        state[key] = {"offset": offset, "head": head}
        yield batch, json.dumps(state, sort_keys=True)

    def _record(self, line: bytes, header: list[str] | None) -> SightingRecord | None:
        text = line.decode("utf-8", errors="replace").strip()
        if not text:
            return None
        row = _csv_row(text, header) if header is not None else _json_row(text)
        settings = self.settings

        value = _text(row.pop(settings.value_field, None))
        if not value:
            raise RowError(f"no {settings.value_field!r} field")
        seen_at = _time(row.pop(settings.time_field, None), settings.time_field)
        atom_type = _text(row.pop(settings.type_field, None)) or None
        kind = _text(row.pop(settings.kind_field, None)) or "seen"
        if kind not in KINDS:
            raise RowError(f"{settings.kind_field} is {kind!r}; expected one of {', '.join(KINDS)}")
        count = _count(row.pop(settings.count_field, None), settings.count_field)
        indicator_id = _text(row.pop(settings.indicator_field, None)) or None
        context = tuple((str(k), _text(v)) for k, v in row.items() if _text(v))

        return SightingRecord(
            source=self.name,
            value=value,
            seen_at=seen_at,
            atom_type=atom_type,
            indicator_id=indicator_id,
            count=count,
            kind=kind,
            context=context,
            external_id=hashlib.sha256(text.encode()).hexdigest()[:32],
        )


def _head_digest(handle: Any) -> str:
    handle.seek(0)
    return hashlib.sha256(handle.readline(_HEAD_BYTES)).hexdigest()[:32]


def _csv_header(handle: Any) -> list[str]:
    handle.seek(0)
    line = handle.readline().decode("utf-8-sig", errors="replace")
    return [name.strip() for name in next(csv.reader([line]), [])]


def _csv_row(text: str, header: list[str]) -> dict[str, Any]:
    values = next(csv.reader([text]), [])
    if len(values) != len(header):
        raise RowError(f"has {len(values)} fields, the header names {len(header)}")
    return dict(zip(header, values, strict=True))


def _json_row(text: str) -> dict[str, Any]:
    try:
        row = json.loads(text)
    except ValueError as exc:
        raise RowError(f"not JSON: {exc}") from None
    if not isinstance(row, dict):
        raise RowError("not a JSON object")
    return row


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).strip()


def _time(value: Any, name: str) -> datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return from_epoch(float(value))
    text = _text(value)
    if not text:
        raise RowError(f"no {name!r} field")
    try:
        return from_epoch(float(text))
    except ValueError:
        pass
    try:
        return parse_timestamp(text)
    except ValueError as exc:
        raise RowError(str(exc)) from None


def _count(value: Any, name: str) -> int:
    text = _text(value)
    if not text:
        return 1
    try:
        count = int(text)
    except ValueError:
        raise RowError(f"{name} must be a whole number, got {text!r}") from None
    if count < 1:
        raise RowError(f"{name} must be at least 1, got {count}")
    return count
