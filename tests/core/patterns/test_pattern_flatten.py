"""Unit tests of flatten: which parts of a pattern become exact-match lookups."""

from datetime import UTC, datetime

import pytest

from stixbridge.patterns import (
    MAX_DISTRIBUTED_ALTERNATIVES,
    STRING_FORM,
    TIMESTAMP_FORM,
    Comparison,
    Flattened,
    flatten,
    parse_pattern,
)

SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
MD5_EMPTY = "d41d8cd98f00b204e9800998ecf8427e"


def equals(object_type: str, path: tuple[str | int, ...], value: object) -> Comparison:
    return Comparison(object_type, path, "=", False, value)


def domain(value: str) -> Comparison:
    return equals("domain-name", ("value",), value)


def ipv4(value: str) -> Comparison:
    return equals("ipv4-addr", ("value",), value)


# Compound patterns seen in feeds -----------------------------------------------------------

def test_single_comparison_is_one_alternative() -> None:
    result = flatten(parse_pattern("[ipv4-addr:value = '198.51.100.1']"))

    assert result == Flattened(alternatives=[(ipv4("198.51.100.1"),)])


def test_or_inside_observation_splits() -> None:
    result = flatten(
        "[domain-name:value = 'a.example.com' OR domain-name:value = 'b.example.com' "
        "OR domain-name:value = 'c.example.com']"
    )

    assert result.alternatives == [
        (domain("a.example.com"),),
        (domain("b.example.com"),),
        (domain("c.example.com"),),
    ]
    assert result.unflattenable == []


def test_or_between_observations_splits() -> None:
    result = flatten("[ipv4-addr:value = '198.51.100.1'] OR [ipv4-addr:value = '198.51.100.2']")

    assert result.alternatives == [(ipv4("198.51.100.1"),), (ipv4("198.51.100.2"),)]
    assert result.unflattenable == []


def test_and_inside_observation_is_one_group() -> None:
    result = flatten(f"[file:name = 'setup.exe' AND file:hashes.'SHA-256' = '{SHA256_EMPTY}']")

    assert result.alternatives == [
        (equals("file", ("name",), "setup.exe"), equals("file", ("hashes", "SHA-256"), SHA256_EMPTY))
    ]
    assert result.unflattenable == []
    assert result.partial == []


def test_network_traffic_reference_group() -> None:
    result = flatten(
        "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '203.0.113.50' "
        "AND network-traffic:dst_port = 443]"
    )

    assert result.alternatives == [
        (
            equals("network-traffic", ("dst_ref", "type"), "ipv4-addr"),
            equals("network-traffic", ("dst_ref", "value"), "203.0.113.50"),
            equals("network-traffic", ("dst_port",), 443),
        )
    ]


def test_email_sender_and_subject_group() -> None:
    result = flatten(
        "[email-message:from_ref.value = 'invoice@example.org' AND email-message:subject = 'Payment due']"
    )

    assert result.alternatives == [
        (
            equals("email-message", ("from_ref", "value"), "invoice@example.org"),
            equals("email-message", ("subject",), "Payment due"),
        )
    ]


def test_followedby_within_is_unflattenable() -> None:
    result = flatten(
        "[url:value = 'http://dl.example.net/a.bin'] FOLLOWEDBY "
        f"[file:hashes.MD5 = '{MD5_EMPTY}'] WITHIN 300 SECONDS"
    )

    assert result.alternatives == []
    assert len(result.unflattenable) == 1
    assert "FOLLOWEDBY" in result.unflattenable[0]


def test_grouped_followedby_within_is_unflattenable() -> None:
    result = flatten(
        f"([file:hashes.'SHA-256' = '{SHA256_EMPTY}'] FOLLOWEDBY [domain-name:value = 'dl.example.org']) "
        "WITHIN 600 SECONDS"
    )

    assert result.alternatives == []
    assert len(result.unflattenable) == 1
    assert "WITHIN 600 SECONDS" in result.unflattenable[0]
    assert "dl.example.org" in result.unflattenable[0]


def test_and_across_object_types_is_unflattenable() -> None:
    result = flatten("[ipv4-addr:value = '198.51.100.9' AND domain-name:value = 'x.example.com']")

    assert result.alternatives == []
    assert len(result.unflattenable) == 1
    assert "different object types (domain-name, ipv4-addr)" in result.unflattenable[0]


def test_or_with_and_of_observations_keeps_left_branch() -> None:
    result = flatten(
        "([domain-name:value = 'p.example.com'] OR ([ipv4-addr:value = '198.51.100.3'] "
        "AND [url:value = 'http://198.51.100.3/p']))"
    )

    assert result.alternatives == [(domain("p.example.com"),)]
    assert len(result.unflattenable) == 1
    assert "observations joined by AND" in result.unflattenable[0]
    assert "198.51.100.3" in result.unflattenable[0]


# START/STOP windows ------------------------------------------------------------------------

def test_start_stop_string_form_window() -> None:
    result = flatten(
        "[ipv4-addr:value = '198.51.100.7'] START '2024-01-01T00:00:00Z' STOP '2024-02-01T00:00:00Z'"
    )

    assert result.alternatives == [(ipv4("198.51.100.7"),)]
    assert result.unflattenable == []
    assert result.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert result.stop == datetime(2024, 2, 1, tzinfo=UTC)
    assert result.qualifier_form == STRING_FORM


def test_start_stop_timestamp_form_window() -> None:
    result = flatten(
        "[domain-name:value = 'c2.example.net'] "
        "START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00.000Z'"
    )

    assert result.alternatives == [(domain("c2.example.net"),)]
    assert result.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert result.stop == datetime(2024, 2, 1, tzinfo=UTC)
    assert result.qualifier_form == TIMESTAMP_FORM


def test_no_window_leaves_bounds_empty() -> None:
    result = flatten("[domain-name:value = 'a.example.com'] OR [domain-name:value = 'b.example.com']")

    assert result.start is None
    assert result.stop is None
    assert result.qualifier_form is None


def test_window_on_group_covers_all_alternatives() -> None:
    result = flatten("([a:x = 1] OR [a:x = 2]) START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00Z'")

    assert len(result.alternatives) == 2
    assert result.start == datetime(2024, 1, 1, tzinfo=UTC)


def test_nested_windows_intersect() -> None:
    result = flatten(
        "([a:x = 1] START t'2024-01-01T00:00:00Z' STOP t'2024-03-01T00:00:00Z') "
        "START '2024-02-01T00:00:00Z' STOP '2024-04-01T00:00:00Z'"
    )

    assert result.alternatives == [(equals("a", ("x",), 1),)]
    assert result.start == datetime(2024, 2, 1, tzinfo=UTC)
    assert result.stop == datetime(2024, 3, 1, tzinfo=UTC)
    assert result.qualifier_form == STRING_FORM


def test_window_on_one_branch_is_unflattenable() -> None:
    result = flatten("[a:x = 1] START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00Z' OR [a:x = 2]")

    assert result.alternatives == [(equals("a", ("x",), 2),)]
    assert result.start is None
    assert len(result.unflattenable) == 1
    assert "START/STOP window on only part" in result.unflattenable[0]


def test_window_kept_when_root_also_has_within() -> None:
    result = flatten("[a:x = 1] START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00Z' WITHIN 5 SECONDS")

    assert result.alternatives == []
    assert result.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert "WITHIN 5 SECONDS" in result.unflattenable[0]


# Qualifiers and operators ------------------------------------------------------------------

@pytest.mark.parametrize("qualifier", ["WITHIN 5 SECONDS", "REPEATS 3 TIMES"])
def test_engine_qualifier_on_root_is_unflattenable(qualifier: str) -> None:
    result = flatten(f"[a:x = 1] {qualifier}")

    assert result.alternatives == []
    expected = f"the qualifier {qualifier} needs a pattern-matching engine: [a:x = 1] {qualifier}"
    assert result.unflattenable == [expected]


def test_engine_qualifier_on_branch_keeps_other_branch() -> None:
    result = flatten("[a:x = 1] OR [a:x = 2] REPEATS 2 TIMES")

    assert result.alternatives == [(equals("a", ("x",), 1),)]
    assert len(result.unflattenable) == 1
    assert "REPEATS 2 TIMES" in result.unflattenable[0]


@pytest.mark.parametrize(
    ("comparison", "operator"),
    [
        ("file:name != 'a'", "!="),
        ("file:name NOT = 'a'", "NOT ="),
        ("file:size > 10", ">"),
        ("file:name LIKE '%.exe'", "LIKE"),
        ("file:name MATCHES '^a'", "MATCHES"),
        ("ipv4-addr:value ISSUBSET '192.0.2.0/25'", "ISSUBSET"),
        ("file:name NOT IN ('a', 'b')", "NOT IN"),
        ("EXISTS file:name", "EXISTS"),
    ],
)
def test_non_equality_in_or_branch_is_unflattenable(comparison: str, operator: str) -> None:
    result = flatten(f"[domain-name:value = 'a.example.com' OR {comparison}]")

    assert result.alternatives == [(domain("a.example.com"),)]
    assert result.partial == []
    assert len(result.unflattenable) == 1
    assert f"cannot test {operator}:" in result.unflattenable[0]


def test_non_equality_beside_equality_makes_partial_group() -> None:
    result = flatten("[file:name = 'a.exe' AND file:size > 1000 AND file:name LIKE '%.exe']")

    assert result.alternatives == [(equals("file", ("name",), "a.exe"),)]
    assert result.partial == [0]
    assert len(result.unflattenable) == 1
    reason = result.unflattenable[0]
    assert reason.startswith("partial: the lookup for file:name = 'a.exe' leaves out ")
    assert "file:size > 1000" in reason
    assert "cannot test >, LIKE" in reason


def test_exact_group_replaces_partial_copy() -> None:
    result = flatten("[file:name = 'a' AND file:size > 1] OR [file:name = 'a']")

    assert result.alternatives == [(equals("file", ("name",), "a"),)]
    assert result.partial == []
    assert result.unflattenable == []


# Distribution, IN lists and duplicates -----------------------------------------------------

def test_or_inside_and_distributes() -> None:
    result = flatten("[a:x = 1 AND (a:y = 2 OR a:y = 3)]")

    assert result.alternatives == [
        (equals("a", ("x",), 1), equals("a", ("y",), 2)),
        (equals("a", ("x",), 1), equals("a", ("y",), 3)),
    ]


def test_distribution_past_limit_is_unflattenable() -> None:
    size = 9
    left = " OR ".join(f"a:x = {index}" for index in range(size))
    right = " OR ".join(f"a:y = {index}" for index in range(size))

    result = flatten(f"[({left}) AND ({right})] OR [a:z = 1]")

    assert size * size > MAX_DISTRIBUTED_ALTERNATIVES
    assert result.alternatives == [(equals("a", ("z",), 1),)]
    assert len(result.unflattenable) == 1
    assert f"more than {MAX_DISTRIBUTED_ALTERNATIVES} alternatives" in result.unflattenable[0]


def test_distribution_at_limit_is_kept() -> None:
    left = " OR ".join(f"a:x = {index}" for index in range(8))
    right = " OR ".join(f"a:y = {index}" for index in range(8))

    result = flatten(f"[({left}) AND ({right})]")

    assert len(result.alternatives) == MAX_DISTRIBUTED_ALTERNATIVES
    assert result.unflattenable == []


def test_long_in_list_is_not_limited() -> None:
    values = [f"198.51.100.{index}" for index in range(200)]
    listed = ", ".join(f"'{value}'" for value in values)

    result = flatten(f"[ipv4-addr:value IN ({listed}) AND ipv4-addr:x = 1]")

    assert len(result.alternatives) == 200
    assert result.alternatives[0] == (ipv4(values[0]), equals("ipv4-addr", ("x",), 1))


def test_in_list_reads_as_equalities() -> None:
    result = flatten("[domain-name:value IN ('a.example.com', 'b.example.com', 'a.example.com')]")

    assert result.alternatives == [(domain("a.example.com"),), (domain("b.example.com"),)]


def test_empty_in_list_never_matches() -> None:
    result = flatten("[domain-name:value IN ()] OR [domain-name:value = 'a.example.com']")

    assert result.alternatives == [(domain("a.example.com"),)]
    assert len(result.unflattenable) == 1
    assert "never matches" in result.unflattenable[0]


def test_duplicate_alternatives_merged() -> None:
    result = flatten("[a:x = 1 OR a:x = 1] OR [a:x = 1 AND a:x = 1]")

    assert result.alternatives == [(equals("a", ("x",), 1),)]


def test_true_and_one_stay_distinct() -> None:
    result = flatten("[a:x = true] OR [a:x = 1]")

    assert len(result.alternatives) == 2
    assert [type(group[0].value) for group in result.alternatives] == [bool, int]


def test_cross_type_groups_after_distribution() -> None:
    result = flatten(
        "[(file:name = 'a.zip' OR file:name = 'b.zip') AND email-message:subject = 'Invoice']"
    )

    assert result.alternatives == []
    assert len(result.unflattenable) == 2


# API behaviour -----------------------------------------------------------------------------

def test_flatten_accepts_text() -> None:
    text = "[a:x = 1] OR [a:x = 2]"

    assert flatten(text) == flatten(parse_pattern(text))


def test_results_do_not_share_lists() -> None:
    text = "[a:x = 1] OR ([a:x = 2] FOLLOWEDBY [a:x = 3])"
    first = flatten(text)
    first.alternatives.clear()
    first.unflattenable.append("changed by the caller")

    second = flatten(text)

    assert len(second.alternatives) == 1
    assert len(second.unflattenable) == 1
