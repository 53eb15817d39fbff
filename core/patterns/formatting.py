"""Writing syntax-tree nodes back as STIX pattern text.

The output is STIX 2.1: timestamps, START/STOP bounds included, use ``t'...'`` literals and
spacing is normalised. Parsing the output gives an equal tree, except that a quoted key
``'*'`` comes back as the ``[*]`` index (both are the string ``'*'`` in a path).
"""

import re
from datetime import datetime

from .lexer import KEYWORDS
from .literals import escape_literal, format_float, format_timestamp
from .nodes import (
    ANY_INDEX,
    Comparison,
    CompoundComparison,
    CompoundObservation,
    Observation,
    Pattern,
    QualifiedObservation,
    Repeats,
    StartStop,
    Within,
)

_OBJECT_TYPE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED_WORDS = KEYWORDS | {"true", "false"}
_STRING_ONLY_OPERATORS = frozenset({"LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"})
_OBSERVATION_PRECEDENCE = {"FOLLOWEDBY": 0, "OR": 1, "AND": 2}
_QUALIFIED_PRECEDENCE = 3

Node = Pattern | Observation | CompoundObservation | QualifiedObservation | Comparison | CompoundComparison


def format_comparison(comparison: Comparison) -> str:
    """Write one comparison, such as ``file:hashes.'SHA-256' = '...'``.

    String values go through escape_literal, so parsing the text back gives an identical
    Comparison.

    Raises:
        ValueError: The object type is not a valid identifier, the path is empty or starts
            with an index, or the operator is unknown. Also raised when the value cannot be
            written for the operator, such as a non-str value for LIKE or a bool for ``<``.
    """
    path = format_path(comparison.object_type, comparison.path)
    operator = comparison.operator
    if operator == "EXISTS":
        return f"NOT EXISTS {path}" if comparison.negated else f"EXISTS {path}"

    prefix = f"{path} NOT" if comparison.negated else path
    return f"{prefix} {operator} {_format_operand(operator, comparison.value)}"


def format_path(object_type: str, path: tuple[str | int, ...]) -> str:
    """Write an object path, quoting keys that are not plain identifiers.

    Raises:
        ValueError: See format_comparison.
    """
    valid_type = isinstance(object_type, str) and _OBJECT_TYPE.fullmatch(object_type) is not None
    if not valid_type or object_type in _RESERVED_WORDS:
        raise ValueError(f"{object_type!r} is not a valid STIX object type name")
    if not path or not isinstance(path[0], str):
        raise ValueError(f"an object path must start with a property name, got {path!r}")

    parts = [object_type, ":", _format_key(path[0])]
    for step in path[1:]:
        if isinstance(step, bool) or not isinstance(step, str | int):
            raise ValueError(f"a path step must be a str key or an int index, got {step!r}")
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif step == ANY_INDEX:
            parts.append("[*]")
        else:
            parts.append("." + _format_key(step))
    return "".join(parts)


def format_pattern(node: Node) -> str:
    """Write a whole pattern, or any node of one, as STIX 2.1 text."""
    if isinstance(node, Pattern):
        return _format_observation(node.expression, 0)
    if isinstance(node, Comparison | CompoundComparison):
        return _format_comparison_expression(node, 0)
    return _format_observation(node, 0)


def format_literal(value: object) -> str:
    """Write one value as a STIX literal (``'text'``, ``42``, ``1.5``, ``true``, ``h'00ff'``, ``t'...Z'``).

    Raises:
        ValueError: The value has no STIX literal (None, a list, NaN, ...).
    """
    if isinstance(value, str):
        return escape_literal(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, bytes | bytearray):
        return f"h'{bytes(value).hex()}'"
    if isinstance(value, datetime):
        return f"t'{format_timestamp(value)}'"
    raise ValueError(f"{value!r} of type {type(value).__name__} has no STIX literal")


def _format_key(key: str) -> str:
    if _BARE_KEY.fullmatch(key) and key not in _RESERVED_WORDS:
        return key
    return escape_literal(key)


def _format_operand(operator: str, value: object) -> str:
    if operator == "IN":
        if not isinstance(value, tuple | list):
            raise ValueError(f"IN needs a tuple of values, got {value!r}")
        return "(" + ", ".join(format_literal(item) for item in value) + ")"

    if operator in _STRING_ONLY_OPERATORS:
        if not isinstance(value, str):
            raise ValueError(f"{operator} needs a str value, got {value!r}")
        return escape_literal(value)

    if operator in ("<", "<=", ">", ">="):
        if isinstance(value, bool):
            raise ValueError(f"{operator} cannot compare with the boolean {value!r}")
        return format_literal(value)

    if operator in ("=", "!="):
        return format_literal(value)
    raise ValueError(f"unknown comparison operator {operator!r}")


def _format_observation(node: object, required: int) -> str:
    if isinstance(node, Observation):
        return "[" + _format_comparison_expression(node.expression, 0) + "]"

    if isinstance(node, QualifiedObservation):
        # A second qualifier of one kind on one bracketed observation is invalid, so such a
        # chain must have come from parentheses and gets them back.
        inner_required = _QUALIFIED_PRECEDENCE + 1 if _repeats_qualifier_kind(node) else _QUALIFIED_PRECEDENCE
        text = _format_observation(node.expression, inner_required) + " " + _format_qualifier(node)
        precedence = _QUALIFIED_PRECEDENCE
    elif isinstance(node, CompoundObservation):
        precedence = _OBSERVATION_PRECEDENCE[node.operator]
        separator = f" {node.operator} "
        text = separator.join(_format_observation(operand, precedence + 1) for operand in node.operands)
    else:
        raise ValueError(f"{node!r} is not an observation expression node")
    return f"({text})" if precedence < required else text


def _repeats_qualifier_kind(node: QualifiedObservation) -> bool:
    """Tell whether the unparenthesised chain under ``node`` has a qualifier of the same kind."""
    kind = type(node.qualifier)
    inner = node.expression
    while isinstance(inner, QualifiedObservation):
        if type(inner.qualifier) is kind:
            return True
        inner = inner.expression
    return False


def _format_qualifier(node: QualifiedObservation) -> str:
    qualifier = node.qualifier
    if isinstance(qualifier, Within):
        return f"WITHIN {format_literal(qualifier.seconds)} SECONDS"
    if isinstance(qualifier, Repeats):
        return f"REPEATS {qualifier.times} TIMES"
    if isinstance(qualifier, StartStop):
        return f"START {format_literal(qualifier.start)} STOP {format_literal(qualifier.stop)}"
    raise ValueError(f"{qualifier!r} is not a qualifier")


def _format_comparison_expression(node: Comparison | CompoundComparison, required: int) -> str:
    if isinstance(node, Comparison):
        return format_comparison(node)

    precedence = 0 if node.operator == "OR" else 1
    separator = f" {node.operator} "
    text = separator.join(_format_comparison_expression(operand, precedence + 1) for operand in node.operands)
    return f"({text})" if precedence < required else text
