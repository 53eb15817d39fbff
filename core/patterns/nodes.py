"""Syntax tree of a parsed STIX pattern.

All nodes are frozen, so a parsed pattern can be cached and shared. Chains of one operator
(``a OR b OR c``) become one node with all operands, in the order written; parentheses leave
no node of their own.
"""

from dataclasses import dataclass
from datetime import datetime

#: Operators of a comparison, as the STIX grammar spells them (``==`` becomes ``=``, ``<>`` ``!=``).
COMPARISON_OPERATORS = frozenset(
    {"=", "!=", "<", "<=", ">", ">=", "IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET", "EXISTS"}
)

#: Value of a path component written as ``[*]`` (any list element).
ANY_INDEX = "*"

#: Forms of a START/STOP bound: the STIX 2.1 ``t'...'`` literal or the STIX 2.0 plain ``'...'`` string.
TIMESTAMP_FORM = "timestamp"
STRING_FORM = "string"


@dataclass(frozen=True, slots=True)
class Comparison:
    """One property test inside an observation, such as ``file:hashes.'SHA-256' = '...'``.

    Attributes:
        object_type: Cyber-observable type before the colon, such as ``'file'`` or ``'x-foo'``.
        path: Property path after the colon. Keys are unquoted and unescaped strings; a list
            index is an int, and ``[*]`` is the string ``'*'``. A quoted key ``'*'`` therefore
            reads the same as ``[*]``.
        operator: One of COMPARISON_OPERATORS.
        negated: Whether ``NOT`` precedes the operator.
        value: Decoded literal: str, int, float, bool, bytes (from ``h'..'`` or ``b'..'``),
            datetime in UTC (from ``t'..'``), a tuple of those for ``IN``, or None for ``EXISTS``.
    """

    object_type: str
    path: tuple[str | int, ...]
    operator: str
    negated: bool
    value: object


@dataclass(frozen=True, slots=True)
class CompoundComparison:
    """Comparisons inside one observation joined by ``AND`` or ``OR``.

    Attributes:
        operator: ``'AND'`` or ``'OR'``.
        operands: Two or more comparisons or nested compound comparisons.
    """

    operator: str
    operands: tuple["Comparison | CompoundComparison", ...]


ComparisonExpression = Comparison | CompoundComparison


@dataclass(frozen=True, slots=True)
class Observation:
    """A bracketed observation expression, ``[ ... ]``, matched against one observed-data object."""

    expression: ComparisonExpression


@dataclass(frozen=True, slots=True)
class Within:
    """``WITHIN n SECONDS`` qualifier; ``seconds`` is an int or float of zero or more."""

    seconds: int | float


@dataclass(frozen=True, slots=True)
class Repeats:
    """``REPEATS n TIMES`` qualifier; ``times`` is zero or more."""

    times: int


@dataclass(frozen=True, slots=True)
class StartStop:
    """``START ... STOP ...`` qualifier: the observation window ``[start, stop)`` in UTC.

    Attributes:
        start: Start of the window, timezone-aware UTC.
        stop: End of the window, timezone-aware UTC.
        start_form: TIMESTAMP_FORM or STRING_FORM, as the start bound was written.
        stop_form: TIMESTAMP_FORM or STRING_FORM, as the stop bound was written.
    """

    start: datetime
    stop: datetime
    start_form: str
    stop_form: str

    @property
    def form(self) -> str:
        """STRING_FORM if either bound used the STIX 2.0 plain-string form, else TIMESTAMP_FORM."""
        if STRING_FORM in (self.start_form, self.stop_form):
            return STRING_FORM
        return TIMESTAMP_FORM


Qualifier = Within | Repeats | StartStop


@dataclass(frozen=True, slots=True)
class CompoundObservation:
    """Observation expressions joined by ``AND``, ``OR`` or ``FOLLOWEDBY``.

    Attributes:
        operator: ``'AND'``, ``'OR'`` or ``'FOLLOWEDBY'``.
        operands: Two or more observation expressions.
    """

    operator: str
    operands: tuple["ObservationExpression", ...]


@dataclass(frozen=True, slots=True)
class QualifiedObservation:
    """An observation expression with one qualifier; several qualifiers nest, innermost first."""

    expression: "ObservationExpression"
    qualifier: Qualifier


ObservationExpression = Observation | CompoundObservation | QualifiedObservation


@dataclass(frozen=True, slots=True)
class Pattern:
    """Root of a parsed STIX pattern."""

    expression: ObservationExpression
