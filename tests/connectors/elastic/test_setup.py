"""``stixbridge elastic setup`` against the fake Elasticsearch and the fake Kibana."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch

from stixbridge.connectors.elastic.rules import DOMAIN_RULE_ID, domain_rule
from stixbridge.connectors.elastic.setup import install_rules, setup
from stixbridge.connectors.elastic.templates import TEMPLATE_VERSION, index_template
from stixbridge.errors import ConfigError, RemoteRejectedError, TransientError
from stixbridge.secrets import Secret

from .conftest import sink_settings
from .fake_elasticsearch import FakeElasticsearch
from .fake_kibana import FakeKibana

API_KEY = base64.b64encode(b"key-id:key-secret").decode()


def test_first_setup_installs_everything(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    changes = setup(sink_settings([fake_es.url]), base_dir=tmp_path)

    assert changes == [
        f"installed index template stixbridge-indicators (version {TEMPLATE_VERSION})",
        "created index stixbridge-indicators-000001 with write alias logs-ti_stixbridge_latest.indicator",
    ]
    assert fake_es.templates["stixbridge-indicators"]["priority"] == 501
    assert fake_es.aliases["logs-ti_stixbridge_latest.indicator"] == {
        "stixbridge-indicators-000001": {"is_write_index": True}
    }
    mapping = fake_es.indices["stixbridge-indicators-000001"].mapping
    assert mapping.type_of("threat.indicator.ip") == "ip"


def test_second_setup_changes_nothing(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    setup(sink_settings([fake_es.url]), base_dir=tmp_path)
    fake_es.clear_requests()

    assert setup(sink_settings([fake_es.url]), base_dir=tmp_path) == []
    assert fake_es.write_requests() == []


def test_old_template_version_replaced(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    old = index_template("stixbridge-indicators-000001")
    old["version"] = TEMPLATE_VERSION - 1
    Elasticsearch(fake_es.url).indices.put_index_template(name="stixbridge-indicators", **old)

    changes = setup(sink_settings([fake_es.url]), base_dir=tmp_path)

    assert (
        changes[0]
        == f"updated index template stixbridge-indicators from version {TEMPLATE_VERSION - 1} to {TEMPLATE_VERSION}"
    )
    assert fake_es.templates["stixbridge-indicators"]["version"] == TEMPLATE_VERSION


def test_missing_alias_added_to_existing_index(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    setup(sink_settings([fake_es.url]), base_dir=tmp_path)
    Elasticsearch(fake_es.url).indices.delete_alias(
        index="stixbridge-indicators-000001", name="logs-ti_stixbridge_latest.indicator"
    )

    changes = setup(sink_settings([fake_es.url]), base_dir=tmp_path)

    assert changes == ["added write alias logs-ti_stixbridge_latest.indicator to index stixbridge-indicators-000001"]


def test_index_matching_builtin_logs_pattern_stays_regular(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    # logs-*-* would make a data stream; the template's priority 501 beats the built-in 100.
    settings = sink_settings([fake_es.url], index="logs-ti_stixbridge_latest.dest_indicator-1")

    setup(settings, base_dir=tmp_path)

    assert "logs-ti_stixbridge_latest.dest_indicator-1" in fake_es.indices
    assert fake_es.data_streams == {}


def test_data_stream_under_alias_name_rejected(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    alias = "logs-ti_stixbridge-indicator"
    Elasticsearch(fake_es.url).index(index=alias, document={"@timestamp": "2024-01-01T00:00:00Z"}, op_type="create")

    with pytest.raises(ConfigError, match="data streams accept only create") as caught:
        setup(sink_settings([fake_es.url], alias=alias), base_dir=tmp_path)

    assert alias in str(caught.value)
    assert "stixbridge-indicators" not in fake_es.templates


def test_index_created_without_template_rejected(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    client = Elasticsearch(fake_es.url)
    client.indices.create(
        index="stixbridge-indicators-000001",
        mappings={"properties": {"threat": {"properties": {"indicator": {"properties": {"ip": {"type": "keyword"}}}}}}},
    )

    with pytest.raises(ConfigError, match="maps threat.indicator.ip as keyword"):
        setup(sink_settings([fake_es.url]), base_dir=tmp_path)


def test_alias_on_other_index_rejected(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    client = Elasticsearch(fake_es.url)
    client.indices.create(index="other-index", aliases={"logs-ti_stixbridge_latest.indicator": {}})

    with pytest.raises(ConfigError, match="points to \\['other-index'\\]"):
        setup(sink_settings([fake_es.url]), base_dir=tmp_path)


def test_outranking_template_rejected(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    Elasticsearch(fake_es.url).indices.put_index_template(name="greedy", index_patterns=["stixbridge-*"], priority=900)

    with pytest.raises(ConfigError, match="'greedy' \\(priority 900\\)"):
        setup(sink_settings([fake_es.url]), base_dir=tmp_path)


def test_unreachable_cluster_is_transient(tmp_path: Path) -> None:
    with pytest.raises(TransientError, match="cannot reach Elasticsearch"):
        setup(sink_settings(["http://127.0.0.1:9"], timeout=1.0), base_dir=tmp_path)


def test_wrong_credentials_rejected(tmp_path: Path) -> None:
    with FakeElasticsearch(api_key=API_KEY) as fake:
        settings = sink_settings([fake.url], api_key=Secret("wrong"))
        with pytest.raises(RemoteRejectedError, match="HTTP 401") as caught:
            setup(settings, base_dir=tmp_path)

    assert "wrong" not in str(caught.value)


def test_api_key_accepted(tmp_path: Path) -> None:
    with FakeElasticsearch(api_key=API_KEY) as fake:
        changes = setup(sink_settings([fake.url], api_key=Secret(API_KEY)), base_dir=tmp_path)

    assert len(changes) == 2


def test_basic_auth_accepted(tmp_path: Path) -> None:
    with FakeElasticsearch(basic_auth=("stixbridge", "pw")) as fake:
        settings = sink_settings([fake.url], username="stixbridge", password=Secret("pw"))
        changes = setup(settings, base_dir=tmp_path)

    assert len(changes) == 2


# -- the detection rule ----------------------------------------------------------------------------------


def test_rule_installed_disabled(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    with FakeKibana() as kibana:
        settings = sink_settings([fake_es.url], kibana_url=kibana.url)
        changes = setup(settings, rules=True, base_dir=tmp_path)
        again = setup(settings, rules=True, base_dir=tmp_path)

    assert changes[-1] == f"installed detection rule {DOMAIN_RULE_ID} (disabled) in Kibana space default"
    assert again == []
    rule = kibana.rules[("default", DOMAIN_RULE_ID)]
    assert rule["enabled"] is False
    assert rule["type"] == "threat_match"
    assert rule["threat_index"] == ["logs-ti_stixbridge_latest.indicator"]
    assert {entry["field"] for m in rule["threat_mapping"] for entry in m["entries"]} == {
        "dns.question.name",
        "url.domain",
        "destination.domain",
    }


def test_rule_installed_in_space(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    with FakeKibana(api_key=API_KEY) as kibana:
        settings = sink_settings([fake_es.url], kibana_url=kibana.url, space="soc", api_key=Secret(API_KEY))
        install_rules(settings, base_dir=tmp_path)

    assert ("soc", DOMAIN_RULE_ID) in kibana.rules
    assert ("POST", "/s/soc/api/detection_engine/rules") in kibana.requests


def test_older_rule_updated(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    with FakeKibana() as kibana:
        kibana.rules[("default", DOMAIN_RULE_ID)] = {**domain_rule("x"), "version": 0, "id": "1"}
        changes = install_rules(sink_settings([fake_es.url], kibana_url=kibana.url), base_dir=tmp_path)

    assert changes == [f"updated detection rule {DOMAIN_RULE_ID} from version 0 to 1"]
    assert kibana.rules[("default", DOMAIN_RULE_ID)]["threat_index"] == ["logs-ti_stixbridge_latest.indicator"]


def test_rules_need_kibana_url(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kibana_url"):
        setup(sink_settings([fake_es.url]), rules=True, base_dir=tmp_path)


def test_kibana_refusal_reported(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    with FakeKibana(api_key=API_KEY) as kibana:
        settings = sink_settings([fake_es.url], kibana_url=kibana.url, api_key=Secret("wrong"))
        with pytest.raises(RemoteRejectedError, match="HTTP 401.*Kibana privileges") as caught:
            install_rules(settings, base_dir=tmp_path)

    assert "wrong" not in str(caught.value)


def test_kibana_server_error_is_transient(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    with FakeKibana() as kibana:
        kibana.fail_status = 503
        with pytest.raises(TransientError, match="HTTP 503"):
            install_rules(sink_settings([fake_es.url], kibana_url=kibana.url), base_dir=tmp_path)


def test_kibana_unreachable_is_transient(fake_es: FakeElasticsearch, tmp_path: Path) -> None:
    settings = sink_settings([fake_es.url], kibana_url="http://127.0.0.1:9", timeout=1.0)
    with pytest.raises(TransientError, match="cannot reach Kibana"):
        install_rules(settings, base_dir=tmp_path)
