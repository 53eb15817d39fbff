"""The ``elastic`` sink: one ECS indicator document per live atom, written through an alias with the bulk API.

Only changes travel: the engine hands over new, changed and removed rows, and each becomes one ``index`` or
``delete`` action keyed by the row key. Unchanged documents still need a fresh ``@timestamp``, because
Elastic's indicator-match rules read only indicators stamped within the last 30 days. :meth:`finish` does
that on the server with ``_update_by_query``, for documents stamped more than ``refresh_days`` ago that
are still valid, after a ``_count`` shows there are any; a run with nothing to change or refresh thus sends
no write request at all.
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
from .ecs import ecs_document, is_supported
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
            ConfigError: the alias is missing or is an index or data stream; the message says to run setup.
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
        """Send the changes with ``streaming_bulk`` and report each document's outcome.

        Documents rejected with 429 are retried with back-off inside this call; a 404 on delete (already
        gone) and a 409 on create (already there) count as success. Any other per-document error lands in
        ``PushResult.failed`` with the document id and reason, so the engine sends it again next run.

        Raises:
            TransientError: a whole bulk request failed after the transport's retries (timeout, 5xx, 429).
            RemoteRejectedError: a whole bulk request was refused (401, 403, 400).
        """
        result = PushResult()
        if not changes:
            return result
        helpers: Any = require("elasticsearch.helpers", "elastic", "elastic")
        client = self._connect()
        requests_before, bytes_before = self.meter.requests, self.meter.bytes_sent

        try:
            for ok, item in helpers.streaming_bulk(
                client,
                self._actions(changes, result),
                chunk_size=self.settings.chunk_docs,
                max_chunk_bytes=self.settings.chunk_bytes,
                raise_on_error=False,
                raise_on_exception=True,
                max_retries=self.settings.max_retries,
                initial_backoff=self.settings.retry_backoff,
                max_backoff=max(self.settings.retry_backoff * 32, 1.0),
                require_alias=True,
            ):
                _record_item(ok, item, result)
        except Exception as exc:
            if isinstance(exc, ConfigError):
                raise
            raise translate_error(exc, f"bulk write to {self.settings.alias}") from exc
        finally:
            result.requests = self.meter.requests - requests_before
            result.bytes_sent = self.meter.bytes_sent - bytes_before

        self._log_result(result)
        return result

    def _actions(self, changes: Changes, result: PushResult) -> Iterator[dict[str, Any]]:
        now = self.context.clock()
        alias = self.settings.alias
        for row in changes.upserts:
            try:
                document = ecs_document(row, now, feed_name=self.settings.feed_name)
            except ValueError as exc:
                result.failed[row.key] = str(exc)
                continue
            yield {"_op_type": "index", "_index": alias, "_id": row.key, "_source": document}
        for delivered in changes.deletes:
            yield {"_op_type": "delete", "_index": alias, "_id": delivered.key}

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


def _record_item(ok: bool, item: dict[str, Any], result: PushResult) -> None:
    """Sort one bulk item response into written, deleted or failed."""
    operation, info = next(iter(item.items()))
    key = str(info.get("_id", ""))
    status = info.get("status", 0)

    if operation == "delete":
        if ok or status == 404:
            result.deleted.append(key)
            return
    elif ok or (operation == "create" and status == 409):
        result.written.append(key)
        return

    error = info.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
    else:
        reason = str(error or "no reason given")
    result.failed[key] = f"HTTP {status} on {operation}: {reason}"
