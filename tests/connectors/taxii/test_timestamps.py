"""Date headers as TAXII servers send them, normalised for use as added_after."""

from __future__ import annotations

import pytest

from stixbridge.connectors.taxii.timestamps import later_timestamp, normalise_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-02T08:00:04.000000+00:00", "2024-05-02T08:00:04.000000Z"),
        ("2024-05-03T09:00:02.000Z", "2024-05-03T09:00:02.000Z"),
        ("2024-05-03T09:00:02Z", "2024-05-03T09:00:02Z"),
        ("2024-05-03t09:00:02z", "2024-05-03T09:00:02Z"),
        ("2024-05-03 09:00:02.5Z", "2024-05-03T09:00:02.5Z"),
        ("2024-05-03T11:30:02.123456789+02:30", "2024-05-03T09:00:02.123456789Z"),
        ("2024-01-01T00:30:00-01:00", "2024-01-01T01:30:00Z"),
        ("2024-01-01T00:30:00+0100", "2023-12-31T23:30:00Z"),
        (" 2024-05-03T09:00:02Z ", "2024-05-03T09:00:02Z"),
    ],
)
def test_timestamp_normalised_to_utc(text: str, expected: str) -> None:
    assert normalise_timestamp(text) == expected


@pytest.mark.parametrize("text", ["undefined", "", "2024-13-01T00:00:00Z", "2024-05-03", "1717581600", None, 17])
def test_unusable_timestamp_gives_none(text: object) -> None:
    assert normalise_timestamp(text) is None


def test_later_timestamp_compares_fractions_as_digits() -> None:
    assert later_timestamp("2024-05-02T08:00:04.5Z", "2024-05-02T08:00:04.123456Z") == "2024-05-02T08:00:04.5Z"
    assert later_timestamp("2024-05-02T08:00:04Z", "2024-05-02T08:00:04.000001Z") == "2024-05-02T08:00:04.000001Z"
    assert later_timestamp(None, "2024-05-02T08:00:04Z") == "2024-05-02T08:00:04Z"
    assert later_timestamp("2024-05-02T08:00:04Z", None) == "2024-05-02T08:00:04Z"
    assert later_timestamp(None, None) is None
