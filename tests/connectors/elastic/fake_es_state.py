"""Cluster state of the fake Elasticsearch server: indices, aliases, index templates and data streams.

The rules here are Elasticsearch's:

* index and alias names are validated;
* templates are chosen by pattern and priority, and a template with ``data_stream`` turns a new name into a
  data stream that accepts only ``create``;
* an alias with several indices needs a write index;
* documents are checked against their mappings.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .fake_es_mapping import (
    EsError,
    Mapping,
    apply_dynamic_fields,
    merge_mappings,
    parse_document,
    validate_mapping_body,
)
from .fake_es_query import StoredDoc

_INVALID_NAME_CHARS = set('\\/*?"<>| ,#:')


@dataclass
class ItemFault:
    status: int
    times: int
    ids: set[str] | None
    error_type: str
    reason: str


@dataclass
class FakeIndex:
    """One concrete index of the fake."""

    name: str
    mapping: Mapping
    settings: dict[str, Any]
    uuid: str = field(default_factory=lambda: uuid.uuid4().hex[:22])
    docs: dict[str, StoredDoc] = field(default_factory=dict)
    data_stream: str | None = None
    hidden: bool = False
    created: int = field(default_factory=lambda: int(time.time() * 1000))


class ClusterState:
    """Indices, aliases, index templates and data streams of the fake, and the rules for changing them.

    Callers hold ``lock`` while they read or change the state.
    """

    def __init__(self, *, version: str, builtin_templates: bool = True) -> None:
        self.version = version
        self.major = int(version.split(".")[0])
        self.lock = threading.RLock()
        self.indices: dict[str, FakeIndex] = {}
        self.aliases: dict[str, dict[str, dict[str, Any]]] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.data_streams: dict[str, list[str]] = {}
        self.item_faults: list[ItemFault] = []
        self.sequence = itertools.count()
        self.clock: Callable[[], datetime] = lambda: datetime.now(tz=UTC)
        if builtin_templates:
            self.templates["logs"] = {
                "index_patterns": ["logs-*-*"],
                "composed_of": [],
                "priority": 100,
                "version": 1,
                "data_stream": {"hidden": False, "allow_custom_routing": False},
                "allow_auto_create": True,
                "_meta": {"description": "default logs template installed by x-pack", "managed": True},
                "template": {"mappings": {"properties": {"@timestamp": {"type": "date"}}}},
            }

    def reject_items(
        self,
        status: int = 429,
        *,
        times: int = 1,
        ids: set[str] | None = None,
        error_type: str = "",
        reason: str = "",
    ) -> None:
        """Fail the next ``times`` bulk items (only those with ``_id`` in ``ids`` when given) with ``status``.

        ``times`` may be a large number to fail the items on every attempt.
        """
        error_type = error_type or ("es_rejected_execution_exception" if status == 429 else "illegal_state_exception")
        reason = reason or (
            "rejected execution of coordinating operation [shard_detail=[fake][0][P]]"
            if status == 429
            else "injected by the fake"
        )
        with self.lock:
            self.item_faults.append(ItemFault(status, times, ids, error_type, reason))

    # -- test helpers -------------------------------------------------------------------------------------

    def documents(self, name: str) -> dict[str, dict[str, Any]]:
        """Return ``{_id: _source}`` of every document in an index, alias or data stream."""
        with self.lock:
            found: dict[str, dict[str, Any]] = {}
            for index in self.resolve_read(name, ignore_unavailable=True):
                for doc in self.indices[index].docs.values():
                    found[doc.id] = copy.deepcopy(doc.source)
            return found

    # -- name resolution ------------------------------------------------------------------------------------

    def resolve_read(
        self, expression: str, *, ignore_unavailable: bool = False, allow_no_indices: bool = True
    ) -> list[str]:
        found: list[str] = []
        for part in expression.split(","):
            part = part.strip()
            if part in ("", "_all", "*"):
                matched = [name for name, index in self.indices.items() if not index.hidden]
            elif "*" in part:
                matched = self.expand_wildcard(part)
            elif part in self.aliases:
                matched = list(self.aliases[part])
            elif part in self.data_streams:
                matched = list(self.data_streams[part])
            elif part in self.indices:
                matched = [part]
            elif ignore_unavailable:
                matched = []
            else:
                raise index_not_found(part)
            for name in matched:
                if name not in found:
                    found.append(name)
        if not found and not allow_no_indices:
            raise index_not_found(expression)
        return found

    def expand_wildcard(self, pattern: str) -> list[str]:
        hidden_ok = pattern.startswith(".")
        matched: list[str] = []
        for name, index in self.indices.items():
            if fnmatch.fnmatchcase(name, pattern) and (hidden_ok or not index.hidden):
                matched.append(name)
        for alias, members in self.aliases.items():
            if fnmatch.fnmatchcase(alias, pattern) and (hidden_ok or not alias.startswith(".")):
                matched.extend(members)
        for stream, backing in self.data_streams.items():
            if fnmatch.fnmatchcase(stream, pattern):
                matched.extend(backing)
        return matched

    def write_index_of_alias(self, alias: str) -> str:
        members = self.aliases[alias]
        writers = [name for name, props in members.items() if props.get("is_write_index")]
        if writers:
            return writers[0]
        if len(members) == 1 and next(iter(members.values())).get("is_write_index") is not False:
            return next(iter(members))
        raise EsError(
            400,
            "illegal_argument_exception",
            f"no write index is defined for alias [{alias}]. The write index may be explicitly disabled using "
            "is_write_index=false or the alias points to multiple indices without one being designated as a "
            "write index",
        )

    def resolve_single(self, name: str) -> str:
        """Resolve a name that must mean exactly one index (get, mget)."""
        if name in self.aliases:
            members = list(self.aliases[name])
            if len(members) != 1:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"alias [{name}] has more than one index associated with it [{members}], can't execute a "
                    "single index op",
                )
            return members[0]
        if name in self.data_streams:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"index request targeting data stream [{name}] specifies a custom document id",
            )
        if name in self.indices:
            return name
        raise index_not_found(name)

    def matching_template(self, name: str) -> tuple[str, dict[str, Any]] | None:
        best: tuple[str, dict[str, Any]] | None = None
        for template_name, body in self.templates.items():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in body["index_patterns"]):
                if best is None or body.get("priority", 0) > best[1].get("priority", 0):
                    best = (template_name, body)
        return best

    # -- index creation -------------------------------------------------------------------------------------

    def create_index(self, name: str, body: dict[str, Any] | None = None) -> FakeIndex:
        """Create an index as ``PUT /<name>`` does, applying the winning template.

        Raises:
            EsError: bad name, existing index or alias of that name, or a data-stream template.
        """
        body = body or {}
        check_name(name, "index")
        if name in self.indices:
            raise EsError(
                400,
                "resource_already_exists_exception",
                f"index [{name}/{self.indices[name].uuid}] already exists",
                index=name,
            )
        if name in self.aliases or name in self.data_streams:
            raise EsError(
                400, "invalid_index_name_exception", f"Invalid index name [{name}], already exists as alias", index=name
            )
        unknown = set(body) - {"settings", "mappings", "aliases"}
        if unknown:
            raise EsError(400, "parsing_exception", f"unknown key [{sorted(unknown)[0]}] for create index")

        template = self.matching_template(name)
        if template is not None and template[1].get("data_stream") is not None and not name.startswith(".ds-"):
            raise EsError(
                400,
                "illegal_argument_exception",
                f"cannot create index with name [{name}], because it matches with template [{template[0]}] that "
                "creates data streams only, use create data stream api instead",
            )
        inner = template[1].get("template", {}) if template else {}
        mappings = merge_mappings(inner.get("mappings", {}), body.get("mappings", {}))
        validate_mapping_body(mappings)
        settings = flat_settings(
            {**flat_settings(inner.get("settings", {})), **flat_settings(body.get("settings", {}))}
        )
        aliases = {**inner.get("aliases", {}), **body.get("aliases", {})}
        for alias, props in aliases.items():
            self.check_alias_addable(alias, name, props or {})

        index = FakeIndex(
            name=name,
            mapping=Mapping(mappings),
            settings=settings,
            hidden=name.startswith(".") or settings.get("index.hidden") == "true",
        )
        self.indices[name] = index
        for alias, props in aliases.items():
            self.aliases.setdefault(alias, {})[name] = dict(props or {})
        return index

    def check_alias_addable(self, alias: str, index: str, props: dict[str, Any]) -> None:
        check_name(alias, "alias")
        if alias in self.indices or alias in self.data_streams or alias == index:
            raise EsError(
                400,
                "invalid_alias_name_exception",
                f"Invalid alias name [{alias}]: an index or data stream exists with the same name as the alias",
            )
        if props.get("is_write_index"):
            current = [n for n, p in self.aliases.get(alias, {}).items() if p.get("is_write_index") and n != index]
            if current:
                raise EsError(
                    400,
                    "illegal_state_exception",
                    f"alias [{alias}] has more than one write index [{current[0]},{index}]",
                )

    def create_data_stream(self, name: str) -> str:
        template = self.matching_template(name)
        if template is None or template[1].get("data_stream") is None:
            raise EsError(
                400, "illegal_argument_exception", f"no matching index template found for data stream [{name}]"
            )
        if name in self.data_streams:
            raise EsError(400, "resource_already_exists_exception", f"data_stream [{name}] already exists")
        if name in self.indices or name in self.aliases:
            raise EsError(400, "illegal_argument_exception", f"data stream [{name}] conflicts with index or alias")
        backing = f".ds-{name}-{datetime.now(tz=UTC):%Y.%m.%d}-000001"
        inner = template[1].get("template", {})
        mappings = merge_mappings(inner.get("mappings", {}), {"properties": {"@timestamp": {"type": "date"}}})
        index = FakeIndex(
            name=backing,
            mapping=Mapping(mappings),
            settings=flat_settings(inner.get("settings", {})),
            data_stream=name,
            hidden=True,
        )
        self.indices[backing] = index
        self.data_streams[name] = [backing]
        return backing

    # -- document writes ------------------------------------------------------------------------------------

    def write_document(
        self, target: str, op: str, doc_id: str | None, source: Any, *, require_alias: bool = False
    ) -> dict[str, Any]:
        """Apply one index, create, update or delete and return the bulk item body (without the op key).

        Raises:
            EsError: the operation failed; the caller turns it into a per-item error.
        """
        concrete = self._write_target(target, op, require_alias)
        if concrete is None:
            return {
                "_index": target,
                "_id": doc_id,
                "_version": 1,
                "result": "not_found",
                "status": 404,
                "_shards": shards_info(),
                "_seq_no": next(self.sequence),
                "_primary_term": 1,
            }
        index = self.indices[concrete]
        if doc_id is None:
            doc_id = uuid.uuid4().hex[:20]
        existing = index.docs.get(doc_id)

        if op == "delete":
            if existing is None:
                return {
                    "_index": concrete,
                    "_id": doc_id,
                    "_version": 1,
                    "result": "not_found",
                    "status": 404,
                    "_shards": shards_info(),
                    "_seq_no": next(self.sequence),
                    "_primary_term": 1,
                }
            del index.docs[doc_id]
            return {
                "_index": concrete,
                "_id": doc_id,
                "_version": existing.version + 1,
                "result": "deleted",
                "status": 200,
                "_shards": shards_info(),
                "_seq_no": next(self.sequence),
                "_primary_term": 1,
            }

        if op == "create" and existing is not None:
            raise EsError(
                409,
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, document already exists (current version [{existing.version}])",
                index_uuid=index.uuid,
                shard="0",
                index=concrete,
            )
        if op == "update":
            source = self._updated_source(existing, source, doc_id, concrete)
        if index.data_stream is not None and not (isinstance(source, dict) and "@timestamp" in source):
            raise EsError(
                400, "document_parsing_exception", "[1:1] data stream timestamp field [@timestamp] is missing"
            )

        added = parse_document(index.mapping, source, doc_id)
        apply_dynamic_fields(index.mapping, added)
        version = existing.version + 1 if existing else 1
        index.docs[doc_id] = StoredDoc(concrete, doc_id, copy.deepcopy(source), version, next(self.sequence))
        return {
            "_index": concrete,
            "_id": doc_id,
            "_version": version,
            "result": "updated" if existing else "created",
            "status": 200 if existing else 201,
            "_shards": shards_info(),
            "_seq_no": index.docs[doc_id].seq_no,
            "_primary_term": 1,
        }

    def _updated_source(self, existing: StoredDoc | None, body: Any, doc_id: str, index: str) -> dict[str, Any]:
        if not isinstance(body, dict) or "doc" not in body or set(body) - {"doc", "doc_as_upsert", "detect_noop"}:
            raise EsError(
                400, "illegal_argument_exception", "the fake implements only updates with 'doc' and 'doc_as_upsert'"
            )
        if existing is None:
            if not body.get("doc_as_upsert"):
                raise EsError(404, "document_missing_exception", f"[{doc_id}]: document missing", index=index)
            return copy.deepcopy(body["doc"])
        merged = copy.deepcopy(existing.source)
        deep_update(merged, body["doc"])
        return merged

    def _write_target(self, target: str, op: str, require_alias: bool) -> str | None:
        if target in self.aliases:
            return self.write_index_of_alias(target)
        if require_alias and op != "delete":
            raise EsError(
                404,
                "index_not_found_exception",
                f"no such index [{target}] and [require_alias] request flag is [true] and [{target}] is not an alias",
                index=target,
            )
        if target in self.data_streams:
            if op != "create":
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    "only write ops with an op_type of create are allowed in data streams",
                )
            return self.data_streams[target][-1]
        if target in self.indices:
            if self.indices[target].data_stream is not None and op in ("index", "create"):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    "index request with op_type=create and no if_primary_term and if_seq_no set targeting backing "
                    f"indices is disallowed, target corresponds to data stream [{self.indices[target].data_stream}]",
                )
            return target
        if op == "delete":
            return None

        check_name(target, "index")
        template = self.matching_template(target)
        if template is not None and template[1].get("data_stream") is not None:
            self.create_data_stream(target)
            return self._write_target(target, op, require_alias)
        self.create_index(target)
        return target

    def apply_item_fault(self, doc_id: str | None) -> EsError | None:
        for fault in self.item_faults:
            if fault.times > 0 and (fault.ids is None or doc_id in fault.ids):
                fault.times -= 1
                return EsError(fault.status, fault.error_type, fault.reason)
        return None


def shards_info() -> dict[str, int]:
    return {"total": 2, "successful": 1, "failed": 0}


def index_not_found(name: str) -> EsError:
    return EsError(
        404,
        "index_not_found_exception",
        f"no such index [{name}]",
        index=name,
        **{"resource.id": name, "resource.type": "index_or_alias"},
    )


def check_name(name: str, kind: str) -> None:
    problem = ""
    if not name or name != name.lower():
        problem = "must be lowercase"
    elif name[0] in "-_+":
        problem = "must not start with '_', '-', or '+'"
    elif any(ch in _INVALID_NAME_CHARS for ch in name):
        problem = 'must not contain the following characters [ , ", *, \\, <, |, ,, >, /, ?, #, :]'
    elif name in (".", ".."):
        problem = "must not be '.' or '..'"
    if problem:
        error = "invalid_index_name_exception" if kind == "index" else "invalid_alias_name_exception"
        raise EsError(400, error, f"Invalid {kind} name [{name}], {problem}", index=name)


def flat_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flat_settings(value, f"{path}."))
        else:
            if not path.startswith("index."):
                path = f"index.{path}"
            if isinstance(value, bool):
                flat[path] = str(value).lower()
            elif isinstance(value, list):
                flat[path] = value
            else:
                flat[path] = str(value)
    known = {
        "index.number_of_shards",
        "index.number_of_replicas",
        "index.refresh_interval",
        "index.hidden",
        "index.sort.field",
        "index.sort.order",
        "index.mapping.total_fields.limit",
        "index.codec",
        "index.lifecycle.name",
        "index.lifecycle.rollover_alias",
        "index.default_pipeline",
        "index.mode",
        "index.auto_expand_replicas",
    }
    for key in flat:
        if key not in known:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"unknown setting [{key}] please check that any required plugins are installed, or check the breaking "
                "changes documentation for removed settings",
            )
    return flat


def nest_settings(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def deep_update(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
