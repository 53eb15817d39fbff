"""Mappings, field values and dates for the fake Elasticsearch server.

Implements what Elasticsearch 8 does when it indexes a document:

* dotted keys and nested objects name the same field;
* every value is checked against its mapped type (an ``ip`` field rejects a CIDR block);
* unmapped fields are added under the ``dynamic`` rules and ``dynamic_templates``.

Errors are raised as :class:`EsError` with the type and reason Elasticsearch uses.
"""

from __future__ import annotations

import copy
import fnmatch
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

LEAF_TYPES = {
    "keyword",
    "constant_keyword",
    "wildcard",
    "text",
    "match_only_text",
    "ip",
    "ip_range",
    "date",
    "date_nanos",
    "long",
    "integer",
    "short",
    "byte",
    "unsigned_long",
    "float",
    "double",
    "half_float",
    "scaled_float",
    "boolean",
    "flattened",
}
OBJECT_TYPES = {"object", "nested"}
KEYWORD_LIKE = {"keyword", "constant_keyword", "wildcard"}
TEXT_LIKE = {"text", "match_only_text"}
INTEGER_TYPES = {"long", "integer", "short", "byte", "unsigned_long"}
FLOAT_TYPES = {"float", "double", "half_float", "scaled_float"}


class EsError(Exception):
    """An error the fake returns the way Elasticsearch does: HTTP status, error type and reason."""

    def __init__(self, status: int, error_type: str, reason: str, **extra: Any) -> None:
        super().__init__(f"{error_type}: {reason}")
        self.status = status
        self.error_type = error_type
        self.reason = reason
        self.extra = extra

    def body(self) -> dict[str, Any]:
        cause = {"type": self.error_type, "reason": self.reason, **self.extra}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}

    def item_error(self) -> dict[str, Any]:
        return {"type": self.error_type, "reason": self.reason, **self.extra}


# -- dates ------------------------------------------------------------------------------------------------

_ISO_DATE = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?)?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_DATE_MATH = re.compile(r"([+-])(\d+)([yMwdhHms])|/([yMwdhHms])")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "H": 3600, "m": 60, "s": 1}


def parse_date(value: Any) -> int:
    """Return epoch milliseconds for a value in ``strict_date_optional_time||epoch_millis`` format.

    Raises:
        ValueError: the value is not a date in those formats.
    """
    if isinstance(value, bool):
        raise ValueError(f"failed to parse date field [{value}]")
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"failed to parse date field [{value}]")
    if re.fullmatch(r"-?\d+", value) and len(value) != 4:
        return int(value)
    match = _ISO_DATE.match(value)
    if match is None:
        raise ValueError(f"failed to parse date field [{value}] with format [strict_date_optional_time||epoch_millis]")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=UTC,
        )
    except ValueError as exc:
        raise ValueError(f"failed to parse date field [{value}]: {exc}") from exc
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        moment = moment - offset if zone[0] == "+" else moment + offset
    return int(moment.timestamp() * 1000)


def format_date(millis: int) -> str:
    """Return the ISO text of epoch milliseconds, as Elasticsearch prints dates."""
    moment = datetime.fromtimestamp(millis / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def resolve_date_math(value: Any, now_millis: int, round_up: bool = False) -> int:
    """Return epoch milliseconds of a range bound: a date, or date math such as ``now-30d/d``.

    Raises:
        EsError: the bound is not a date nor valid date math (HTTP 400).
    """
    if isinstance(value, str) and (value.startswith("now") or "||" in value):
        if value.startswith("now"):
            base, rest = now_millis, value[3:]
        else:
            anchor, rest = value.split("||", 1)
            base = _parse_bound(anchor)
        moment = datetime.fromtimestamp(base / 1000, tz=UTC)
        position = 0
        for match in _DATE_MATH.finditer(rest):
            if match.start() != position:
                raise EsError(400, "parse_exception", f"failed to parse date math [{value}]")
            position = match.end()
            sign, amount, unit, rounding = match.groups()
            if rounding:
                moment = _round(moment, rounding, round_up)
            else:
                moment = _shift(moment, int(amount) * (1 if sign == "+" else -1), unit)
        if position != len(rest):
            raise EsError(400, "parse_exception", f"failed to parse date math [{value}]")
        return int(moment.timestamp() * 1000)
    return _parse_bound(value)


def _parse_bound(value: Any) -> int:
    try:
        return parse_date(value)
    except ValueError as exc:
        raise EsError(400, "parse_exception", str(exc)) from exc


def _shift(moment: datetime, amount: int, unit: str) -> datetime:
    if unit == "y":
        return moment.replace(year=moment.year + amount)
    if unit == "M":
        month = moment.month - 1 + amount
        return moment.replace(year=moment.year + month // 12, month=month % 12 + 1)
    return moment + timedelta(seconds=amount * _UNIT_SECONDS[unit])


def _round(moment: datetime, unit: str, round_up: bool) -> datetime:
    if unit == "y":
        floor = moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        ceiling = floor.replace(year=floor.year + 1)
    elif unit == "M":
        floor = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        ceiling = _shift(floor, 1, "M")
    elif unit == "w":
        floor = (moment - timedelta(days=moment.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
        ceiling = floor + timedelta(weeks=1)
    else:
        step = _UNIT_SECONDS[unit]
        seconds = int(moment.timestamp()) // step * step
        floor = datetime.fromtimestamp(seconds, tz=UTC)
        ceiling = floor + timedelta(seconds=step)
    return ceiling - timedelta(milliseconds=1) if round_up else floor


# -- field values -----------------------------------------------------------------------------------------


def check_value(field_type: str, value: Any) -> Any:
    """Return the indexed form of one value of a field of ``field_type``.

    Raises:
        ValueError: the value does not fit the type; the message is Elasticsearch's cause.
    """
    if field_type in KEYWORD_LIKE or field_type in TEXT_LIKE:
        if isinstance(value, dict):
            raise ValueError(f"Can't get text on a START_OBJECT at value {value}")
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if field_type == "ip":
        if not isinstance(value, str):
            raise ValueError(f"'{value}' is not an IP string literal.")
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"'{value}' is not an IP string literal.") from None
    if field_type == "ip_range":
        return _ip_range(value)
    if field_type in ("date", "date_nanos"):
        return parse_date(value)
    if field_type in INTEGER_TYPES:
        return _integer(value)
    if field_type in FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f'For input string: "{value}"')
        try:
            return float(value)
        except ValueError:
            raise ValueError(f'For input string: "{value}"') from None
    if field_type == "boolean":
        if isinstance(value, bool):
            return value
        if value in ("true", "false", ""):
            return value == "true"
        raise ValueError(f"Failed to parse value [{value}] as only [true] or [false] are allowed.")
    if field_type == "flattened":
        return value
    raise ValueError(f"the fake does not index fields of type [{field_type}]")


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"Current token (VALUE_{str(value).upper()}) not numeric")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.\d+)?", value.strip()):
        number = int(float(value))
    else:
        raise ValueError(f'For input string: "{value}"')
    if not -(2**63) <= number < 2**63:
        raise ValueError(f"Value [{value}] is out of range for a long")
    return number


def _ip_range(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | tuple[Any, Any]:
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"'{value}' is not an IP string literal.") from None
    if isinstance(value, dict):
        low = value.get("gte", value.get("gt"))
        high = value.get("lte", value.get("lt"))
        try:
            return (ipaddress.ip_address(low or "0.0.0.0"), ipaddress.ip_address(high or "255.255.255.255"))
        except ValueError:
            raise ValueError(f"error parsing ip range {value}") from None
    raise ValueError(f"error parsing field of type ip_range: {value}")


def ip_range_contains(stored: Any, address: Any) -> bool:
    """Return True when an indexed ``ip_range`` value contains an address."""
    if isinstance(stored, tuple):
        low, high = stored
        return low.version == address.version and low <= address <= high
    return stored.version == address.version and address in stored


# -- mappings ---------------------------------------------------------------------------------------------


@dataclass
class FieldInfo:
    """One mapped field: its type and the mapping node that defines it."""

    type: str
    node: dict[str, Any]


@dataclass
class Mapping:
    """An index mapping in Elasticsearch's JSON form, with a flat view of its fields."""

    body: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, FieldInfo] = field(default_factory=dict)
    nested_paths: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.body = copy.deepcopy(self.body)
        self.body.setdefault("properties", {})
        self.rebuild()

    def rebuild(self) -> None:
        self.fields = {}
        self.nested_paths = set()
        self._collect(self.body.get("properties", {}), "")

    def _collect(self, properties: dict[str, Any], prefix: str) -> None:
        for name, node in properties.items():
            path = f"{prefix}{name}"
            field_type = node.get("type", "object" if "properties" in node or not node else "object")
            self.fields[path] = FieldInfo(field_type, node)
            if field_type == "nested":
                self.nested_paths.add(path)
            if field_type in OBJECT_TYPES:
                self._collect(node.get("properties", {}), f"{path}.")
            for sub_name, sub_node in node.get("fields", {}).items():
                self.fields[f"{path}.{sub_name}"] = FieldInfo(sub_node.get("type", "keyword"), sub_node)

    def type_of(self, path: str) -> str | None:
        info = self.fields.get(path)
        return info.type if info else None

    def dynamic_of(self, path: str) -> Any:
        """Return the ``dynamic`` setting that governs new fields under object ``path``."""
        parts = path.split(".") if path else []
        setting = self.body.get("dynamic", True)
        node = self.body
        for index in range(len(parts)):
            node = node.get("properties", {}).get(parts[index], {})
            if "dynamic" in node:
                setting = node["dynamic"]
        return str(setting).lower()

    def add_field(self, path: str, node: dict[str, Any]) -> None:
        parts = path.split(".")
        properties = self.body.setdefault("properties", {})
        for part in parts[:-1]:
            parent = properties.setdefault(part, {"properties": {}})
            properties = parent.setdefault("properties", {})
        properties.setdefault(parts[-1], node)


def validate_mapping_body(body: Any, where: str = "mappings") -> None:
    """Raise EsError (400 mapper_parsing_exception) for unknown field types or malformed properties."""
    if not isinstance(body, dict):
        raise EsError(400, "mapper_parsing_exception", f"Failed to parse mapping: [{where}] must be an object")
    allowed = {"dynamic", "date_detection", "numeric_detection", "dynamic_templates", "properties", "_source", "_meta"}
    unknown = set(body) - allowed
    if unknown:
        raise EsError(
            400,
            "mapper_parsing_exception",
            f"Root mapping definition has unsupported parameters:  [{sorted(unknown)[0]}]",
        )
    _validate_properties(body.get("properties", {}), "")


def _validate_properties(properties: dict[str, Any], prefix: str) -> None:
    for name, node in properties.items():
        path = f"{prefix}{name}"
        if not isinstance(node, dict):
            raise EsError(400, "mapper_parsing_exception", f"Expected map for property [fields] on field [{path}]")
        field_type = node.get("type", "object")
        if field_type not in LEAF_TYPES and field_type not in OBJECT_TYPES:
            raise EsError(
                400, "mapper_parsing_exception", f"No handler for type [{field_type}] declared on field [{name}]"
            )
        if field_type in LEAF_TYPES and "properties" in node:
            raise EsError(
                400,
                "mapper_parsing_exception",
                f"unknown parameter [properties] on mapper [{path}] of type [{field_type}]",
            )
        if field_type in OBJECT_TYPES:
            _validate_properties(node.get("properties", {}), f"{path}.")


def merge_mappings(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``extra`` laid over it, merging ``properties`` recursively."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if key == "properties" and isinstance(value, dict):
            merged["properties"] = _merge_properties(merged.get("properties", {}), value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_properties(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for name, node in extra.items():
        if name in merged and "properties" in node and "properties" in merged[name]:
            combined = {**merged[name], **{k: v for k, v in node.items() if k != "properties"}}
            combined["properties"] = _merge_properties(merged[name]["properties"], node["properties"])
            merged[name] = combined
        else:
            merged[name] = copy.deepcopy(node)
    return merged


# -- documents --------------------------------------------------------------------------------------------


def parse_document(mapping: Mapping, source: Any, doc_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Check a document against the mapping and return the dynamic fields it would add.

    Nothing is added to the mapping here; the caller applies the returned fields only when the whole
    document was accepted, as Elasticsearch does.

    Raises:
        EsError: 400 ``document_parsing_exception`` naming the field, its type and the value.
    """
    if not isinstance(source, dict):
        raise EsError(400, "document_parsing_exception", "[1:1] failed to parse: document must be an object")
    added: dict[str, dict[str, Any]] = {}
    _walk(mapping, source, "", doc_id, added)
    return list(added.items())


def _walk(mapping: Mapping, obj: dict[str, Any], prefix: str, doc_id: str, added: dict[str, dict[str, Any]]) -> None:
    for key, value in obj.items():
        if key == "" or key.startswith(".") or key.endswith("."):
            raise EsError(400, "document_parsing_exception", f"[1:2] field name cannot contain only dots: [{key}]")
        path = f"{prefix}{key}"
        for item in value if isinstance(value, list) else [value]:
            _walk_value(mapping, path, item, doc_id, added)


def _walk_value(mapping: Mapping, path: str, value: Any, doc_id: str, added: dict[str, dict[str, Any]]) -> None:
    if value is None:
        return
    field_type = mapping.type_of(path) or (added[path].get("type", "object") if path in added else None)

    if isinstance(value, dict):
        if field_type is not None and field_type not in OBJECT_TYPES and field_type not in ("ip_range", "flattened"):
            raise EsError(
                400,
                "document_parsing_exception",
                f"[1:2] failed to parse field [{path}] of type [{field_type}] in document with id '{doc_id}'. "
                f"Preview of field's value: '{value}'",
                caused_by={"type": "illegal_state_exception", "reason": "Can't get text on a START_OBJECT"},
            )
        if field_type in ("ip_range", "flattened"):
            _check_leaf(path, field_type, value, doc_id)
            return
        if field_type is None:
            _dynamic_object(mapping, path, doc_id, added)
        _walk(mapping, value, f"{path}.", doc_id, added)
        return

    if field_type in OBJECT_TYPES:
        raise EsError(
            400,
            "document_parsing_exception",
            f"[1:2] object mapping for [{path}] tried to parse field [{path}] as object, but found a concrete value",
        )
    if field_type is None:
        node = _dynamic_leaf(mapping, path, value, doc_id)
        if node is None:
            return
        added[path] = node
        field_type = node["type"]
    _check_leaf(path, field_type, value, doc_id)


def _check_leaf(path: str, field_type: str, value: Any, doc_id: str) -> None:
    try:
        check_value(field_type, value)
    except ValueError as exc:
        raise EsError(
            400,
            "document_parsing_exception",
            f"[1:2] failed to parse field [{path}] of type [{field_type}] in document with id '{doc_id}'. "
            f"Preview of field's value: '{value}'",
            caused_by={"type": "illegal_argument_exception", "reason": str(exc)},
        ) from None


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


def _dynamic_object(mapping: Mapping, path: str, doc_id: str, added: dict[str, dict[str, Any]]) -> None:
    setting = mapping.dynamic_of(_parent(path))
    if setting == "strict":
        raise EsError(
            400,
            "strict_dynamic_mapping_exception",
            f"[1:2] mapping set to strict, dynamic introduction of [{path.rsplit('.', 1)[-1]}] within "
            f"[{_parent(path) or '_doc'}] is not allowed",
        )
    if setting == "true":
        added.setdefault(path, {"type": "object", "properties": {}})


def _dynamic_leaf(mapping: Mapping, path: str, value: Any, doc_id: str) -> dict[str, Any] | None:
    setting = mapping.dynamic_of(_parent(path))
    if setting == "strict":
        raise EsError(
            400,
            "strict_dynamic_mapping_exception",
            f"[1:2] mapping set to strict, dynamic introduction of [{path.rsplit('.', 1)[-1]}] within "
            f"[{_parent(path) or '_doc'}] is not allowed",
        )
    if setting != "true":
        return None

    kind = _json_kind(value)
    for entry in mapping.body.get("dynamic_templates", []):
        (template,) = entry.values()
        wanted = template.get("match_mapping_type", "*")
        if wanted not in ("*", kind):
            continue
        if "match" in template and not fnmatch.fnmatchcase(path.rsplit(".", 1)[-1], template["match"]):
            continue
        if "path_match" in template and not fnmatch.fnmatchcase(path, template["path_match"]):
            continue
        node = dict(template["mapping"])
        node.setdefault("type", {"string": "keyword", "long": "long", "double": "float", "boolean": "boolean"}[kind])
        return node

    if kind == "string":
        if mapping.body.get("date_detection", True) and _ISO_DATE.match(str(value)) and "T" in str(value):
            return {"type": "date"}
        return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    return {"type": {"long": "long", "double": "float", "boolean": "boolean"}[kind]}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    return "string"


def apply_dynamic_fields(mapping: Mapping, fields: list[tuple[str, dict[str, Any]]]) -> None:
    """Add fields that :func:`parse_document` found to the mapping."""
    if not fields:
        return
    for path, node in sorted(fields):
        mapping.add_field(path, node)
    mapping.rebuild()
