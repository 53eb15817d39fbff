"""Unit tests of escape_literal, format_comparison and format_pattern, with round trips."""

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from stixbridge.patterns import (
    Comparison,
    Observation,
    Pattern,
    PatternError,
    escape_literal,
    format_comparison,
    format_literal,
    format_pattern,
    parse_pattern,
)
from stixbridge.patterns.parser import parse_full
from tests.core.patterns import pattern_corpus

# Values that producers put into pattern literals, and the literal STIX text they must become.
ESCAPED_VALUES = [
    ("quarterly report's draft.docx", "'quarterly report\\'s draft.docx'"),
    ("HKLM\\Software\\ExampleVendor\\Updater", "'HKLM\\\\Software\\\\ExampleVendor\\\\Updater'"),
    ("http://example.org/download?name=it's", "'http://example.org/download?name=it\\'s'"),
    ("o'neil.exe", "'o\\'neil.exe'"),
    ("C:\\Users\\Public\\", "'C:\\\\Users\\\\Public\\\\'"),
    ("payload'", "'payload\\''"),
    ("\\'", "'\\\\\\''"),
    ("", "''"),
]


def name_value(text: str) -> object:
    """Parse a one-comparison pattern and return the compared value."""
    observation = parse_pattern(text).expression
    assert isinstance(observation, Observation)
    assert isinstance(observation.expression, Comparison)
    return observation.expression.value


@pytest.mark.parametrize(("value", "literal"), ESCAPED_VALUES)
def test_escape_literal_output(value: str, literal: str) -> None:
    assert escape_literal(value) == literal


@pytest.mark.parametrize(("value", "literal"), ESCAPED_VALUES)
def test_escaped_value_parses_back(value: str, literal: str) -> None:
    assert name_value(f"[file:name = {literal}]") == value


def test_escaped_values_build_expected_patterns() -> None:
    name = escape_literal("o'neil.exe")
    digest = escape_literal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

    text = f"[file:name = {name} AND file:hashes.'SHA-256' = {digest}]"

    assert text == (
        "[file:name = 'o\\'neil.exe' AND "
        "file:hashes.'SHA-256' = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']"
    )


def test_escape_literal_rejects_non_string() -> None:
    with pytest.raises(TypeError, match="needs a str"):
        escape_literal(NOT_A_STRING)


# Deliberately ill-typed inputs, typed Any so that the type checker lets the tests pass them.
NOT_A_STRING: Any = b"bytes"
FLOAT_STEP_PATH: Any = ("x", 1.5)

FORMAT_CASES = [
    (Comparison("file", ("hashes", "SHA-256"), "=", False, "ab"), "file:hashes.'SHA-256' = 'ab'"),
    (Comparison("file", ("hashes", "SHA256"), "=", False, "ab"), "file:hashes.SHA256 = 'ab'"),
    (Comparison("file", ("name",), "=", False, "o'brien"), "file:name = 'o\\'brien'"),
    (Comparison("x-foo", ("AND", "true", "a b"), "!=", False, 1), "x-foo:'AND'.'true'.'a b' != 1"),
    (Comparison("a", ("values", "*", "data"), "LIKE", True, "%x"), "a:values[*].data NOT LIKE '%x'"),
    (Comparison("a", ("parts", 0, "x", -1), "<", False, 1.5), "a:parts[0].x[-1] < 1.5"),
    (Comparison("a", ("x",), "IN", False, ("a", 1, True, b"\x00\xff")), "a:x IN ('a', 1, true, h'00ff')"),
    (Comparison("a", ("x",), "IN", True, ()), "a:x NOT IN ()"),
    (Comparison("a", ("x",), "EXISTS", False, None), "EXISTS a:x"),
    (Comparison("a", ("x",), "EXISTS", True, None), "NOT EXISTS a:x"),
    (Comparison("a", ("x",), ">=", False, 1e-05), "a:x >= 0.00001"),
    (Comparison("a", ("x",), "=", False, 1e16), "a:x = 10000000000000000.0"),
    (
        Comparison("a", ("x",), "=", False, datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))),
        "a:x = t'2024-01-01T00:00:00Z'",
    ),
    (
        Comparison("a", ("x",), "=", False, datetime(2024, 1, 1, 0, 0, 0, 500)),
        "a:x = t'2024-01-01T00:00:00.0005Z'",
    ),
]


@pytest.mark.parametrize(("comparison", "text"), FORMAT_CASES)
def test_format_comparison_output(comparison: Comparison, text: str) -> None:
    assert format_comparison(comparison) == text


@pytest.mark.parametrize(
    "comparison",
    [
        Comparison("a", ("x",), "LIKE", False, 5),
        Comparison("a", ("x",), "<", False, True),
        Comparison("a", ("x",), "IN", False, "ab"),
        Comparison("a", ("x",), "=", False, None),
        Comparison("a", ("x",), "=", False, math.nan),
        Comparison("a", ("x",), "=", False, math.inf),
        Comparison("a", ("x",), "=", False, ["a"]),
        Comparison("a", ("x",), "~", False, "a"),
        Comparison("a b", ("x",), "=", False, "a"),
        Comparison("AND", ("x",), "=", False, "a"),
        Comparison("a", (), "=", False, "a"),
        Comparison("a", (0,), "=", False, "a"),
        Comparison("a", FLOAT_STEP_PATH, "=", False, "a"),
    ],
)
def test_format_comparison_rejects_unwritable(comparison: Comparison) -> None:
    with pytest.raises(ValueError):
        format_comparison(comparison)


def test_format_literal_bool_before_int() -> None:
    assert format_literal(True) == "true"
    assert format_literal(0) == "0"


def test_random_comparisons_round_trip() -> None:
    rng = random.Random(7)

    for _ in range(3000):
        comparison = pattern_corpus.random_comparison(rng)
        text = "[" + format_comparison(comparison) + "]"

        parsed = parse_pattern(text).expression
        assert isinstance(parsed, Observation), text
        assert isinstance(parsed.expression, Comparison), text
        assert parsed.expression == comparison, text
        assert _value_types(parsed.expression.value) == _value_types(comparison.value), text


def _value_types(value: object) -> object:
    if isinstance(value, tuple):
        return tuple(type(item) for item in value)
    return type(value)


def test_random_texts_round_trip_through_escape() -> None:
    rng = random.Random(11)

    for _ in range(3000):
        value = pattern_corpus.random_text(rng, 40)

        assert name_value(f"[file:name = {escape_literal(value)}]") == value


def test_generated_patterns_round_trip() -> None:
    rng = random.Random(3)

    for _ in range(1500):
        text = pattern_corpus.valid_pattern(rng)
        tree = parse_pattern(text)

        assert parse_full(format_pattern(tree)) == tree, text


def test_generated_patterns_shortcut_matches_full_parser() -> None:
    rng = random.Random(5)

    for index in range(3000):
        if index % 2:
            text = pattern_corpus.mutated_pattern(rng)
        else:
            text = "[" + pattern_corpus.comparison_text(rng) + "]"
        assert _outcome(parse_pattern, text) == _outcome(parse_full, text), text


def _outcome(parse: Callable[[str], Pattern], text: str) -> object:
    try:
        return parse(text)
    except PatternError as exc:
        return exc.position, exc.reason


def test_format_pattern_writes_stix21_start_stop() -> None:
    tree = parse_pattern("[a:x = 1] START '2024-01-01T00:00:00Z' STOP '2024-02-01T00:00:00.5Z'")

    assert format_pattern(tree) == "[a:x = 1] START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00.5Z'"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[a:x=1 OR a:y=2 AND a:z=3]", "[a:x = 1 OR a:y = 2 AND a:z = 3]"),
        ("[(a:x=1 OR a:y=2) AND a:z=3]", "[(a:x = 1 OR a:y = 2) AND a:z = 3]"),
        ("([a:x=1] OR [a:y=2]) AND [a:z=3]", "([a:x = 1] OR [a:y = 2]) AND [a:z = 3]"),
        ("([a:x=1]FOLLOWEDBY[a:y=2])WITHIN 5 SECONDS", "([a:x = 1] FOLLOWEDBY [a:y = 2]) WITHIN 5 SECONDS"),
        ("([a:x=1] WITHIN 5 SECONDS) WITHIN 6 SECONDS", "([a:x = 1] WITHIN 5 SECONDS) WITHIN 6 SECONDS"),
        ("[a:x=1] REPEATS 2 TIMES WITHIN 1.5 SECONDS", "[a:x = 1] REPEATS 2 TIMES WITHIN 1.5 SECONDS"),
        ("([a:x=1] OR [a:y=2]) OR [a:z=3]", "([a:x = 1] OR [a:y = 2]) OR [a:z = 3]"),
    ],
)
def test_format_pattern_keeps_needed_parentheses(text: str, expected: str) -> None:
    assert format_pattern(parse_pattern(text)) == expected


def test_format_timestamp_converts_to_utc() -> None:
    value = datetime(2024, 1, 1, 1, 30, tzinfo=timezone(timedelta(hours=1, minutes=30)))

    assert format_literal(value) == "t'2024-01-01T00:00:00Z'"
    assert format_literal(datetime(2024, 1, 1, tzinfo=UTC)) == "t'2024-01-01T00:00:00Z'"
