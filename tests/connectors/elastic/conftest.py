"""Fixtures for the Elasticsearch connector tests: the fake server, settings, rows and a settable clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.elastic.settings import ElasticSightingsSettings, ElasticSinkSettings
from stixbridge.connectors.elastic.templates import template_name
from stixbridge.model import AtomRow, DeliveredRow, row_key
from stixbridge.secrets import Secret

from .fake_elasticsearch import FakeElasticsearch

T0 = datetime(2024, 6, 5, 10, 0, 0, tzinfo=UTC)


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def context(tmp_path: Path, clock: Clock) -> ConnectorContext:
    return ConnectorContext(base_dir=tmp_path, clock=clock)


@pytest.fixture
def fake_es() -> Iterator[FakeElasticsearch]:
    with FakeElasticsearch() as fake:
        yield fake


def make_row(value: str = "198.51.100.7", atom_type: str = "ipv4", **changes: Any) -> AtomRow:
    """Build an AtomRow as the store would, with a key derived from the indicator, type and value."""
    indicator_id = changes.pop("indicator_id", "indicator--4e5d0daf-60fb-4f23-ade8-be9703fa278e")
    fields: dict[str, Any] = {
        "key": row_key(indicator_id, atom_type, value),
        "type": atom_type,
        "value": value,
        "display": value,
        "indicator_id": indicator_id,
        "indicator_ids": (indicator_id,),
        "name": "test indicator",
        "description": "",
        "valid_from": datetime(2024, 5, 2, 8, 0, tzinfo=UTC),
        "valid_until": None,
        "modified": datetime(2024, 5, 2, 8, 0, tzinfo=UTC),
        "confidence": 80,
        "weight": 80,
        "tlp": 1,
        "labels": ("malicious-activity",),
        "sources": ("alliance-taxii",),
        "collections": ("indicators",),
        "created_by": ("identity--6513270e-269e-4d37-b2a7-4de452e6b438",),
    }
    fields.update(changes)
    return AtomRow(**fields)


def delivered(row: AtomRow) -> DeliveredRow:
    return DeliveredRow(key=row.key, type=row.type, value=row.value, digest=row.digest, indicator_id=row.indicator_id)


def sink_settings(hosts: list[str], **changes: Any) -> ElasticSinkSettings:
    """Return validated sink settings for tests: short timeouts and back-off."""
    values: dict[str, Any] = {"hosts": hosts, "timeout": 5.0, "retry_backoff": 0.01}
    values.update(changes)
    settings = ElasticSinkSettings(**values)
    settings.validate("sinks[0]")
    return settings


def sightings_settings(hosts: list[str], **changes: Any) -> ElasticSightingsSettings:
    values: dict[str, Any] = {"hosts": hosts, "timeout": 5.0}
    values.update(changes)
    settings = ElasticSightingsSettings(**values)
    settings.validate("sightings[0]")
    return settings


# -- the same scenarios on the fake and, when configured, on a real cluster ------------------------------


@dataclass
class Cluster:
    """Where scenario tests run: the fake, or a real cluster named by environment variables."""

    kind: str
    hosts: list[str]
    auth: dict[str, Any] = field(default_factory=dict)
    index: str = "stixbridge-indicators-000001"
    alias: str = "logs-ti_stixbridge_latest.indicator"
    fake: FakeElasticsearch | None = None

    def settings(self, **changes: Any) -> ElasticSinkSettings:
        return sink_settings(self.hosts, index=self.index, alias=self.alias, **self.auth, **changes)


def _live_cluster() -> Cluster:
    url = os.environ.get("STIXBRIDGE_TEST_ES_URL")
    if not url:
        pytest.skip("set STIXBRIDGE_TEST_ES_URL (and STIXBRIDGE_TEST_ES_API_KEY or _USERNAME/_PASSWORD) to run")
    auth: dict[str, Any] = {}
    if os.environ.get("STIXBRIDGE_TEST_ES_API_KEY"):
        auth["api_key"] = Secret.from_env("STIXBRIDGE_TEST_ES_API_KEY")
    elif os.environ.get("STIXBRIDGE_TEST_ES_USERNAME"):
        auth["username"] = os.environ["STIXBRIDGE_TEST_ES_USERNAME"]
        auth["password"] = Secret.from_env("STIXBRIDGE_TEST_ES_PASSWORD")
    if os.environ.get("STIXBRIDGE_TEST_ES_CA_BUNDLE"):
        auth["ca_bundle"] = os.environ["STIXBRIDGE_TEST_ES_CA_BUNDLE"]
    suffix = uuid.uuid4().hex[:8]
    return Cluster(
        kind="live",
        hosts=[url],
        auth=auth,
        index=f"stixbridge-test-{suffix}-000001",
        alias=f"logs-ti_stixbridge_test_{suffix}.indicator",
    )


def _remove_live_objects(cluster: Cluster) -> None:
    from elasticsearch import Elasticsearch

    options: dict[str, Any] = {"hosts": cluster.hosts}
    if "api_key" in cluster.auth:
        options["api_key"] = cluster.auth["api_key"].reveal()
    elif "username" in cluster.auth:
        options["basic_auth"] = (cluster.auth["username"], cluster.auth["password"].reveal())
    if "ca_bundle" in cluster.auth:
        options["ca_certs"] = cluster.auth["ca_bundle"]
    client = Elasticsearch(**options)
    client.options(ignore_status=404).indices.delete(index=cluster.index)
    client.options(ignore_status=404).indices.delete_index_template(name=template_name(cluster.index))
    client.close()


@pytest.fixture(params=["fake", pytest.param("live", marks=pytest.mark.live)])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if request.param == "fake":
        with FakeElasticsearch() as fake:
            yield Cluster(kind="fake", hosts=[fake.url], fake=fake)
        return
    live = _live_cluster()
    try:
        yield live
    finally:
        _remove_live_objects(live)
