"""CSV lookups shaped like Splunk Enterprise Security's threat-intelligence collections.

One file per collection (``ip_intel.csv``, ``http_intel.csv``...) in the configured folder, with the
columns ES's own lookups use (:data:`~stixbridge.sinks.mapping.ES_COLLECTION_FIELDS`), so a lookup
definition or ES's "Local ... Intel" upload can read them as they are.

The files are the sink's state. The engine passes only the rows that changed, so the sink reads each
file it touches once, applies the changes and replaces the file atomically. That happens before
:meth:`push` returns, so a key reported as written is on disk. A file whose rows did not change is
not rewritten.

Splunk's CSV rules, as this sink writes them: UTF-8 without a byte-order mark, a header row, ``\\n``
line ends, and fields quoted with ``"`` (a quote inside doubled) when they contain a comma, a quote
or a line break. Splunk reads a quoted line break as a separator between the values of a multivalue
field, so descriptions are folded to one line and a value containing a line break is skipped.

A registry key gets one row per hive spelling (``HKEY_LOCAL_MACHINE\\``, ``HKLM\\``,
``\\REGISTRY\\MACHINE\\``), because a lookup matches the spelling exactly. See
:func:`~stixbridge.sinks.mapping.spelled_keys`.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..connector import ConnectorContext
from ..errors import ConfigError
from ..model import AtomRow, Changes, DeliveredRow, PushResult
from ..settings import Settings
from .atomic import atomic_writer, resolve_output_path
from .base import Sink
from .mapping import (
    ES_COLLECTION_FIELDS,
    ES_COLLECTIONS,
    ES_COMMON_FIELDS,
    ES_EXTRA_FIELDS,
    ES_UNSUPPORTED,
    spelled_keys,
    splunk_value,
)

logger = logging.getLogger(__name__)

MAX_DESCRIPTION = 2000
"""Characters of description kept per row; long texts slow every lookup that reads the file."""


@dataclass
class SplunkCsvSettings(Settings):
    """Settings of the ``splunk-csv`` sink."""

    path: str = ""
    """Folder that receives the lookup files; relative paths start at the configuration file's folder."""

    def validate(self, where: str) -> None:
        if not self.path.strip():
            raise ConfigError(
                f"{where}.path is missing: name the folder for the Splunk lookup files", key=f"{where}.path"
            )


@dataclass
class _Table:
    """The rows of one lookup file, keyed by ``_key``."""

    columns: list[str]
    rows: dict[str, dict[str, str]] = field(default_factory=dict)
    unkeyed: list[dict[str, str]] = field(default_factory=list)
    """Rows without a ``_key`` (added by hand), kept as they are."""
    dirty: bool = False


class SplunkCsvSink(Sink):
    """Writes live atoms into ES-shaped CSV lookups, one file per ES collection."""

    kind: ClassVar[str] = "splunk-csv"
    settings_class: ClassVar[type[Settings]] = SplunkCsvSettings
    # Each push rewrites the files it touches, so fewer, larger batches mean fewer rewrites.
    batch_size: ClassVar[int] = 100_000

    def __init__(self, name: str, settings: Settings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        assert isinstance(settings, SplunkCsvSettings)
        self.folder = resolve_output_path(context.base_dir, settings.path)
        self._tables: dict[str, _Table] = {}

    def describe(self) -> str:
        return f"splunk-csv {self.name!r}: Splunk ES threat-intelligence lookups in {self.folder}"

    def accepts(self, row: AtomRow) -> bool:
        return _skip_reason(row) is None

    def begin(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        # Re-read the files on every run: someone may have edited or replaced them in between.
        self._tables.clear()

    def push(self, changes: Changes) -> PushResult:
        result = PushResult()
        if not changes:
            return result
        self.folder.mkdir(parents=True, exist_ok=True)

        written: dict[str, list[str]] = {}
        skipped: Counter[str] = Counter()
        for row in changes.upserts:
            reason = _skip_reason(row)
            if reason is not None:
                skipped[reason] += 1
                continue
            collection, value_field = ES_COLLECTIONS[row.type]
            for key, spelling in spelled_keys(row.key, row.type, row.value):
                self._upsert(collection, key, _csv_row(row, key, value_field, spelling))
            written.setdefault(collection, []).append(row.key)

        deleted: dict[str, list[str]] = {}
        unknown_deletes: list[str] = []
        for delivered in changes.deletes:
            found_in = self._delete(delivered)
            if found_in is None:
                unknown_deletes.append(delivered.key)
            else:
                deleted.setdefault(found_in, []).append(delivered.key)

        self._write_tables(written, deleted, result)
        if result.written or result.deleted:
            self._create_missing_files()
        # A key found in no file is already absent, which is what a delete asks for.
        result.deleted.extend(unknown_deletes)
        result.skipped.update(skipped)
        return result

    def _table(self, collection: str) -> _Table:
        table = self._tables.get(collection)
        if table is None:
            table = _read_table(self.folder / f"{collection}.csv", collection)
            self._tables[collection] = table
        return table

    def _upsert(self, collection: str, key: str, values: dict[str, str]) -> None:
        table = self._table(collection)
        existing = table.rows.get(key)
        # Columns someone added keep their values; every column of ours is set, empty when unused.
        merged = {column: (existing or {}).get(column, "") for column in table.columns}
        merged.update({column: values.get(column, "") for column in _columns(collection)})
        if existing is None or merged != {column: existing.get(column, "") for column in table.columns}:
            table.rows[key] = merged
            table.dirty = True

    def _delete(self, delivered: DeliveredRow) -> str | None:
        # The delivered type names the file; a key from an older mapping is looked for in every file.
        if delivered.type in ES_COLLECTIONS:
            candidates = [ES_COLLECTIONS[delivered.type][0]]
        else:
            candidates = list(ES_COLLECTION_FIELDS)
        keys = [key for key, _ in spelled_keys(delivered.key, delivered.type, delivered.value)]
        for collection in candidates:
            if not (self.folder / f"{collection}.csv").exists() and collection not in self._tables:
                continue
            table = self._table(collection)
            found = [key for key in keys if key in table.rows]
            for key in found:
                del table.rows[key]
            if found:
                table.dirty = True
                return collection
        return None

    def _create_missing_files(self) -> None:
        # Every lookup definition needs its file, even while its collection has no rows.
        for collection in ES_COLLECTION_FIELDS:
            path = self.folder / f"{collection}.csv"
            if path.exists():
                continue
            try:
                _write_table(path, _Table(columns=_columns(collection)))
            except OSError as exc:
                logger.warning("Creating empty Splunk lookup %s failed: %s; lookups that name it will fail.", path, exc)

    def _write_tables(self, written: dict[str, list[str]], deleted: dict[str, list[str]], result: PushResult) -> None:
        for collection in sorted(set(written) | set(deleted)):
            table = self._tables[collection]
            path = self.folder / f"{collection}.csv"
            if table.dirty or not path.exists():
                try:
                    _write_table(path, table)
                except OSError as exc:
                    logger.error("Writing Splunk lookup %s failed: %s; its changes will be sent again next run.",
                                 path, exc)
                    # Forget the unsaved rows so the next push starts again from the file on disk.
                    del self._tables[collection]
                    reason = f"writing {path} failed: {exc}"
                    for key in written.get(collection, []) + deleted.get(collection, []):
                        result.failed[key] = reason
                    continue
                table.dirty = False
                logger.info("Wrote Splunk lookup %s: %d rows.", path, len(table.rows) + len(table.unkeyed))
            result.written.extend(written.get(collection, []))
            result.deleted.extend(deleted.get(collection, []))


def _skip_reason(row: AtomRow) -> str | None:
    if row.type not in ES_COLLECTIONS:
        why = ES_UNSUPPORTED.get(row.type, "no Splunk ES field for this type")
        return f"atom type {row.type}: {why}"
    if "\n" in row.value or "\r" in row.value:
        return "value contains a line break, which Splunk reads as a multivalue field"
    return None


def _columns(collection: str) -> list[str]:
    return [*ES_COMMON_FIELDS, *ES_COLLECTION_FIELDS[collection], *ES_EXTRA_FIELDS]


def _csv_row(row: AtomRow, key: str, value_field: str, value: str) -> dict[str, str]:
    moment = row.valid_from or row.modified
    return {
        "_key": key,
        "threat_key": row.indicator_id,
        "time": str(int(moment.timestamp())),
        "description": _description(row),
        "weight": str(min(100, max(1, row.weight))),
        value_field: splunk_value(row.type, value),
        "valid_until": "" if row.valid_until is None else str(int(row.valid_until.timestamp())),
    }


def _description(row: AtomRow) -> str:
    if row.name and row.description and row.name != row.description:
        text = f"{row.name}: {row.description}"
    else:
        text = row.description or row.name
    # Folding every run of white space also removes line breaks, which Splunk would split into values.
    text = " ".join(text.split())
    if len(text) > MAX_DESCRIPTION:
        text = text[: MAX_DESCRIPTION - 1] + "…"
    return text


def _read_table(path: Path, collection: str) -> _Table:
    columns = _columns(collection)
    table = _Table(columns=columns)
    if not path.exists():
        return table

    try:
        with open(path, encoding="utf-8", newline="") as stream:
            reader = csv.DictReader(stream)
            header = list(reader.fieldnames or [])
            if "_key" not in header:
                raise ConfigError(
                    f"{path} exists but has no _key column, so it is not a lookup written by stixbridge; "
                    "move it away or set the sink's path to another folder"
                )
            # Columns someone added to the file are kept after ours.
            table.columns.extend(c for c in header if c not in columns)
            for record in reader:
                values = {k: v for k, v in record.items() if k is not None and v is not None}
                key = values.get("_key", "")
                if key:
                    table.rows[key] = values
                else:
                    table.unkeyed.append(values)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read Splunk lookup {path}: {exc}; fix or delete the file and run again") from exc
    return table


def _write_table(path: Path, table: _Table) -> None:
    with atomic_writer(path, newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=table.columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for key in sorted(table.rows):
            writer.writerow(table.rows[key])
        for values in table.unkeyed:
            writer.writerow(values)
