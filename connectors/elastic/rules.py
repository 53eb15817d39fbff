"""The Kibana indicator-match rule for domains that ``stixbridge elastic setup --rules`` installs.

Elastic's prebuilt indicator-match rules cover addresses, URLs, file hashes, e-mail addresses and registry
paths, but none covers domains, so stixbridge ships one. It is installed disabled: enabling a detection rule
is the analysts' decision, and many teams manage rules as code.
"""

from __future__ import annotations

from typing import Any

from .ecs import EVENT_MODULE

DOMAIN_RULE_ID = "stixbridge-domain-indicator-match"
DOMAIN_RULE_VERSION = 1

# Event fields that carry a domain name in ECS, each compared with threat.indicator.url.domain.
DOMAIN_EVENT_FIELDS = ("dns.question.name", "url.domain", "destination.domain")


def domain_rule(alias: str) -> dict[str, Any]:
    """Return the body of ``POST /api/detection_engine/rules`` for the domain rule reading ``alias``."""
    event_query = " or ".join(f"{field}:*" for field in DOMAIN_EVENT_FIELDS)
    return {
        "rule_id": DOMAIN_RULE_ID,
        "version": DOMAIN_RULE_VERSION,
        "name": "stixbridge: domain indicator match",
        "description": (
            "Creates an alert when the DNS question, URL domain or destination domain of an event equals a "
            "domain indicator that stixbridge wrote to Elasticsearch."
        ),
        "type": "threat_match",
        "enabled": False,
        "severity": "high",
        "risk_score": 73,
        "interval": "1h",
        "from": "now-65m",
        "index": ["logs-*", "filebeat-*", "packetbeat-*"],
        "language": "kuery",
        "query": f"({event_query}) and not event.kind:enrichment",
        "threat_index": [alias],
        "threat_language": "kuery",
        "threat_query": (
            f'@timestamp >= "now-30d/d" and event.module:{EVENT_MODULE} and '
            "threat.indicator.type:domain-name and threat.indicator.url.domain:*"
        ),
        "threat_indicator_path": "threat.indicator",
        "threat_mapping": [
            {"entries": [{"field": field, "type": "mapping", "value": "threat.indicator.url.domain"}]}
            for field in DOMAIN_EVENT_FIELDS
        ],
        "threat_filters": [],
        "max_signals": 100,
        "tags": ["stixbridge", "Threat Intel"],
        "author": ["stixbridge"],
        "license": "Apache-2.0",
        "false_positives": [
            "A domain indicator that names shared hosting or a content delivery network matches ordinary traffic."
        ],
        "references": [],
    }
