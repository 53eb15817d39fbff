"""Endpoints of the fake Elasticsearch server: routing, query parameters and one handler per API.

Paths, methods and query parameters follow Elastic's REST API specification
(``elastic/elasticsearch-specification``, ``specification/_json_spec/<api>.json``).
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from .fake_es_mapping import EsError, apply_dynamic_fields, parse_document, validate_mapping_body
from .fake_es_query import (
    QueryContext,
    StoredDoc,
    coerce_search_after,
    filter_source,
    parse_sort,
    sort_tuple,
    sort_values,
)
from .fake_es_state import (
    ClusterState,
    FakeIndex,
    flat_settings,
    nest_settings,
)

GLOBAL_PARAMS = {"pretty", "human", "error_trace"}

# Query parameters per endpoint: those the fake implements, and those the specification lists but the fake
# does not implement (refused with a message saying so). Names come from specification/_json_spec/<api>.json.
SPEC_PARAMS: dict[str, tuple[set[str], set[str]]] = {
    "info": (set(), set()),
    "bulk": (
        {"refresh", "require_alias", "timeout", "wait_for_active_shards"},
        {
            "routing",
            "_source",
            "_source_excludes",
            "_source_includes",
            "pipeline",
            "require_data_stream",
            "list_executed_pipelines",
            "include_source_on_error",
        },
    ),
    "search": (
        {
            "ignore_unavailable",
            "allow_no_indices",
            "expand_wildcards",
            "size",
            "from",
            "_source",
            "_source_includes",
            "_source_excludes",
            "track_total_hits",
            "rest_total_hits_as_int",
            "timeout",
        },
        {
            "analyzer",
            "analyze_wildcard",
            "ccs_minimize_roundtrips",
            "default_operator",
            "df",
            "explain",
            "stored_fields",
            "docvalue_fields",
            "ignore_throttled",
            "lenient",
            "preference",
            "q",
            "routing",
            "scroll",
            "search_type",
            "sort",
            "terminate_after",
            "stats",
            "suggest_field",
            "suggest_mode",
            "suggest_size",
            "suggest_text",
            "track_scores",
            "allow_partial_search_results",
            "typed_keys",
            "version",
            "seq_no_primary_term",
            "request_cache",
            "batched_reduce_size",
            "max_concurrent_shard_requests",
            "pre_filter_shard_size",
            "include_named_queries_score",
            "filter_path",
            "force_synthetic_source",
        },
    ),
    "count": (
        {"ignore_unavailable", "allow_no_indices", "expand_wildcards"},
        {
            "min_score",
            "preference",
            "routing",
            "q",
            "analyzer",
            "analyze_wildcard",
            "default_operator",
            "df",
            "lenient",
            "terminate_after",
            "ignore_throttled",
            "filter_path",
        },
    ),
    "update_by_query": (
        {
            "conflicts",
            "max_docs",
            "refresh",
            "ignore_unavailable",
            "allow_no_indices",
            "expand_wildcards",
            "wait_for_completion",
            "timeout",
            "slices",
            "scroll_size",
            "requests_per_second",
        },
        {
            "analyzer",
            "analyze_wildcard",
            "default_operator",
            "df",
            "from",
            "lenient",
            "pipeline",
            "preference",
            "q",
            "routing",
            "scroll",
            "search_type",
            "search_timeout",
            "sort",
            "terminate_after",
            "stats",
            "version",
            "version_type",
            "request_cache",
            "wait_for_active_shards",
            "filter_path",
        },
    ),
    "mget": (
        {"_source", "_source_includes", "_source_excludes", "refresh", "realtime"},
        {"preference", "routing", "stored_fields", "force_synthetic_source", "filter_path"},
    ),
    "get": (
        {"_source", "_source_includes", "_source_excludes", "refresh", "realtime"},
        {"preference", "routing", "stored_fields", "version", "version_type", "force_synthetic_source"},
    ),
    "index": (
        {"op_type", "refresh", "require_alias", "timeout"},
        {
            "if_seq_no",
            "if_primary_term",
            "pipeline",
            "routing",
            "version",
            "version_type",
            "wait_for_active_shards",
            "require_data_stream",
            "include_source_on_error",
        },
    ),
    "delete": (
        {"refresh", "timeout"},
        {"if_seq_no", "if_primary_term", "routing", "version", "version_type", "wait_for_active_shards"},
    ),
    "indices.refresh": ({"ignore_unavailable", "allow_no_indices", "expand_wildcards"}, set()),
    "indices.create": ({"timeout", "master_timeout", "wait_for_active_shards"}, set()),
    "indices.get": (
        {
            "ignore_unavailable",
            "allow_no_indices",
            "expand_wildcards",
            "master_timeout",
            "flat_settings",
            "local",
            "include_defaults",
            "features",
        },
        set(),
    ),
    "indices.delete": (
        {"timeout", "master_timeout", "ignore_unavailable", "allow_no_indices", "expand_wildcards"},
        set(),
    ),
    "indices.get_mapping": (
        {"ignore_unavailable", "allow_no_indices", "expand_wildcards", "master_timeout", "local"},
        set(),
    ),
    "indices.get_alias": (
        {"ignore_unavailable", "allow_no_indices", "expand_wildcards", "local", "master_timeout"},
        set(),
    ),
    "indices.put_alias": ({"timeout", "master_timeout"}, set()),
    "indices.delete_alias": ({"timeout", "master_timeout"}, set()),
    "indices.update_aliases": ({"timeout", "master_timeout"}, set()),
    "indices.put_index_template": ({"create", "master_timeout", "cause"}, set()),
    "indices.get_index_template": ({"local", "flat_settings", "master_timeout", "include_defaults"}, set()),
    "indices.delete_index_template": ({"timeout", "master_timeout"}, set()),
    "indices.create_data_stream": ({"timeout", "master_timeout"}, set()),
    "indices.get_data_stream": ({"expand_wildcards", "include_defaults", "master_timeout", "verbose"}, set()),
    "indices.delete_data_stream": ({"expand_wildcards", "master_timeout"}, set()),
}


# Each handler takes (state, path parts, query, payload) and returns (status, body, headers).
Handler = Callable[[ClusterState, dict[str, str], dict[str, str], Any], tuple[int, Any, dict[str, str]]]


def _ok(body: Any, status: int = 200) -> tuple[int, Any, dict[str, str]]:
    return status, body, {}


def _bool_param(query: dict[str, str], name: str, default: bool = False) -> bool:
    value = query.get(name)
    if value is None:
        return default
    if value in ("true", ""):
        return True
    if value == "false":
        return False
    raise EsError(
        400, "illegal_argument_exception", f"Failed to parse value [{value}] as only [true] or [false] are allowed."
    )


def _now_millis(state: ClusterState) -> int:
    return int(state.clock().timestamp() * 1000)


# -- info, bulk, documents ----------------------------------------------------------------------------------


def _info(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    return _ok(
        {
            "name": "fake-elasticsearch-node",
            "cluster_name": "fake-elasticsearch",
            "cluster_uuid": "fakeclusteruuid0000000",
            "version": {
                "number": state.version,
                "build_flavor": "default",
                "build_type": "fake",
                "build_hash": "fake",
                "build_date": "2024-01-01T00:00:00.000Z",
                "build_snapshot": False,
                "lucene_version": "9.12.0",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }
    )


_BULK_META = {
    "_index",
    "_id",
    "routing",
    "if_seq_no",
    "if_primary_term",
    "version",
    "version_type",
    "require_alias",
    "retry_on_conflict",
    "pipeline",
    "dynamic_templates",
    "_source",
    "op_type",
    "list_executed_pipelines",
    "require_data_stream",
}
_BULK_META_IMPLEMENTED = {"_index", "_id", "require_alias"}


def _bulk(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    if not payload:
        raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
    if not payload.endswith("\n"):
        raise EsError(400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]")
    require_alias = _bool_param(query, "require_alias")
    lines = payload.split("\n")[:-1]
    operations = _parse_bulk_lines(lines, parts.get("index"))

    started = time.monotonic()
    items = []
    for op, meta, source in operations:
        doc_id = meta.get("_id")
        fault = state.apply_item_fault(doc_id)
        try:
            if fault is not None:
                raise fault
            result = state.write_document(
                meta["_index"], op, doc_id, source, require_alias=meta.get("require_alias", require_alias)
            )
        except EsError as exc:
            result = {"_index": meta["_index"], "_id": doc_id, "status": exc.status, "error": exc.item_error()}
        items.append({op: result})
    errors = any("error" in next(iter(item.values())) for item in items)
    return _ok({"errors": errors, "took": int((time.monotonic() - started) * 1000), "items": items})


def _parse_bulk_lines(lines: list[str], default_index: str | None) -> list[tuple[str, dict[str, Any], Any]]:
    operations = []
    position = 0
    while position < len(lines):
        line = lines[position]
        position += 1
        if not line.strip():
            continue
        try:
            action = json.loads(line)
        except ValueError as exc:
            raise EsError(
                400, "x_content_parse_exception", f"[{position}:1] Malformed action/metadata line [{position}]: {exc}"
            ) from None
        if not isinstance(action, dict) or len(action) != 1:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"Malformed action/metadata line [{position}], expected START_OBJECT or END_OBJECT",
            )
        ((op, meta),) = action.items()
        if op not in ("index", "create", "update", "delete"):
            raise EsError(
                400,
                "illegal_argument_exception",
                f"Malformed action/metadata line [{position}], expected one of [create, delete, index, update] but "
                f"found [{op}]",
            )
        for key in meta:
            if key not in _BULK_META:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"Action/metadata line [{position}] contains an unknown parameter [{key}]",
                )
            if key not in _BULK_META_IMPLEMENTED:
                raise EsError(400, "illegal_argument_exception", f"the fake does not implement bulk metadata [{key}]")
        meta = dict(meta)
        meta.setdefault("_index", default_index)
        if meta["_index"] is None:
            raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
        source = None
        if op != "delete":
            if position >= len(lines):
                raise EsError(
                    400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]"
                )
            try:
                source = json.loads(lines[position])
            except ValueError as exc:
                raise EsError(
                    400, "x_content_parse_exception", f"[{position + 1}:1] failed to parse document: {exc}"
                ) from None
            position += 1
        operations.append((op, meta, source))
    return operations


def _index_doc(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    op = query.get("op_type", "index")
    result = state.write_document(
        parts["index"], op, parts.get("id"), payload, require_alias=_bool_param(query, "require_alias")
    )
    status = result.pop("status")
    return _ok(result, status)


def _create_doc(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    return _index_doc(state, parts, {**query, "op_type": "create"}, payload)


def _get_doc(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    concrete = state.resolve_single(parts["index"])
    doc = state.indices[concrete].docs.get(parts["id"])
    if doc is None:
        return _ok({"_index": concrete, "_id": parts["id"], "found": False}, 404)
    return _ok(
        {
            "_index": concrete,
            "_id": doc.id,
            "_version": doc.version,
            "_seq_no": doc.seq_no,
            "_primary_term": 1,
            "found": True,
            "_source": _source_of(doc, query, None),
        }
    )


def _delete_doc(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    result = state.write_document(parts["index"], "delete", parts["id"], None)
    status = result.pop("status")
    return _ok(result, status)


def _mget(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    if not isinstance(payload, dict) or not ({"docs", "ids"} & set(payload)):
        raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: no documents to get;")
    requests = payload.get("docs") or [{"_id": doc_id} for doc_id in payload.get("ids", [])]
    docs = []
    for request in requests:
        index = request.get("_index", parts.get("index"))
        doc_id = request.get("_id")
        try:
            concrete = state.resolve_single(index)
        except EsError as exc:
            docs.append({"_index": index, "_id": doc_id, "error": exc.item_error()})
            continue
        doc = state.indices[concrete].docs.get(doc_id)
        if doc is None:
            docs.append({"_index": concrete, "_id": doc_id, "found": False})
        else:
            docs.append(
                {
                    "_index": concrete,
                    "_id": doc_id,
                    "_version": doc.version,
                    "_seq_no": doc.seq_no,
                    "_primary_term": 1,
                    "found": True,
                    "_source": _source_of(doc, query, request.get("_source")),
                }
            )
    return _ok({"docs": docs})


def _source_of(doc: StoredDoc, query: dict[str, str], spec: Any) -> Any:
    includes: list[str] = []
    excludes: list[str] = []
    if "_source" in query:
        value = query["_source"]
        if value == "false":
            return None
        if value != "true":
            includes = value.split(",")
    if "_source_includes" in query:
        includes = query["_source_includes"].split(",")
    if "_source_excludes" in query:
        excludes = query["_source_excludes"].split(",")
    if spec is False:
        return None
    if isinstance(spec, list):
        includes = spec
    elif isinstance(spec, str):
        includes = [spec]
    elif isinstance(spec, dict):
        includes = spec.get("includes", [])
        excludes = spec.get("excludes", [])
    return filter_source(doc.source, includes, excludes)


# -- search, count, update by query ------------------------------------------------------------------------


_SEARCH_BODY = {"query", "size", "from", "sort", "search_after", "_source", "track_total_hits"}
_SEARCH_BODY_UNIMPLEMENTED = {
    "aggs",
    "aggregations",
    "collapse",
    "docvalue_fields",
    "explain",
    "ext",
    "fields",
    "highlight",
    "indices_boost",
    "knn",
    "min_score",
    "pit",
    "post_filter",
    "profile",
    "rank",
    "rescore",
    "retriever",
    "runtime_mappings",
    "script_fields",
    "slice",
    "stats",
    "stored_fields",
    "suggest",
    "terminate_after",
    "timeout",
    "track_scores",
    "version",
    "seq_no_primary_term",
}


def _matching_docs(
    state: ClusterState, expression: str, query: dict[str, str], dsl: Any
) -> list[tuple[FakeIndex, StoredDoc, QueryContext]]:
    names = state.resolve_read(
        expression,
        ignore_unavailable=_bool_param(query, "ignore_unavailable"),
        allow_no_indices=_bool_param(query, "allow_no_indices", True),
    )
    matched = []
    for name in names:
        index = state.indices[name]
        context = QueryContext(index.mapping, _now_millis(state))
        if dsl is not None:
            context.matches(dsl, StoredDoc(name, "", {}))  # raises for bad queries even on an empty index
        for doc in list(index.docs.values()):
            if context.matches(dsl, doc):
                matched.append((index, doc, context))
    return matched


def _search(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    body = payload or {}
    unknown = set(body) - _SEARCH_BODY
    for key in sorted(unknown):
        if key in _SEARCH_BODY_UNIMPLEMENTED:
            raise EsError(400, "illegal_argument_exception", f"the fake does not implement search option [{key}]")
        raise EsError(400, "parsing_exception", f"Unknown key for a START_OBJECT in [{key}].")
    size = int(body.get("size", query.get("size", 10)))
    start = int(body.get("from", query.get("from", 0)))
    if start + size > 10_000:
        raise EsError(
            400,
            "illegal_argument_exception",
            f"Result window is too large, from + size must be less than or equal to: [10000] but was [{start + size}].",
        )

    matched = _matching_docs(state, parts.get("index", "_all"), query, body.get("query"))
    keys_by_index = {}
    for index, _, _ in matched:
        if index.name not in keys_by_index:
            keys_by_index[index.name] = parse_sort(body.get("sort"), index.mapping)
    if not matched and body.get("sort") is not None:
        for name in state.resolve_read(parts.get("index", "_all"), ignore_unavailable=True):
            parse_sort(body.get("sort"), state.indices[name].mapping)

    rows = []
    for position, (index, doc, _) in enumerate(matched):
        keys = keys_by_index[index.name]
        rows.append((keys, sort_values(keys, doc, index.mapping, position), index, doc))
    if body.get("sort") is not None and rows:
        keys = rows[0][0]
        rows.sort(key=lambda row: sort_tuple(keys, row[1]))
        if "search_after" in body:
            after = sort_tuple(keys, coerce_search_after(keys, body["search_after"]))
            rows = [row for row in rows if sort_tuple(keys, row[1]) > after]
    elif "search_after" in body:
        raise EsError(400, "illegal_argument_exception", "Sort must contain at least one field.")

    total = len(rows)
    page = rows[start : start + size]
    hits = []
    for _keys, values, index, doc in page:
        hit: dict[str, Any] = {"_index": index.name, "_id": doc.id, "_score": None if body.get("sort") else 1.0}
        source = _source_of(doc, query, body.get("_source"))
        if source is not None:
            hit["_source"] = source
        if body.get("sort") is not None:
            hit["sort"] = values
        hits.append(hit)
    hits_block: dict[str, Any] = {"max_score": None, "hits": hits}
    if hits and not body.get("sort"):
        hits_block["max_score"] = 1.0
    tracked = body.get("track_total_hits", True)
    if tracked is True:
        limit = 10_000
    elif isinstance(tracked, int) and tracked is not False:
        limit = tracked
    else:
        limit = 0
    if tracked is not False:
        hits_block["total"] = {"value": min(total, limit), "relation": "eq" if total <= limit else "gte"}
    return _ok(
        {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": hits_block,
        }
    )


def _count(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    body = payload or {}
    if set(body) - {"query"}:
        raise EsError(400, "parsing_exception", f"request does not support [{sorted(set(body) - {'query'})[0]}]")
    matched = _matching_docs(state, parts.get("index", "_all"), query, body.get("query"))
    return _ok({"count": len(matched), "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}})


_SCRIPT_STATEMENT = re.compile(
    r"""^\s*ctx\._source(?:\[\s*(['"])(?P<bracket>[^'"]+)\1\s*\]|\.(?P<dotted>[A-Za-z_]\w*))\s*=\s*params\.(?P<param>\w+)\s*$"""
)


def _compile_script(script: Any) -> list[tuple[str, str]]:
    if isinstance(script, str):
        script = {"source": script}
    if not isinstance(script, dict) or "source" not in script:
        raise EsError(400, "parsing_exception", "script must have a [source]")
    if script.get("lang", "painless") != "painless":
        raise EsError(400, "illegal_argument_exception", f"script_lang not supported [{script.get('lang')}]")
    assignments = []
    for statement in script["source"].split(";"):
        if not statement.strip():
            continue
        match = _SCRIPT_STATEMENT.match(statement)
        if match is None:
            raise EsError(
                400,
                "script_exception",
                "compile error: the fake runs only 'ctx._source[...] = params.x' statements, not "
                f"[{statement.strip()}]",
            )
        assignments.append((match.group("bracket") or match.group("dotted"), match.group("param")))
    params = script.get("params", {})
    for _, param in assignments:
        if param not in params:
            raise EsError(400, "script_exception", f"runtime error: params.{param} is null")
    return assignments


def _update_by_query(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    body = payload or {}
    unknown = set(body) - {"query", "script", "conflicts", "max_docs"}
    if unknown:
        raise EsError(400, "parsing_exception", f"[update_by_query] unknown field [{sorted(unknown)[0]}]")
    if _bool_param(query, "wait_for_completion", True) is False:
        raise EsError(400, "illegal_argument_exception", "the fake does not implement wait_for_completion=false")
    conflicts = body.get("conflicts", query.get("conflicts", "abort"))
    if conflicts not in ("abort", "proceed"):
        raise EsError(
            400, "illegal_argument_exception", f'conflicts may only be "proceed" or "abort" but was [{conflicts}]'
        )
    assignments = _compile_script(body["script"]) if "script" in body else []
    params = body.get("script", {}).get("params", {}) if isinstance(body.get("script"), dict) else {}
    max_docs = body.get("max_docs", query.get("max_docs"))

    matched = _matching_docs(state, parts["index"], query, body.get("query"))
    if max_docs is not None:
        matched = matched[: int(max_docs)]
    updated = 0
    failures = []
    for index, doc, _ in matched:
        source = copy.deepcopy(doc.source)
        for key, param in assignments:
            source[key] = copy.deepcopy(params[param])
        try:
            added = parse_document(index.mapping, source, doc.id)
        except EsError as exc:
            failures.append({"index": index.name, "id": doc.id, "cause": exc.item_error(), "status": exc.status})
            continue
        apply_dynamic_fields(index.mapping, added)
        index.docs[doc.id] = StoredDoc(index.name, doc.id, source, doc.version + 1, next(state.sequence))
        updated += 1
    return _ok(
        {
            "took": 1,
            "timed_out": False,
            "total": len(matched),
            "updated": updated,
            "deleted": 0,
            "batches": max(1, (len(matched) + 999) // 1000),
            "version_conflicts": 0,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0,
            "requests_per_second": -1.0,
            "throttled_until_millis": 0,
            "failures": failures,
        }
    )


def _refresh(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    state.resolve_read(parts.get("index", "_all"), ignore_unavailable=_bool_param(query, "ignore_unavailable"))
    return _ok({"_shards": {"total": 1, "successful": 1, "failed": 0}})


# -- indices, aliases, templates, data streams ---------------------------------------------------------------


def _create_index(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    state.create_index(parts["index"], payload or {})
    return _ok({"acknowledged": True, "shards_acknowledged": True, "index": parts["index"]})


def _index_info(state: ClusterState, name: str) -> dict[str, Any]:
    index = state.indices[name]
    settings = {key: value for key, value in index.settings.items()}
    settings.setdefault("index.number_of_shards", "1")
    settings.setdefault("index.number_of_replicas", "1")
    settings.update(
        {
            "index.provided_name": name,
            "index.uuid": index.uuid,
            "index.creation_date": str(index.created),
            "index.version.created": "8521000",
        }
    )
    info: dict[str, Any] = {
        "aliases": {alias: dict(members[name]) for alias, members in state.aliases.items() if name in members},
        "mappings": copy.deepcopy(index.mapping.body),
        "settings": nest_settings(settings),
    }
    if index.data_stream is not None:
        info["data_stream"] = index.data_stream
    return info


def _get_index(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    names = state.resolve_read(parts["index"], ignore_unavailable=_bool_param(query, "ignore_unavailable"))
    return _ok({name: _index_info(state, name) for name in names})


def _exists_index(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    try:
        names = state.resolve_read(parts["index"], allow_no_indices=False)
    except EsError:
        return 404, None, {}
    return (200 if names else 404), None, {}


def _delete_index(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    for part in parts["index"].split(","):
        if part in state.aliases:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"The provided expression [{part}] matches an alias, specify the corresponding concrete indices "
                "instead.",
            )
    names = state.resolve_read(parts["index"], ignore_unavailable=_bool_param(query, "ignore_unavailable"))
    for name in names:
        if state.indices[name].data_stream is not None:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"index [{name}] is the write index for data stream [{state.indices[name].data_stream}] and cannot be "
                "deleted",
            )
        del state.indices[name]
        for alias in list(state.aliases):
            state.aliases[alias].pop(name, None)
            if not state.aliases[alias]:
                del state.aliases[alias]
    return _ok({"acknowledged": True})


def _get_mapping(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    names = state.resolve_read(parts["index"], ignore_unavailable=_bool_param(query, "ignore_unavailable"))
    return _ok({name: {"mappings": copy.deepcopy(state.indices[name].mapping.body)} for name in names})


def _get_alias(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    wanted = parts.get("name", "*").split(",")
    index_filter = set(state.resolve_read(parts["index"])) if "index" in parts else None
    result: dict[str, Any] = {}
    missing = []
    for pattern in wanted:
        hits = [alias for alias in state.aliases if fnmatch.fnmatchcase(alias, pattern)]
        if not hits and "*" not in pattern:
            missing.append(pattern)
        for alias in hits:
            for index, props in state.aliases[alias].items():
                if index_filter is not None and index not in index_filter:
                    continue
                result.setdefault(index, {"aliases": {}})["aliases"][alias] = dict(props)
    if missing:
        body: dict[str, Any] = {"error": f"alias [{','.join(missing)}] missing", "status": 404}
        body.update(result)
        return 404, body, {}
    return _ok(result)


def _exists_alias(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    status, _, _ = _get_alias(state, parts, query, payload)
    return status, None, {}


def _put_alias(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    props = payload or {}
    unknown = set(props) - {"is_write_index", "filter", "routing", "index_routing", "search_routing", "is_hidden"}
    if unknown:
        raise EsError(400, "x_content_parse_exception", f"[1:2] [aliases] unknown field [{sorted(unknown)[0]}]")
    if set(props) - {"is_write_index"}:
        raise EsError(400, "illegal_argument_exception", "the fake implements only is_write_index on aliases")
    for index in state.resolve_read(parts["index"]):
        state.check_alias_addable(parts["name"], index, props)
        state.aliases.setdefault(parts["name"], {})[index] = dict(props)
    return _ok({"acknowledged": True, "errors": False})


def _delete_alias(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    name = parts["name"]
    members = state.aliases.get(name, {})
    removed = [index for index in state.resolve_read(parts["index"]) if index in members]
    if not removed:
        return 404, {"error": f"aliases [{name}] missing", "status": 404}, {}
    for index in removed:
        del members[index]
    if not members:
        del state.aliases[name]
    return _ok({"acknowledged": True, "errors": False})


def _update_aliases(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    actions = (payload or {}).get("actions")
    if not isinstance(actions, list) or not actions:
        raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: no actions specified;")
    snapshot = copy.deepcopy(state.aliases)
    try:
        for action in actions:
            ((kind, spec),) = action.items()
            indices = spec.get("indices") or [spec.get("index")]
            aliases = spec.get("aliases") or [spec.get("alias")]
            for expression in indices:
                for index in state.resolve_read(expression):
                    for alias in aliases:
                        if kind == "add":
                            props = {"is_write_index": spec["is_write_index"]} if "is_write_index" in spec else {}
                            state.check_alias_addable(alias, index, props)
                            state.aliases.setdefault(alias, {})[index] = props
                        elif kind == "remove":
                            if index not in state.aliases.get(alias, {}):
                                raise EsError(404, "aliases_not_found_exception", f"aliases [{alias}] missing")
                            del state.aliases[alias][index]
                            if not state.aliases[alias]:
                                del state.aliases[alias]
                        else:
                            raise EsError(
                                400, "illegal_argument_exception", f"the fake does not implement alias action [{kind}]"
                            )
    except EsError:
        state.aliases = snapshot
        raise
    return _ok({"acknowledged": True, "errors": False})


_TEMPLATE_KEYS = {
    "index_patterns",
    "composed_of",
    "template",
    "priority",
    "version",
    "_meta",
    "data_stream",
    "allow_auto_create",
    "ignore_missing_component_templates",
    "deprecated",
}


def _patterns_overlap(first: list[str], second: list[str]) -> bool:
    for a in first:
        for b in second:
            fixed_a, fixed_b = a.split("*", 1)[0], b.split("*", 1)[0]
            if fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a):
                return True
            if ("*" in a and "*" in b) and (fixed_a.startswith(fixed_b) or fixed_b.startswith(fixed_a)):
                return True
    return False


def _put_template(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    name = parts["name"]
    body = copy.deepcopy(payload or {})
    if not name or name != name.lower() or any(ch in ' ,"*\\<|>/?' for ch in name):
        raise EsError(
            400,
            "invalid_index_template_exception",
            f"index_template [{name}] invalid, cause [name must be lowercase and must not contain spaces or special "
            "characters]",
        )

    unknown = set(body) - _TEMPLATE_KEYS
    if unknown:
        raise EsError(400, "x_content_parse_exception", f"[1:2] [index_template] unknown field [{sorted(unknown)[0]}]")
    patterns = body.get("index_patterns")
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns:
        raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: index patterns are missing;")
    body["index_patterns"] = patterns

    body.setdefault("composed_of", [])
    if body["composed_of"]:
        raise EsError(
            400,
            "invalid_index_template_exception",
            f"index_template [{name}] invalid, cause [index template [{name}] specifies component templates "
            f"{body['composed_of']} that do not exist]",
        )
    if _bool_param(query, "create") and name in state.templates:
        raise EsError(400, "illegal_argument_exception", f"index template [{name}] already exists")

    inner = body.get("template", {})
    unknown_inner = set(inner) - {"settings", "mappings", "aliases", "lifecycle"}
    if unknown_inner:
        raise EsError(400, "x_content_parse_exception", f"[1:2] [template] unknown field [{sorted(unknown_inner)[0]}]")
    if "mappings" in inner:
        validate_mapping_body(inner["mappings"])
    if "settings" in inner:
        inner["settings"] = nest_settings(flat_settings(inner["settings"]))

    priority = body.get("priority", 0)
    for other_name, other in state.templates.items():
        if (
            other_name != name
            and other.get("priority", 0) == priority
            and _patterns_overlap(patterns, other["index_patterns"])
        ):
            raise EsError(
                400,
                "illegal_argument_exception",
                f"index template [{name}] has index patterns {patterns} matching patterns from existing templates "
                f"[{other_name}] with patterns ({other_name} => {other['index_patterns']}) that have the same priority "
                f"[{priority}], multiple index templates may not match during index creation, please use a different "
                "priority",
            )

    state.templates[name] = body
    return _ok({"acknowledged": True})


def _get_template(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    pattern = parts.get("name", "*")
    names = [name for name in state.templates if fnmatch.fnmatchcase(name, pattern)]
    if not names and "*" not in pattern:
        raise EsError(404, "resource_not_found_exception", f"index template matching [{pattern}] not found")
    return _ok(
        {"index_templates": [{"name": name, "index_template": copy.deepcopy(state.templates[name])} for name in names]}
    )


def _exists_template(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    return (200 if parts["name"] in state.templates else 404), None, {}


def _delete_template(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    if parts["name"] not in state.templates:
        raise EsError(404, "index_template_missing_exception", f"index_template [{parts['name']}] missing")
    del state.templates[parts["name"]]
    return _ok({"acknowledged": True})


def _create_data_stream(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    state.create_data_stream(parts["name"])
    return _ok({"acknowledged": True})


def _get_data_stream(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    pattern = parts.get("name", "*")
    names = [name for name in state.data_streams if fnmatch.fnmatchcase(name, pattern)]
    if not names and "*" not in pattern:
        raise EsError(404, "index_not_found_exception", f"no such index [{pattern}]")
    streams = []
    for name in names:
        template = state.matching_template(name)
        streams.append(
            {
                "name": name,
                "timestamp_field": {"name": "@timestamp"},
                "indices": [
                    {"index_name": backing, "index_uuid": state.indices[backing].uuid}
                    for backing in state.data_streams[name]
                ],
                "generation": len(state.data_streams[name]),
                "status": "GREEN",
                "template": template[0] if template else "",
                "hidden": False,
            }
        )
    return _ok({"data_streams": streams})


def _delete_data_stream(
    state: ClusterState, parts: dict[str, str], query: dict[str, str], payload: Any
) -> tuple[int, Any, dict[str, str]]:
    name = parts["name"]
    if name not in state.data_streams:
        raise EsError(404, "index_not_found_exception", f"no such index [{name}]")
    for backing in state.data_streams.pop(name):
        del state.indices[backing]
    return _ok({"acknowledged": True})


# -- routing ----------------------------------------------------------------------------------------------

_ROUTES: list[tuple[set[str], str, str, Handler]] = [
    ({"GET", "HEAD"}, r"/", "info", _info),
    ({"POST", "PUT"}, r"/_bulk", "bulk", _bulk),
    ({"GET", "POST"}, r"/_search", "search", _search),
    ({"GET", "POST"}, r"/_count", "count", _count),
    ({"GET", "POST"}, r"/_mget", "mget", _mget),
    ({"POST"}, r"/_refresh", "indices.refresh", _refresh),
    ({"GET"}, r"/_alias", "indices.get_alias", _get_alias),
    ({"GET"}, r"/_alias/(?P<name>[^/]+)", "indices.get_alias", _get_alias),
    ({"HEAD"}, r"/_alias/(?P<name>[^/]+)", "indices.get_alias", _exists_alias),
    ({"POST"}, r"/_aliases", "indices.update_aliases", _update_aliases),
    ({"GET"}, r"/_index_template", "indices.get_index_template", _get_template),
    ({"GET"}, r"/_index_template/(?P<name>[^/]+)", "indices.get_index_template", _get_template),
    ({"HEAD"}, r"/_index_template/(?P<name>[^/]+)", "indices.get_index_template", _exists_template),
    ({"PUT", "POST"}, r"/_index_template/(?P<name>[^/]+)", "indices.put_index_template", _put_template),
    ({"DELETE"}, r"/_index_template/(?P<name>[^/]+)", "indices.delete_index_template", _delete_template),
    ({"GET"}, r"/_data_stream", "indices.get_data_stream", _get_data_stream),
    ({"GET"}, r"/_data_stream/(?P<name>[^/]+)", "indices.get_data_stream", _get_data_stream),
    ({"PUT"}, r"/_data_stream/(?P<name>[^/]+)", "indices.create_data_stream", _create_data_stream),
    ({"DELETE"}, r"/_data_stream/(?P<name>[^/]+)", "indices.delete_data_stream", _delete_data_stream),
    ({"POST", "PUT"}, r"/(?P<index>[^_/][^/]*)/_bulk", "bulk", _bulk),
    ({"GET", "POST"}, r"/(?P<index>[^_/][^/]*)/_search", "search", _search),
    ({"GET", "POST"}, r"/(?P<index>[^_/][^/]*)/_count", "count", _count),
    ({"POST"}, r"/(?P<index>[^_/][^/]*)/_update_by_query", "update_by_query", _update_by_query),
    ({"GET", "POST"}, r"/(?P<index>[^_/][^/]*)/_mget", "mget", _mget),
    ({"POST", "GET"}, r"/(?P<index>[^_/][^/]*)/_refresh", "indices.refresh", _refresh),
    ({"GET"}, r"/(?P<index>[^_/][^/]*)/_mapping", "indices.get_mapping", _get_mapping),
    ({"GET"}, r"/(?P<index>[^_/][^/]*)/_alias/(?P<name>[^/]+)", "indices.get_alias", _get_alias),
    ({"GET"}, r"/(?P<index>[^_/][^/]*)/_alias", "indices.get_alias", _get_alias),
    ({"PUT", "POST"}, r"/(?P<index>[^_/][^/]*)/_alias(?:es)?/(?P<name>[^/]+)", "indices.put_alias", _put_alias),
    ({"DELETE"}, r"/(?P<index>[^_/][^/]*)/_alias(?:es)?/(?P<name>[^/]+)", "indices.delete_alias", _delete_alias),
    ({"GET"}, r"/(?P<index>[^_/][^/]*)/_doc/(?P<id>[^/]+)", "get", _get_doc),
    ({"PUT", "POST"}, r"/(?P<index>[^_/][^/]*)/_doc/(?P<id>[^/]+)", "index", _index_doc),
    ({"POST"}, r"/(?P<index>[^_/][^/]*)/_doc", "index", _index_doc),
    ({"PUT", "POST"}, r"/(?P<index>[^_/][^/]*)/_create/(?P<id>[^/]+)", "index", _create_doc),
    ({"DELETE"}, r"/(?P<index>[^_/][^/]*)/_doc/(?P<id>[^/]+)", "delete", _delete_doc),
    ({"PUT"}, r"/(?P<index>[^_/][^/]*)", "indices.create", _create_index),
    ({"GET"}, r"/(?P<index>[^_/][^/]*)", "indices.get", _get_index),
    ({"HEAD"}, r"/(?P<index>[^_/][^/]*)", "indices.get", _exists_index),
    ({"DELETE"}, r"/(?P<index>[^_/][^/]*)", "indices.delete", _delete_index),
]
_COMPILED = [
    (methods, re.compile(f"^{pattern}/?$"), endpoint, handler) for methods, pattern, endpoint, handler in _ROUTES
]


def route(method: str, path: str) -> tuple[str, Handler, dict[str, str]] | None:
    for methods, pattern, endpoint, handler in _COMPILED:
        match = pattern.match(path)
        if match and method in methods:
            parts = {key: unquote(value) for key, value in match.groupdict().items()}
            return endpoint, handler, parts
    return None


def known_path(path: str) -> bool:
    return any(pattern.match(path) for _, pattern, _, _ in _COMPILED)


def handle(
    state: ClusterState, method: str, path: str, query: dict[str, str], body: bytes, headers: dict[str, str]
) -> tuple[int, Any, dict[str, str]]:
    """Route one request; return (status, JSON body or None, extra headers).

    Raises:
        EsError: the request failed as Elasticsearch would fail it.
    """
    found = route(method, path)
    if found is None:
        if known_path(path):
            raise EsError(405, "method_not_allowed", f"Incorrect HTTP method for uri [{path}] and method [{method}]")
        raise EsError(400, "illegal_argument_exception", f"no handler found for uri [{path}] and method [{method}]")
    endpoint, handler, parts = found
    check_params(endpoint, path, query)
    payload = decode_body(endpoint, body, headers)
    with state.lock:
        return handler(state, parts, query, payload)


def check_params(endpoint: str, path: str, query: dict[str, str]) -> None:
    """Refuse query parameters outside the specification, and those the fake does not implement."""
    implemented, unimplemented = SPEC_PARAMS[endpoint]
    for name in query:
        if name in implemented or name in GLOBAL_PARAMS:
            continue
        if name in unimplemented:
            raise EsError(
                400, "illegal_argument_exception", f"the fake does not implement parameter [{name}] of [{endpoint}]"
            )
        raise EsError(400, "illegal_argument_exception", f"request [{path}] contains unrecognized parameter: [{name}]")


def decode_body(endpoint: str, body: bytes, headers: dict[str, str]) -> Any:
    """Return the parsed JSON body, or the text of an NDJSON bulk body."""
    if not body:
        return None
    if not headers.get("content-type"):
        raise EsError(406, "media_type_header_exception", "Content-Type header is missing")
    if endpoint == "bulk":
        return body.decode("utf-8")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise EsError(400, "x_content_parse_exception", f"[1:1] failed to parse request body: {exc}") from None
