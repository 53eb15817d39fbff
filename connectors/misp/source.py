"""MISP as a feed source: attributes of a MISP instance, or MISP event files, as STIX 2.1 indicators.

From a server, ``attributes/restSearch`` is read in pages ordered by attribute timestamp, with a
keyset cursor. Each request is for attributes changed at or after the largest timestamp seen so far,
and pages by number only through a run of attributes that share one timestamp. An attribute edited
while a pull runs gets a newer timestamp and so moves ahead of the cursor, never behind it; attributes
at the cursor's own second are read again and dropped as repeats. Decayed attributes (by MISP's decay
scores, computed on our side) are left out; soft-deleted ones become revoked indicators.

From files (``path``), every ``*.json`` event file is read in both MISP envelopes. A file that is not
JSON or not a MISP event becomes one quarantined item and the other files are still read; an unchanged
file is not read again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from stixbridge.connector import ConnectorContext
from stixbridge.errors import InvalidInputError, RemoteRejectedError
from stixbridge.model import Page, Provenance, RawItem
from stixbridge.normalise import SCORE_EXPIRY_PROPERTY
from stixbridge.sources.base import Source
from stixbridge.timeutil import parse_timestamp

from .client import MispClient
from .events import EventMeta, NotAnEventError, attributes_of_event, epoch_of, events_of_document, truthy
from .indicators import identity_of_event, indicator_of_attribute
from .patterns import SUPPORTED_TYPES
from .settings import MispSourceSettings, resolve_path

logger = logging.getLogger(__name__)

ORDER = "Attribute.timestamp asc,Attribute.id asc"


class MispSource(Source):
    """Reads ``to_ids`` attributes from a MISP instance (``url``) or from MISP event files (``path``)."""

    kind = "misp"
    settings_class = MispSourceSettings
    settings: MispSourceSettings

    def __init__(self, name: str, settings: MispSourceSettings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        self.client = MispClient(settings, context.base_dir, f"MISP source {name!r}") if settings.url else None
        self.counts: Counter[str] = Counter()
        """What the last pull did: attributes read, indicators, skipped by type, decayed, rejected."""

    def describe(self) -> str:
        if self.client is None:
            return f"MISP source {self.name!r} reading event files at {self._root()}"
        return f"MISP source {self.name!r} reading attributes from {self.settings.url}"

    @property
    def published_only(self) -> bool:
        """Whether only published events count (by default for a server, not for files)."""
        if self.settings.published_only is not None:
            return self.settings.published_only
        return self.client is not None

    def pull(self, cursor: str | None) -> Iterator[Page]:
        self.counts = Counter()
        if self.client is None:
            yield from self._pull_files(cursor)
        else:
            yield from self._pull_server(cursor)
        skipped = ", ".join(f"{k[5:]} ({v})" for k, v in sorted(self.counts.items()) if k.startswith("type:"))
        logger.info(
            "MISP source %s: %d attributes read, %d indicators, %d decayed left out, %d rejected%s.",
            self.name, self.counts["attributes"], self.counts["indicators"], self.counts["decayed"],
            self.counts["rejected"], f"; types without a STIX pattern: {skipped}" if skipped else "",
        )  # fmt: skip

    def fetch_by_id(self, object_id: str, provenance: Provenance) -> list[RawItem]:
        """Return the attribute behind ``indicator--<attribute uuid>`` again, from a server only."""
        if self.client is None:
            raise NotImplementedError(f"MISP source {self.name!r} reads files and cannot fetch {object_id} by id")
        attribute_uuid = object_id.removeprefix("indicator--")
        answer = self.client.call("attributes/restSearch", {**self._query(None, with_paging=False),
                                                            "uuid": attribute_uuid, "deleted": [0, 1]})  # fmt: skip
        return list(self._items(_attributes(answer.body), include_deleted=True))

    # -- server ----------------------------------------------------------------------------------------

    def _query(self, since: int | None, *, with_paging: bool = True) -> dict[str, Any]:
        query: dict[str, Any] = {
            "returnFormat": "json",
            "includeContext": 1,
            "includeDecayScore": 1,
            "includeFullModel": 1,
            "includeWarninglistHits": 1,
        }
        if with_paging:
            query.update({"limit": self.settings.page_size, "order": ORDER})
        if since:
            query["timestamp"] = since
        if self.settings.to_ids_only:
            query["to_ids"] = 1
        if self.published_only:
            query["published"] = 1
        return query

    def _pull_server(self, cursor: str | None) -> Iterator[Page]:
        assert self.client is not None
        since = self._start(cursor)
        first_pull = cursor is None
        page_number = 1
        seen_at_since: set[str] = set()

        for _ in range(self.settings.max_pages):
            query = {**self._query(since), "page": page_number, "deleted": 0 if first_pull else [0, 1]}
            attributes = _attributes(self.client.call("attributes/restSearch", query).body)
            fresh = [a for a in attributes if _key(a) not in seen_at_since]
            if attributes and not fresh and len(attributes) >= self.settings.page_size:
                raise RemoteRejectedError(
                    f"MISP at {self.settings.url} returned only attributes already read for page {page_number} of "
                    f"attributes changed since {since}; it may ignore the page filter",
                    url=self.settings.url,
                )

            newest = max((epoch_of(a.get("timestamp")) or 0 for a in attributes), default=since or 0)
            if newest > (since or 0):
                # The next request starts at the newest second, where the attributes already read come first.
                # A page made only of them is skipped by requesting the next page number.
                seen_at_since = {_key(a) for a in attributes if epoch_of(a.get("timestamp")) == newest}
                since, page_number = newest, len(seen_at_since) // self.settings.page_size + 1
            else:
                page_number += 1
                seen_at_since.update(_key(a) for a in attributes)

            done = len(attributes) < self.settings.page_size
            items = list(self._items(fresh, include_deleted=not first_pull))
            yield Page(items, cursor=json.dumps({"timestamp": since or 0}), complete=done)
            if done:
                return
        raise RemoteRejectedError(
            f"MISP source {self.name!r} stopped after {self.settings.max_pages} pages (max_pages); raise it if "
            "the instance really holds that many changed attributes",
            url=self.settings.url,
        )

    def _start(self, cursor: str | None) -> int | None:
        if cursor:
            try:
                value = json.loads(cursor).get("timestamp")
            except (ValueError, AttributeError):
                value = None
            if isinstance(value, int) and value >= 0:
                return value or None
            logger.warning(
                "MISP source %s ignores its unreadable cursor %r and reads from the start.", self.name, cursor
            )
        if self.settings.since:
            return int(parse_timestamp(self.settings.since).timestamp())
        return None

    def _items(self, attributes: Iterable[dict[str, Any]], *, include_deleted: bool) -> Iterator[RawItem]:
        now = self.context.clock()
        identities: set[str] = set()
        for attribute in attributes:
            context = attribute.get("Event")
            event = EventMeta.of(context if isinstance(context, dict) else {})
            if event.identity_id and event.identity_id not in identities:
                identities.add(event.identity_id)
                identity = identity_of_event(event)
                if identity is not None:
                    yield RawItem(identity, Provenance(self.name, event.uuid))
            item = self._item(attribute, event, now, include_deleted=include_deleted)
            if item is not None:
                yield item

    def _item(
        self, attribute: dict[str, Any], event: EventMeta, now: datetime, *, include_deleted: bool
    ) -> RawItem | None:
        """Return the item for one attribute, or None when it is left out (type, flags, decay)."""
        self.counts["attributes"] += 1
        misp_type = str(attribute.get("type") or "")
        deleted = truthy(attribute.get("deleted"))
        if misp_type not in SUPPORTED_TYPES:
            self.counts[f"type:{misp_type}"] += 1
            return None
        if deleted and not include_deleted:
            return None
        if self.settings.to_ids_only and not truthy(attribute.get("to_ids")):
            return None
        if self.published_only and not event.published and not deleted:
            return None

        provenance = Provenance(self.name, event.uuid, event.identity_id)
        try:
            indicator = indicator_of_attribute(attribute, event, now)
        except InvalidInputError as exc:
            self.counts["rejected"] += 1
            text = json.dumps(attribute, separators=(",", ":"))
            return RawItem(None, provenance, raw_text=text, error=str(exc), size=len(text), reason_code="invalid")

        if deleted:
            indicator["revoked"] = True
        elif SCORE_EXPIRY_PROPERTY in indicator and parse_timestamp(indicator[SCORE_EXPIRY_PROPERTY]) <= now:
            # TODO: a sighting in MISP extends the decay there without changing the attribute timestamp,
            # so an expiry computed here is not moved until the attribute itself changes.
            self.counts["decayed"] += 1
            return None
        self.counts["indicators"] += 1
        text = json.dumps(indicator, separators=(",", ":"))
        return RawItem(indicator, provenance, size=len(text))

    # -- files -----------------------------------------------------------------------------------------

    def _root(self) -> Path:
        return resolve_path(self.settings.path, self.context.base_dir)

    def files(self) -> list[Path]:
        """Return the event files this source reads, sorted so runs are repeatable."""
        root = self._root()
        if root.is_file():
            return [root]
        if not root.is_dir():
            raise FileNotFoundError(f"MISP source {self.name!r}: {root} does not exist; fix 'path' in its settings")
        found: set[Path] = set()
        for pattern in self.settings.patterns:
            found.update(p for p in root.rglob(pattern) if p.is_file())
        return sorted(found)

    def _pull_files(self, cursor: str | None) -> Iterator[Page]:
        done: dict[str, str] = _file_cursor(cursor)
        files = self.files()
        logger.info("MISP source %s: %d event files to check.", self.name, len(files))
        for number, path in enumerate(files, start=1):
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if done.get(str(path)) == digest:
                continue
            items = list(self._file_items(path, data))
            done[str(path)] = digest
            yield Page(items, cursor=json.dumps(done, sort_keys=True), complete=number == len(files))

    def _file_items(self, path: Path, data: bytes) -> Iterator[RawItem]:
        try:
            events = events_of_document(json.loads(data.decode("utf-8-sig")))
        except (ValueError, NotAnEventError) as exc:
            problem = "is not JSON" if not isinstance(exc, NotAnEventError) else "is not a MISP event"
            logger.error("MISP source %s: %s %s (%s); it is quarantined and the other files are read.",
                         self.name, path, problem, exc)  # fmt: skip
            self.counts["rejected"] += 1
            yield RawItem(
                None,
                Provenance(self.name, str(path)),
                raw_text=data[:4096].decode("utf-8", errors="replace"),
                error=f"{path} {problem}: {exc}",
                size=len(data),
            )
            return

        for event in events:
            meta = EventMeta.of(event)
            if not meta.uuid:
                meta = dataclasses.replace(meta, uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, str(path))))
            identity = identity_of_event(meta)
            if identity is not None:
                yield RawItem(identity, Provenance(self.name, meta.uuid))
            now = self.context.clock()
            for attribute in attributes_of_event(event):
                item = self._item(attribute, meta, now, include_deleted=False)
                if item is not None:
                    yield item


def _attributes(body: Any) -> list[dict[str, Any]]:
    """Return the attribute list of a restSearch response (PyMISP has removed the ``response`` wrapper)."""
    if isinstance(body, dict):
        body = body.get("response", body)
    attributes = body.get("Attribute") if isinstance(body, dict) else None
    return [a for a in attributes if isinstance(a, dict)] if isinstance(attributes, list) else []


def _key(attribute: dict[str, Any]) -> str:
    return f"{attribute.get('uuid')}@{attribute.get('timestamp')}"


def _file_cursor(cursor: str | None) -> dict[str, str]:
    if not cursor:
        return {}
    try:
        value = json.loads(cursor)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
