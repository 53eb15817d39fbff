"""CSV lookups shaped like Splunk Enterprise Security's threat-intelligence collections.

One file per collection (``ip_intel.csv``, ``http_intel.csv``...) in the configured folder, with the
columns ES's own lookups use (:data:`~stixbridge.sinks.mapping.ES_COLLECTION_FIELDS`), so a lookup
definition or ES's "Local ... Intel" upload can read them as they are.

The files are the sink's state. The engine passes only the rows that changed, so for each file a push
touches the sink reads the old file as a stream, merges the changes (sorted by ``_key``) into it row by
row and replaces the file atomically. Memory contains one batch of changes, never a whole file. That
happens before :meth:`push` returns, so a key reported as written is on disk. A file whose rows did not
change is not rewritten. The sink keeps rows sorted by ``_key`` with rows without a ``_key`` (added by
hand) at the end.

Splunk's CSV rules, as this sink writes them: UTF-8 without a byte-order mark, a header row, ``\\n``
line ends, and fields quoted with ``"`` (a quote inside doubled) when they contain a comma, a quote
or a line break. Splunk reads a quoted line break as a separator between the values of a multivalue
field, so descriptions are folded to one line and a value containing a line break is skipped.

A registry key gets one row per hive spelling (``HKEY_LOCAL_MACHINE\\``, ``HKLM\\``,
``\\REGISTRY\\MACHINE\\``), because a lookup matches the spelling exactly. See
:func:`~stixbridge.sinks.mapping.spelled_keys`.
"""

from __future__ import annotations

import collections
import csv
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..connector import ConnectorContext
from ..errors import ConfigError
from ..model import AtomRow, Changes, DeliveredRow, PushResult
from ..settings import Settings
from .atomic import atomic_writer, folder_problems, make_folder, resolve_output_path
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
class _FileChanges:
    """The changes of one push to one lookup file."""

    upserts: dict[str, dict[str, str]] = field(default_factory=dict)
    """Our columns of each new or changed row, by ``_key``."""
    deletes: set[str] = field(default_factory=set)
    written: list[str] = field(default_factory=list)
    """Row keys of the upserts, as the engine sent them."""
    found: set[str] = field(default_factory=set)
    """``_key`` values of ``deletes`` that the file held; filled by the merge."""


class _Unchanged(Exception):
    """Raised inside a write to drop the temporary file when the merge changed no row."""


class SplunkCsvSink(Sink):
    """Writes live atoms into ES-shaped CSV lookups, one file per ES collection."""

    kind: ClassVar[str] = "splunk-csv"
    settings_class: ClassVar[type[Settings]] = SplunkCsvSettings
    # Each push streams every file it touches once; 20,000 changes keep the engine's batch small while
    # a million atoms still take only about 50 rewrites of each file.
    batch_size: ClassVar[int] = 20_000

    def __init__(self, name: str, settings: Settings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        assert isinstance(settings, SplunkCsvSettings)
        self.folder = resolve_output_path(context.base_dir, settings.path)

    def describe(self) -> str:
        return f"splunk-csv {self.name!r}: Splunk ES threat-intelligence lookups in {self.folder}"

    def preflight(self) -> list[str]:
        return [*super().preflight(), *folder_problems(self.folder, f"splunk-csv sink {self.name!r}")]

    def accepts(self, row: AtomRow) -> bool:
        return _skip_reason(row) is None

    def begin(self) -> None:
        make_folder(self.folder, f"splunk-csv sink {self.name!r}")

    def push(self, changes: Changes) -> PushResult:
        result = PushResult()
        if not changes:
            return result
        make_folder(self.folder, f"splunk-csv sink {self.name!r}")

        files: dict[str, _FileChanges] = {}
        skipped: Counter[str] = Counter()
        for row in changes.upserts:
            reason = _skip_reason(row)
            if reason is not None:
                skipped[reason] += 1
                continue
            collection, value_field = ES_COLLECTIONS[row.type]
            file_changes = files.setdefault(collection, _FileChanges())
            for key, spelling in spelled_keys(row.key, row.type, row.value):
                file_changes.upserts[key] = _csv_row(row, key, value_field, spelling)
            file_changes.written.append(row.key)

        delete_keys: dict[str, list[str]] = {}
        for delivered in changes.deletes:
            keys = [key for key, _ in spelled_keys(delivered.key, delivered.type, delivered.value)]
            delete_keys[delivered.key] = keys
            for collection in self._delete_candidates(delivered):
                files.setdefault(collection, _FileChanges()).deletes.update(keys)

        failed_files = self._merge_files(files, result)
        for delivered_key, keys in delete_keys.items():
            # A key found in no file is already absent, which is what a delete asks for.
            failure = next(
                (failed_files[c] for c, f in files.items() if c in failed_files and f.found.intersection(keys)), None
            )
            if failure is None:
                result.deleted.append(delivered_key)
            else:
                result.failed[delivered_key] = failure
        if result.written or result.deleted:
            self._create_missing_files()
        result.skipped.update(skipped)
        return result

    def _delete_candidates(self, delivered: DeliveredRow) -> list[str]:
        # The delivered type names the file; a key from an older mapping is looked for in every file.
        if delivered.type in ES_COLLECTIONS:
            candidates = [ES_COLLECTIONS[delivered.type][0]]
        else:
            candidates = list(ES_COLLECTION_FIELDS)
        return [c for c in candidates if (self.folder / f"{c}.csv").exists()]

    def _merge_files(self, files: dict[str, _FileChanges], result: PushResult) -> dict[str, str]:
        """Merge each file's changes; add written keys to ``result`` and return failure reasons by collection."""
        failed: dict[str, str] = {}
        for collection in sorted(files):
            file_changes = files[collection]
            path = self.folder / f"{collection}.csv"
            try:
                rows = _merge_file(path, collection, file_changes)
            except OSError as exc:
                logger.error("Writing Splunk lookup %s failed: %s; its changes will be sent again next run.",
                             path, exc)
                failed[collection] = reason = f"writing {path} failed: {exc}"
                # The merge may have stopped early, so any delete could have been in this file.
                file_changes.found = set(file_changes.deletes)
                result.failed.update(dict.fromkeys(file_changes.written, reason))
                continue
            if rows is not None:
                logger.info("Wrote Splunk lookup %s: %d rows.", path, rows)
            result.written.extend(file_changes.written)
        return failed

    def _create_missing_files(self) -> None:
        # Every lookup definition needs its file, even while its collection has no rows.
        for collection in ES_COLLECTION_FIELDS:
            path = self.folder / f"{collection}.csv"
            if path.exists():
                continue
            try:
                _merge_file(path, collection, _FileChanges())
            except OSError as exc:
                logger.warning("Creating empty Splunk lookup %s failed: %s; lookups that name it will fail.", path, exc)


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


def _merge_file(path: Path, collection: str, changes: _FileChanges) -> int | None:
    """Merge ``changes`` into the lookup at ``path``; return its row count, or None when nothing changed.

    The old file is read twice as a stream: once to learn which changed keys it already holds, then to
    copy it into the new file with the changes merged in ``_key`` order. Rows we did not write keep their
    place and their extra columns. Fills ``changes.found`` with the deleted keys the file held.

    Raises:
        ConfigError: the file is not a lookup this sink wrote.
        OSError: reading or replacing the file failed; it is unchanged.
    """
    columns = _columns(collection)
    exists = path.exists()
    present: set[str] = set()
    if exists:
        header = _read_header(path)
        columns.extend(c for c in header if c not in columns)
        for record in _read_records(path):
            key = record.get("_key") or ""
            if key in changes.upserts:
                present.add(key)
            elif key in changes.deletes:
                changes.found.add(key)

    pending = collections.deque(sorted(key for key in changes.upserts if key not in present))
    count = 0
    changed = not exists or bool(pending) or bool(changes.found)
    try:
        with atomic_writer(path, newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
            writer.writeheader()
            records = _read_records(path) if exists else iter(())
            for record in records:
                key = record.get("_key") or ""
                # New rows go before the first larger key, and before the hand-added rows at the end.
                while pending and (not key or pending[0] < key):
                    writer.writerow(_fill(changes.upserts[pending.popleft()], columns))
                    count += 1
                if key in changes.found:
                    continue
                if key in changes.upserts:
                    merged = {column: record.get(column, "") for column in columns}
                    merged.update(_fill(changes.upserts[key], _columns(collection)))
                    if merged != {column: record.get(column, "") for column in columns}:
                        changed = True
                    record = merged
                writer.writerow(record)
                count += 1
            for key in pending:
                writer.writerow(_fill(changes.upserts[key], columns))
                count += 1
            if not changed:
                raise _Unchanged
    except _Unchanged:
        return None
    return count


def _fill(values: dict[str, str], columns: list[str]) -> dict[str, str]:
    return {column: values.get(column, "") for column in columns}


def _read_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as stream:
        try:
            header = next(csv.reader(stream), [])
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"cannot read Splunk lookup {path}: {exc}; fix or delete the file and run again") from exc
    if "_key" not in header:
        raise ConfigError(
            f"{path} exists but has no _key column, so it is not a lookup written by stixbridge; "
            "move it away or set the sink's path to another folder"
        )
    return header


def _read_records(path: Path) -> Iterator[dict[str, str]]:
    """Yield the rows of a lookup file one at a time, without the header."""
    try:
        with open(path, encoding="utf-8", newline="") as stream:
            for record in csv.DictReader(stream):
                yield {k: v for k, v in record.items() if k is not None and v is not None}
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read Splunk lookup {path}: {exc}; fix or delete the file and run again") from exc
