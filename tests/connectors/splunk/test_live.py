"""The fake-server scenarios against a real Splunk, run only when one is named by environment variables.

Set ``STIXBRIDGE_TEST_SPLUNK_URL`` (``https://host:8089``) and either ``STIXBRIDGE_TEST_SPLUNK_USERNAME``
with ``STIXBRIDGE_TEST_SPLUNK_PASSWORD`` or ``STIXBRIDGE_TEST_SPLUNK_TOKEN``. Optional:
``STIXBRIDGE_TEST_SPLUNK_APP`` (default ``search``), ``STIXBRIDGE_TEST_SPLUNK_CA_BUNDLE`` and
``STIXBRIDGE_TEST_SPLUNK_VERIFY_TLS=0``. The tests create a collection named ``stixbridge_test_<random>``
in that app and delete it at the end; they never touch ES collections.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.splunk.client import SplunkClient
from stixbridge.connectors.splunk.settings import SplunkSightingsSettings, SplunkSinkSettings
from stixbridge.connectors.splunk.sightings import SplunkSightingsReader
from stixbridge.connectors.splunk.sink import SplunkSink
from stixbridge.model import Changes, DeliveredRow
from stixbridge.secrets import Secret

from .conftest import make_row, many_rows

pytestmark = pytest.mark.live

URL = os.environ.get("STIXBRIDGE_TEST_SPLUNK_URL", "")
if not URL:
    pytest.skip("set STIXBRIDGE_TEST_SPLUNK_URL and credentials to run the live Splunk tests", allow_module_level=True)


def connection() -> dict[str, Any]:
    values: dict[str, Any] = {"url": URL, "app": os.environ.get("STIXBRIDGE_TEST_SPLUNK_APP", "search")}
    if os.environ.get("STIXBRIDGE_TEST_SPLUNK_TOKEN"):
        values["token"] = Secret(os.environ["STIXBRIDGE_TEST_SPLUNK_TOKEN"])
    else:
        values["username"] = os.environ.get("STIXBRIDGE_TEST_SPLUNK_USERNAME", "")
        values["password"] = Secret(os.environ.get("STIXBRIDGE_TEST_SPLUNK_PASSWORD", ""))
    if os.environ.get("STIXBRIDGE_TEST_SPLUNK_VERIFY_TLS") == "0":
        values["verify_tls"] = False
    if os.environ.get("STIXBRIDGE_TEST_SPLUNK_CA_BUNDLE"):
        values["ca_bundle"] = os.environ["STIXBRIDGE_TEST_SPLUNK_CA_BUNDLE"]
    return values


@pytest.fixture
def sink() -> Iterator[SplunkSink]:
    settings = SplunkSinkSettings(**connection(), collection=f"stixbridge_test_{secrets.token_hex(4)}")
    settings.validate("sinks[0]")
    built = SplunkSink("live", settings, ConnectorContext(base_dir=Path(".")))
    yield built
    client = SplunkClient(settings)
    client.delete(
        f"storage/collections/config/{settings.collection}",
        operation="removing the test collection",
        owner=settings.owner,
        app=settings.app,
    )


def stored_keys(sink: SplunkSink) -> set[str]:
    answer = sink.client.get_json(
        f"storage/collections/data/{sink.config.collection}",
        operation="reading the test collection",
        owner=sink.config.owner,
        app=sink.config.app,
        fields="_key",
        limit=0,
    )
    return {row["_key"] for row in answer}


def test_live_push_update_delete(sink: SplunkSink) -> None:
    rows = many_rows(2500)

    first = sink.push(Changes(upserts=rows))
    removed = sink.push(Changes(deletes=[DeliveredRow(r.key, r.type, r.value, r.digest) for r in rows[:1200]]))

    assert len(first.written) == 2500
    assert len(removed.deleted) == 1200
    assert stored_keys(sink) == {r.key for r in rows[1200:]}


def test_live_foreign_row_survives(sink: SplunkSink) -> None:
    row = make_row()
    sink.push(Changes(upserts=[row]))
    sink.client.post_json(
        f"storage/collections/data/{sink.config.collection}",
        {"_key": "manual-entry", "value": "198.51.100.7"},
        operation="planting a foreign row",
        owner=sink.config.owner,
        app=sink.config.app,
    )

    sink.push(Changes(deletes=[DeliveredRow(row.key, row.type, row.value, row.digest)]))

    assert stored_keys(sink) == {"manual-entry"}


def test_live_no_change_sends_nothing(sink: SplunkSink) -> None:
    before = sink.client.requests

    result = sink.push(Changes())

    assert result.requests == 0
    assert sink.client.requests == before


def test_live_sightings_read_runs() -> None:
    settings = SplunkSightingsSettings(**connection(), mode="es", lookback_days=1)
    settings.validate("sightings[0]")
    reader = SplunkSightingsReader("live", settings, ConnectorContext(base_dir=Path(".")))

    batches = list(reader.read(None))

    assert batches
    assert json.loads(batches[-1][1] or "{}")["t"] > 0
