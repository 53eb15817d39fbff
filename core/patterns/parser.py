"""Recursive-descent parser for STIX 2.0 and 2.1 patterns.

The grammar is the OASIS ANTLR grammar that stix2-patterns 2.1.2 validates against, with
these deliberate differences (docs/patterns.md lists them with reasons):

* ``START``/``STOP`` accept the STIX 2.0 plain-string form ``'2024-01-01T00:00:00Z'`` as
  well as the 2.1 ``t'...'`` form, whatever the declared spec version.
* ``EXISTS`` is accepted in every pattern, although STIX 2.0 lacks it.
* Timestamps must name a real date (no ``2024-02-31``).
* Hash values are checked per element in ``IN`` lists and not checked for ``LIKE`` and
  ``MATCHES``, whose values are not hashes but match expressions.

Precedence, loosest first: ``FOLLOWEDBY``, ``OR``, ``AND`` between observations, then
qualifiers on an observation; inside brackets ``OR``, then ``AND``.
"""

import functools
import re
from collections.abc import Callable
from datetime import datetime

from .errors import PatternError
from .hashes import hash_value_problem, is_hash_path
from .lexer import KEYWORDS, Token, tokenize
from .literals import LiteralError, decode_string, parse_timestamp
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

#: Deepest nesting of brackets and parentheses accepted. Real feeds use a handful of levels;
#: the limit keeps the recursive parser far from Python's recursion limit.
MAX_NESTING_DEPTH = 64

#: Distinct pattern texts whose parse results are kept. Feeds repeat patterns across pages,
#: versions and collections, and a hit costs a dictionary lookup.
PARSE_CACHE_SIZE = 16384

_RESERVED_WORDS = KEYWORDS | {"true", "false"}
_PRIMITIVE_LITERALS = frozenset({"STRING", "INT", "FLOAT", "BOOL", "HEX", "BINARY", "TIMESTAMP"})
_ORDERABLE_LITERALS = _PRIMITIVE_LITERALS - {"BOOL"}
_ORDER_OPERATORS = frozenset({"<", "<=", ">", ">="})
_STRING_OPERATORS = frozenset({"LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"})
_OPERATOR_LIST = "=, !=, <, <=, >, >=, IN, LIKE, MATCHES, ISSUBSET or ISSUPERSET"
_QUALIFIER_KEYWORDS = frozenset({"START", "WITHIN", "REPEATS"})

# One comparison of a dotted path with a string, the form of most indicators in feeds. Only
# plain spaces are allowed; anything else goes to the full parser.
_SIMPLE_PATTERN = re.compile(
    r" *\[ *([A-Za-z_][A-Za-z0-9_-]*) *: *([A-Za-z_][A-Za-z0-9_]*)"
    r"((?:\.(?:[A-Za-z_][A-Za-z0-9_]*|'[^'\\]*'))*)"
    r" *(=|!=) *'([^'\\]*(?:\\['\\][^'\\]*)*)' *\] *"
)
_SIMPLE_STEP = re.compile(r"\.(?:([A-Za-z_][A-Za-z0-9_]*)|'([^'\\]*)')")


def parse_pattern(text: str) -> Pattern:
    """Parse a STIX 2.0 or 2.1 pattern into a syntax tree.

    Results are cached by text (PARSE_CACHE_SIZE entries), so callers get the same immutable
    tree for the same text. A regex reads the common single-comparison form directly; every
    other pattern goes through the full parser, and both give the same tree.

    Args:
        text: The pattern as it appears in the indicator after JSON decoding.

    Returns:
        The root node.

    Raises:
        PatternError: The pattern is not valid STIX. The message names the offending text,
            and ``position`` is its offset in ``text``. A non-str ``text`` raises too.
    """
    if not isinstance(text, str):
        raise PatternError(f"a pattern must be a str, got {type(text).__name__}", "", 0)
    return _parse_cached(text)


@functools.lru_cache(maxsize=PARSE_CACHE_SIZE)
def _parse_cached(text: str) -> Pattern:
    return _parse_simple(text) or parse_full(text)


def parse_full(text: str) -> Pattern:
    """Parse ``text`` with the full grammar, without the cache or the single-comparison shortcut."""
    return _Parser(text, tokenize(text)).parse()


def _parse_simple(text: str) -> Pattern | None:
    """Read a single ``[type:path = 'string']`` pattern, or return None to use the full parser."""
    match = _SIMPLE_PATTERN.fullmatch(text)
    if match is None:
        return None

    object_type, first, steps, operator, body = match.groups()
    if object_type in _RESERVED_WORDS or first in _RESERVED_WORDS:
        return None

    path: list[str | int] = [first]
    if steps:
        for name, quoted in _SIMPLE_STEP.findall(steps):
            if name:
                if name in _RESERVED_WORDS:
                    return None
                path.append(name)
            else:
                path.append(quoted)

    value = decode_string(body) if "\\" in body else body
    path_tuple = tuple(path)
    if is_hash_path(path_tuple) and hash_value_problem(str(path_tuple[-1]), value) is not None:
        return None
    return Pattern(Observation(Comparison(object_type, path_tuple, operator, False, value)))


class _Parser:
    """Parser state over the token list of one pattern."""

    __slots__ = ("pattern", "tokens", "index", "depth")

    def __init__(self, pattern: str, tokens: list[Token]) -> None:
        self.pattern = pattern
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    def parse(self) -> Pattern:
        expression = self.observation_expressions()
        token = self.tokens[self.index]
        if token.kind != "EOF":
            raise self.error(token, "expected AND, OR, FOLLOWEDBY, a qualifier or the end of the pattern")
        return Pattern(expression)

    # Observation level -------------------------------------------------------------------

    def observation_expressions(self) -> ObservationExpression:
        return self._observation_chain("FOLLOWEDBY", self.observation_or)

    def observation_or(self) -> ObservationExpression:
        return self._observation_chain("OR", self.observation_and)

    def observation_and(self) -> ObservationExpression:
        return self._observation_chain("AND", self.qualified_observation)

    def _observation_chain(
        self, operator: str, parse_operand: Callable[[], ObservationExpression]
    ) -> ObservationExpression:
        first = parse_operand()
        if self.tokens[self.index].kind != operator:
            return first

        operands = [first]
        while self.tokens[self.index].kind == operator:
            self.index += 1
            operands.append(parse_operand())
        return CompoundObservation(operator, tuple(operands))

    def qualified_observation(self) -> ObservationExpression:
        token = self.tokens[self.index]
        node: ObservationExpression
        if token.kind == "[":
            self.enter(token)
            node = Observation(self.comparison_or())
            self.expect("]", "expected AND, OR or ']' to close the observation")
            self.depth -= 1
        elif token.kind == "(":
            self.enter(token)
            node = self.observation_expressions()
            self.expect(")", "expected AND, OR, FOLLOWEDBY, a qualifier or ')'")
            self.depth -= 1
        else:
            raise self.error(token, "expected '[' or '(' to start an observation expression")

        # stix2-patterns 2.1 rejects a repeated qualifier kind directly on one bracketed
        # observation, but not on a parenthesised group; this follows it.
        seen: set[type] = set()
        while self.tokens[self.index].kind in _QUALIFIER_KEYWORDS:
            qualifier_token = self.tokens[self.index]
            qualifier = self.qualifier()
            if token.kind == "[":
                if type(qualifier) in seen:
                    reason = (
                        f"{qualifier_token.kind} appears twice on one observation; "
                        "put the inner part in parentheses if both are meant"
                    )
                    raise PatternError(reason, self.pattern, qualifier_token.position)
                seen.add(type(qualifier))
            node = QualifiedObservation(node, qualifier)
        return node

    def qualifier(self) -> Qualifier:
        token = self.advance()
        if token.kind == "START":
            start, start_form = self.qualifier_time("START")
            self.expect("STOP", "expected STOP after the START time")
            stop, stop_form = self.qualifier_time("STOP")
            return StartStop(start, stop, start_form, stop_form)

        if token.kind == "WITHIN":
            count = self.advance()
            if count.kind not in ("INT", "FLOAT") or count.text.startswith("-"):
                raise self.error(count, "expected a number of seconds of zero or more after WITHIN")
            self.expect("SECONDS", "expected SECONDS after the WITHIN count")
            return Within(count.value)

        count = self.advance()
        if count.kind != "INT" or count.text.startswith("-"):
            raise self.error(count, "expected a whole number of zero or more after REPEATS")
        self.expect("TIMES", "expected TIMES after the REPEATS count")
        return Repeats(count.value)

    def qualifier_time(self, keyword: str) -> tuple[datetime, str]:
        token = self.advance()
        if token.kind == "TIMESTAMP":
            return token.value, TIMESTAMP_FORM
        if token.kind != "STRING":
            raise self.error(token, f"expected a timestamp such as t'2024-01-01T00:00:00Z' after {keyword}")

        try:
            return parse_timestamp(token.value), STRING_FORM
        except LiteralError as exc:
            raise PatternError(f"invalid {keyword} time: {exc}", self.pattern, token.position) from exc

    # Comparison level --------------------------------------------------------------------

    def comparison_or(self) -> Comparison | CompoundComparison:
        return self._comparison_chain("OR", self.comparison_and)

    def comparison_and(self) -> Comparison | CompoundComparison:
        return self._comparison_chain("AND", self.property_test)

    def _comparison_chain(
        self, operator: str, parse_operand: Callable[[], Comparison | CompoundComparison]
    ) -> Comparison | CompoundComparison:
        first = parse_operand()
        if self.tokens[self.index].kind != operator:
            return first

        operands = [first]
        while self.tokens[self.index].kind == operator:
            self.index += 1
            operands.append(parse_operand())
        return CompoundComparison(operator, tuple(operands))

    def property_test(self) -> Comparison | CompoundComparison:
        token = self.tokens[self.index]
        if token.kind == "(":
            self.enter(token)
            expression = self.comparison_or()
            self.expect(")", "expected AND, OR or ')'")
            self.depth -= 1
            return expression

        if token.kind in ("NOT", "EXISTS"):
            return self.exists_test()

        object_type, path = self.object_path()
        negated = self.tokens[self.index].kind == "NOT"
        if negated:
            self.index += 1

        operator_token = self.advance()
        operator = operator_token.kind
        value_start = self.index
        if operator in ("=", "!="):
            value = self.literal(_PRIMITIVE_LITERALS, "a literal")
        elif operator in _ORDER_OPERATORS:
            expected = f"a string, number, binary or timestamp after {operator}"
            value = self.literal(_ORDERABLE_LITERALS, expected)
        elif operator == "IN":
            value = self.set_literal()
        elif operator in _STRING_OPERATORS:
            value = self.literal(frozenset({"STRING"}), f"a string literal after {operator}")
        else:
            raise self.error(operator_token, f"expected a comparison operator ({_OPERATOR_LIST})")

        if operator not in ("LIKE", "MATCHES") and is_hash_path(path):
            self.check_hash_values(path, self.tokens[value_start : self.index])
        return Comparison(object_type, path, operator, negated, value)

    def exists_test(self) -> Comparison:
        negated = self.tokens[self.index].kind == "NOT"
        if negated:
            self.index += 1
        self.expect("EXISTS", "expected EXISTS after NOT at the start of a comparison")

        object_type, path = self.object_path()
        return Comparison(object_type, path, "EXISTS", negated, None)

    def object_path(self) -> tuple[str, tuple[str | int, ...]]:
        token = self.advance()
        if token.kind != "IDENT":
            raise self.error(token, "expected an object type such as 'file' at the start of a comparison")
        self.expect(":", f"expected ':' after the object type {token.text}")

        path: list[str | int] = [self.path_key()]
        while True:
            kind = self.tokens[self.index].kind
            if kind == ".":
                self.index += 1
                path.append(self.path_key())
            elif kind == "[":
                self.index += 1
                path.append(self.path_index())
            else:
                return token.text, tuple(path)

    def path_key(self) -> str:
        token = self.advance()
        if token.kind == "STRING":
            return token.value
        if token.kind == "IDENT" and "-" not in token.text:
            return token.text
        if token.kind == "IDENT":
            reason = f"the property name {token.text} contains '-', so it must be quoted as '{token.text}'"
            raise PatternError(reason, self.pattern, token.position)
        raise self.error(token, "expected a property name or a quoted key")

    def path_index(self) -> int | str:
        token = self.advance()
        if token.kind == "INT":
            index: int | str = token.value
        elif token.kind == "*":
            index = ANY_INDEX
        else:
            raise self.error(token, "expected a list index (a whole number or *)")
        self.expect("]", "expected ']' after the list index")
        return index

    def literal(self, kinds: frozenset[str], expected: str) -> object:
        token = self.advance()
        if token.kind not in kinds:
            raise self.error(token, f"expected {expected}")
        return token.value

    def set_literal(self) -> tuple[object, ...]:
        self.expect("(", "expected '(' to open the IN list")
        if self.tokens[self.index].kind == ")":
            self.index += 1
            return ()

        values = [self.literal(_PRIMITIVE_LITERALS, "a literal in the IN list")]
        while self.tokens[self.index].kind == ",":
            self.index += 1
            values.append(self.literal(_PRIMITIVE_LITERALS, "a literal in the IN list"))
        self.expect(")", "expected ',' or ')' in the IN list")
        return tuple(values)

    def check_hash_values(self, path: tuple[str | int, ...], value_tokens: list[Token]) -> None:
        """Reject a malformed digest compared with a known hash algorithm, as stix2-patterns does."""
        key = str(path[-1])
        for token in value_tokens:
            if token.kind in _PRIMITIVE_LITERALS:
                problem = hash_value_problem(key, token.value)
                if problem is not None:
                    raise PatternError(problem, self.pattern, token.position)

    # Helpers -----------------------------------------------------------------------------

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "EOF":
            self.index += 1
        return token

    def expect(self, kind: str, reason: str) -> Token:
        token = self.tokens[self.index]
        if token.kind != kind:
            raise self.error(token, reason)
        self.index += 1
        return token

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING_DEPTH:
            reason = f"brackets and parentheses nest deeper than {MAX_NESTING_DEPTH} levels"
            raise PatternError(reason, self.pattern, token.position)
        self.index += 1

    def error(self, token: Token, reason: str) -> PatternError:
        found = "the end of the pattern" if token.kind == "EOF" else repr(token.text)
        return PatternError(f"{reason}, found {found}", self.pattern, token.position)
