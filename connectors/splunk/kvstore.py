"""KV store collections over REST: limits, chunked batch saves, deletes by key and paged reads.

REST facts relied on (Splunk REST API reference, "KV store endpoints"):

- ``POST storage/collections/data/<c>/batch_save`` takes a JSON array and inserts or replaces each
  document by ``_key``. Over ``limits.conf [kvstore] max_documents_per_batch_save`` (1000 by default) or
  ``max_size_per_batch_save_mb`` (50) it returns HTTP 400 "Request exceeds API limits".
- ``GET storage/collections/data/<c>`` with ``query``, ``sort``, ``skip``, ``limit`` and ``fields`` returns a
  JSON array; rows past ``max_rows_per_query`` (50000) are dropped without any error.
- ``DELETE storage/collections/data/<c>/<_key>`` removes one row; ``DELETE storage/collections/data/<c>``
  with a ``query`` removes every row that matches, and without one removes every row. The documented
  query operators are ``$gt $gte $lt $lte $ne $and $or $not`` (``$in`` is not among them), so many keys
  are deleted with ``{"$or": [{"_key": ...}, ...]}``, split so each URL stays short.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from stixbridge.errors import RemoteRejectedError

from .client import SplunkClient
from .mapping import KEY_PREFIX, is_our_key
from .settings import (
    DEFAULT_MAX_DOCUMENTS_PER_BATCH_SAVE,
    DEFAULT_MAX_ROWS_PER_QUERY,
    DEFAULT_MAX_SIZE_PER_BATCH_SAVE_MB,
)

logger = logging.getLogger(__name__)

_MB = 1024 * 1024
MAX_BISECT_REQUESTS = 64
"""Extra requests one save may spend splitting batches to find documents splunkd rejects."""
_JSON_ARRAY_OVERHEAD = 2  # the brackets around the documents


@dataclass(frozen=True, slots=True)
class KvLimits:
    """The KV store limits in force on the server (``limits.conf [kvstore]``)."""

    max_documents_per_batch_save: int = DEFAULT_MAX_DOCUMENTS_PER_BATCH_SAVE
    max_batch_save_bytes: int = DEFAULT_MAX_SIZE_PER_BATCH_SAVE_MB * _MB
    max_rows_per_query: int = DEFAULT_MAX_ROWS_PER_QUERY
    from_server: bool = False


def read_limits(client: SplunkClient, *, owner: str, app: str) -> KvLimits:
    """Read ``configs/conf-limits/kvstore``; fall back to Splunk's defaults where the server hides it.

    Splunk Cloud and accounts without ``admin_all_objects`` may get 403 or 404 here. The defaults are then
    used, and an over-limit batch is still caught by the halving on HTTP 400.
    """
    try:
        answer = client.get_json(
            "configs/conf-limits/kvstore", operation="reading the KV store limits", owner=owner, app=app
        )
    except RemoteRejectedError as exc:
        if exc.status not in (403, 404):
            raise
        logger.info("Splunk does not expose limits.conf [kvstore] (HTTP %s); using the default limits.", exc.status)
        return KvLimits()

    entries = answer.get("entry", []) if isinstance(answer, dict) else []
    content = entries[0].get("content", {}) if entries and isinstance(entries[0], dict) else {}
    defaults = KvLimits()
    limits = KvLimits(
        max_documents_per_batch_save=_positive_int(
            content.get("max_documents_per_batch_save"), defaults.max_documents_per_batch_save
        ),
        max_batch_save_bytes=_positive_int(
            content.get("max_size_per_batch_save_mb"), DEFAULT_MAX_SIZE_PER_BATCH_SAVE_MB
        )
        * _MB,
        max_rows_per_query=_positive_int(content.get("max_rows_per_query"), defaults.max_rows_per_query),
        from_server=True,
    )
    logger.info(
        "KV store limits: %d documents and %d bytes per batch save, %d rows per query.",
        limits.max_documents_per_batch_save,
        limits.max_batch_save_bytes,
        limits.max_rows_per_query,
    )
    return limits


def _over_limit(exc: RemoteRejectedError) -> bool:
    """Return True when an HTTP 400 of a batch save is splunkd's "Request exceeds API limits"."""
    return "exceeds api limits" in str(exc).lower()


def _positive_int(value: Any, default: int) -> int:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


@dataclass
class SaveOutcome:
    """Keys a batch save stored and keys it could not store, with the reason."""

    saved: list[str]
    failed: dict[str, str]


class KvCollection:
    """One KV store collection in one app namespace, written in bounded batches."""

    def __init__(
        self,
        client: SplunkClient,
        name: str,
        *,
        owner: str,
        app: str,
        max_docs: int,
        max_bytes: int,
        read_page: int,
        max_delete_url_bytes: int,
    ) -> None:
        self.client = client
        self.name = name
        self.owner = owner
        self.app = app
        self.max_docs = max_docs
        self.max_bytes = max_bytes
        self.read_page = read_page
        self.max_delete_url_bytes = max_delete_url_bytes
        self._data_path = f"storage/collections/data/{quote(name, safe='')}"

    def __repr__(self) -> str:
        return f"KvCollection({self.app}/{self.name})"

    def exists(self) -> bool:
        """Return True when the collection is defined in this app namespace."""
        try:
            self.client.get_json(
                f"storage/collections/config/{quote(self.name, safe='')}",
                operation=f"checking KV store collection {self.name!r} in app {self.app!r}",
                owner=self.owner,
                app=self.app,
            )
        except RemoteRejectedError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def create(self, fields: dict[str, str], accelerations: dict[str, dict[str, int]]) -> None:
        """Define the collection with typed fields and accelerations (``storage/collections/config``)."""
        form: dict[str, Any] = {"name": self.name}
        form.update({f"field.{name}": kind for name, kind in fields.items()})
        form.update({f"accelerated_fields.{name}": json.dumps(spec) for name, spec in accelerations.items()})
        self.client.post_form(
            "storage/collections/config",
            operation=f"creating KV store collection {self.name!r} in app {self.app!r}",
            owner=self.owner,
            app=self.app,
            **form,
        )
        logger.info("Created KV store collection %s in app %s.", self.name, self.app)

    def save(self, documents: list[dict[str, Any]]) -> SaveOutcome:
        """Insert or replace documents with as few ``batch_save`` requests as the limits allow.

        Chunks are cut by document count and by encoded size. When splunkd still returns HTTP 400 "Request
        exceeds API limits" (a lower limit than the one read, or a size counted differently), the chunk is
        halved, both halves are sent, and later chunks use the smaller count. Any other HTTP 400 means a
        document was rejected: the chunk is split to find it, spending at most ``MAX_BISECT_REQUESTS``
        extra requests, and the rows still rejected after that are reported failed with the reason.
        """
        outcome = SaveOutcome(saved=[], failed={})
        encoded: list[tuple[str, bytes]] = []
        for document in documents:
            body = json.dumps(document, ensure_ascii=True, separators=(",", ":")).encode("ascii")
            if len(body) + _JSON_ARRAY_OVERHEAD > self.max_bytes:
                outcome.failed[document["_key"]] = (
                    f"row is {len(body)} bytes, more than the {self.max_bytes} bytes allowed in one batch save"
                )
                continue
            encoded.append((document["_key"], body))

        pending = list(reversed(self._chunks(encoded)))
        bisect_budget = MAX_BISECT_REQUESTS
        while pending:
            chunk = pending.pop()
            if len(chunk) > self.max_docs:
                pending.extend(reversed(self._chunks(chunk)))
                continue
            try:
                self._send_batch(chunk)
            except RemoteRejectedError as exc:
                if exc.status != 400:
                    raise
                if len(chunk) == 1 or (not _over_limit(exc) and bisect_budget <= 0):
                    outcome.failed.update((key, str(exc)) for key, _ in chunk)
                    continue
                half = len(chunk) // 2
                if _over_limit(exc):
                    # A lower limit than the one read: every later batch must be smaller too.
                    self.max_docs = min(self.max_docs, half)
                    logger.warning(
                        "KV store collection %s rejected a batch of %d rows as over its limits; retrying in "
                        "batches of %d.",
                        self.name,
                        len(chunk),
                        half,
                    )
                else:
                    # A bad document: split this batch only, to find it, within a bounded number of requests.
                    bisect_budget -= 2
                    logger.warning(
                        "KV store collection %s rejected a batch of %d rows (%s); sending its halves apart.",
                        self.name,
                        len(chunk),
                        exc,
                    )
                pending.append(chunk[half:])
                pending.append(chunk[:half])
                continue
            outcome.saved.extend(key for key, _ in chunk)
        return outcome

    def _chunks(self, encoded: list[tuple[str, bytes]]) -> list[list[tuple[str, bytes]]]:
        chunks: list[list[tuple[str, bytes]]] = []
        current: list[tuple[str, bytes]] = []
        size = _JSON_ARRAY_OVERHEAD
        for key, body in encoded:
            extra = len(body) + (1 if current else 0)
            if current and (len(current) >= self.max_docs or size + extra > self.max_bytes):
                chunks.append(current)
                current, size, extra = [], _JSON_ARRAY_OVERHEAD, len(body)
            current.append((key, body))
            size += extra
        if current:
            chunks.append(current)
        return chunks

    def _send_batch(self, chunk: list[tuple[str, bytes]]) -> None:
        body = b"[" + b",".join(body for _, body in chunk) + b"]"
        self.client.post_bytes(
            f"{self._data_path}/batch_save",
            body,
            operation=f"saving {len(chunk)} rows to KV store collection {self.name!r}",
            owner=self.owner,
            app=self.app,
        )
        logger.debug("Saved %d rows (%d bytes) to %s.", len(chunk), len(body), self.name)

    def delete_keys(self, keys: list[str]) -> SaveOutcome:
        """Delete rows by ``_key``; keys that stixbridge did not write are rejected and never sent.

        One key is deleted by its path; several by one query per group of keys that fits the URL budget.
        A key that is already absent counts as deleted.
        """
        outcome = SaveOutcome(saved=[], failed={})
        ours = []
        for key in keys:
            if is_our_key(key):
                ours.append(key)
            else:
                outcome.failed[key] = f"key {key!r} does not carry the {KEY_PREFIX!r} prefix; not deleted"

        for group in self._delete_groups(ours):
            if len(group) == 1:
                self._delete_one(group[0])
            else:
                self._delete_many(group)
            outcome.saved.extend(group)
        return outcome

    def _delete_groups(self, keys: list[str]) -> list[list[str]]:
        # The fixed part of the URL: scheme, host, namespace, collection path and "?output_mode=json&query=".
        base = len(self.client.settings.url) + len(self.owner) + len(self.app) + len(self._data_path) + 80
        budget = max(self.max_delete_url_bytes - base, 200)
        groups: list[list[str]] = []
        current: list[str] = []
        size = len(quote('{"$or":[]}', safe=""))
        for key in keys:
            clause = len(quote(json.dumps({"_key": key}, separators=(",", ":")), safe="")) + 3
            if current and size + clause > budget:
                groups.append(current)
                current, size = [], len(quote('{"$or":[]}', safe=""))
            current.append(key)
            size += clause
        if current:
            groups.append(current)
        return groups

    def _delete_one(self, key: str) -> None:
        try:
            self.client.delete(
                f"{self._data_path}/{quote(key, safe='')}",
                operation=f"deleting row {key} from KV store collection {self.name!r}",
                owner=self.owner,
                app=self.app,
            )
        except RemoteRejectedError as exc:
            if exc.status != 404:
                raise
            logger.debug("Row %s was already absent from %s.", key, self.name)

    def _delete_many(self, keys: list[str]) -> None:
        if not keys:
            # An empty query would delete every row of the collection, ours and everyone else's.
            raise ValueError("a delete by query needs at least one key; an empty query deletes every row")
        query = json.dumps({"$or": [{"_key": key} for key in keys]}, separators=(",", ":"))
        self.client.delete(
            self._data_path,
            operation=f"deleting {len(keys)} rows from KV store collection {self.name!r}",
            owner=self.owner,
            app=self.app,
            query=query,
        )

    def iter_our_rows(self, fields: list[str], max_rows_per_query: int) -> Iterator[dict[str, Any]]:
        """Yield the rows whose ``_key`` carries the stixbridge prefix, sorted by key, a page at a time.

        Pages use ``skip`` and ``limit`` with ``limit`` below the server's row cap, because splunkd drops
        rows past the cap without saying so. A page shorter than ``limit`` ends the read.
        """
        limit = min(self.read_page, max_rows_per_query - 1)
        query = json.dumps({"_key": {"$gte": KEY_PREFIX, "$lt": KEY_PREFIX[:-1] + chr(ord(KEY_PREFIX[-1]) + 1)}})
        skip = 0
        while True:
            page = self.client.get_json(
                self._data_path,
                operation=f"reading rows {skip}-{skip + limit} of KV store collection {self.name!r}",
                owner=self.owner,
                app=self.app,
                query=query,
                sort="_key",
                skip=skip,
                limit=limit,
                fields=",".join(fields),
            )
            if not isinstance(page, list):
                raise RemoteRejectedError(f"reading KV store collection {self.name!r} returned {type(page).__name__}")
            yield from page
            if len(page) < limit:
                return
            skip += len(page)
