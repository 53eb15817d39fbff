"""Reading every page of a collection's objects: TAXII 2.1 ``more``/``next`` and TAXII 2.0 ``Range``.

This loop is ours, not taxii2-client's ``as_pages``. In taxii2-client 2.3.0 that helper requests the
first page again forever when a server sends ``more`` without ``next``. Its ``get_objects`` also returns
the body alone, which loses the ``X-TAXII-Date-Added-Last`` header the checkpoint comes from.

Every pager stops on its own: a page identical to the one before (same objects, same ``next`` token),
a ``more`` without any way to continue, or ``max_pages`` pages end the pass early with ``stop_reason``
set and ``complete`` false, so the caller keeps the old checkpoint.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from stixbridge.errors import RemoteRejectedError

from .discovery import ApiRootInfo, CollectionInfo
from .http import TaxiiHttp, TaxiiResponse
from .timestamps import normalise_timestamp

logger = logging.getLogger(__name__)

DATE_ADDED_LAST = "X-TAXII-Date-Added-Last"
# A ``next`` token the server no longer accepts (medallion drops them after 30 s) restarts the query from
# the checkpoint at most this many times in one pass.
MAX_TOKEN_RESTARTS = 3

_CONTENT_RANGE = re.compile(r"^\s*items\s+(?:(\d+)\s*-\s*(\d+)|\*)\s*/\s*(\d+|\*)\s*$", re.IGNORECASE)


@dataclass
class FetchedPage:
    """One page of objects as the server sent it."""

    objects: list[Any]
    url: str
    size: int
    """Body size in bytes."""
    date_added_last: str | None
    content: bytes = b""
    """The body as received, whose ``objects`` array ``objects`` was read from."""


@dataclass
class PassResult:
    """The outcome of one pass over a collection."""

    complete: bool = False
    checkpoint: str | None = None
    """The last usable ``X-TAXII-Date-Added-Last`` of the pass, normalised to UTC."""
    stop_reason: str | None = None
    """The reason the pass stopped before the end, or None."""
    pages: int = 0
    objects: int = 0
    last_object_id: str | None = None
    last_page_dated: bool = False
    """True when the last page that held objects carried a usable date header."""
    limits: list[int] = field(default_factory=list)
    """Every limit used, so a reduction after HTTP 413 shows."""


class Pager:
    """Base of the per-version pagers: settings, the 413 halving and the date header.

    Args:
        http: the connection.
        root: the API root, for its version and media types.
        collection: the collection to read.
        filters: query parameters sent unchanged on every page (``added_after``, ``match[...]``).
        limit: objects asked for per request.
        min_limit: floor of the halving after HTTP 413.
        max_pages: pages after which the pass stops with an error.
    """

    def __init__(
        self,
        http: TaxiiHttp,
        root: ApiRootInfo,
        collection: CollectionInfo,
        *,
        filters: Mapping[str, str],
        limit: int,
        min_limit: int,
        max_pages: int,
    ) -> None:
        self.http = http
        self.root = root
        self.collection = collection
        self.filters = dict(filters)
        self.limit = limit
        self.min_limit = min_limit
        self.max_pages = max_pages
        self.result = PassResult(limits=[limit])
        self._warned_dates = False

    def pages(self) -> Iterator[FetchedPage]:
        """Yield the pages of one pass; read :attr:`result` afterwards."""
        raise NotImplementedError

    def _halve_limit(self, error: RemoteRejectedError) -> None:
        """Halve the limit after HTTP 413, or raise when it already is ``min_limit``."""
        if self.limit <= self.min_limit:
            raise RemoteRejectedError(
                f"{self.http.owner}: collection {self.collection.label()} returns HTTP 413 (too large) even with "
                f"limit {self.limit}, the min_limit; lower min_limit or ask the server's operator",
                url=error.url,
                status=413,
            ) from error
        smaller = max(self.min_limit, self.limit // 2)
        logger.warning(
            "%s: collection %s returned HTTP 413 (too large) for limit %d; requesting %d objects per page.",
            self.http.owner, self.collection.label(), self.limit, smaller,
        )  # fmt: skip
        self.limit = smaller
        self.result.limits.append(smaller)

    def _date_added_last(self, response: TaxiiResponse) -> str | None:
        raw = response.headers.get(DATE_ADDED_LAST)
        if raw is None:
            return None
        value = normalise_timestamp(raw)
        if value is None and not self._warned_dates:
            self._warned_dates = True
            logger.warning(
                "%s: collection %s sends %s %r, which is not a timestamp; the checkpoint is taken from the "
                "manifest instead.",
                self.http.owner, self.collection.label(), DATE_ADDED_LAST, raw,
            )  # fmt: skip
        return value

    def _stop(self, reason: str) -> None:
        self.result.stop_reason = reason
        logger.error("%s: stopped reading collection %s: %s.", self.http.owner, self.collection.label(), reason)

    def _record(self, page: FetchedPage) -> None:
        self.result.pages += 1
        self.result.objects += len(page.objects)
        if page.date_added_last is not None:
            self.result.checkpoint = page.date_added_last
        if page.objects:
            self.result.last_page_dated = page.date_added_last is not None
        for obj in reversed(page.objects):
            if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                self.result.last_object_id = obj["id"]
                break


class Taxii21Pager(Pager):
    """Pages of TAXII 2.1: the same filters on every request, plus ``next`` while the server sends one.

    When the server sends ``more`` without ``next``, the query is repeated with ``added_after`` set to the
    page's ``X-TAXII-Date-Added-Last``, as the TAXII 2.1 specification prescribes.
    """

    def pages(self) -> Iterator[FetchedPage]:
        token: str | None = None
        previous: tuple[Any, ...] | None = None
        restarts = 0

        while True:
            if self.result.pages >= self.max_pages:
                self._stop(f"read max_pages = {self.max_pages} pages; raise max_pages or limit")
                return

            params = {**self.filters, "limit": str(self.limit)}
            if token is not None:
                params["next"] = token
            try:
                response = self.http.get(self.collection.objects_url, accept=self.root.objects_accept, params=params)
            except RemoteRejectedError as exc:
                if exc.status == 413:
                    self._halve_limit(exc)
                    continue
                if token is not None and exc.status in (400, 404) and restarts < MAX_TOKEN_RESTARTS:
                    restarts += 1
                    self._restart_after_token_error(exc)
                    token = None
                    previous = None
                    continue
                raise

            objects, more, next_token = self._read_envelope(response)
            page = FetchedPage(objects, response.url, response.size, self._date_added_last(response), response.content)
            signature = (next_token, page.date_added_last, len(objects), _object_key(objects, 0),
                         _object_key(objects, -1))  # fmt: skip
            if signature == previous:
                self._stop(f"the server sent the same page again (next token {next_token!r}); this is a server bug")
                return
            previous = signature

            self._record(page)
            yield page

            if not more:
                self.result.complete = True
                return
            if next_token is not None:
                token = next_token
                continue
            if not self._continue_by_date(page):
                return
            token = None

    def _read_envelope(self, response: TaxiiResponse) -> tuple[list[Any], bool, str | None]:
        envelope = response.body
        if not isinstance(envelope, dict):
            raise RemoteRejectedError(
                f"{self.http.owner}: {response.url} returned {type(envelope).__name__} JSON, not a TAXII envelope",
                url=response.url,
            )
        objects = envelope.get("objects")
        if objects is None:
            # An empty envelope may leave out ``objects`` (and ``more``).
            objects = []
        if not isinstance(objects, list):
            raise RemoteRejectedError(
                f"{self.http.owner}: {response.url} returned an envelope whose objects is not a list",
                url=response.url,
            )
        more = envelope.get("more", False)
        if isinstance(more, str):
            more = more.strip().lower() == "true"
        next_token = envelope.get("next")
        if next_token is not None and not isinstance(next_token, str):
            next_token = str(next_token)
        return objects, bool(more), next_token or None

    def _continue_by_date(self, page: FetchedPage) -> bool:
        """Set ``added_after`` for the next request after ``more`` without ``next``; False to stop."""
        date = page.date_added_last
        if date is None:
            self._stop(f"the server said more=true without next and without a usable {DATE_ADDED_LAST}")
            return False
        if self.filters.get("added_after") == date:
            self._stop(f"the server said more=true without next, and {DATE_ADDED_LAST} did not advance ({date})")
            return False
        logger.debug("%s: more without next in collection %s; continuing after %s.",
                     self.http.owner, self.collection.label(), date)  # fmt: skip
        self.filters["added_after"] = date
        return True

    def _restart_after_token_error(self, error: RemoteRejectedError) -> None:
        """Continue after a rejected ``next`` token from the checkpoint, or repeat the pass from its start.

        NOTE: resuming at the checkpoint skips objects that share the last page's ``date_added`` but did not
        fit on it, on servers that compare ``added_after`` exclusively. medallion is one of them, and it
        gives every object of one POST the same ``date_added``.
        """
        if self.result.checkpoint is not None:
            self.filters["added_after"] = self.result.checkpoint
        logger.warning(
            "%s: collection %s rejected its next token (%s); requesting again with added_after=%s.",
            self.http.owner, self.collection.label(), error, self.filters.get("added_after"),
        )  # fmt: skip


class Taxii20Pager(Pager):
    """Pages of TAXII 2.0: a ``Range: items a-b`` header per request and ``Content-Range`` in the response.

    A 200 without ``Content-Range`` is the whole result (the server ignored Range). With an unknown total
    (``items a-b/*`` or no header on a 206) reading goes on until an empty page. A server that rejects
    ``items a-b`` with 400 or 416 is asked once with ``items=a-b`` (the RFC 9110 form), and the form that
    worked is kept in :attr:`syntax` for the rest of the run.
    """

    def __init__(self, *args: Any, syntax: RangeSyntax, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.syntax = syntax

    def pages(self) -> Iterator[FetchedPage]:
        start = 0
        previous: tuple[Any, ...] | None = None
        switched = False

        while True:
            if self.result.pages >= self.max_pages:
                self._stop(f"read max_pages = {self.max_pages} pages; raise max_pages or limit")
                return

            last = start + self.limit - 1
            headers = {"Range": self.syntax.header(start, last)}
            try:
                response = self.http.get(
                    self.collection.objects_url, accept=self.root.objects_accept, params=self.filters, headers=headers
                )
            except RemoteRejectedError as exc:
                if exc.status == 413:
                    self._halve_limit(exc)
                    continue
                if exc.status == 416 and self.syntax.confirmed:
                    # The range starts past the last object.
                    self.result.complete = True
                    return
                if exc.status in (400, 416) and not switched and not self.syntax.confirmed:
                    switched = True
                    self.syntax.switch(self.http.owner)
                    continue
                if exc.status == 416:
                    self.result.complete = True
                    return
                raise

            objects = self._read_bundle(response)
            content_range = response.headers.get("Content-Range")
            page = FetchedPage(objects, response.url, response.size, self._date_added_last(response), response.content)
            signature = (len(objects), _object_key(objects, 0), _object_key(objects, -1), page.date_added_last)
            if objects and signature == previous:
                self._stop(f"the server sent the same objects for range {headers['Range']!r} again")
                return
            previous = signature
            self.syntax.confirmed = True

            self._record(page)
            yield page

            parsed = parse_content_range(content_range)
            if response.status == 200 and content_range is None:
                # The server ignored Range and sent everything.
                self.result.complete = True
                return
            if not objects:
                self.result.complete = True
                return
            _first, end, total = parsed
            next_start = end + 1 if end is not None else start + len(objects)
            if total is not None and next_start >= total:
                self.result.complete = True
                return
            start = max(next_start, start + 1)

    def _read_bundle(self, response: TaxiiResponse) -> list[Any]:
        bundle = response.body
        if not isinstance(bundle, dict):
            raise RemoteRejectedError(
                f"{self.http.owner}: {response.url} returned {type(bundle).__name__} JSON, not a STIX bundle",
                url=response.url,
            )
        objects = bundle.get("objects")
        if objects is None:
            return []
        if not isinstance(objects, list):
            raise RemoteRejectedError(f"{self.http.owner}: {response.url} returned a bundle whose objects is "
                                      "not a list", url=response.url)  # fmt: skip
        return objects


class RangeSyntax:
    """The ``Range`` form a TAXII 2.0 server accepts: ``items 0-49`` (TAXII 2.0 text) or ``items=0-49``."""

    def __init__(self) -> None:
        self.equals = False
        self.confirmed = False
        """True once a request with the current form succeeded."""

    def header(self, first: int, last: int) -> str:
        separator = "=" if self.equals else " "
        return f"items{separator}{first}-{last}"

    def switch(self, owner: str) -> None:
        self.equals = not self.equals
        logger.info("%s: the server rejected the Range form; trying %r.", owner, self.header(0, 1))


def parse_content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """Return ``(first, last, total)`` of ``items a-b/n``, ``items a-b/*`` or ``items */n``; Nones when absent."""
    if value is None:
        return (None, None, None)
    match = _CONTENT_RANGE.match(value)
    if match is None:
        return (None, None, None)
    first, last, total = match.groups()
    return (
        int(first) if first is not None else None,
        int(last) if last is not None else None,
        int(total) if total not in (None, "*") else None,
    )


def _object_key(objects: list[Any], index: int) -> tuple[Any, Any] | None:
    if not objects:
        return None
    obj = objects[index]
    if isinstance(obj, dict):
        return (obj.get("id"), obj.get("modified"))
    return (repr(obj)[:100], None)
