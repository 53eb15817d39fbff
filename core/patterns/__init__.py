"""STIX 2.0 and 2.1 pattern parsing, flattening to lookups, and literal escaping.

Typical use::

    pattern = parse_pattern("[file:hashes.'SHA-256' = 'e3b0...' OR file:name = 'a.exe']")
    result = flatten(pattern)
    result.alternatives   # [(Comparison(...),), (Comparison(...),)]

The parser is hand-written and needs no ANTLR runtime. docs/patterns.md describes the
grammar accepted and where it deliberately differs from stix2-patterns.
"""

from .errors import PatternError
from .flatten import MAX_DISTRIBUTED_ALTERNATIVES, Flattened, flatten
from .formatting import format_comparison, format_literal, format_path, format_pattern
from .hashes import canonical_hash_name
from .literals import escape_literal
from .nodes import (
    ANY_INDEX,
    STRING_FORM,
    TIMESTAMP_FORM,
    Comparison,
    CompoundComparison,
    CompoundObservation,
    Observation,
    ObservationExpression,
    Pattern,
    QualifiedObservation,
    Qualifier,
    Repeats,
    StartStop,
    Within,
)
from .parser import MAX_NESTING_DEPTH, parse_pattern

__all__ = [
    "ANY_INDEX",
    "MAX_DISTRIBUTED_ALTERNATIVES",
    "MAX_NESTING_DEPTH",
    "STRING_FORM",
    "TIMESTAMP_FORM",
    "Comparison",
    "CompoundComparison",
    "CompoundObservation",
    "Flattened",
    "Observation",
    "ObservationExpression",
    "Pattern",
    "PatternError",
    "QualifiedObservation",
    "Qualifier",
    "Repeats",
    "StartStop",
    "Within",
    "canonical_hash_name",
    "escape_literal",
    "flatten",
    "format_comparison",
    "format_literal",
    "format_path",
    "format_pattern",
    "parse_pattern",
]
