from datetime import UTC, datetime

import pytest

from stixbridge.timeutil import format_timestamp, parse_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-02T08:00:00Z", datetime(2024, 5, 2, 8, tzinfo=UTC)),
        ("2024-05-02T08:00:00.1Z", datetime(2024, 5, 2, 8, 0, 0, 100000, tzinfo=UTC)),
        ("2024-05-02T08:00:00.123456789Z", datetime(2024, 5, 2, 8, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-02T10:00:00+02:00", datetime(2024, 5, 2, 8, tzinfo=UTC)),
        ("2024-05-01T23:30:00-08:30", datetime(2024, 5, 2, 8, tzinfo=UTC)),
    ],
)
def test_parse_timestamp_precisions_and_offsets(text, expected):
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize("text", ["2024-05-02", "2024-13-02T00:00:00Z", "yesterday", "2024-05-02T08:00:00"])
def test_parse_timestamp_rejects_invalid(text):
    with pytest.raises(ValueError, match="invalid timestamp"):
        parse_timestamp(text)


def test_format_timestamp_milliseconds_utc():
    assert format_timestamp(datetime(2024, 5, 2, 8, 0, 0, 123456, tzinfo=UTC)) == "2024-05-02T08:00:00.123Z"
