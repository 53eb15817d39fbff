import logging

import pytest

from stixbridge.tlp import Tlp, tlp_of_marking_definition, tlp_of_refs, tlp_of_tags

TLP1_AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
TLP2_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
TLP2_AMBER_STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"


def test_tlp_refs_most_restrictive_wins():
    assert tlp_of_refs([TLP2_GREEN, TLP1_AMBER]) is Tlp.AMBER
    assert tlp_of_refs([TLP2_AMBER_STRICT, TLP2_GREEN]) is Tlp.AMBER_STRICT


def test_tlp_unknown_marking_is_red_and_logged(caplog):
    with caplog.at_level(logging.WARNING):
        level = tlp_of_refs(["marking-definition--00000000-0000-4000-8000-000000000000"], object_id="indicator--x")
    assert level is Tlp.RED
    assert "indicator--x" in caplog.text


def test_tlp_learned_statement_marking_is_ignored():
    statement = "marking-definition--11111111-1111-4111-8111-111111111111"
    assert tlp_of_refs([statement, TLP2_GREEN], {statement: None}) is Tlp.GREEN


def test_tlp_marking_definition_both_forms():
    tlp1 = {"definition_type": "tlp", "definition": {"tlp": "white"}}
    tlp2 = {"extensions": {"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d": {"tlp_2_0": "amber+strict"}}}
    assert tlp_of_marking_definition(tlp1) is Tlp.CLEAR
    assert tlp_of_marking_definition(tlp2) is Tlp.AMBER_STRICT
    assert tlp_of_marking_definition({"definition_type": "statement", "definition": {"statement": "x"}}) is None


def test_tlp_misp_tags():
    assert tlp_of_tags(["tlp:green", "malware"]) is Tlp.GREEN
    assert tlp_of_tags(["TLP:AMBER+STRICT"]) is Tlp.AMBER_STRICT
    assert tlp_of_tags(["tlp:ex:chr"]) is Tlp.RED
    assert tlp_of_tags(["apt"]) is None


def test_tlp_parse_rejects_unknown():
    with pytest.raises(ValueError, match="unknown TLP level 'purple'"):
        Tlp.parse("purple")
