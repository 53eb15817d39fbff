"""The ``splunk`` sink: live atoms into KV store collections, ES threat intel and the app's own.

Only changes travel. The engine hands :meth:`SplunkSink.push` the rows that are new or changed and the
rows to delete. Upserts go out in ``batch_save`` requests cut to the server's limits, and deletes by ``_key``.
Nothing is sent while nothing changed, not even a login. Rows whose ``_key`` lacks the ``stixbridge-``
prefix are never written or deleted, so other threat sources in the same collections are safe.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from typing import Any, ClassVar

from stixbridge.connector import ConnectorContext
from stixbridge.errors import RemoteRejectedError
from stixbridge.model import AtomRow, Changes, DeliveredRow, PushResult
from stixbridge.settings import Settings
from stixbridge.sinks.base import Sink
from stixbridge.sinks.mapping import ES_COLLECTIONS

from .client import SplunkClient
from .kvstore import KvCollection, KvLimits, read_limits
from .mapping import (
    APP_ACCELERATIONS,
    APP_COLLECTION_FIELDS,
    DIGEST_FIELD,
    Location,
    Placement,
    app_locations,
    app_places,
    es_locations,
    es_places,
    es_skip_reason,
    is_our_key,
)
from .settings import SplunkSinkSettings

logger = logging.getLogger(__name__)


class SplunkSink(Sink):
    """Writes atom rows to the KV store of a Splunk search head over its REST API.

    Targets: ``app`` is the collection ``stixbridge_intel`` of the app ``TA-stixbridge``, which takes every
    atom type and has lookup definitions over it. ``es`` is Enterprise Security's ``ip_intel``,
    ``http_intel``, ``file_intel`` and the other ``*_intel`` collections of ``DA-ESS-ThreatIntelligence``.
    A row goes to one collection per target, as one document (a registry key as one per hive spelling).

    When a push carries more upserts for one collection than ``read_page`` (a first load, or a store that
    was lost), the sink first reads the keys and digests already there and skips identical rows, so a
    re-push after losing the state store writes nothing that is already in place.
    """

    kind: ClassVar[str] = "splunk"
    sdk_modules: ClassVar[tuple[tuple[str, str], ...]] = (("splunklib", "splunk"),)
    settings_class: ClassVar[type[Settings]] = SplunkSinkSettings
    # Each push ends with a partial batch per collection, so fewer, larger pushes need fewer requests:
    # 100,000 rows into four ES collections take at most 100 + 2 * 4 batch saves.
    batch_size: ClassVar[int] = 50_000

    def __init__(self, name: str, settings: Settings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        assert isinstance(settings, SplunkSinkSettings)
        self.config: SplunkSinkSettings = settings
        self.client = SplunkClient(settings, connector="splunk")
        self._limits: KvLimits | None = None
        self._collections: dict[tuple[str, str], KvCollection] = {}
        self._stored: dict[tuple[str, str], dict[str, str]] = {}
        self._checked: set[tuple[str, str]] = set()
        self.not_accepted: Counter[str] = Counter()

    def describe(self) -> str:
        """Return one line naming the server and the collections written."""
        places = []
        if "app" in self.config.targets:
            places.append(f"{self.config.app}/{self.config.collection}")
        if "es" in self.config.targets:
            places.append(f"{self.config.es_app}/*_intel")
        return f"splunk sink {self.name!r}: KV store at {self.config.url} ({', '.join(places)})"

    def accepts(self, row: AtomRow) -> bool:
        """Return True when some target can hold the row; ES alone cannot hold every atom type."""
        if "app" in self.config.targets or row.type in ES_COLLECTIONS:
            return True
        self.not_accepted[es_skip_reason(row.type)] += 1
        return False

    def begin(self) -> None:
        """Start a push; the connection is opened only when the first change arrives."""
        self._stored.clear()
        self.not_accepted.clear()

    def push(self, changes: Changes) -> PushResult:
        """Write ``changes.upserts`` and delete ``changes.deletes`` in every target.

        A row counts as written only when every target stored it, and as deleted only when every target
        removed it. Otherwise its key is reported failed with the reason, so the engine sends it again.
        """
        result = PushResult()
        if not changes:
            return result
        requests_before, bytes_before = self.client.requests, self.client.bytes_sent

        self._prepare()
        self._push_upserts(changes.upserts, result)
        self._push_deletes(changes.deletes, result)

        result.requests = self.client.requests - requests_before
        result.bytes_sent = self.client.bytes_sent - bytes_before
        logger.info(
            "Splunk sink %s: %d rows written, %d deleted, %d failed, %d requests, %d bytes.",
            self.name,
            len(result.written),
            len(result.deleted),
            len(result.failed),
            result.requests,
            result.bytes_sent,
        )
        return result

    def finish(self, complete: bool) -> None:
        """Log the rows no target could hold; nothing is buffered, so there is nothing to flush."""
        if self.not_accepted:
            summary = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.not_accepted.items()))
            logger.info("Splunk sink %s left out rows no target can hold (%s).", self.name, summary)

    def close(self) -> None:
        """Forget the connection; splunkd sessions expire on their own."""
        self.client.reset()
        self._limits = None
        self._collections.clear()
        self._checked.clear()

    def _prepare(self) -> None:
        if self._limits is not None:
            return
        self._limits = read_limits(self.client, owner=self.config.owner, app=self.config.app)
        if "app" in self.config.targets:
            collection = self._collection(self.config.app, self.config.collection)
            if not collection.exists():
                self._create_app_collection(collection)

    def _create_app_collection(self, collection: KvCollection) -> None:
        if not self.config.create_collection:
            raise_missing(collection, "install the TA-stixbridge app or set create_collection = true")
        collection.create(APP_COLLECTION_FIELDS, APP_ACCELERATIONS)

    def _collection(self, app: str, name: str) -> KvCollection:
        key = (app, name)
        if key not in self._collections:
            limits = self._limits or KvLimits()
            self._collections[key] = KvCollection(
                self.client,
                name,
                owner=self.config.owner,
                app=app,
                max_docs=min(self.config.max_batch_docs, limits.max_documents_per_batch_save),
                max_bytes=min(self.config.max_batch_bytes, limits.max_batch_save_bytes),
                read_page=min(self.config.read_page, limits.max_rows_per_query - 1),
                max_delete_url_bytes=self.config.max_delete_url_bytes,
            )
        return self._collections[key]

    def _placements(self, row: AtomRow, result: PushResult) -> list[Placement]:
        placements = []
        if "app" in self.config.targets:
            placements.extend(app_places(row, self.config.app, self.config.collection))
        if "es" in self.config.targets:
            es = es_places(row, self.config.es_app)
            if not es:
                reason = es_skip_reason(row.type)
                result.skipped[reason] = result.skipped.get(reason, 0) + 1
            placements.extend(es)
        return placements

    def _push_upserts(self, rows: list[AtomRow], result: PushResult) -> None:
        by_collection: dict[tuple[str, str], list[Placement]] = defaultdict(list)
        expected: Counter[str] = Counter()
        for row in rows:
            if not is_our_key(row.key):
                result.failed[row.key] = f"row key {row.key!r} is not a stixbridge key; not written"
                continue
            for placement in self._placements(row, result):
                by_collection[(placement.app, placement.collection)].append(placement)
                expected[row.key] += 1

        stored: Counter[str] = Counter()
        for (app, name), placements in by_collection.items():
            collection = self._collection(app, name)
            if (app, name) != (self.config.app, self.config.collection):
                self._check_es_collection(collection)
            row_of = {p.document["_key"]: p.row_key for p in placements}
            documents, current = self._drop_unchanged(collection, [p.document for p in placements])
            stored.update(row_of[key] for key in current)

            outcome = collection.save(documents)
            stored.update(row_of[key] for key in outcome.saved)
            for key, reason in outcome.failed.items():
                result.failed[row_of[key]] = f"{app}/{name}: {reason}"
            known = self._stored.get((app, name))
            if known is not None:
                digests = {doc["_key"]: doc[DIGEST_FIELD] for doc in documents}
                known.update((key, digests[key]) for key in outcome.saved)

        for row in rows:
            if row.key in expected and row.key not in result.failed and stored[row.key] == expected[row.key]:
                result.written.append(row.key)

    def _drop_unchanged(
        self, collection: KvCollection, documents: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Split documents into those to send and the keys already stored with the same digest."""
        # Reading costs one request per read_page rows and writing one per batch of max_docs rows, so the
        # read pays off only for large pushes. Small pushes write straight away.
        place = (collection.app, collection.name)
        if place not in self._stored and len(documents) <= collection.read_page:
            return documents, []
        if place not in self._stored:
            limits = self._limits or KvLimits()
            self._stored[place] = {
                str(row["_key"]): str(row.get(DIGEST_FIELD, ""))
                for row in collection.iter_our_rows(["_key", DIGEST_FIELD], limits.max_rows_per_query)
            }

        known = self._stored[place]
        send = [doc for doc in documents if known.get(doc["_key"]) != doc[DIGEST_FIELD]]
        current = [doc["_key"] for doc in documents if known.get(doc["_key"]) == doc[DIGEST_FIELD]]
        if current:
            logger.info("%d rows are already current in %s; not sent again.", len(current), collection.name)
        return send, current

    def _check_es_collection(self, collection: KvCollection) -> None:
        place = (collection.app, collection.name)
        if place in self._checked:
            return
        if not collection.exists():
            raise_missing(collection, "install Splunk Enterprise Security there, or remove 'es' from targets")
        self._checked.add(place)

    def _push_deletes(self, rows: list[DeliveredRow], result: PushResult) -> None:
        by_collection: dict[tuple[str, str], list[Location]] = defaultdict(list)
        expected: Counter[str] = Counter()
        for row in rows:
            locations = []
            if "app" in self.config.targets:
                locations.extend(app_locations(row, self.config.app, self.config.collection))
            if "es" in self.config.targets:
                locations.extend(es_locations(row, self.config.es_app))
            for location in locations:
                by_collection[(location.app, location.collection)].append(location)
                expected[row.key] += 1

        removed: Counter[str] = Counter()
        for (app, name), locations in by_collection.items():
            collection = self._collection(app, name)
            row_of = {location.key: location.row_key for location in locations}
            outcome = collection.delete_keys(list(row_of))
            removed.update(row_of[key] for key in outcome.saved)
            for key, reason in outcome.failed.items():
                result.failed[row_of[key]] = f"{app}/{name}: {reason}"
            known = self._stored.get((app, name))
            if known is not None:
                for key in outcome.saved:
                    known.pop(key, None)

        for row in rows:
            if row.key not in result.failed and removed[row.key] == expected[row.key]:
                result.deleted.append(row.key)


def raise_missing(collection: KvCollection, fix: str) -> None:
    """Raise the error for a KV store collection that does not exist where the sink writes."""
    raise RemoteRejectedError(
        f"KV store collection {collection.name!r} does not exist in app {collection.app!r} at "
        f"{collection.client.settings.url}; {fix}",
        status=404,
    )
