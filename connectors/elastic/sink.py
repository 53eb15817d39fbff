"""The ``elastic`` sink: ECS indicator documents for the live atoms, written through an alias with the bulk API.

Only changes travel: the engine hands over new, changed and removed rows, and each becomes an ``index`` or
``delete`` action keyed by the row key (a registry key has one document per hive spelling, with keys
``<row key>-1``, ``-2``...). Nothing in a document changes over time except ``@timestamp``, the write time.

Unchanged documents still need a fresh ``@timestamp``, because Elastic's indicator-match rules read only
indicators stamped within the last 30 days. :meth:`finish` stamps them on the server with
``_update_by_query``: documents stamped more than ``refresh_days`` ago whose ``stixbridge.valid_until`` has
not passed. It sends that request only after a ``_count`` finds such documents, so a run with nothing to
change or stamp sends no write request at all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from stixbridge.connector import ConnectorContext
from stixbridge.errors import ConfigError
from stixbridge.model import AtomRow, Changes, PushResult
from stixbridge.plugins import require
from stixbridge.sinks.base import Sink
from stixbridge.timeutil import format_timestamp

from .client import TrafficMeter, build_client, is_not_found, translate_error
from .ecs import ecs_document_ids, ecs_documents, is_supported, unsupported_reason
from .settings import ElasticSinkSettings

logger = logging.getLogger(__name__)

REFRESH_BATCH = 20_000
"""Documents stamped again by one ``_update_by_query`` request."""

REFRESH_SCRIPT = "ctx._source['@timestamp'] = params.now"

_LOGGED_FAILURES = 5


def refresh_query(now: datetime, refresh_days: int) -> dict[str, Any]:
    """Return the query for documents stamped more than ``refresh_days`` before ``now`` and still valid."""
    cutoff = now - timedelta(days=refresh_days)
    return {
        "bool": {
            "filter": [{"range": {"@timestamp": {"lt": format_timestamp(cutoff)}}}],
            "must_not": [{"range": {"stixbridge.valid_until": {"lte": format_timestamp(now)}}}],
        }
    }


class ElasticSink(Sink):
    """Writes atoms as ECS indicator documents into an Elasticsearch index behind a ``logs-ti_*`` alias.

    Run ``stixbridge elastic setup`` once first: :meth:`begin` checks that the alias exists, and every bulk
    request sets ``require_alias``, so a missing alias can never auto-create an index or data stream.
    """

    kind = "elastic"
    settings_class = ElasticSinkSettings
    settings: ElasticSinkSettings
    batch_size = 20_000
    """Rows per :meth:`push`; ``streaming_bulk`` splits them into requests of at most ``chunk_bytes``."""

    def __init__(self, name: str, settings: ElasticSinkSettings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        self.meter = TrafficMeter()
        self._client: Any = None

    def describe(self) -> str:
        where = ", ".join(self.settings.hosts) or "Elastic Cloud"
        return f"elastic sink {self.name!r}: ECS indicator documents into alias {self.settings.alias} at {where}"

    def accepts(self, row: AtomRow) -> bool:
        return is_supported(row)

    def _connect(self) -> Any:
        if self._client is None:
            self._client = build_client(self.settings, self.context.base_dir, self.meter, name=self.name)
        return self._client

    def begin(self) -> None:
        """Check that the alias exists and is an alias, so a missing setup fails before any write.

        Raises:
            ConfigError: the alias is missing, or the name is an index or data stream. The message names
                ``stixbridge elastic setup`` as the fix.
            TransientError, RemoteRejectedError: Elasticsearch could not be asked.
        """
        client = self._connect()
        alias = self.settings.alias
        try:
            client.indices.get_alias(name=alias)
        except Exception as exc:
            if is_not_found(exc):
                raise ConfigError(
                    f"alias {alias!r} does not exist in Elasticsearch; run 'stixbridge elastic setup' once to "
                    "create the index template, the index and the alias",
                    key="alias",
                ) from exc
            raise translate_error(exc, f"checking alias {alias}") from exc

    def push(self, changes: Changes) -> PushResult:
        """Send the changes with ``streaming_bulk`` and report each row's outcome.

        A row becomes one document, or one per spelling of a registry key; it counts as written or
        deleted when all of its documents are. Documents rejected with 429 are retried with back-off
        inside this call. A 404 on delete (already gone) and a 409 on create (already there) count as
        success. Any other per-document error puts the row in ``PushResult.failed`` with the document id
        and reason, so the engine sends it again next run.

        Raises:
            TransientError: a whole bulk request failed after the transport's retries (timeout, 5xx, 429).
            RemoteRejectedError: a whole bulk request was refused (401, 403, 400).
        """
        result = PushResult()
        if not changes:
            return result
        helpers: Any = require("elasticsearch.helpers", "elastic", "elastic")
        client = self._connect()
        batch = _Batch()
        requests_before, bytes_before = self.meter.requests, self.meter.bytes_sent

        try:
            for ok, item in helpers.streaming_bulk(
                client,
                self._actions(changes, batch, result),
                chunk_size=self.settings.chunk_docs,
                max_chunk_bytes=self.settings.chunk_bytes,
                raise_on_error=False,
                raise_on_exception=True,
                max_retries=self.settings.max_retries,
                initial_backoff=self.settings.retry_backoff,
                max_backoff=max(self.settings.retry_backoff * 32, 1.0),
                require_alias=True,
            ):
                batch.record(ok, item)
        except Exception as exc:
            raise translate_error(exc, f"bulk write to {self.settings.alias}") from exc
        finally:
            result.requests = self.meter.requests - requests_before
            result.bytes_sent = self.meter.bytes_sent - bytes_before

        batch.settle(result)
        self._log_result(result)
        return result

    def _actions(self, changes: Changes, batch: _Batch, result: PushResult) -> Iterator[dict[str, Any]]:
        now = self.context.clock()
        alias = self.settings.alias
        for row in changes.upserts:
            if not is_supported(row):
                reason = unsupported_reason(row.type)
                result.skipped[reason] = result.skipped.get(reason, 0) + 1
                continue
            for document_id, document in ecs_documents(row, now, feed_name=self.settings.feed_name):
                batch.expect(document_id, row.key, "write")
                yield {"_op_type": "index", "_index": alias, "_id": document_id, "_source": document}
        for delivered in changes.deletes:
            for document_id in ecs_document_ids(delivered.key, delivered.type, delivered.value):
                batch.expect(document_id, delivered.key, "delete")
                yield {"_op_type": "delete", "_index": alias, "_id": document_id}

    def _log_result(self, result: PushResult) -> None:
        logger.info(
            "Elastic sink %r wrote %d and deleted %d documents in %d requests (%d bytes); %d failed.",
            self.name,
            len(result.written),
            len(result.deleted),
            result.requests,
            result.bytes_sent,
            len(result.failed),
        )
        for key, reason in list(result.failed.items())[:_LOGGED_FAILURES]:
            logger.warning("Elastic sink %r could not write document %s: %s", self.name, key, reason)
        if len(result.failed) > _LOGGED_FAILURES:
            logger.warning(
                "Elastic sink %r: %d more documents failed; they are sent again next run.",
                self.name,
                len(result.failed) - _LOGGED_FAILURES,
            )

    def finish(self, complete: bool) -> None:
        """Stamp still-valid documents that are due, after a complete push.

        A failure here is logged, not raised: the documents were written, and the next run tries again.
        """
        if not complete:
            return
        self.maintain()

    def maintain(self) -> None:
        """Stamp still-valid documents that are due; the engine calls this on runs with no changes too.

        A failure here is logged, not raised: the documents were written, and the next run tries again.
        """
        try:
            self.refresh_timestamps()
        except Exception as exc:
            logger.warning("Elastic sink %r could not refresh @timestamp of old documents: %s", self.name, exc)

    def refresh_timestamps(self) -> int:
        """Set ``@timestamp`` to now on documents stamped more than ``refresh_days`` ago that are still valid.

        Returns:
            How many documents were stamped.

        Raises:
            TransientError, RemoteRejectedError: a request failed.
        """
        client = self._connect()
        now = self.context.clock()
        query = refresh_query(now, self.settings.refresh_days)
        try:
            due = client.count(index=self.settings.alias, query=query)["count"]
            if not due:
                return 0

            stamped = 0
            long_client = client.options(request_timeout=max(self.settings.timeout, 120.0))
            for _ in range(due // REFRESH_BATCH + 2):
                response = long_client.update_by_query(
                    index=self.settings.alias,
                    query=query,
                    script={"source": REFRESH_SCRIPT, "lang": "painless", "params": {"now": format_timestamp(now)}},
                    conflicts="proceed",
                    max_docs=REFRESH_BATCH,
                )
                stamped += response.get("updated", 0)
                if response.get("failures"):
                    logger.warning(
                        "Elastic sink %r could not stamp %d documents; first failure: %s",
                        self.name,
                        len(response["failures"]),
                        response["failures"][0],
                    )
                if response.get("updated", 0) < REFRESH_BATCH:
                    break
        except Exception as exc:
            raise translate_error(exc, f"refreshing @timestamp in {self.settings.alias}") from exc

        logger.info(
            "Elastic sink %r stamped %d of %d documents older than %d days with a fresh @timestamp.",
            self.name,
            stamped,
            due,
            self.settings.refresh_days,
        )
        return stamped

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class _Batch:
    """Collects per-document bulk outcomes and turns them into per-row outcomes."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str]] = {}
        """Document id to (row key, "write" or "delete")."""
        self.pending: dict[tuple[str, str], int] = {}
        """(row key, action) to the number of its documents without a successful outcome yet."""
        self.failures: dict[str, str] = {}

    def expect(self, document_id: str, key: str, action: str) -> None:
        self.rows[document_id] = (key, action)
        self.pending[(key, action)] = self.pending.get((key, action), 0) + 1

    def record(self, ok: bool, item: dict[str, Any]) -> None:
        """Note one bulk item response: success, or the reason it failed."""
        operation, info = next(iter(item.items()))
        document_id = str(info.get("_id", ""))
        key, action = self.rows.get(document_id, (document_id, "delete" if operation == "delete" else "write"))
        status = info.get("status", 0)

        succeeded = ok or (operation == "delete" and status == 404) or (operation == "create" and status == 409)
        if succeeded:
            self.pending[(key, action)] = self.pending.get((key, action), 1) - 1
            return

        error = info.get("error")
        if isinstance(error, dict):
            reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        else:
            reason = str(error or "no reason given")
        self.failures.setdefault(key, f"document {document_id}: HTTP {status} on {operation}: {reason}")

    def settle(self, result: PushResult) -> None:
        """Fill ``result`` with rows whose documents all succeeded, and the failed rows with a reason."""
        for (key, action), missing in self.pending.items():
            if key in self.failures:
                result.failed[key] = self.failures[key]
            elif missing > 0:
                result.failed[key] = "Elasticsearch returned no outcome for a document of this row"
            elif action == "write":
                result.written.append(key)
            else:
                result.deleted.append(key)
