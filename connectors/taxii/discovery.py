"""Discovery, API roots and collections, read with taxii2-client's resource classes over our own HTTP.

taxii2-client 2.3.0 parses and validates these resources well (API root URLs resolved against the
discovery URL, required properties checked), but its own connection has no timeouts, no retries and a
strict Content-Type check. Its classes accept any object with a ``get(url, headers, params)`` method as
their connection, so :class:`ClientConnection` hands them bodies fetched by :class:`TaxiiHttp`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

from stixbridge.errors import ConfigError, RemoteRejectedError
from stixbridge.plugins import require

from .http import TaxiiHttp, origin_of
from .media import STIX_20, TAXII_20, TAXII_21
from .settings import TaxiiConnectionSettings

logger = logging.getLogger(__name__)

# API roots that do not state a limit get envelopes of at most this many bytes.
DEFAULT_MAX_CONTENT_LENGTH = 10 * 1024 * 1024


@dataclass(frozen=True)
class CollectionInfo:
    """One collection of the API root in use."""

    id: str
    title: str
    url: str
    """The collection's own URL, ending in ``/``."""
    can_read: bool
    can_write: bool
    alias: str | None = None

    @property
    def objects_url(self) -> str:
        return self.url + "objects/"

    @property
    def manifest_url(self) -> str:
        return self.url + "manifest/"

    def label(self) -> str:
        """Return ``title (id)`` for messages."""
        return f"{self.title!r} ({self.id})"


@dataclass(frozen=True)
class ApiRootInfo:
    """The API root in use, with the TAXII version spoken there."""

    url: str
    version: str
    """``2.1`` or ``2.0``."""
    title: str
    max_content_length: int
    collections: tuple[CollectionInfo, ...]
    versions: tuple[str, ...] = ()
    """Media types the API root states it speaks."""

    @property
    def accept(self) -> str:
        """Accept header for TAXII resources (discovery, collections, status, manifest)."""
        return TAXII_21 if self.version == "2.1" else TAXII_20

    @property
    def objects_accept(self) -> str:
        """Accept header for objects; TAXII 2.0 serves them as a STIX bundle."""
        return TAXII_21 if self.version == "2.1" else STIX_20

    def status_url(self, status_id: str) -> str:
        return f"{self.url}status/{status_id}/"


class ClientConnection:
    """The connection object taxii2-client's classes call, backed by :class:`TaxiiHttp`."""

    def __init__(self, http: TaxiiHttp, default_accept: str) -> None:
        self._http = http
        self._default_accept = default_accept

    def get(self, url: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None) -> Any:
        accept = (headers or {}).get("Accept", self._default_accept)
        return self._http.get(url, accept=accept, params=params).body

    def close(self) -> None:
        """Do nothing: the owner of the TaxiiHttp closes it."""


def open_api_root(http: TaxiiHttp, settings: TaxiiConnectionSettings) -> ApiRootInfo:
    """Find the API root of ``settings`` and read its information and collections.

    With ``version = "auto"`` TAXII 2.1 is tried first. A 406 (Not Acceptable), or an API root that lists
    only 2.0 among its versions, switches to TAXII 2.0.

    Raises:
        ConfigError: discovery lists several API roots, names no default, and ``api_root`` is not set.
        RemoteRejectedError: the server refused a request or sent an invalid resource.
        TransientError: the server could not be reached.
    """
    versions = ["2.1", "2.0"] if settings.version == "auto" else [settings.version]
    for version in versions:
        try:
            root = _open_root(http, settings, version)
        except RemoteRejectedError as exc:
            if exc.status == 406 and version != versions[-1]:
                logger.info("%s: the server responded with 406 to TAXII %s; trying TAXII 2.0.", http.owner, version)
                continue
            raise
        if settings.version == "auto" and version == "2.1" and _speaks_only_20(root):
            logger.info("%s: API root %s lists only TAXII 2.0; using TAXII 2.0.", http.owner, root.url)
            continue
        return root
    raise AssertionError("unreachable: the last version either returns or raises")


def _open_root(http: TaxiiHttp, settings: TaxiiConnectionSettings, version: str) -> ApiRootInfo:
    client = _client_module(version)
    accept = TAXII_21 if version == "2.1" else TAXII_20
    connection = ClientConnection(http, accept)
    exceptions: Any = require("taxii2client.exceptions", "taxii", "taxii")

    try:
        root_url = _api_root_url(client, connection, http.owner, settings)
        api_root = client.ApiRoot(root_url, conn=connection)
        title = api_root.title
        max_content_length = api_root.max_content_length
        versions = list(api_root.versions)
        collections = tuple(_collection_info(item) for item in api_root.collections)
    except exceptions.TAXIIServiceException as exc:
        raise RemoteRejectedError(f"{http.owner}: the TAXII server sent an invalid resource: {exc}",
                                  url=settings.url) from exc  # fmt: skip

    if not isinstance(max_content_length, int) or max_content_length <= 0:
        logger.warning(
            "%s: API root %s states no usable max_content_length (%r); envelopes are kept under %d bytes.",
            http.owner, root_url, max_content_length, DEFAULT_MAX_CONTENT_LENGTH,
        )  # fmt: skip
        max_content_length = DEFAULT_MAX_CONTENT_LENGTH
    logger.debug("%s: API root %s (TAXII %s, versions %s) has %d collections.",
                 http.owner, root_url, version, versions, len(collections))  # fmt: skip
    return ApiRootInfo(root_url, version, str(title), max_content_length, collections, tuple(versions))


def _api_root_url(client: Any, connection: ClientConnection, owner: str, settings: TaxiiConnectionSettings) -> str:
    """Return the URL of the API root to use, from ``api_root``, the discovery resource or ``url`` itself."""
    base = _with_slash(settings.url)
    if settings.api_root is not None:
        return _with_slash(urljoin(base, settings.api_root.strip()))

    server = client.Server(base, conn=connection)
    # ``_raw`` is taxii2-client's documented accessor of the parsed body, despite its name.
    raw = server._raw
    if "api_roots" not in raw and ("versions" in raw or "max_content_length" in raw):
        # url points at an API root, not at a discovery resource.
        return base

    # taxii2-client's TAXII 2.0 classes keep relative API root URLs as they are; resolve them here.
    roots = [urljoin(base, root.url) for root in server.api_roots]
    default = urljoin(base, server.default.url) if server.default is not None else None
    if default is not None:
        chosen = default
    elif len(roots) == 1:
        chosen = roots[0]
    elif not roots:
        raise RemoteRejectedError(f"{owner}: the discovery resource at {base} lists no API roots; set api_root",
                                  url=base)  # fmt: skip
    else:
        raise ConfigError(
            f"{owner}: the discovery resource at {base} lists {len(roots)} API roots and names no default; "
            f"set api_root to one of: {', '.join(roots)}",
            key="api_root",
        )

    if origin_of(chosen) != origin_of(base):
        raise RemoteRejectedError(
            f"{owner}: the discovery resource at {base} points to API root {chosen} on another host; credentials "
            "are sent there only when api_root names it explicitly",
            url=base,
        )
    return chosen


def _collection_info(collection: Any) -> CollectionInfo:
    return CollectionInfo(
        id=str(collection.id),
        title=str(collection.title),
        url=collection.url,
        can_read=bool(collection.can_read),
        can_write=bool(collection.can_write),
        alias=getattr(collection, "alias", None),
    )


def select_collections(root: ApiRootInfo, wanted: list[str], owner: str, *, for_writing: bool = False) -> list[
    CollectionInfo
]:
    """Return the collections named by id, title or alias in ``wanted``, or every readable one when empty.

    Raises:
        RemoteRejectedError: a name matches no collection or several, or the collection does not allow
            the access needed; the message lists what the API root offers.
    """
    if not wanted:
        return [collection for collection in root.collections if collection.can_read]

    chosen: list[CollectionInfo] = []
    for name in wanted:
        collection = find_collection(root, name, owner)
        allowed = collection.can_write if for_writing else collection.can_read
        if not allowed:
            access = "writing" if for_writing else "reading"
            flag = "can_write" if for_writing else "can_read"
            raise RemoteRejectedError(
                f"{owner}: collection {collection.label()} does not allow {access} for this account ({flag} is "
                "false); ask the server's operator for access or remove it from the settings",
                url=collection.url,
                status=403,
            )
        if collection not in chosen:
            chosen.append(collection)
    return chosen


def find_collection(root: ApiRootInfo, name: str, owner: str) -> CollectionInfo:
    """Return the collection whose id, title or alias is ``name`` (ids first).

    Raises:
        RemoteRejectedError: no collection or several match.
    """
    for collection in root.collections:
        if collection.id == name:
            return collection

    matches = [c for c in root.collections if c.title == name or c.alias == name]
    if not matches:
        matches = [c for c in root.collections if c.title.casefold() == name.casefold()]
    if len(matches) == 1:
        return matches[0]

    offered = ", ".join(c.label() for c in root.collections) or "none"
    if not matches:
        raise RemoteRejectedError(
            f"{owner}: no collection with id or title {name!r} at API root {root.url}; it offers: {offered}",
            url=root.url,
            status=404,
        )
    raise RemoteRejectedError(
        f"{owner}: {len(matches)} collections at API root {root.url} are titled {name!r}; name one by id: "
        + ", ".join(c.label() for c in matches),
        url=root.url,
    )


def _speaks_only_20(root: ApiRootInfo) -> bool:
    versions = [str(v).lower() for v in root.versions]
    has_20 = any("2.0" in v for v in versions)
    has_21 = any("2.1" in v for v in versions)
    return has_20 and not has_21


def _client_module(version: str) -> Any:
    module = require("taxii2client.v21" if version == "2.1" else "taxii2client.v20", "taxii", "taxii")
    _quiet_client_logger()
    return module


def _quiet_client_logger() -> None:
    """Send taxii2-client's log records through the application's logging configuration.

    taxii2-client 2.3.0 adds its own stderr handler at import and stops propagation, so its messages
    would bypass the handlers and levels the application set up.
    """
    client_logger = logging.getLogger("taxii2client")
    client_logger.handlers.clear()
    client_logger.propagate = True


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
