"""Posting our own STIX objects (sightings, identities) to a TAXII collection, with per-object outcomes.

Objects are sent in envelopes (TAXII 2.1) or bundles (TAXII 2.0) kept under the API root's
``max_content_length``. The status resource the server returns is read again until it is complete or
``poll_timeout`` passes. A failure for an object the server already stores with the same id and version
counts as a success. TAXII treats such a repeat as a no-op but medallion 3.0.0 reports it as a failure,
so the publisher reads the failed objects back to tell the two apart.

A POST that fails with a transient error (timeout, reset connection, 5xx after retries) may still have
been stored, so its objects get the outcome ``unknown``; :meth:`TaxiiPublisher.stored_versions` lets
the outbox read them back before it sends them again.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from stixbridge.connector import Connector, ConnectorContext
from stixbridge.errors import ConfigError, RemoteRejectedError, StixbridgeError, TransientError
from stixbridge.plugins import require
from stixbridge.timeutil import parse_timestamp

from .discovery import ApiRootInfo, ClientConnection, CollectionInfo, open_api_root, select_collections
from .http import TaxiiHttp, warn_about_transport
from .media import STIX_20, TAXII_21
from .paging import Pager, RangeSyntax, Taxii20Pager, Taxii21Pager
from .settings import TaxiiPublishSettings

logger = logging.getLogger(__name__)

State = Literal["success", "failure", "pending", "unknown"]
# Objects read back per request when checking failures.
READ_BACK_BATCH = 50
# Rejections that mean the whole publisher is misconfigured, not that these objects are bad.
STOP_STATUSES = frozenset({401, 403, 404})
# Each outcome and the status resource list that reports it.
STATUS_LISTS: tuple[tuple[State, str], ...] = (("success", "successes"), ("failure", "failures"),
                                               ("pending", "pendings"))  # fmt: skip


@dataclass(frozen=True)
class PublishOutcome:
    """The outcome of one object version."""

    object_id: str
    version: str | None
    """The object's ``modified`` (or ``created``), None when it has neither."""
    state: State
    """``unknown``: the request failed in a way that leaves open whether the server stored the object."""
    message: str = ""
    status_id: str | None = None
    """The status resource that reported it; read it again later for pending objects."""


@dataclass
class PublishResult:
    """Per-object outcomes of one :meth:`TaxiiPublisher.publish` call."""

    outcomes: list[PublishOutcome] = field(default_factory=list)
    status_ids: list[str] = field(default_factory=list)
    requests: int = 0
    """POSTs sent."""
    bytes_sent: int = 0

    @property
    def succeeded(self) -> list[PublishOutcome]:
        return [o for o in self.outcomes if o.state == "success"]

    @property
    def failed(self) -> list[PublishOutcome]:
        return [o for o in self.outcomes if o.state == "failure"]

    @property
    def pending(self) -> list[PublishOutcome]:
        return [o for o in self.outcomes if o.state == "pending"]

    @property
    def unknown(self) -> list[PublishOutcome]:
        return [o for o in self.outcomes if o.state == "unknown"]

    def outcome(self, object_id: str, version: str | None = None) -> PublishOutcome | None:
        """Return the outcome of an object (of one version, when given), or None."""
        for item in self.outcomes:
            if item.object_id == object_id and (version is None or item.version == version):
                return item
        return None


@dataclass
class _Encoded:
    object_id: str
    version: str | None
    data: bytes


class TaxiiPublisher(Connector):
    """Posts STIX objects to one TAXII collection and reports, per object, success, failure or pending.

    Publishing shares our objects with the alliance, so it is off until ``enabled = true`` is set in the
    ``[[publish]]`` entry; the configuration passes that common key to these settings.

    Errors that concern every object raise: 401, 403 and 404, and any failure while reading discovery,
    the API root or the collections. An error of one POST turns the objects of that envelope into
    failures and the next envelope is sent, except after a :class:`TransientError`: the objects of that
    envelope become ``unknown``, because the server may have stored them before the connection failed,
    and every object not yet sent fails.
    """

    kind = "taxii"
    sdk_modules = (("taxii2client", "taxii"),)
    settings_class = TaxiiPublishSettings
    settings: TaxiiPublishSettings

    def __init__(self, name: str, settings: TaxiiPublishSettings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        settings.check_files(context.base_dir, context.where or f"publish ({name})")
        self.owner = f"TAXII publisher {name!r}"
        self._http: TaxiiHttp | None = None
        self._root: ApiRootInfo | None = None

    def describe(self) -> str:
        state = "" if self.settings.enabled else " (off until enabled = true)"
        return f"taxii publisher {self.name!r} posting to {self.settings.collection!r} at {self.settings.url}{state}"

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
        """Return the API root in use, read from the server once per publisher instance."""
        if self._root is None:
            self._root = open_api_root(self.http, self.settings)
        return self._root

    def collection(self) -> CollectionInfo:
        """Return the target collection, checked to allow writing."""
        return select_collections(self.api_root(), [self.settings.collection], self.owner, for_writing=True)[0]

    # -- publish -------------------------------------------------------------------------------------------

    def publish(self, objects: list[dict[str, Any]]) -> PublishResult:
        """Post ``objects`` and return what happened to each distinct (id, version).

        Raises:
            ConfigError: publishing is off (``enabled`` is not true).
            RemoteRejectedError: the server refused the credentials, the collection or the URL.
            TransientError: the server could not be reached for discovery.
        """
        if not self.settings.enabled:
            raise ConfigError(
                f"{self.owner} is off: publishing shares our objects with the alliance; set enabled = true in "
                "its [[publish]] entry to turn it on",
                key="enabled",
            )
        warn_about_transport(self.settings, self.owner)
        result = PublishResult()
        encoded = self._encode(objects, result)
        if not encoded:
            return result

        root = self.api_root()
        collection = self.collection()
        queue = list(self._envelopes(encoded, root))
        while queue:
            batch = queue.pop(0)
            try:
                self._post(root, collection, batch, result)
            except RemoteRejectedError as exc:
                if exc.status in STOP_STATUSES:
                    raise
                if exc.status == 413 and len(batch) > 1:
                    middle = len(batch) // 2
                    queue[:0] = [batch[:middle], batch[middle:]]
                    continue
                self._fail(batch, f"rejected by the server: {exc}", result)
            except TransientError as exc:
                message = f"the POST failed and may have reached the server: {exc}"
                for item in batch:
                    result.outcomes.append(PublishOutcome(item.object_id, item.version, "unknown", message))
                for rest in queue:
                    self._fail(rest, f"not sent after an earlier failure: {exc}", result)
                break

        self._confirm_failures(root, collection, result)
        logger.info(
            "%s: posted %d objects to collection %s in %d requests: %d succeeded, %d failed, %d pending, "
            "%d unknown.",
            self.owner, len(encoded), collection.label(), result.requests, len(result.succeeded),
            len(result.failed), len(result.pending), len(result.unknown),
        )  # fmt: skip
        return result

    def stored_versions(self, object_ids: list[str]) -> dict[str, set[str]]:
        """Read objects back from the collection and return the versions it stores of each.

        The outbox calls this before it sends again objects whose earlier POST may have reached the
        server. Versions are the ``modified`` (or ``created``) strings as the server returns them. An id
        the collection does not store is absent. An object without either timestamp maps to an empty set.

        Raises:
            RemoteRejectedError: the collection does not allow reading, or the server refused the request.
            TransientError: the server could not be reached.
        """
        if not object_ids:
            return {}
        root = self.api_root()
        collection = self.collection()
        if not collection.can_read:
            raise RemoteRejectedError(
                f"{self.owner}: collection {collection.label()} does not allow reading (can_read is false), so "
                "the objects stored there cannot be checked"
            )
        present = self._versions_on_server(root, collection, sorted(set(object_ids)))
        return {object_id: {v for v in versions if v is not None} for object_id, versions in present.items()}

    def status_outcomes(self, status_id: str) -> list[PublishOutcome]:
        """Read a status resource again and return the outcome of every object it lists.

        Failures of objects the server already stores count as successes, as in :meth:`publish`.
        """
        root = self.api_root()
        status = self._read_status(root, status_id)
        outcomes = []
        for state, entry in _status_entries(status):
            version = entry.get("version")
            outcomes.append(PublishOutcome(entry["id"], version if isinstance(version, str) else None, state,
                                           str(entry.get("message") or ""), status_id))  # fmt: skip
        result = PublishResult(outcomes=outcomes, status_ids=[status_id])
        self._confirm_failures(root, self.collection(), result)
        return result.outcomes

    def _encode(self, objects: list[dict[str, Any]], result: PublishResult) -> list[_Encoded]:
        """Serialise each distinct (id, version) once; objects without a STIX id fail at once."""
        seen: set[tuple[str, str | None]] = set()
        encoded = []
        for position, obj in enumerate(objects):
            object_id = obj.get("id") if isinstance(obj, dict) else None
            if not isinstance(object_id, str) or "--" not in object_id or not isinstance(obj.get("type"), str):
                result.outcomes.append(PublishOutcome(
                    str(object_id) if object_id else f"object {position}", None, "failure",
                    "not a STIX object with a type and an id",
                ))  # fmt: skip
                continue
            version = _version_of(obj)
            if (object_id, version) in seen:
                continue
            seen.add((object_id, version))
            data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
            encoded.append(_Encoded(object_id, version, data))
        return encoded

    def _envelopes(self, encoded: list[_Encoded], root: ApiRootInfo) -> Iterator[list[_Encoded]]:
        """Group objects so each request body stays under ``max_content_length`` and the object cap."""
        overhead = len(self._body([], root))
        limit = root.max_content_length
        batch: list[_Encoded] = []
        size = overhead
        for item in encoded:
            added = len(item.data) + (1 if batch else 0)
            if batch and (size + added > limit or len(batch) >= self.settings.max_objects_per_request):
                yield batch
                batch, size, added = [], overhead, len(item.data)
            batch.append(item)
            size += added
        if batch:
            yield batch

    def _body(self, batch: list[_Encoded], root: ApiRootInfo) -> bytes:
        joined = b",".join(item.data for item in batch)
        if root.version == "2.0":
            head = json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "spec_version": "2.0"})
            return head[:-1].encode() + b',"objects":[' + joined + b"]}"
        return b'{"objects":[' + joined + b"]}"

    def _post(
        self, root: ApiRootInfo, collection: CollectionInfo, batch: list[_Encoded], result: PublishResult
    ) -> None:
        body = self._body(batch, root)
        if len(body) > root.max_content_length:
            # Only a single object can be over the limit here; _envelopes split everything else.
            self._fail(batch, f"the object is {len(body)} bytes as a request, more than the API root's "
                              f"max_content_length of {root.max_content_length}", result)  # fmt: skip
            return

        content_type = TAXII_21 if root.version == "2.1" else STIX_20
        response = self.http.post(collection.objects_url, body=body, content_type=content_type, accept=root.accept)
        result.requests += 1
        result.bytes_sent += len(body)

        status_id = response.body.get("id") if isinstance(response.body, dict) else None
        status_id = status_id if isinstance(status_id, str) else None
        if status_id is not None:
            result.status_ids.append(status_id)
        try:
            status = self._wait_for_completion(root, self._status_from(root, response.body))
        except StixbridgeError as exc:
            # The server accepted the POST, so the objects may be stored: they stay pending, not failed.
            logger.warning("%s: posted %d objects, but their status could not be read: %s",
                           self.owner, len(batch), exc)  # fmt: skip
            for item in batch:
                result.outcomes.append(PublishOutcome(item.object_id, item.version, "pending",
                                                      f"posted, but the status could not be read: {exc}",
                                                      status_id))  # fmt: skip
            return
        self._record_status(batch, status, result)

    def _status_from(self, root: ApiRootInfo, body: Any) -> Any:
        client: Any = require("taxii2client.v21" if root.version == "2.1" else "taxii2client.v20", "taxii", "taxii")
        exceptions: Any = require("taxii2client.exceptions", "taxii", "taxii")
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise RemoteRejectedError(f"{self.owner}: the server's response to the POST is not a status resource")
        try:
            return client.Status(root.status_url(body["id"]), conn=ClientConnection(self.http, root.accept),
                                 status_info=body)  # fmt: skip
        except exceptions.TAXIIServiceException as exc:
            raise RemoteRejectedError(f"{self.owner}: the server sent an invalid status resource: {exc}") from exc

    def _read_status(self, root: ApiRootInfo, status_id: str) -> Any:
        body = self.http.get(root.status_url(status_id), accept=root.accept).body
        return self._status_from(root, body)

    def _wait_for_completion(self, root: ApiRootInfo, status: Any) -> Any:
        """Read the status again every ``poll_interval`` until complete, at most ``poll_timeout`` seconds."""
        polls = math.ceil(self.settings.poll_timeout / self.settings.poll_interval)
        for _ in range(polls):
            if status.status == "complete":
                break
            type(self.http).sleep(self.settings.poll_interval)
            status = self._read_status(root, status.id)
        if status.status != "complete":
            logger.warning("%s: status %s is still %r after %g s; %d objects stay pending.",
                           self.owner, status.id, status.status, self.settings.poll_timeout,
                           status.pending_count)  # fmt: skip
        return status

    def _record_status(self, batch: list[_Encoded], status: Any, result: PublishResult) -> None:
        reported: dict[tuple[str, str | None], tuple[State, str]] = {}
        by_id: dict[str, list[tuple[State, str]]] = {}
        for reported_state, entry in _status_entries(status):
            outcome = (reported_state, str(entry.get("message") or ""))
            reported[(entry["id"], _normal_version(entry.get("version")))] = outcome
            by_id.setdefault(entry["id"], []).append(outcome)

        complete = status.status == "complete"
        state: State
        for item in batch:
            found = reported.get((item.object_id, _normal_version(item.version)))
            if found is None and len(by_id.get(item.object_id, [])) == 1:
                found = by_id[item.object_id][0]
            if found is not None:
                state, message = found
            elif complete:
                state, message = "failure", "the completed status resource does not mention this object"
            else:
                state, message = "pending", "the status resource does not mention this object yet"
            result.outcomes.append(PublishOutcome(item.object_id, item.version, state, message, status.id))

    def _fail(self, batch: list[_Encoded], message: str, result: PublishResult) -> None:
        for item in batch:
            result.outcomes.append(PublishOutcome(item.object_id, item.version, "failure", message))

    def _confirm_failures(self, root: ApiRootInfo, collection: CollectionInfo, result: PublishResult) -> None:
        """Turn failures of objects the server already stores (same id and version) into successes."""
        failed = [o for o in result.outcomes if o.state == "failure" and o.status_id is not None]
        if not failed or not collection.can_read:
            return
        try:
            present = self._versions_on_server(root, collection, sorted({o.object_id for o in failed}))
        except StixbridgeError as exc:
            logger.warning("%s: could not read failed objects back to check for repeats: %s", self.owner, exc)
            return

        confirmed = 0
        for index, outcome in enumerate(result.outcomes):
            if outcome.state != "failure" or outcome.status_id is None:
                continue
            versions = present.get(outcome.object_id)
            if versions is None:
                continue
            if outcome.version is not None and _normal_version(outcome.version) not in map(_normal_version, versions):
                continue
            confirmed += 1
            result.outcomes[index] = PublishOutcome(
                outcome.object_id, outcome.version, "success",
                "the server already stores this id and version (it reported the repeat as a failure)",
                outcome.status_id,
            )  # fmt: skip
        if confirmed:
            logger.info("%s: %d reported failures were objects the server already stores.", self.owner, confirmed)

    def _versions_on_server(
        self, root: ApiRootInfo, collection: CollectionInfo, object_ids: list[str]
    ) -> dict[str, set[str | None]]:
        """Return every version string (None for an object without one) the collection stores of each id."""
        present: dict[str, set[str | None]] = {}
        for start in range(0, len(object_ids), READ_BACK_BATCH):
            chunk = object_ids[start : start + READ_BACK_BATCH]
            filters = {"match[id]": ",".join(chunk), "match[version]": "all"}
            options: dict[str, Any] = {"filters": filters, "limit": 1000, "min_limit": 50, "max_pages": 1000}
            pager: Pager
            if root.version == "2.1":
                pager = Taxii21Pager(self.http, root, collection, **options)
            else:
                pager = Taxii20Pager(self.http, root, collection, syntax=RangeSyntax(), **options)
            for page in pager.pages():
                for obj in _dicts(page.objects):
                    present.setdefault(str(obj.get("id")), set()).add(_version_of(obj))
        return present


def _status_entries(status: Any) -> Iterator[tuple[State, dict[str, Any]]]:
    """Yield each status detail (``{id, version, message}``) of a status resource with its outcome."""
    for state, attribute in STATUS_LISTS:
        for entry in getattr(status, attribute) or []:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                yield state, entry


def _version_of(obj: dict[str, Any]) -> str | None:
    value = obj.get("modified", obj.get("created"))
    return value if isinstance(value, str) else None


def _normal_version(value: object) -> str | None:
    """Return a version timestamp in one form, so ``...00Z`` and ``...00.000Z`` compare equal."""
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value).isoformat()
    except ValueError:
        return value


def _dicts(objects: Iterable[Any]) -> Iterator[dict[str, Any]]:
    return (obj for obj in objects if isinstance(obj, dict))
