import pytest

from stixbridge.config import build_config
from stixbridge.errors import ConfigError
from stixbridge.tlp import Tlp
from stixbridge.trust.policy import DEFAULT_WARNINGLIST_ACTIONS


def config(tmp_path, trust):
    return build_config(
        {"sources": [{"name": "alliance", "kind": "file", "path": "feed"}], "trust": trust}, base_dir=tmp_path
    )


def test_trust_table_defaults(tmp_path):
    built = build_config({"sources": [{"name": "alliance", "kind": "file", "path": "feed"}]}, base_dir=tmp_path)
    assert built.trust.actions() == DEFAULT_WARNINGLIST_ACTIONS
    policy = built.trust.policy("alliance")
    assert policy.weight == 1.0
    assert policy.allow == []
    assert policy.tlp_ceiling is Tlp.RED
    assert built.trust.change_limits("alliance") == (0.5, 5000)


def test_trust_source_policy_is_read(tmp_path):
    built = config(
        tmp_path,
        {
            "warninglists": {"cloud": "quarantine", "top-sites": "off"},
            "max_change_share": 0.2,
            "sources": [
                {"name": "alliance", "min_confidence": 40, "atom_types": ["ipv4", "domain"], "max_tlp": "amber",
                 "weight": 0.5, "allow": ["documentation", "cdn"], "max_retired_atoms": 10},
            ],
        },
    )  # fmt: skip
    policy = built.trust.policy("alliance")
    assert policy.min_confidence == 40
    assert policy.tlp_ceiling is Tlp.AMBER
    assert built.trust.actions()["cloud"] == "quarantine"
    assert built.trust.actions()["top-sites"] == "off"
    assert built.trust.change_limits("alliance") == (0.2, 10)


@pytest.mark.parametrize(
    ("trust", "message"),
    [
        ({"treshold": 3}, "unknown key 'treshold'"),
        ({"sources": [{"name": "alliance", "wieght": 1}]}, "unknown key 'wieght'"),
        ({"sources": [{"name": "nobody"}]}, "source 'nobody', which is not configured"),
        ({"sources": [{"name": "alliance"}, {"name": "alliance"}]}, "two policies for source 'alliance'"),
        ({"sources": [{"name": "alliance", "max_tlp": "purple"}]}, "unknown TLP level 'purple'"),
        ({"sources": [{"name": "alliance", "weight": 3}]}, "weight must be 0 to 1"),
        ({"sources": [{"name": "alliance", "min_confidence": 101}]}, "min_confidence must be 0 to 100"),
        ({"sources": [{"name": "alliance", "atom_types": ["ip"]}]}, "unknown type 'ip'"),
        ({"sources": [{"name": "alliance", "allow": ["everything"]}]}, "unknown name 'everything'"),
        ({"sources": [{"name": "alliance", "weight": "high"}]}, "must be a number"),
        ({"warninglists": {"cdns": "off"}}, "unknown group 'cdns'"),
        ({"warninglists": {"cdn": "drop"}}, "must be one of quarantine, label, off"),
        ({"max_change_share": 0}, "max_change_share must be above 0"),
        ({"min_ipv4_prefix": 33}, "min_ipv4_prefix must be 0 to 32"),
    ],
)
def test_trust_table_rejects_bad_values(tmp_path, trust, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(tmp_path, trust)


def test_unknown_top_level_key_still_rejected(tmp_path):
    with pytest.raises(ConfigError, match="unknown top-level key 'trusts'"):
        build_config({"trusts": {}}, base_dir=tmp_path)
