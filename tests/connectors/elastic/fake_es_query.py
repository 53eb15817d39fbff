"""Query DSL, sorting and ``_source`` filtering for the fake Elasticsearch server.

Covers the queries stixbridge sends (``bool``, ``term``, ``terms``, ``range``, ``exists``, ``nested``,
``ids``, ``match_all``, ``prefix``) with Elasticsearch's rules:

* a field inside a ``nested`` object is invisible outside a ``nested`` query on its path;
* a ``nested`` query on a path not mapped as ``nested`` fails;
* an unmapped field matches nothing;
* ``_id`` and text fields cannot be sorted on.

Any other query is rejected with HTTP 400 instead of being guessed.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .fake_es_mapping import (
    FLOAT_TYPES,
    INTEGER_TYPES,
    KEYWORD_LIKE,
    TEXT_LIKE,
    EsError,
    Mapping,
    check_value,
    ip_range_contains,
    resolve_date_math,
)


@dataclass
class StoredDoc:
    """One document as the fake keeps it."""

    index: str
    id: str
    source: dict[str, Any]
    version: int = 1
    seq_no: int = 0


def flatten(obj: Any, prefix: str, nested_paths: set[str], scope: str = "") -> dict[str, list[Any]]:
    """Return leaf values by full dotted path, leaving out nested objects below ``scope``."""
    leaves: dict[str, list[Any]] = {}
    _flatten_into(obj, prefix, nested_paths, scope, leaves)
    return leaves


def _flatten_into(obj: Any, prefix: str, nested_paths: set[str], scope: str, leaves: dict[str, list[Any]]) -> None:
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if path in nested_paths and path != scope:
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                _flatten_into(item, f"{path}.", nested_paths, scope, leaves)
                leaves.setdefault(path, [])
            elif item is not None:
                leaves.setdefault(path, []).append(item)


def nested_objects(obj: Any, prefix: str, target: str) -> list[dict[str, Any]]:
    """Return the objects stored at ``target``, whether the source nests or dots the keys leading there."""
    found: list[dict[str, Any]] = []
    if not isinstance(obj, dict):
        return found
    for key, value in obj.items():
        path = f"{prefix}{key}"
        items = value if isinstance(value, list) else [value]
        if path == target:
            found.extend(item for item in items if isinstance(item, dict))
        elif target.startswith(f"{path}."):
            for item in items:
                found.extend(nested_objects(item, f"{path}.", target))
    return found


class QueryContext:
    """Evaluates one query against documents of one index."""

    def __init__(self, mapping: Mapping, now_millis: int) -> None:
        self.mapping = mapping
        self.now_millis = now_millis

    def matches(self, query: dict[str, Any] | None, doc: StoredDoc) -> bool:
        leaves = flatten(doc.source, "", self.mapping.nested_paths)
        return self._eval(query or {"match_all": {}}, leaves, doc.source, "", doc)

    def _eval(self, query: Any, leaves: dict[str, list[Any]], source: Any, scope: str, doc: StoredDoc) -> bool:
        if not isinstance(query, dict) or len(query) != 1:
            raise EsError(400, "parsing_exception", f"query malformed, must be an object with one key: {query}")
        ((kind, body),) = query.items()
        handler: Callable[..., bool] | None = getattr(self, f"_q_{kind}", None)
        if handler is None:
            raise EsError(400, "parsing_exception", f"unknown query [{kind}] (the fake implements only some queries)")
        return handler(body, leaves, source, scope, doc)

    # -- compound ---------------------------------------------------------------------------------------

    def _q_match_all(self, body: Any, *_: Any) -> bool:
        return True

    def _q_match_none(self, body: Any, *_: Any) -> bool:
        return False

    def _q_bool(
        self, body: dict[str, Any], leaves: dict[str, list[Any]], source: Any, scope: str, doc: StoredDoc
    ) -> bool:
        allowed = {"must", "filter", "should", "must_not", "minimum_should_match", "boost"}
        unknown = set(body) - allowed
        if unknown:
            raise EsError(400, "parsing_exception", f"[bool] query does not support [{sorted(unknown)[0]}]")

        def clauses(name: str) -> list[Any]:
            value = body.get(name, [])
            return value if isinstance(value, list) else [value]

        for clause in clauses("must") + clauses("filter"):
            if not self._eval(clause, leaves, source, scope, doc):
                return False
        for clause in clauses("must_not"):
            if self._eval(clause, leaves, source, scope, doc):
                return False
        should = clauses("should")
        if should:
            default = 0 if clauses("must") or clauses("filter") else 1
            wanted = int(body.get("minimum_should_match", default))
            hits = sum(1 for clause in should if self._eval(clause, leaves, source, scope, doc))
            return hits >= wanted
        return True

    def _q_nested(
        self, body: dict[str, Any], leaves: dict[str, list[Any]], source: Any, scope: str, doc: StoredDoc
    ) -> bool:
        path = str(body.get("path", ""))
        if self.mapping.type_of(path) != "nested":
            if body.get("ignore_unmapped") and self.mapping.type_of(path) is None:
                return False
            raise EsError(
                400,
                "query_shard_exception",
                f"failed to create query: [nested] nested object under path [{path}] is not of nested type",
            )
        for item in nested_objects(source, "", path):
            inner = flatten(item, f"{path}.", self.mapping.nested_paths, scope=path)
            if self._eval(body.get("query"), inner, item, path, doc):
                return True
        return False

    # -- leaf queries -----------------------------------------------------------------------------------

    def _q_ids(
        self, body: dict[str, Any], leaves: dict[str, list[Any]], source: Any, scope: str, doc: StoredDoc
    ) -> bool:
        return doc.id in body.get("values", [])

    def _q_exists(self, body: dict[str, Any], leaves: dict[str, list[Any]], *_: Any) -> bool:
        name = body.get("field", "")
        if name in leaves and leaves[name]:
            return True
        return any(path.startswith(f"{name}.") and values for path, values in leaves.items())

    def _q_term(self, body: dict[str, Any], leaves: dict[str, list[Any]], *_: Any) -> bool:
        ((name, spec),) = body.items()
        value = spec.get("value") if isinstance(spec, dict) else spec
        return self._any_equal(name, [value], leaves)

    def _q_terms(self, body: dict[str, Any], leaves: dict[str, list[Any]], *_: Any) -> bool:
        fields = {k: v for k, v in body.items() if k != "boost"}
        if len(fields) != 1:
            raise EsError(400, "parsing_exception", "[terms] query does not support multiple fields")
        ((name, values),) = fields.items()
        if not isinstance(values, list):
            raise EsError(400, "parsing_exception", "[terms] query does not support a single value; use a list")
        return self._any_equal(name, values, leaves)

    def _q_prefix(self, body: dict[str, Any], leaves: dict[str, list[Any]], *_: Any) -> bool:
        ((name, spec),) = body.items()
        value = spec.get("value") if isinstance(spec, dict) else spec
        return any(str(stored).startswith(str(value)) for stored in leaves.get(name, []))

    def _q_range(self, body: dict[str, Any], leaves: dict[str, list[Any]], *_: Any) -> bool:
        ((name, spec),) = body.items()
        unknown = set(spec) - {"gt", "gte", "lt", "lte", "format", "relation", "boost", "time_zone"}
        if unknown:
            raise EsError(400, "parsing_exception", f"[range] query does not support [{sorted(unknown)[0]}]")
        field_type = self.mapping.type_of(name)
        if field_type is None:
            return False
        if field_type == "ip_range":
            return self._range_on_ip_range(name, spec, leaves)
        bounds = {op: self._bound(field_type, op, spec[op]) for op in ("gt", "gte", "lt", "lte") if op in spec}
        for stored in leaves.get(name, []):
            value = self._indexed(field_type, stored)
            if all(_compare(value, op, bound) for op, bound in bounds.items()):
                return True
        return False

    def _range_on_ip_range(self, name: str, spec: dict[str, Any], leaves: dict[str, list[Any]]) -> bool:
        low = ipaddress.ip_address(spec.get("gte", spec.get("gt", "0.0.0.0")))
        high = ipaddress.ip_address(spec.get("lte", spec.get("lt", "255.255.255.255")))
        for stored in leaves.get(name, []):
            network = check_value("ip_range", stored)
            first, last = (network[0], network[-1]) if not isinstance(network, tuple) else network
            if first.version == low.version and first <= high and last >= low:
                return True
        return False

    # -- helpers ----------------------------------------------------------------------------------------

    def _bound(self, field_type: str, op: str, value: Any) -> Any:
        if field_type in ("date", "date_nanos"):
            return resolve_date_math(value, self.now_millis, round_up=op in ("gt", "lte"))
        if field_type == "ip":
            return ipaddress.ip_address(value)
        if field_type in INTEGER_TYPES or field_type in FLOAT_TYPES:
            return float(value)
        return str(value)

    def _indexed(self, field_type: str, stored: Any) -> Any:
        value = check_value(field_type, stored)
        if field_type in INTEGER_TYPES or field_type in FLOAT_TYPES:
            return float(value)
        return value

    def _any_equal(self, name: str, wanted: list[Any], leaves: dict[str, list[Any]]) -> bool:
        field_type = self.mapping.type_of(name)
        stored_values = leaves.get(name, [])
        if field_type is None or not stored_values:
            return False
        for stored in stored_values:
            for value in wanted:
                if _term_equal(field_type, stored, value, self.now_millis):
                    return True
        return False


def _term_equal(field_type: str, stored: Any, value: Any, now_millis: int) -> bool:
    if field_type in KEYWORD_LIKE:
        return check_value(field_type, stored) == check_value(field_type, value)
    if field_type in TEXT_LIKE:
        tokens = str(stored).lower().split()
        return str(value) in tokens
    if field_type == "ip":
        address = check_value("ip", stored)
        if isinstance(value, str) and "/" in value:
            return address in ipaddress.ip_network(value, strict=False)
        try:
            return address == ipaddress.ip_address(value)
        except ValueError:
            raise EsError(400, "query_shard_exception", f"'{value}' is not an IP string literal.") from None
    if field_type == "ip_range":
        return ip_range_contains(check_value("ip_range", stored), ipaddress.ip_address(value))
    if field_type in ("date", "date_nanos"):
        return check_value(field_type, stored) == resolve_date_math(value, now_millis)
    if field_type in INTEGER_TYPES or field_type in FLOAT_TYPES:
        return float(check_value(field_type, stored)) == float(value)
    if field_type == "boolean":
        return check_value("boolean", stored) == check_value("boolean", value)
    return False


def _compare(value: Any, op: str, bound: Any) -> bool:
    if op == "gt":
        return bool(value > bound)
    if op == "gte":
        return bool(value >= bound)
    if op == "lt":
        return bool(value < bound)
    return bool(value <= bound)


# -- sorting ----------------------------------------------------------------------------------------------


@dataclass
class SortKey:
    """One ``sort`` entry: field, order and what to do with documents that lack the field."""

    field: str
    descending: bool
    field_type: str | None


def parse_sort(sort: Any, mapping: Mapping) -> list[SortKey]:
    """Return the sort keys of a search body, refusing what Elasticsearch 8 refuses.

    Raises:
        EsError: sort on ``_id`` (field data disabled), on a text field, or on an unmapped field without
            ``unmapped_type``.
    """
    if sort is None:
        return []
    entries = sort if isinstance(sort, list) else [sort]
    keys = []
    for entry in entries:
        spec: dict[str, Any]
        if isinstance(entry, str):
            name, spec = entry, {}
        elif isinstance(entry, dict) and len(entry) == 1:
            ((name, spec),) = entry.items()
            spec = {"order": spec} if isinstance(spec, str) else spec
        else:
            raise EsError(400, "parsing_exception", f"malformed sort entry {entry}")
        order = spec.get("order", "desc" if name == "_score" else "asc")
        if name == "_id":
            raise EsError(
                400,
                "illegal_argument_exception",
                "Fielddata access on the _id field is disallowed, you can re-enable it by updating the dynamic "
                "cluster setting: indices.id_field_data.enabled",
            )
        field_type = None if name in ("_doc", "_score") else mapping.type_of(name)
        if name not in ("_doc", "_score") and field_type is None:
            if "unmapped_type" not in spec:
                raise EsError(400, "query_shard_exception", f"No mapping found for [{name}] in order to sort on")
            field_type = spec["unmapped_type"]
        if field_type in TEXT_LIKE:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"Text fields are not optimised for operations that require per-document field data like "
                f"aggregations and sorting, so these operations are disabled by default. Please use a keyword "
                f"field instead. Alternatively, set fielddata=true on [{name}] in order to load field data by "
                f"uninverting the inverted index.",
            )
        keys.append(SortKey(name, order == "desc", field_type))
    return keys


def sort_values(keys: list[SortKey], doc: StoredDoc, mapping: Mapping, position: int) -> list[Any]:
    """Return the ``sort`` values Elasticsearch reports for a hit: dates as epoch milliseconds."""
    leaves = flatten(doc.source, "", mapping.nested_paths)
    values: list[Any] = []
    for key in keys:
        if key.field == "_doc":
            values.append(position)
            continue
        if key.field == "_score":
            values.append(1.0)
            continue
        stored = [check_value(key.field_type or "keyword", v) for v in leaves.get(key.field, [])]
        if not stored:
            values.append(None)
            continue
        chosen = max(stored) if key.descending else min(stored)
        if key.field_type == "ip":
            chosen = str(chosen)
        elif key.field_type in INTEGER_TYPES:
            chosen = int(chosen)
        values.append(chosen)
    return values


def sort_tuple(keys: list[SortKey], values: list[Any]) -> tuple[Any, ...]:
    """Return a tuple that orders hits by the sort keys, with missing values last."""
    parts: list[Any] = []
    for key, value in zip(keys, values, strict=True):
        if value is None:
            parts.append((1, 0))
        elif key.descending:
            parts.append((0, _Reversed(value)))
        else:
            parts.append((0, value))
    return tuple(parts)


class _Reversed:
    """Wraps a value so that sorting ascending orders it descending."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Reversed) -> bool:
        return bool(self.value > other.value)

    def __gt__(self, other: _Reversed) -> bool:
        return bool(self.value < other.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def coerce_search_after(keys: list[SortKey], after: Any) -> list[Any]:
    """Return ``search_after`` values in the form :func:`sort_values` produces.

    Raises:
        EsError: the number of values differs from the number of sort keys.
    """
    if not isinstance(after, list) or len(after) != len(keys):
        count = len(after) if isinstance(after, list) else 1
        raise EsError(
            400,
            "illegal_argument_exception",
            f"search_after has {count} value(s) but sort has {len(keys)}.",
        )
    values = []
    for key, value in zip(keys, after, strict=True):
        if key.field_type in ("date", "date_nanos") and value is not None:
            values.append(resolve_date_math(value, 0))
        elif key.field_type in INTEGER_TYPES and value is not None:
            values.append(int(value))
        else:
            values.append(value)
    return values


# -- _source filtering ------------------------------------------------------------------------------------


def filter_source(source: Any, includes: list[str], excludes: list[str], prefix: str = "") -> Any:
    """Return ``source`` with only the fields that ``includes`` and ``excludes`` let through.

    Patterns are matched against full dotted paths, so ``kibana.alert.*`` keeps the flat key
    ``"kibana.alert.uuid"`` as well as the nested ``{"kibana": {"alert": {"uuid": ...}}}``.
    """
    if isinstance(source, list):
        kept = [filter_source(item, includes, excludes, prefix) for item in source]
        return [item for item in kept if item not in ({}, None)]
    if not isinstance(source, dict):
        return source
    result: dict[str, Any] = {}
    for key, value in source.items():
        path = f"{prefix}{key}"
        if any(fnmatch.fnmatchcase(path, pattern) for pattern in excludes):
            continue
        if not includes or any(fnmatch.fnmatchcase(path, pattern) for pattern in includes):
            result[key] = filter_source(value, [], excludes, f"{path}.")
        elif isinstance(value, dict | list) and any(_may_match_below(path, pattern) for pattern in includes):
            kept = filter_source(value, includes, excludes, f"{path}.")
            if kept not in ({}, []):
                result[key] = kept
    return result


def _may_match_below(path: str, pattern: str) -> bool:
    fixed = pattern.split("*", 1)[0]
    return fixed.startswith(f"{path}.") or (f"{path}.").startswith(fixed) and "*" in pattern
