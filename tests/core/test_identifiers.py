"""STIX identifier checks, held against what the stix2 library accepts as a STIX 2.1 reference."""

import pytest
import stix2

from stixbridge.identifiers import id_problem, is_valid_id

VALID = [
    "indicator--6ba7b810-9dad-11d1-80b4-00c04fd430c8",  # version 1, RFC 4122 variant
    "indicator--00000000-0000-4000-8000-000000000001",
    "indicator--6BA7B810-9DAD-41D1-B0B4-00C04FD430C8",  # upper-case hex
    "indicator--1a2b3c4d-0000-5000-9fff-000000000000",  # version 5, variant digit 9
]
INVALID = {
    "indicator--not-a-uuid": "8-4-4-4-12",
    "indicator--00000000-0000-0000-0000-00000000000e": "NCS (reserved) variant",
    "indicator--00000000-0000-4000-c000-000000000001": "Microsoft (reserved) variant",
    "indicator--00000000-0000-4000-e000-000000000001": "future (reserved) variant",
    "indicator--{6ba7b810-9dad-11d1-80b4-00c04fd430c8}": "8-4-4-4-12",
    "indicator--6ba7b8109dad11d180b400c04fd430c8": "8-4-4-4-12",
    "indicator--6ba7b810-9dad-11d1-80b4-00c04fd430c8-": "8-4-4-4-12",
    "garbage": "'<object-type>--<UUID>'",
    "--6ba7b810-9dad-11d1-80b4-00c04fd430c8": "'<object-type>--<UUID>'",
    "Indicator--6ba7b810-9dad-11d1-80b4-00c04fd430c8": "'<object-type>--<UUID>'",
}


@pytest.mark.parametrize("value", VALID)
def test_id_valid_forms_accepted(value):
    assert id_problem(value, "indicator") is None
    assert is_valid_id(value)


@pytest.mark.parametrize(("value", "fault"), sorted(INVALID.items()))
def test_id_invalid_forms_named(value, fault):
    problem = id_problem(value, "indicator")
    assert problem is not None
    assert fault in problem


def test_id_type_prefix_must_match():
    problem = id_problem("malware--6ba7b810-9dad-11d1-80b4-00c04fd430c8", "indicator")
    assert problem == "its type prefix 'malware' is not the object's type 'indicator'"
    assert is_valid_id("malware--6ba7b810-9dad-11d1-80b4-00c04fd430c8")


def test_id_missing_or_not_string():
    assert id_problem(None) == "it is missing"
    assert id_problem(42) == "it is not a string but the int 42"
    assert id_problem(["indicator--x"]) is not None


def opinion_referencing(object_id):
    return stix2.v21.Opinion(opinion="disagree", object_refs=[object_id])


@pytest.mark.parametrize("value", VALID)
def test_id_accepted_ids_build_with_stix2(value):
    assert opinion_referencing(value)["object_refs"] == [value]


@pytest.mark.parametrize("value", [v for v in INVALID if v.startswith("indicator--")])
def test_id_rejected_ids_fail_in_stix2(value):
    # Every id rejected for its variant fails in stix2 too. stix2 takes braces and bare hex, because
    # uuid.UUID parses them, but those forms are not STIX ids, so they are rejected here.
    try:
        opinion_referencing(value)
    except stix2.exceptions.InvalidValueError:
        return
    assert "8-4-4-4-12" in str(id_problem(value))
