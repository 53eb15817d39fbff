"""Reduction of a parsed pattern to exact-match lookups (OR of AND-groups of equalities).

A lookup-based sink (a Splunk lookup, an Elasticsearch terms query, a MISP attribute) can
only test "this object has these property values". flatten() extracts the part of a
pattern that such a sink can express and names, in plain words, every part that it cannot.

Rules:

* ``OR`` is split at any level, between observations and inside one.
* ``AND`` and ``FOLLOWEDBY`` between observations are never split: matching them needs a
  pattern-matching engine, so the whole compound becomes one unflattenable reason.
* ``AND`` inside one observation yields one AND-group; an ``OR`` below it is distributed
  (``[a AND (b OR c)]`` gives ``(a, b)`` and ``(a, c)``). When the distribution would yield
  more than MAX_DISTRIBUTED_ALTERNATIVES groups for one observation, the observation becomes
  unflattenable instead. A lone OR chain or IN list is not limited, because its
  alternatives grow only linearly with the pattern text.
* ``x IN (v1, v2)`` without NOT is read as ``x = v1 OR x = v2``.
* ``WITHIN`` and ``REPEATS`` make the expression they qualify unflattenable.
* ``START``/``STOP`` on the whole pattern sets ``start``/``stop``; nested windows on the
  whole pattern are intersected. A window on only a part of the pattern makes that part
  unflattenable, since one window cannot be stated per alternative.
"""

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from .formatting import format_comparison, format_pattern
from .nodes import (
    STRING_FORM,
    Comparison,
    CompoundComparison,
    CompoundObservation,
    Observation,
    ObservationExpression,
    Pattern,
    QualifiedObservation,
    Repeats,
    StartStop,
    Within,
)
from .parser import parse_pattern

#: Largest number of AND-groups that distributing OR over AND may produce for one observation.
MAX_DISTRIBUTED_ALTERNATIVES = 64

Group = tuple[Comparison, ...]


@dataclass
class Flattened:
    """What a lookup can express of one pattern.

    Attributes:
        alternatives: AND-groups joined by OR. Every group contains comparisons from one
            observation, all with operator ``'='``, not negated, and on one object type.
            Groups are in pattern order without duplicates.
        unflattenable: One plain-words reason per part that no lookup can express, quoting
            that part as STIX text. A reason that starts with ``"partial: "`` belongs to a
            group listed in ``partial``.
        start: Start of the START/STOP window on the whole pattern (UTC), else None.
        stop: End of that window (UTC), else None.
        qualifier_form: ``'timestamp'`` if the window was written with ``t'...'`` literals,
            ``'string'`` if any bound used the STIX 2.0 plain-string form, None without a window.
        partial: Indexes into ``alternatives`` of groups that left out comparisons a lookup
            cannot test (such as ``file:size > 1000`` beside ``file:name = 'a.exe'``). Such
            a group matches more than the pattern does; the caller decides whether to export it.
    """

    alternatives: list[Group] = field(default_factory=list)
    unflattenable: list[str] = field(default_factory=list)
    start: datetime | None = None
    stop: datetime | None = None
    qualifier_form: str | None = None
    partial: list[int] = field(default_factory=list)


class _TooManyAlternatives(Exception):
    """Raised inside _distribute when an observation's AND-groups pass the limit."""


def flatten(pattern: Pattern | str) -> Flattened:
    """Split a pattern into exact-match alternatives and reasons for the rest (module docstring).

    Args:
        pattern: A tree from parse_pattern, or pattern text to parse first.

    Raises:
        PatternError: ``pattern`` is text that does not parse.
    """
    if isinstance(pattern, str):
        pattern = parse_pattern(pattern)

    expression = pattern.expression
    if type(expression) is Observation:
        comparison = expression.expression
        if type(comparison) is Comparison and comparison.operator == "=" and not comparison.negated:
            return Flattened(alternatives=[(comparison,)])

    collector = _Collector()
    unqualified = _take_root_qualifiers(expression, collector)
    if unqualified is not None:
        _flatten_observations(unqualified, collector)
    return collector.result()


class _Collector:
    """Alternatives and reasons gathered while walking one pattern."""

    def __init__(self) -> None:
        self.groups: dict[tuple[tuple[Comparison, type], ...], int] = {}
        self.alternatives: list[Group] = []
        self.partial: set[int] = set()
        # (reason, index of the partial group it belongs to or None), in walking order.
        self.reasons: list[tuple[str, int | None]] = []
        self.start: datetime | None = None
        self.stop: datetime | None = None
        self.form: str | None = None

    def add_group(self, group: Group, left_out: list[Comparison]) -> None:
        # The value type is part of the key because True == 1 in Python.
        key = tuple((comparison, type(comparison.value)) for comparison in group)
        index = self.groups.get(key)
        if index is None:
            index = len(self.alternatives)
            self.groups[key] = index
            self.alternatives.append(group)
            if left_out:
                self.partial.add(index)
        elif not left_out:
            # An exact group covers a partial copy of itself: (a) OR (a AND x) is a.
            self.partial.discard(index)

        if left_out:
            lookup_text = _group_text(group)
            left_out_text = _group_text(left_out)
            operators = ", ".join(sorted({_operator_name(comparison) for comparison in left_out}))
            reason = (
                f"partial: the lookup for {lookup_text} leaves out {left_out_text}, "
                f"because a lookup cannot test {operators}"
            )
            self.reasons.append((reason, index))

    def add_reason(self, reason: str) -> None:
        self.reasons.append((reason, None))

    def add_window(self, qualifier: StartStop) -> None:
        self.start = qualifier.start if self.start is None else max(self.start, qualifier.start)
        self.stop = qualifier.stop if self.stop is None else min(self.stop, qualifier.stop)
        if self.form != STRING_FORM:
            self.form = qualifier.form

    def result(self) -> Flattened:
        reasons = [reason for reason, index in self.reasons if index is None or index in self.partial]
        return Flattened(
            alternatives=self.alternatives,
            unflattenable=reasons,
            start=self.start,
            stop=self.stop,
            qualifier_form=self.form,
            partial=sorted(self.partial),
        )


def _take_root_qualifiers(
    expression: ObservationExpression, collector: _Collector
) -> ObservationExpression | None:
    """Record qualifiers on the whole pattern; return what is left to flatten, or None for nothing."""
    engine_qualifiers: list[str] = []
    node = expression
    while isinstance(node, QualifiedObservation):
        qualifier = node.qualifier
        if isinstance(qualifier, StartStop):
            collector.add_window(qualifier)
        else:
            engine_qualifiers.append(_qualifier_text(qualifier))
        node = node.expression

    if engine_qualifiers:
        names = " and ".join(reversed(engine_qualifiers))
        if len(engine_qualifiers) > 1:
            subject = f"the qualifiers {names} need"
        else:
            subject = f"the qualifier {names} needs"
        collector.add_reason(f"{subject} a pattern-matching engine: {format_pattern(expression)}")
        return None
    return node


def _flatten_observations(node: ObservationExpression, collector: _Collector) -> None:
    if isinstance(node, Observation):
        _flatten_observation(node, collector)
        return

    if isinstance(node, CompoundObservation):
        if node.operator == "OR":
            for operand in node.operands:
                _flatten_observations(operand, collector)
        else:
            text = format_pattern(node)
            collector.add_reason(
                f"observations joined by {node.operator} need a pattern-matching engine: {text}"
            )
        return

    qualifier = node.qualifier
    text = format_pattern(node)
    if isinstance(qualifier, StartStop):
        collector.add_reason(
            f"a START/STOP window on only part of the pattern cannot be given per lookup: {text}"
        )
    else:
        collector.add_reason(
            f"the qualifier {_qualifier_text(qualifier)} needs a pattern-matching engine: {text}"
        )


def _flatten_observation(observation: Observation, collector: _Collector) -> None:
    """Add the AND-groups of one bracketed observation, or a reason why there are none."""
    try:
        groups = _distribute(observation.expression)
    except _TooManyAlternatives:
        collector.add_reason(
            f"expanding OR inside AND gives more than {MAX_DISTRIBUTED_ALTERNATIVES} alternatives: "
            f"{format_pattern(observation)}"
        )
        return

    if not groups:
        collector.add_reason(f"an IN list without values never matches: {format_pattern(observation)}")
        return

    for group in groups:
        _add_group(_unique(group), collector)


def _add_group(group: Group, collector: _Collector) -> None:
    """Classify one AND-group: exact, partial (some comparisons left out), or unflattenable."""
    object_types = {comparison.object_type for comparison in group}
    if len(object_types) > 1:
        collector.add_reason(
            f"AND across different object types ({', '.join(sorted(object_types))}) inside one observation "
            f"can never match a single object: [{_group_text(group)}]"
        )
        return

    equalities = tuple(comparison for comparison in group if _is_equality(comparison))
    left_out = [comparison for comparison in group if not _is_equality(comparison)]
    if equalities:
        collector.add_group(equalities, left_out)
        return

    operators = ", ".join(sorted({_operator_name(comparison) for comparison in left_out}))
    collector.add_reason(f"a lookup cannot test {operators}: [{_group_text(group)}]")


def _distribute(expression: Comparison | CompoundComparison) -> list[Group]:
    """Rewrite a comparison expression as a list of AND-groups joined by OR.

    Raises:
        _TooManyAlternatives: Distributing OR over AND passed MAX_DISTRIBUTED_ALTERNATIVES.
    """
    if isinstance(expression, Comparison):
        if expression.operator == "IN" and not expression.negated:
            values = cast(tuple[object, ...], expression.value)
            object_type, path = expression.object_type, expression.path
            return [(Comparison(object_type, path, "=", False, value),) for value in values]
        return [(expression,)]

    operand_groups = [_distribute(operand) for operand in expression.operands]
    if expression.operator == "OR":
        return [group for groups in operand_groups for group in groups]

    widening = [groups for groups in operand_groups if len(groups) > 1]
    size = 1
    for groups in operand_groups:
        size *= len(groups)
    if len(widening) > 1 and size > MAX_DISTRIBUTED_ALTERNATIVES:
        raise _TooManyAlternatives
    combinations = itertools.product(*operand_groups)
    return [tuple(itertools.chain.from_iterable(combination)) for combination in combinations]


def _group_text(comparisons: Group | list[Comparison]) -> str:
    return " AND ".join(format_comparison(comparison) for comparison in comparisons)


def _unique(group: Group) -> Group:
    seen: set[tuple[Comparison, type]] = set()
    kept = []
    for comparison in group:
        key = (comparison, type(comparison.value))
        if key not in seen:
            seen.add(key)
            kept.append(comparison)
    return tuple(kept)


def _is_equality(comparison: Comparison) -> bool:
    return comparison.operator == "=" and not comparison.negated


def _operator_name(comparison: Comparison) -> str:
    return f"NOT {comparison.operator}" if comparison.negated else comparison.operator


def _qualifier_text(qualifier: Within | Repeats | StartStop) -> str:
    if isinstance(qualifier, Within):
        return f"WITHIN {qualifier.seconds} SECONDS"
    if isinstance(qualifier, Repeats):
        return f"REPEATS {qualifier.times} TIMES"
    return "START/STOP"
