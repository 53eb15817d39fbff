"""Tests of MISP event documents: envelopes, attributes inside objects, and event metadata."""

from __future__ import annotations

import pytest

from stixbridge.connectors.misp.events import (
    EventMeta,
    NotAnEventError,
    attributes_of_event,
    epoch_of,
    events_of_document,
    tag_names,
    truthy,
)


def test_event_envelope() -> None:
    assert events_of_document({"Event": {"uuid": "a"}}) == [{"uuid": "a"}]


def test_response_envelope() -> None:
    document = {"response": [{"Event": {"uuid": "a"}}, {"Event": {"uuid": "b"}}]}

    assert [e["uuid"] for e in events_of_document(document)] == ["a", "b"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"duvelDetails": []}, "found duvelDetails"),
        ([1, 2], "found list"),
        ({"response": [{"Event": {"Attribute": "x"}}]}, "not a MISP event"),
        ({"response": ["x"]}, "not a MISP event"),
    ],
)
def test_not_events_rejected(document: object, message: str) -> None:
    with pytest.raises(NotAnEventError, match=message):
        events_of_document(document)


def test_object_attributes_named() -> None:
    event = {"Attribute": [{"value": "a"}], "Object": [{"name": "file", "Attribute": [{"value": "b"}]}, "junk"]}

    found = list(attributes_of_event(event))

    assert found == [{"value": "a"}, {"value": "b", "object_name": "file"}]


def test_tag_names_deduplicated() -> None:
    assert tag_names({"Tag": [{"name": "tlp:red"}, {"name": "tlp:red"}, {"x": 1}, "junk", {"name": "a"}]}) == [
        "tlp:red",
        "a",
    ]


def test_identity_from_org_uuid() -> None:
    meta = EventMeta.of({"Orgc": {"name": "ESET", "uuid": "55F6EA5E-2C60-40E5-964F-47A8950D210F"}})

    assert meta.identity_id == "identity--55f6ea5e-2c60-40e5-964f-47a8950d210f"


def test_identity_from_org_name_without_uuid() -> None:
    first = EventMeta.of({"Orgc": {"name": "ESET", "uuid": "not-a-uuid"}})
    second = EventMeta.of({"Orgc": {"name": "ESET"}})

    assert first.identity_id.startswith("identity--")
    assert first.identity_id == second.identity_id
    assert EventMeta.of({}).identity_id == ""


@pytest.mark.parametrize(("value", "expected"), [("1714636800", 1714636800), (5, 5), (True, None), ("x", None), (None, None)])
def test_epoch_of(value: object, expected: int | None) -> None:
    assert epoch_of(value) == expected


@pytest.mark.parametrize(("value", "expected"), [(True, True), (1, True), ("1", True), (False, False), ("0", False), (None, False)])
def test_truthy(value: object, expected: bool) -> None:
    assert truthy(value) is expected
