"""The TAXII 2.1/2.0 feed source: every page of every configured collection, resumed from a checkpoint.

The checkpoint of a collection is the ``X-TAXII-Date-Added-Last`` header of the last page of a completed
pass, never a STIX timestamp, because ``added_after`` filters on the date the server added an object.
The source cursor is a JSON object mapping collection id to that date, so several collections share one
cursor. Pages of a pass carry no cursor except the last, so a pass that breaks off is read again from the
old checkpoint. The store ignores versions it already has.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from stixbridge.connector import ConnectorContext
from stixbridge.errors import RemoteRejectedError, StixbridgeError, TransientError
from stixbridge.model import Page, Provenance, RawItem
from stixbridge.sources.base import Source

from .discovery import ApiRootInfo, CollectionInfo, find_collection, open_api_root, select_collections
from .http import TaxiiHttp, warn_about_transport
from .paging import Pager, PassResult, RangeSyntax, Taxii20Pager, Taxii21Pager
from .settings import TaxiiSettings
from .timestamps import later_timestamp, normalise_timestamp

logger = logging.getLogger(__name__)

# Pages larger than this get each object's size measured, so the engine's max_object_bytes check (1 MiB by
# default) catches objects that could exceed it. NOTE: objects on smaller pages report size 0 (unknown), so a
# max_object_bytes set below this value is not enforced for them.
SIZE_CHECK_BYTES = 1_048_576
# How much of a non-object entry the quarantine keeps.
RAW_TEXT_LIMIT = 4096


class TaxiiSource(Source):
    """Pulls STIX objects from the collections of one TAXII server's API root.

    Discovery, the API root and the collections are read on the first pull or fetch, never in the
    constructor. One run reads each collection from its checkpoint to the end. A collection whose pass
    stops early (the server repeats a page, or ``max_pages`` is reached) keeps its old checkpoint. The
    other collections are still read, and then the pull raises :class:`TransientError`.
    """

    kind = "taxii"
    sdk_modules = (("taxii2client", "taxii"),)
    settings_class = TaxiiSettings
    land_first = True
    settings: TaxiiSettings

    def __init__(self, name: str, settings: TaxiiSettings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        settings.check_files(context.base_dir, context.where or f"sources ({name})")
        self.owner = f"TAXII source {name!r}"
        self._http: TaxiiHttp | None = None
        self._root: ApiRootInfo | None = None
        self._range_syntax = RangeSyntax()
        self.passes: list[tuple[CollectionInfo, PassResult]] = []
        """Collections read by the last pull and how each pass ended."""

    def describe(self) -> str:
        collections = ", ".join(repr(c) for c in self.settings.collections) or "every readable collection"
        return (
            f"taxii source {self.name!r} reading {collections} from {self.settings.url} "
            f"(TAXII {self.settings.version}, limit {self.settings.limit})"
        )

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def http(self) -> TaxiiHttp:
        """The connection, opened on first use."""
        if self._http is None:
            self._http = TaxiiHttp(self.settings, base_dir=self.context.base_dir, owner=self.owner)
        return self._http

    def api_root(self) -> ApiRootInfo:
        """Return the API root in use, read from the server once per source instance."""
        if self._root is None:
            self._root = open_api_root(self.http, self.settings)
            logger.info(
                "%s: API root %s (TAXII %s) has %d collections.",
                self.owner, self._root.url, self._root.version, len(self._root.collections),
            )  # fmt: skip
        return self._root

    # -- pull ----------------------------------------------------------------------------------------------

    def pull(self, cursor: str | None) -> Iterator[Page]:
        warn_about_transport(self.settings, self.owner)
        state = decode_cursor(cursor, self.owner)
        root = self.api_root()
        collections = select_collections(root, self.settings.collections, self.owner)
        self.passes = []
        if not collections:
            logger.warning("%s: API root %s has no collection this account can read.", self.owner, root.url)
            yield Page([], cursor=encode_cursor(state), complete=True)
            return

        stopped: list[str] = []
        for index, collection in enumerate(collections):
            start = later_timestamp(state.get(collection.id), self._configured_start())
            pager = self._pager(root, collection, {"added_after": start} if start else {})
            started = time.perf_counter()

            # Hold each page back by one so the last page of the pass can carry the new checkpoint.
            pending_page: Page | None = None
            for fetched in pager.pages():
                if pending_page is not None:
                    yield pending_page
                items = self._items(fetched.objects, fetched.url, fetched.size, collection)
                pending_page = Page(items, bodies=_body_text(fetched.content, items))

            result = pager.result
            self.passes.append((collection, result))
            page = pending_page if pending_page is not None else Page([])
            if result.complete:
                checkpoint = self._checkpoint(root, collection, result)
                if checkpoint is not None:
                    state[collection.id] = checkpoint
                page.cursor = encode_cursor(state)
            else:
                stopped.append(f"collection {collection.label()}: {result.stop_reason}")
            page.complete = index == len(collections) - 1 and not stopped
            self._log_pass(collection, result, state.get(collection.id), time.perf_counter() - started)
            yield page

        if stopped:
            raise TransientError(
                f"{self.owner}: reading stopped early in {'; '.join(stopped)}. Objects read before were stored, "
                "and the checkpoint of these collections was kept, so the next run reads them again"
            )

    def _configured_start(self) -> str | None:
        return normalise_timestamp(self.settings.added_after) if self.settings.added_after else None

    def _pager(self, root: ApiRootInfo, collection: CollectionInfo, filters: dict[str, str]) -> Pager:
        options: dict[str, Any] = {
            "filters": filters,
            "limit": self.settings.limit,
            "min_limit": self.settings.floor_limit,
            "max_pages": self.settings.max_pages,
        }
        if root.version == "2.0":
            return Taxii20Pager(self.http, root, collection, syntax=self._range_syntax, **options)
        return Taxii21Pager(self.http, root, collection, **options)

    def _items(self, objects: list[Any], url: str, size: int, collection: CollectionInfo) -> list[RawItem]:
        measure = size > SIZE_CHECK_BYTES
        plain = Provenance(self.name, collection.id)
        by_author: dict[str, Provenance] = {}
        items: list[RawItem] = []
        for position, obj in enumerate(objects):
            if not isinstance(obj, dict):
                items.append(RawItem(
                    None,
                    plain,
                    raw_text=json.dumps(obj)[:RAW_TEXT_LIMIT],
                    error=f"entry {position} of the page from {url} is a JSON {type(obj).__name__}, not an object",
                ))  # fmt: skip
                continue

            author = obj.get("created_by_ref")
            provenance = plain
            if isinstance(author, str) and author:
                provenance = by_author.get(author) or by_author.setdefault(
                    author, Provenance(self.name, collection.id, author)
                )
            object_size = len(json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()) if measure else 0
            items.append(RawItem(obj, provenance, size=object_size))
        return items

    def _checkpoint(self, root: ApiRootInfo, collection: CollectionInfo, result: PassResult) -> str | None:
        """Return the checkpoint of a completed pass, asking the manifest when the last page had no date."""
        if result.objects == 0 or result.last_page_dated:
            return result.checkpoint
        from_manifest = self._date_added_from_manifest(root, collection, result.last_object_id)
        return later_timestamp(result.checkpoint, from_manifest)

    def _date_added_from_manifest(
        self, root: ApiRootInfo, collection: CollectionInfo, object_id: str | None
    ) -> str | None:
        if object_id is None:
            return None
        params = {"match[id]": object_id, "match[version]": "all"}
        try:
            body = self.http.get(collection.manifest_url, accept=root.accept, params=params).body
        except StixbridgeError as exc:
            logger.warning("%s: no checkpoint for collection %s: its pages carry no usable date and the manifest "
                           "failed (%s); the next run reads it from the start again.",
                           self.owner, collection.label(), exc)  # fmt: skip
            return None
        entries = body.get("objects") if isinstance(body, dict) else None
        dates = [normalise_timestamp(e.get("date_added")) for e in entries or [] if isinstance(e, dict)]
        found = None
        for date in dates:
            found = later_timestamp(found, date)
        return found

    def _log_pass(self, collection: CollectionInfo, result: PassResult, checkpoint: str | None, seconds: float) -> None:
        rate = result.objects / seconds if seconds > 0 else 0.0
        logger.info(
            "%s: read %d objects in %d pages from collection %s in %.1f s (%.0f objects/s); %s, checkpoint %s.",
            self.owner, result.objects, result.pages, collection.label(), seconds, rate,
            "complete" if result.complete else "stopped early", checkpoint or "none",
        )  # fmt: skip

    # -- fetch by id ---------------------------------------------------------------------------------------

    def fetch_by_id(self, object_id: str, provenance: Provenance) -> list[RawItem]:
        """Return every version of ``object_id`` that the collection in ``provenance`` still stores.

        An empty ``provenance.collection`` searches every configured collection.

        Raises:
            RemoteRejectedError: the collection is unknown or unreadable, or the server refused.
            TransientError: the server could not be reached or paged without progress.
        """
        root = self.api_root()
        if provenance.collection:
            collections = [find_collection(root, provenance.collection, self.owner)]
        else:
            collections = select_collections(root, self.settings.collections, self.owner)

        items: list[RawItem] = []
        for collection in collections:
            pager = self._pager(root, collection, {"match[id]": object_id, "match[version]": "all"})
            try:
                for fetched in pager.pages():
                    for item in self._items(fetched.objects, fetched.url, fetched.size, collection):
                        if item.obj is not None and item.obj.get("id") == object_id:
                            items.append(item)
            except RemoteRejectedError as exc:
                if exc.status != 404:
                    raise
                continue
            if pager.result.stop_reason is not None:
                raise TransientError(f"{self.owner}: fetching {object_id} from collection {collection.label()} "
                                     f"stopped early: {pager.result.stop_reason}")  # fmt: skip
        logger.info("%s: fetched %d versions of %s.", self.owner, len(items), object_id)
        return items


def _body_text(content: bytes, items: list[RawItem]) -> tuple[bytes, ...]:
    """Return the page body for landing, or nothing when it is not plain UTF-8 (the engine then encodes the items).

    The body decoded as JSON already, so an encoding that JSON's detection calls UTF-8 (no byte order
    mark) means valid UTF-8 text.
    """
    if not items or json.detect_encoding(content) != "utf-8":
        return ()
    return (content,)


def decode_cursor(cursor: str | None, owner: str) -> dict[str, str]:
    """Return the checkpoint of each collection from a stored cursor; anything unreadable is dropped."""
    if not cursor:
        return {}
    try:
        data = json.loads(cursor)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        logger.warning("%s: the stored cursor %r is not a JSON object of checkpoints; reading every collection "
                       "from added_after.", owner, cursor[:200])  # fmt: skip
        return {}

    state: dict[str, str] = {}
    for collection_id, value in data.items():
        checkpoint = normalise_timestamp(value)
        if checkpoint is None:
            logger.warning("%s: dropping the stored checkpoint %r of collection %s, which is not a timestamp.",
                           owner, value, collection_id)  # fmt: skip
            continue
        state[str(collection_id)] = checkpoint
    return state


def encode_cursor(state: dict[str, str]) -> str:
    """Return the cursor text for a mapping of collection id to checkpoint."""
    return json.dumps(state, sort_keys=True, separators=(",", ":"))
