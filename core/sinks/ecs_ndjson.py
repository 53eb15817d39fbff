"""Elasticsearch bulk files of ECS threat-indicator documents.

Each push that has changes writes one new numbered file (``bulk-000001.ndjson``, ``bulk-000002.ndjson``
...) holding an ``index`` action and document per new or changed atom and a ``delete`` action per
removed one, each ``_id`` being the atom's row key. Posting the files in number order
(``curl -H 'Content-Type: application/x-ndjson' -XPOST 'http://127.0.0.1:9200/_bulk' --data-binary
@bulk-000001.ndjson``) brings an index to the live set. A push with no changes writes no file.

The target must be a regular index or an alias of one: a data stream accepts only ``create`` actions
and rejects ``index`` and ``delete``. A ``delete`` for an id the index does not hold comes back as a
404 item inside a successful bulk response, which is harmless.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..connector import ConnectorContext
from ..errors import ConfigError
from ..model import AtomRow, Changes, PushResult
from ..settings import Settings
from .atomic import folder_problems, make_folder, resolve_output_path, write_text_atomic
from .base import Sink
from .ecs import DEFAULT_FEED_NAME, ECS_INDICATOR_TYPES, ECS_UNSUPPORTED, ecs_document_ids, ecs_documents

logger = logging.getLogger(__name__)

DEFAULT_INDEX = "logs-ti_stixbridge_latest.indicator"
"""Elastic's prebuilt indicator-match rules search ``logs-ti_*``; the name has no second ``-`` so the
built-in ``logs-*-*`` template does not turn it into a data stream."""

BATCH_SUFFIXES = (".ndjson", ".json")
_INVALID_INDEX = re.compile(r'[\\/*?"<>|, #:A-Z]')


@dataclass
class EcsNdjsonSettings(Settings):
    """Settings of the ``ecs-ndjson`` sink."""

    path: str = ""
    """A folder for ``bulk-NNNNNN.ndjson`` files, or a file name such as ``out/intel.ndjson`` whose stem
    names the numbered files (``out/intel-000001.ndjson``...)."""
    index: str = DEFAULT_INDEX
    """Written as ``_index`` in every action; empty to leave it out and post to ``/<index>/_bulk``."""
    feed_name: str = DEFAULT_FEED_NAME
    """``threat.feed.name`` of every document."""

    def validate(self, where: str) -> None:
        if not self.path.strip():
            raise ConfigError(f"{where}.path is missing: name a folder or an .ndjson file name", key=f"{where}.path")
        if self.index and (_INVALID_INDEX.search(self.index) or self.index[0] in "-_+" or self.index in (".", "..")):
            raise ConfigError(
                f"invalid index name {self.index!r} in {where}.index: Elasticsearch index names are lower case, "
                'do not start with -, _ or +, and contain none of \\ / * ? " < > | , # : or a space',
                key=f"{where}.index",
            )


class EcsNdjsonSink(Sink):
    """Writes each push's changes as a numbered Elasticsearch bulk NDJSON file."""

    # TODO: re-stamp still-valid documents older than 30 days, as the elastic sink does; until then an
    # unchanged atom falls out of Elastic's prebuilt indicator-match rules after 30 days.

    kind: ClassVar[str] = "ecs-ndjson"
    settings_class: ClassVar[type[Settings]] = EcsNdjsonSettings

    def __init__(self, name: str, settings: Settings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        assert isinstance(settings, EcsNdjsonSettings)
        self.ecs_settings = settings
        target = resolve_output_path(context.base_dir, settings.path)
        if target.suffix.lower() in BATCH_SUFFIXES:
            self.folder, self.stem, self.suffix = target.parent, target.stem, target.suffix
        else:
            self.folder, self.stem, self.suffix = target, "bulk", ".ndjson"

    def describe(self) -> str:
        index = self.ecs_settings.index or "(index given in the _bulk URL)"
        return f"ecs-ndjson {self.name!r}: bulk files {self.folder / self.stem}-NNNNNN{self.suffix} for {index}"

    def preflight(self) -> list[str]:
        return [*super().preflight(), *folder_problems(self.folder, f"ecs-ndjson sink {self.name!r}")]

    def accepts(self, row: AtomRow) -> bool:
        return row.type in ECS_INDICATOR_TYPES

    def begin(self) -> None:
        make_folder(self.folder, f"ecs-ndjson sink {self.name!r}")

    def push(self, changes: Changes) -> PushResult:
        result = PushResult()
        now = self.context.clock()
        lines: list[str] = []
        written: list[str] = []
        skipped: Counter[str] = Counter()

        # Deletes go first so that an id deleted and written again in one push ends up present.
        for delivered in changes.deletes:
            for document_id in ecs_document_ids(delivered.key, delivered.type, delivered.value):
                lines.append(_json({"delete": self._action_meta(document_id)}))
        for row in changes.upserts:
            if row.type not in ECS_INDICATOR_TYPES:
                skipped[f"atom type {row.type}: {ECS_UNSUPPORTED.get(row.type, 'no ECS field for this type')}"] += 1
                continue
            for document_id, document in ecs_documents(row, now, feed_name=self.ecs_settings.feed_name):
                lines.append(_json({"index": self._action_meta(document_id)}))
                lines.append(_json(document))
            written.append(row.key)

        result.skipped.update(skipped)
        if not lines:
            return result

        deleted = [d.key for d in changes.deletes]
        try:
            path = self._write_batch("".join(line + "\n" for line in lines))
        except OSError as exc:
            logger.error("Writing a bulk file in %s failed: %s; its changes will be sent again next run.",
                         self.folder, exc)
            reason = f"writing a bulk file in {self.folder} failed: {exc}"
            result.failed.update(dict.fromkeys(written + deleted, reason))
            return result

        logger.info("Wrote bulk file %s: %d index and %d delete actions.", path, len(written), len(deleted))
        result.written.extend(written)
        result.deleted.extend(deleted)
        return result

    def _action_meta(self, key: str) -> dict[str, str]:
        if self.ecs_settings.index:
            return {"_index": self.ecs_settings.index, "_id": key}
        return {"_id": key}

    def _write_batch(self, text: str) -> Path:
        make_folder(self.folder, f"ecs-ndjson sink {self.name!r}")
        number = self._next_number()
        path = self.folder / f"{self.stem}-{number:06d}{self.suffix}"
        write_text_atomic(path, text)
        write_text_atomic(self._sequence_path(), f"{number}\n")
        return path

    def _sequence_path(self) -> Path:
        return self.folder / f".{self.stem}.sequence"

    def _next_number(self) -> int:
        # The sequence file keeps numbers rising after posted files are deleted; the files present
        # count too, in case the sequence file was lost.
        pattern = re.compile(rf"{re.escape(self.stem)}-(\d+){re.escape(self.suffix)}")
        numbers = [int(m.group(1)) for p in self.folder.iterdir() if (m := pattern.fullmatch(p.name))]
        try:
            numbers.append(int(self._sequence_path().read_text(encoding="utf-8").strip()))
        except FileNotFoundError:
            pass
        except ValueError:
            logger.warning("Ignoring unreadable bulk sequence file %s.", self._sequence_path())
        return max(numbers, default=0) + 1


def _json(value: Any) -> str:
    # One line per object as the bulk API requires; json.dumps escapes any line break inside strings.
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
