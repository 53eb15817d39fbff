"""Unit tests of parse_pattern: grammar features, literals, escapes, qualifiers and errors."""

import pickle
from datetime import UTC, datetime
from typing import Any

import pytest

from stixbridge.patterns import (
    MAX_NESTING_DEPTH,
    STRING_FORM,
    TIMESTAMP_FORM,
    Comparison,
    CompoundComparison,
    CompoundObservation,
    Observation,
    Pattern,
    PatternError,
    QualifiedObservation,
    Repeats,
    StartStop,
    Within,
    parse_pattern,
)
from stixbridge.patterns.parser import parse_full

SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MD5_EMPTY = "d41d8cd98f00b204e9800998ecf8427e"
SHA1_EMPTY = "da39a3ee5e6b4b0d3255bfef95601890afd80709"


def only_comparison(text: str) -> Comparison:
    """Parse a one-comparison pattern with both parsers and return the comparison."""
    pattern = parse_pattern(text)
    assert parse_full(text) == pattern
    assert isinstance(pattern.expression, Observation)
    comparison = pattern.expression.expression
    assert isinstance(comparison, Comparison)
    return comparison


def parse_error(text: str) -> PatternError:
    with pytest.raises(PatternError) as caught:
        parse_pattern(text)
    return caught.value


# String escapes ----------------------------------------------------------------------------

# Pattern text as it reads after JSON decoding, and the value it must decode to.
ESCAPE_CASES = [
    ("[file:name = 'o\\'brien_invoice.pdf']", "file", ("name",), "o'brien_invoice.pdf"),
    ("[file:name = 'payload\\'']", "file", ("name",), "payload'"),
    (
        "[windows-registry-key:key = 'HKEY_CURRENT_USER\\\\Software\\\\ExampleVendor\\\\Run']",
        "windows-registry-key",
        ("key",),
        "HKEY_CURRENT_USER\\Software\\ExampleVendor\\Run",
    ),
    ("[directory:path = 'C:\\\\Users\\\\Public\\\\']", "directory", ("path",), "C:\\Users\\Public\\"),
    (
        "[url:value = 'http://www.example.com/search?q=it\\'s']",
        "url",
        ("value",),
        "http://www.example.com/search?q=it's",
    ),
    ("[file:name = '\\\\\\'']", "file", ("name",), "\\'"),
    ("[file:name = '\\\\W']", "file", ("name",), "\\W"),
    ("[file:name = '']", "file", ("name",), ""),
]


@pytest.mark.parametrize(("text", "object_type", "path", "value"), ESCAPE_CASES)
def test_string_escapes_decode(text: str, object_type: str, path: tuple[str, ...], value: str) -> None:
    comparison = only_comparison(text)

    assert comparison.object_type == object_type
    assert comparison.path == path
    assert comparison.operator == "="
    assert comparison.value == value


def test_windows_path_single_backslash_rejected() -> None:
    text = "[file:name = 'C:\\Windows\\evil.exe']"

    error = parse_error(text)

    assert "\\W" in str(error)
    assert error.position == text.index("\\W")
    assert error.pattern == text


@pytest.mark.parametrize("sequence", ["\\e", "\\n", "\\t", "\\x41", "\\u0041", '\\"', "\\ "])
def test_other_escapes_rejected(sequence: str) -> None:
    text = f"[file:name = 'a{sequence}b']"

    error = parse_error(text)

    assert sequence[:2] in str(error)
    assert error.position == text.index("\\")


def test_bad_escape_reported_in_unterminated_string() -> None:
    text = "[file:name = 'C:\\Users\\']"

    error = parse_error(text)

    assert "\\U" in str(error)


def test_unterminated_string_rejected() -> None:
    error = parse_error("[file:name = 'abc]")

    assert "unterminated string" in str(error)
    assert error.position == 13


# Literals ----------------------------------------------------------------------------------

LITERAL_CASES = [
    ("42", 42),
    ("-7", -7),
    ("+7", 7),
    ("0", 0),
    ("-0", 0),
    ("1.5", 1.5),
    (".5", 0.5),
    ("-.25", -0.25),
    ("+2.0", 2.0),
    ("01.5", 1.5),
    ("true", True),
    ("false", False),
    ("h'0a1B'", b"\x0a\x1b"),
    ("h''", b""),
    ("b'AAAA'", b"\x00\x00\x00"),
    ("b'QUI='", b"AB"),
    ("b'QQ=='", b"A"),
    ("t'2024-01-01T00:00:00Z'", datetime(2024, 1, 1, tzinfo=UTC)),
    ("t'2024-01-01T00:00:00.123Z'", datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)),
    ("t'2024-01-01T00:00:00.1234567891Z'", datetime(2024, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)),
    ("t'2016-12-31T23:59:60Z'", datetime(2017, 1, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize(("literal", "value"), LITERAL_CASES)
def test_literal_decodes(literal: str, value: object) -> None:
    comparison = only_comparison(f"[x-test:prop = {literal}]")

    assert comparison.value == value
    assert type(comparison.value) is type(value)


def test_timestamp_literal_is_utc() -> None:
    comparison = only_comparison("[file:created = t'2024-05-02T08:00:00Z']")

    assert isinstance(comparison.value, datetime)
    assert comparison.value.tzinfo is UTC


BAD_LITERALS = [
    "01",
    "1.",
    "1e5",
    "- 1",
    "+",
    "TRUE",
    "True",
    "h'0a1'",
    "h'zz'",
    "b'AAA'",
    "b''",
    "b'A==='",
    "t'2024-13-01T00:00:00Z'",
    "t'2024-01-01T24:00:00Z'",
    "t'2024-01-01T00:00:00+00:00'",
    "t'2024-01-01T00:00:00.Z'",
    "t'2024-02-30T00:00:00Z'",
    "t'2024",
    "'a''b'",
    "\"double\"",
]


@pytest.mark.parametrize("literal", BAD_LITERALS)
def test_bad_literal_rejected(literal: str) -> None:
    text = f"[x-test:prop = {literal}]"

    error = parse_error(text)

    assert error.position >= text.index("=")


# Operators ---------------------------------------------------------------------------------

OPERATOR_CASES = [
    ("file:name = 'a'", "=", False, "a"),
    ("file:name == 'a'", "=", False, "a"),
    ("file:name != 'a'", "!=", False, "a"),
    ("file:name <> 'a'", "!=", False, "a"),
    ("file:name NOT = 'a'", "=", True, "a"),
    ("file:size < 10", "<", False, 10),
    ("file:size <= 10", "<=", False, 10),
    ("file:size > 1.5", ">", False, 1.5),
    ("file:size NOT >= 10", ">=", True, 10),
    ("file:created > t'2024-01-01T00:00:00Z'", ">", False, datetime(2024, 1, 1, tzinfo=UTC)),
    ("file:name IN ('a', 1, true)", "IN", False, ("a", 1, True)),
    ("file:name IN ()", "IN", False, ()),
    ("file:name NOT IN ('a')", "IN", True, ("a",)),
    ("file:name LIKE '%.exe'", "LIKE", False, "%.exe"),
    ("file:name NOT LIKE 'a_c'", "LIKE", True, "a_c"),
    ("file:name MATCHES '^a\\\\d+$'", "MATCHES", False, "^a\\d+$"),
    ("ipv4-addr:value ISSUBSET '192.0.2.0/25'", "ISSUBSET", False, "192.0.2.0/25"),
    ("ipv4-addr:value NOT ISSUPERSET '192.0.2.1'", "ISSUPERSET", True, "192.0.2.1"),
    ("EXISTS file:name", "EXISTS", False, None),
    ("NOT EXISTS file:name", "EXISTS", True, None),
]


@pytest.mark.parametrize(("body", "operator", "negated", "value"), OPERATOR_CASES)
def test_operator_parses(body: str, operator: str, negated: bool, value: object) -> None:
    comparison = only_comparison(f"[{body}]")

    assert comparison.operator == operator
    assert comparison.negated is negated
    assert comparison.value == value


BAD_OPERATOR_USES = [
    "file:size < true",
    "file:name LIKE 5",
    "file:name MATCHES h'00'",
    "file:name IN 'a'",
    "file:name IN (('a'))",
    "file:name IN ('a',)",
    "file:name EXISTS",
    "NOT file:name = 'a'",
    "file:name ~ 'a'",
    "file:name = 'a' and file:size = 1",
    "file:name",
]


@pytest.mark.parametrize("body", BAD_OPERATOR_USES)
def test_bad_operator_use_rejected(body: str) -> None:
    parse_error(f"[{body}]")


# Object paths ------------------------------------------------------------------------------

PATH_CASES = [
    ("x-http:header.'Accept-Encoding'", "x-http", ("header", "Accept-Encoding")),
    ("network-traffic:dst_ref.value", "network-traffic", ("dst_ref", "value")),
    ("windows-registry-key:values[*].data", "windows-registry-key", ("values", "*", "data")),
    ("file:parts[0]", "file", ("parts", 0)),
    ("file:parts[+2]", "file", ("parts", 2)),
    ("file:parts[-1]", "file", ("parts", -1)),
    ("file:extensions.'windows-pebinary-ext'.sections[1].name", "file",
     ("extensions", "windows-pebinary-ext", "sections", 1, "name")),
    ("x-foo:'bar-baz'", "x-foo", ("bar-baz",)),
    ("x-foo:bar.'it\\'s'", "x-foo", ("bar", "it's")),
    ("x-foo:''", "x-foo", ("",)),
    ("app:id", "app", ("id",)),
    ("configuration-profile:id", "configuration-profile", ("id",)),
    ("_private:_x", "_private", ("_x",)),
    ("file-:x_", "file-", ("x_",)),
    ("file : name . sub [ 0 ]", "file", ("name", "sub", 0)),
    ("file:in", "file", ("in",)),
]


@pytest.mark.parametrize(("path_text", "object_type", "path"), PATH_CASES)
def test_object_path_parses(path_text: str, object_type: str, path: tuple[str | int, ...]) -> None:
    comparison = only_comparison(f"[{path_text} = 'v']")

    assert comparison.object_type == object_type
    assert comparison.path == path


BAD_PATHS = [
    "x-foo:bar-baz",
    "file:hashes.sha-256",
    "file:x.1",
    "file:x.[*]",
    "file:x[1.5]",
    "file:x[]",
    "file:\"x\"",
    "fichier:é",
    "1file:x",
    "-file:x",
    "file:LAST",
    "file:IN",
    "file:true",
    "true:x",
    "AND:x",
    "file:EXISTS",
]


@pytest.mark.parametrize("path_text", BAD_PATHS)
def test_bad_object_path_rejected(path_text: str) -> None:
    parse_error(f"[{path_text} = 'v']")


def test_hyphenated_property_error_says_quote_it() -> None:
    error = parse_error("[file:hashes.sha-256 = 'x']")

    assert "'sha-256'" in str(error)
    assert error.position == 13


# Hash keys and values ----------------------------------------------------------------------

HASH_SPELLINGS = [
    ("'SHA-256'", "SHA-256", SHA256_EMPTY.upper()),
    ("SHA256", "SHA256", SHA256_EMPTY),
    ("sha256", "sha256", SHA256_EMPTY),
    ("'sha-256'", "sha-256", SHA256_EMPTY),
    ("MD5", "MD5", MD5_EMPTY.upper()),
    ("'md5'", "md5", MD5_EMPTY),
    ("SHA1", "SHA1", SHA1_EMPTY),
]


@pytest.mark.parametrize(("key_text", "key", "digest"), HASH_SPELLINGS)
def test_hash_key_spellings_parse(key_text: str, key: str, digest: str) -> None:
    comparison = only_comparison(f"[file:hashes.{key_text} = '{digest}']")

    assert comparison.path == ("hashes", key)
    assert comparison.value == digest


BAD_HASH_VALUES = [
    f"file:hashes.'SHA-256' = '{SHA256_EMPTY[:-1]}'",
    f"file:hashes.sha256 = '{SHA256_EMPTY}0'",
    "file:hashes.MD5 = 'abc'",
    f"file:hashes.MD5 = 'g{MD5_EMPTY[1:]}'",
    f"file:hashes.MD5 != '{MD5_EMPTY}00'",
    f"file:hashes.MD5 = h'{MD5_EMPTY}'",
    f"file:hashes.MD5 IN ('{MD5_EMPTY}', 'abc')",
    "file:hashes.SSDEEP = '3:abc def'",
    f"artifact:payload.hashes.'SHA-1' = '{SHA1_EMPTY}a'",
]


@pytest.mark.parametrize("body", BAD_HASH_VALUES)
def test_malformed_hash_value_rejected(body: str) -> None:
    error = parse_error(f"[{body}]")

    assert "hash" in str(error)


GOOD_HASH_VALUES = [
    f"file:hashes.MD5 IN ('{MD5_EMPTY}', '{MD5_EMPTY.upper()}')",
    "file:hashes.MD5 LIKE 'd41d%'",
    "file:hashes.'SHA-256' MATCHES '^e3b0'",
    "file:hashes.TLSH = 'anything'",
    "file:hashes.'x-custom' = 'anything'",
    "file:hashes.SSDEEP = '3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C'",
    "file:hashes[*] = 'abc'",
    f"x509-certificate:hashes.'SHA-1' = '{SHA1_EMPTY}'",
]


@pytest.mark.parametrize("body", GOOD_HASH_VALUES)
def test_hash_values_not_digests_accepted(body: str) -> None:
    parse_pattern(f"[{body}]")


# Structure and precedence ------------------------------------------------------------------

def test_and_binds_tighter_than_or_inside_observation() -> None:
    pattern = parse_pattern("[file:name = 'a' OR file:name = 'b' AND file:size = 1]")

    expression = pattern.expression
    assert isinstance(expression, Observation)
    top = expression.expression
    assert isinstance(top, CompoundComparison)
    assert top.operator == "OR"
    assert isinstance(top.operands[0], Comparison)
    assert isinstance(top.operands[1], CompoundComparison)
    assert top.operands[1].operator == "AND"


def test_parentheses_group_inside_observation() -> None:
    pattern = parse_pattern("[(file:name = 'a' OR file:name = 'b') AND file:size = 1]")

    expression = pattern.expression
    assert isinstance(expression, Observation)
    top = expression.expression
    assert isinstance(top, CompoundComparison)
    assert top.operator == "AND"
    assert isinstance(top.operands[0], CompoundComparison)
    assert top.operands[0].operator == "OR"


def test_observation_operator_precedence() -> None:
    pattern = parse_pattern("[a:x = 1] OR [a:x = 2] AND [a:x = 3] FOLLOWEDBY [a:x = 4]")

    top = pattern.expression
    assert isinstance(top, CompoundObservation)
    assert top.operator == "FOLLOWEDBY"
    left = top.operands[0]
    assert isinstance(left, CompoundObservation)
    assert left.operator == "OR"
    assert isinstance(left.operands[1], CompoundObservation)
    assert left.operands[1].operator == "AND"


def test_operator_chain_is_one_node() -> None:
    pattern = parse_pattern("[a:x = 1] OR [a:x = 2] OR [a:x = 3]")

    assert isinstance(pattern.expression, CompoundObservation)
    assert len(pattern.expression.operands) == 3


def test_redundant_parentheses_leave_no_node() -> None:
    assert parse_pattern("(([a:x = 1]))") == parse_pattern("[((a:x = 1))]") == parse_pattern("[a:x = 1]")


def test_pattern_without_spaces() -> None:
    comparison = only_comparison("[domain-name:value='x.com']")

    assert comparison == Comparison("domain-name", ("value",), "=", False, "x.com")


def test_keywords_need_no_spaces_around_brackets() -> None:
    pattern = parse_pattern("[a:x='1']AND[a:x='2']FOLLOWEDBY[a:x=1AND a:y=2]")

    assert isinstance(pattern.expression, CompoundObservation)


def test_whitespace_and_comments_skipped() -> None:
    text = "\t[file:name /* the name */ =\n'a'\u2003] // trailing comment"

    assert only_comparison(text).value == "a"


@pytest.mark.parametrize(
    "text", ["[a:x = 1] /* open", "[a:x = 1] / 2", "[a:x = 1]\x1c", "[a:x = 1] and [a:x = 2]"]
)
def test_stray_text_rejected(text: str) -> None:
    parse_error(text)


# Qualifiers --------------------------------------------------------------------------------

def test_within_and_repeats_qualifiers() -> None:
    pattern = parse_pattern("[a:x = 1] REPEATS 5 TIMES WITHIN 1.5 SECONDS")

    outer = pattern.expression
    assert isinstance(outer, QualifiedObservation)
    assert outer.qualifier == Within(1.5)
    inner = outer.expression
    assert isinstance(inner, QualifiedObservation)
    assert inner.qualifier == Repeats(5)
    assert isinstance(inner.expression, Observation)


@pytest.mark.parametrize("count", ["0", "+30", "600", "0.25", "01.5"])
def test_within_counts_accepted(count: str) -> None:
    parse_pattern(f"[a:x = 1] WITHIN {count} SECONDS")


@pytest.mark.parametrize(
    "qualifier",
    ["WITHIN -5 SECONDS", "WITHIN -0 SECONDS", "WITHIN 5", "within 5 seconds", "REPEATS 5.0 TIMES",
     "REPEATS -1 TIMES", "REPEATS 2", "START t'2024-01-01T00:00:00Z'"],
)
def test_bad_qualifier_rejected(qualifier: str) -> None:
    parse_error(f"[a:x = 1] {qualifier}")


def test_start_stop_timestamp_form() -> None:
    text = (
        "[domain-name:value = 'c2.example.net'] "
        "START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00.000Z'"
    )

    pattern = parse_pattern(text)

    qualified = pattern.expression
    assert isinstance(qualified, QualifiedObservation)
    assert qualified.qualifier == StartStop(
        datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC), TIMESTAMP_FORM, TIMESTAMP_FORM
    )
    assert qualified.qualifier.form == TIMESTAMP_FORM


def test_start_stop_stix20_string_form() -> None:
    text = "[ipv4-addr:value = '198.51.100.7'] START '2024-01-01T00:00:00Z' STOP '2024-02-01T00:00:00Z'"

    pattern = parse_pattern(text)

    qualified = pattern.expression
    assert isinstance(qualified, QualifiedObservation)
    qualifier = qualified.qualifier
    assert isinstance(qualifier, StartStop)
    assert qualifier.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert qualifier.stop == datetime(2024, 2, 1, tzinfo=UTC)
    assert qualifier.form == STRING_FORM


def test_start_stop_mixed_forms_recorded() -> None:
    pattern = parse_pattern("[a:x = 1] START t'2024-01-01T00:00:00Z' STOP '2024-02-01T00:00:00Z'")

    qualified = pattern.expression
    assert isinstance(qualified, QualifiedObservation)
    qualifier = qualified.qualifier
    assert isinstance(qualifier, StartStop)
    assert qualifier.start_form == TIMESTAMP_FORM
    assert qualifier.stop_form == STRING_FORM
    assert qualifier.form == STRING_FORM


@pytest.mark.parametrize(
    "bound", ["'yesterday'", "'2024-01-01'", "'2024-01-01T00:00:00+01:00'", "1704067200"]
)
def test_start_stop_bad_bound_rejected(bound: str) -> None:
    error = parse_error(f"[a:x = 1] START {bound} STOP t'2024-02-01T00:00:00Z'")

    assert error.position == 16


def test_repeated_qualifier_on_observation_rejected() -> None:
    error = parse_error("[a:x = 1] WITHIN 5 SECONDS WITHIN 6 SECONDS")

    assert "WITHIN appears twice" in str(error)
    assert error.position == 27


def test_repeated_qualifier_on_group_accepted() -> None:
    parse_pattern("([a:x = 1] WITHIN 5 SECONDS) WITHIN 6 SECONDS")
    parse_pattern("([a:x = 1]) REPEATS 2 TIMES REPEATS 3 TIMES")


# Errors ------------------------------------------------------------------------------------

ERROR_POSITIONS = [
    ("[file:name = 'x'", 16, "']'"),
    ("[file:name = 'x' and file:size = 1]", 17, "'and'"),
    ("file:name = 'x'", 0, "'file'"),
    ("[file:name = 'x']]", 17, "']'"),
    ("[file:name = 'x'] [file:size = 1]", 18, "'['"),
    ("[]", 1, "']'"),
    ("", 0, "end of the pattern"),
    ("[file:name = ]", 13, "']'"),
]


@pytest.mark.parametrize(("text", "position", "quoted"), ERROR_POSITIONS)
def test_error_names_position_and_text(text: str, position: int, quoted: str) -> None:
    error = parse_error(text)

    assert error.position == position
    assert quoted in str(error)
    assert f"position {position}" in str(error)


def test_pattern_error_is_value_error() -> None:
    assert issubclass(PatternError, ValueError)


def test_pattern_error_pickles() -> None:
    error = parse_error("[file:name = 'x'")

    copy = pickle.loads(pickle.dumps(error))

    assert str(copy) == str(error)
    assert copy.position == error.position


@pytest.mark.parametrize("value", [None, b"[a:x = 1]", 42, ["[a:x = 1]"]])
def test_non_string_pattern_rejected(value: Any) -> None:
    with pytest.raises(PatternError, match="must be a str"):
        parse_pattern(value)


def test_deep_nesting_rejected() -> None:
    depth = MAX_NESTING_DEPTH + 1
    text = "(" * depth + "[a:x = 1]" + ")" * depth

    error = parse_error(text)

    assert "nest deeper" in str(error)


def test_nesting_at_limit_accepted() -> None:
    depth = MAX_NESTING_DEPTH - 1
    text = "(" * depth + "[a:x = 1]" + ")" * depth

    assert parse_pattern(text) == parse_pattern("[a:x = 1]")


def test_long_string_literal_parses() -> None:
    value = "ab\\'" * 50_000

    comparison = only_comparison(f"[file:name = '{value}']")

    assert comparison.value == "ab'" * 50_000


# Shortcut and cache ------------------------------------------------------------------------

SHORTCUT_PATTERNS = [
    "[ipv4-addr:value = '198.51.100.1']",
    "  [ipv4-addr:value='198.51.100.1']  ",
    f"[file:hashes.'SHA-256' = '{SHA256_EMPTY}']",
    "[file:hashes.'odd.key' = 'x']",
    "[file:name != 'o\\'brien']",
    "[x-foo:a.b.c = 'C:\\\\Temp\\\\']",
    "[AND:x = 'a']",
    "[file:true = 'a']",
    "[file:a.LIKE = 'a']",
    f"[file:hashes.MD5 = '{MD5_EMPTY}0']",
    "[file:name = 'C:\\Windows']",
]


@pytest.mark.parametrize("text", SHORTCUT_PATTERNS)
def test_shortcut_agrees_with_full_parser(text: str) -> None:
    try:
        expected: Pattern | str = parse_full(text)
    except PatternError as exc:
        expected = type(exc).__name__

    try:
        actual: Pattern | str = parse_pattern(text)
    except PatternError as exc:
        actual = type(exc).__name__

    assert actual == expected


def test_same_text_returns_cached_tree() -> None:
    text = "[domain-name:value = 'cache.example.com']"

    assert parse_pattern(text) is parse_pattern(text)


def test_nodes_are_immutable() -> None:
    comparison = only_comparison("[a:x = 1]")
    attribute = "value"

    with pytest.raises(AttributeError):
        setattr(comparison, attribute, 2)
