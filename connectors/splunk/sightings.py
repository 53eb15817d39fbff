"""The ``splunk`` sightings reader: hits of alliance atoms found by Splunk, read back as sighting records.

With Enterprise Security, threat matching writes each hit to ``index=threat_activity`` with the fields
``threat_key``, ``threat_collection``, ``threat_collection_key``, ``threat_match_field``,
``threat_match_value``, ``src`` and ``dest``. Without ES, the app's saved search "stixbridge - threat
match" writes hits of the app collection to a summary index in the same shape. Either way only hits
whose ``threat_collection_key`` is a stixbridge row key are read, so matches of other threat sources stay
out.

Each read searches a closed time range: from the cursor (or ``lookback_days`` ago) up to ``lag_seconds``
before now, so events still being indexed are read next time. The cursor is the ``_time`` of the last hit
read, in milliseconds, with the ids of the hits at that instant. The next search starts at that instant
and skips those ids, so each hit is read once even when several share a timestamp.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from stixbridge.connector import ConnectorContext
from stixbridge.errors import RemoteRejectedError, TransientError
from stixbridge.model import SightingRecord
from stixbridge.plugins import require
from stixbridge.settings import Settings
from stixbridge.sightings.base import SightingsReader

from .client import SplunkClient, translate_error
from .mapping import KEY_PREFIX
from .settings import SplunkSightingsSettings

logger = logging.getLogger(__name__)

APP_MATCH_SEARCH = "stixbridge - threat match"
"""Name of the app's saved search, which is also the ``source`` of the events it writes."""

HIT_FIELDS = (
    "_time",
    "_bkt",
    "_cd",
    "threat_key",
    "threat_collection",
    "threat_collection_key",
    "threat_match_field",
    "threat_match_value",
    "threat_type",
    "src",
    "dest",
)
_STIX_ID = re.compile(r"^[a-z][a-z0-9-]*--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ATOM_TYPES = frozenset(
    "ipv4 ipv6 ipv4-cidr ipv6-cidr domain url email md5 sha1 sha256 sha512 sha3-256 sha3-512 ssdeep tlsh "
    "file-name x509-serial x509-sha1 x509-sha256 x509-md5 registry-key mutex user-account process-name "
    "as-number".split()
)


@dataclass
class ReadCursor:
    """Position of the previous read: a time in epoch milliseconds and the hit ids at that time."""

    millis: int
    ids: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str | None) -> ReadCursor | None:
        """Read a stored cursor; None when there is none.

        Raises:
            ValueError: the text is not a cursor this reader wrote.
        """
        if not text:
            return None
        try:
            data = json.loads(text)
            return cls(int(data["t"]), {str(i) for i in data.get("ids", [])})
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"invalid Splunk sightings cursor {text[:100]!r}: {exc}") from exc

    def dump(self) -> str:
        """Return the cursor as stored text."""
        return json.dumps({"t": self.millis, "ids": sorted(self.ids)}, separators=(",", ":"))


class SplunkSightingsReader(SightingsReader):
    """Reads ES threat activity (or the app's summary-index hits) through search jobs or exports."""

    kind: ClassVar[str] = "splunk"
    sdk_modules: ClassVar[tuple[tuple[str, str], ...]] = (("splunklib", "splunk"),)
    settings_class: ClassVar[type[Settings]] = SplunkSightingsSettings

    def __init__(self, name: str, settings: Settings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        assert isinstance(settings, SplunkSightingsSettings)
        self.config: SplunkSightingsSettings = settings
        self.client = SplunkClient(settings, connector="splunk")

    def describe(self) -> str:
        """Return one line naming the server and the search."""
        return f"splunk sightings {self.name!r}: {self.search_text()} at {self.config.url} ({self.config.search_mode})"

    def close(self) -> None:
        """Forget the connection."""
        self.client.reset()

    def search_text(self) -> str:
        """Return the SPL that finds the hits of stixbridge rows, oldest first."""
        index = self.config.index or ("threat_activity" if self.config.mode == "es" else "summary")
        source = self.config.source or ("" if self.config.mode == "es" else APP_MATCH_SEARCH)
        terms = [f'index="{index}"']
        if source:
            terms.append(f'source="{source}"')
        terms.append(f'threat_collection_key="{KEY_PREFIX}*"')
        return f"search {' '.join(terms)} | fields {', '.join(HIT_FIELDS)} | sort 0 _time"

    def read(self, cursor: str | None) -> Iterator[tuple[list[SightingRecord], str | None]]:
        """Yield batches of hits since ``cursor``, each with the cursor that follows it."""
        try:
            position = ReadCursor.parse(cursor)
        except ValueError as exc:
            raise RemoteRejectedError(f"{exc}; reset the cursor of sightings reader {self.name!r}") from exc

        now_ms = int(self.context.clock().timestamp() * 1000)
        latest_ms = now_ms - self.config.lag_seconds * 1000
        earliest_ms = position.millis if position else latest_ms - self.config.lookback_days * 86_400_000
        if earliest_ms >= latest_ms:
            return
        position = position or ReadCursor(earliest_ms)

        batch: list[SightingRecord] = []
        read = 0
        for result in self._results(earliest_ms, latest_ms):
            hit = self._record(result)
            if hit is None:
                continue
            record, millis = hit
            if millis == position.millis and record.external_id in position.ids:
                continue
            if millis > position.millis:
                position = ReadCursor(millis)
            position.ids.add(record.external_id)
            batch.append(record)
            read += 1
            if len(batch) >= self.config.page_size:
                yield batch, position.dump()
                batch = []

        # Every hit before latest has been read, so the next search may start there.
        yield batch, ReadCursor(latest_ms).dump()
        logger.info("Splunk sightings %s: %d new hits read up to %s.", self.name, read, _iso(latest_ms))

    def _results(self, earliest_ms: int, latest_ms: int) -> Iterator[dict[str, Any]]:
        query = self.search_text()
        bounds = {"earliest_time": f"{earliest_ms / 1000:.3f}", "latest_time": f"{latest_ms / 1000:.3f}"}
        self.client.call("reading the Splunk version", "server/info", lambda: self.client.service.disable_v2_api)
        if self.config.search_mode == "export":
            yield from self._export(query, bounds)
        else:
            yield from self._job(query, bounds)

    def _export(self, query: str, bounds: dict[str, str]) -> Iterator[dict[str, Any]]:
        jobs = self.client.service.jobs
        stream = self.client.call(
            "exporting threat matches",
            "search/jobs/export",
            lambda: jobs.export(query, output_mode="json", **bounds),
        )
        yield from self._parse(stream, "search/jobs/export")

    def _job(self, query: str, bounds: dict[str, str]) -> Iterator[dict[str, Any]]:
        jobs = self.client.service.jobs
        job = self.client.call(
            "running the threat match search",
            "search/jobs",
            lambda: jobs.create(query, exec_mode="blocking", output_mode="json", **bounds),
        )
        try:
            offset = 0
            count = self.config.page_size
            while True:
                params = {"output_mode": "json", "count": count, "offset": offset}
                stream = self.client.call(
                    f"reading search results {offset}-{offset + count}",
                    f"search/jobs/{job.sid}/results",
                    functools.partial(job.results, **params),
                )
                page = list(self._parse(stream, f"search/jobs/{job.sid}/results"))
                yield from page
                if len(page) < count:
                    return
                offset += len(page)
        finally:
            self._cancel(job)

    def _cancel(self, job: Any) -> None:
        try:
            self.client.call(f"removing search job {job.sid}", f"search/jobs/{job.sid}/control", job.cancel)
        except (TransientError, RemoteRejectedError) as exc:
            logger.warning("Could not remove search job %s; Splunk removes it when its lifetime ends: %s", job.sid, exc)

    def _parse(self, stream: Any, path: str) -> Iterator[dict[str, Any]]:
        results = require("splunklib.results", "splunk", "splunk")
        try:
            reader = results.JSONResultsReader(stream)
            for item in reader:
                if isinstance(item, results.Message):
                    _raise_on_error(item, path)
                elif isinstance(item, dict) and not reader.is_preview:
                    yield item
        except (OSError, ValueError) as exc:
            raise translate_error(exc, operation="reading search results", url=self.config.url + "/" + path) from exc

    def _record(self, result: dict[str, Any]) -> tuple[SightingRecord, int] | None:
        key = _text(result.get("threat_collection_key"))
        value = _text(result.get("threat_match_value"))
        if not key.startswith(KEY_PREFIX) or not value:
            return None
        try:
            seen_at = parse_splunk_time(_text(result.get("_time")))
        except ValueError as exc:
            logger.warning("Skipping a threat match with an unreadable _time: %s", exc)
            return None

        threat_key = _text(result.get("threat_key"))
        atom_type = _text(result.get("threat_type"))
        context = tuple((name, _text(result.get(name))) for name in ("src", "dest") if _text(result.get(name)))
        record = SightingRecord(
            source=self.name,
            value=value,
            seen_at=seen_at,
            atom_type=atom_type if atom_type in _ATOM_TYPES else None,
            indicator_id=threat_key if _STIX_ID.match(threat_key) else None,
            context=context,
            external_id=hit_id(result),
        )
        return record, int(round(seen_at.timestamp() * 1000))


def hit_id(result: dict[str, Any]) -> str:
    """Return a stable id of one indexed hit: its bucket and offset, or a hash of its fields."""
    bucket, offset = _text(result.get("_bkt")), _text(result.get("_cd"))
    if bucket and offset:
        return f"{bucket}:{offset}"
    digest = hashlib.sha256(json.dumps(result, sort_keys=True, default=str).encode()).hexdigest()
    return f"sha256:{digest[:32]}"


def parse_splunk_time(text: str) -> datetime:
    """Parse ``_time`` as splunkd renders it: ISO 8601 with an offset, or epoch seconds.

    Raises:
        ValueError: the text is neither.
    """
    text = text.strip()
    try:
        return datetime.fromtimestamp(float(text), tz=UTC)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"_time {text!r} has no UTC offset; set the search user's time zone or use epoch")
    return moment.astimezone(UTC)


def _raise_on_error(message: Any, path: str) -> None:
    kind = str(getattr(message, "type", "")).upper()
    text = str(getattr(message, "message", ""))
    if kind in ("ERROR", "FATAL"):
        raise RemoteRejectedError(f"Splunk search failed ({path}): {text}; check the search in Splunk's job inspector")
    logger.debug("Splunk search message %s: %s", kind, text)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Iterable) and not isinstance(value, str):
        return ",".join(str(v) for v in value)
    return str(value)


def _iso(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat(timespec="milliseconds")
