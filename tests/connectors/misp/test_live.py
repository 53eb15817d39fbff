"""The MISP connectors against a real MISP, named by STIXBRIDGE_TEST_MISP_URL and STIXBRIDGE_TEST_MISP_KEY.

These tests create events under a fresh UUID seed, check what MISP stored, and delete the events at the
end. They are skipped unless both variables are set; set STIXBRIDGE_TEST_MISP_VERIFY_TLS=0 for a test
instance with a self-signed certificate.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stixbridge.connector import ConnectorContext
from stixbridge.connectors.misp.attributes import attribute_uuid, event_uuid
from stixbridge.connectors.misp.sightings import MispSightingsReader
from stixbridge.connectors.misp.sink import MispSink
from stixbridge.model import Changes, DeliveredRow
from stixbridge.settings import build_settings

from .conftest import make_row

pytestmark = pytest.mark.live

URL = os.environ.get("STIXBRIDGE_TEST_MISP_URL", "")
KEY_VARIABLE = "STIXBRIDGE_TEST_MISP_KEY"


@pytest.fixture
def live_table() -> dict:
    if not URL or not os.environ.get(KEY_VARIABLE):
        pytest.skip("set STIXBRIDGE_TEST_MISP_URL and STIXBRIDGE_TEST_MISP_KEY to run the live MISP tests")
    return {
        "url": URL,
        "key": {"env": KEY_VARIABLE},
        "verify_tls": os.environ.get("STIXBRIDGE_TEST_MISP_VERIFY_TLS", "1") != "0",
        "timeout": 60.0,
    }


@pytest.fixture
def live_sink(live_table: dict, tmp_path: Path) -> Iterator[MispSink]:
    context = ConnectorContext(base_dir=tmp_path, identity_id="identity--00000000-0000-4000-8000-000000000001")
    table = {**live_table, "uuid_seed": f"stixbridge-live-{uuid.uuid4()}", "chunk_size": 2}
    sink = MispSink("live", build_settings(MispSink.settings_class, table, "sinks[0]"), context)  # type: ignore[arg-type]
    yield sink
    for part in range(3):
        target = event_uuid(sink.namespace, "live-test", "collection-a", part)
        sink.client.call(f"events/delete/{target}", {}, accept=(403, 404))


def _rows() -> list:
    return [
        make_row(1, "ipv4", "198.51.100.201", source="live-test"),
        make_row(2, "domain", "live-test.example.com", source="live-test"),
        make_row(3, "sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", source="live-test"),
    ]


def test_live_push_update_expire(live_sink: MispSink) -> None:
    rows = _rows()

    created = live_sink.push(Changes(upserts=rows))
    updated = live_sink.push(Changes(upserts=[dataclasses.replace(row, name="renamed") for row in rows]))
    expired = live_sink.push(Changes(deletes=[DeliveredRow(r.key, r.type, r.value, r.digest) for r in rows[:1]]))

    assert sorted(created.written) == sorted(r.key for r in rows)
    assert sorted(updated.written) == sorted(r.key for r in rows)
    assert expired.deleted == [rows[0].key]
    stored = live_sink.client.call(
        "attributes/restSearch",
        {"returnFormat": "json", "uuid": [attribute_uuid(live_sink.namespace, r.key) for r in rows]},
    ).body["Attribute"]
    assert len(stored) == 3
    to_ids = {a["value"]: a["to_ids"] for a in stored}
    assert to_ids["198.51.100.201"] is False
    assert to_ids["live-test.example.com"] is True


def test_live_sightings_read_back(live_sink: MispSink, live_table: dict, tmp_path: Path) -> None:
    row = _rows()[1]
    live_sink.push(Changes(upserts=[row]))
    now = int(datetime.now(tz=UTC).timestamp())
    live_sink.client.call(
        "sightings/add",
        {"uuid": attribute_uuid(live_sink.namespace, row.key), "type": "0", "source": "live-test", "timestamp": now},
    )
    context = ConnectorContext(base_dir=tmp_path)
    settings = build_settings(MispSightingsReader.settings_class, {**live_table, "initial_days": 1}, "sightings[0]")
    reader = MispSightingsReader("live", settings, context)  # type: ignore[arg-type]

    records = [record for batch, _ in reader.read(None) for record in batch]

    mine = [r for r in records if dict(r.context).get("misp_sighting_source") == "live-test"]
    assert [(r.indicator_id, r.kind) for r in mine] == [(row.indicator_id, "seen")]
