"""The sightings outbox and the TAXII publisher across an interrupted send, on medallion.

The process "dies" after medallion stored a POST and before the outbox committed the outcome: a
wrapper posts through the real publisher and then raises a BaseException nothing catches. The next
send must read the objects back instead of posting them again.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stixbridge.connectors.taxii.http import TaxiiHttp, TaxiiResponse
from stixbridge.connectors.taxii.medallion_server import MedallionServer, run_medallion
from stixbridge.connectors.taxii.publish import TaxiiPublisher
from stixbridge.engine import RunSummary
from stixbridge.errors import RemoteRejectedError, TransientError
from stixbridge.sightings.loop import outbox_of
from stixbridge.sightings.outbox import CONFIRMED_REASON
from tests.core.sightings.loop_fixtures import NOW, Killed, make_loop, write_sightings

from .conftest import make_publisher, medallion_auth
from .fake_server import fake_taxii_server, taxii21_layout

TARGET = "alliance-taxii"
COLLECTION = "5a1c0f3e-7d2b-4c4e-9a8f-0b1c2d3e4f50"
HITS = [{"value": "c2.example.com", "time": "2024-06-15T11:50:00Z"},
        {"value": "198.51.100.7", "time": "2024-06-15T11:55:00Z"}]  # fmt: skip


class CrashAfterPost:
    """Posts through a real publisher, then dies before the outbox can record what happened."""

    def __init__(self, inner: TaxiiPublisher) -> None:
        self.inner = inner
        self.name = inner.name
        self.settings = inner.settings

    def publish(self, objects: list[dict[str, Any]]) -> Any:
        self.inner.publish(objects)
        raise Killed()


class WithoutReadBack:
    """A publisher that can post but has no ``stored_versions``."""

    def __init__(self, inner: TaxiiPublisher) -> None:
        self.inner = inner
        self.name = inner.name
        self.settings = inner.settings

    def publish(self, objects: list[dict[str, Any]]) -> Any:
        return self.inner.publish(objects)


@pytest.fixture
def posted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count, per object id, how often it was sent in a POST to any objects endpoint."""
    counter: Counter[str] = Counter()
    original = TaxiiHttp.post

    def counting_post(self: TaxiiHttp, url: str, *, body: bytes, content_type: str, accept: str) -> TaxiiResponse:
        if url.endswith("/objects/"):
            counter.update(obj["id"] for obj in json.loads(body)["objects"])
        return original(self, url, body=body, content_type=content_type, accept=accept)

    monkeypatch.setattr(TaxiiHttp, "post", counting_post)
    return counter


@pytest.fixture
def server() -> Iterator[MedallionServer]:
    with run_medallion({"sightings": []}) as medallion:
        yield medallion


def crashed_send(tmp_path: Path, server: MedallionServer) -> tuple[Any, TaxiiPublisher, list[str]]:
    """Build the outbox, send it through a publisher that dies after the POST; return engine, publisher, ids."""
    publisher = make_publisher(server.url, name=TARGET, collection="sightings", **medallion_auth(server))
    engine, _ = make_loop(tmp_path, publishers=[publisher])
    write_sightings(tmp_path / "sightings" / "hits.jsonl", HITS)
    engine.pull(RunSummary())
    engine.read_sightings(RunSummary())
    outbox = outbox_of(engine)
    # Two sightings, our identity and the TLP:GREEN marking.
    assert outbox.enqueue(TARGET, NOW) == 4

    with pytest.raises(Killed):
        outbox.send(CrashAfterPost(publisher), NOW)

    ids = [row["object_id"] for row in outbox.rows()]
    assert {row["status"] for row in outbox.rows()} == {"sending"}
    return engine, publisher, ids


def stored_once(publisher: TaxiiPublisher, ids: list[str]) -> bool:
    stored = publisher.stored_versions(ids)
    return sorted(stored) == sorted(ids) and all(len(versions) == 1 for versions in stored.values())


def test_crash_after_post_not_posted_again(tmp_path: Path, server: MedallionServer, posted: Counter[str],
                                           caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    engine, publisher, ids = crashed_send(tmp_path, server)

    with caplog.at_level(logging.INFO, logger="stixbridge.sightings.outbox"):
        counts = outbox_of(engine).send(publisher, NOW)

    assert counts.confirmed == 4
    assert counts.queued == 0
    assert {object_id: posted[object_id] for object_id in ids} == dict.fromkeys(ids, 1)
    rows = outbox_of(engine).rows()
    assert {row["status"] for row in rows} == {"published"}
    assert {row["reason"] for row in rows} == {CONFIRMED_REASON}
    assert "read back 4 objects of an interrupted send: 4 already stored" in caplog.text
    assert stored_once(publisher, ids)


def test_crash_then_sync_confirms_all(tmp_path: Path, server: MedallionServer,
                                                 posted: Counter[str]) -> None:  # fmt: skip
    engine, publisher, ids = crashed_send(tmp_path, server)

    summary = engine.sync()

    assert summary.failures == []
    assert summary.extra["published"][TARGET]["confirmed"] == 4
    assert all(posted[object_id] == 1 for object_id in ids)


def test_publisher_without_read_back_posts_again(tmp_path: Path, server: MedallionServer, posted: Counter[str],
                                                 caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    engine, publisher, ids = crashed_send(tmp_path, server)

    with caplog.at_level(logging.WARNING, logger="stixbridge.sightings.outbox"):
        counts = outbox_of(engine).send(WithoutReadBack(publisher), NOW)

    assert counts.resent == 4
    assert counts.published == 4
    assert all(posted[object_id] == 2 for object_id in ids)
    assert "cannot read its target back; sending them again" in caplog.text
    # TAXII treats the repeat of an id and version as a no-op: still one version of each.
    assert stored_once(publisher, ids)


def test_failed_read_back_posts_again(tmp_path: Path, server: MedallionServer, posted: Counter[str],
                                      monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    engine, publisher, ids = crashed_send(tmp_path, server)

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise TransientError("HTTP 503 while reading the collection back")

    with monkeypatch.context() as patch:
        patch.setattr(TaxiiPublisher, "stored_versions", unreadable)
        with caplog.at_level(logging.WARNING, logger="stixbridge.sightings.outbox"):
            counts = outbox_of(engine).send(publisher, NOW)

    assert counts.resent == 4
    assert {row["status"] for row in outbox_of(engine).rows()} == {"published"}
    assert all(posted[object_id] == 2 for object_id in ids)
    assert "failed: HTTP 503 while reading the collection back" in caplog.text
    assert stored_once(publisher, ids)


def test_stored_versions_lists_held_ids_only(server: MedallionServer) -> None:
    publisher = make_publisher(server.url, collection="sightings", **medallion_auth(server))
    first = {"type": "sighting", "spec_version": "2.1", "id": "sighting--00000000-0000-4000-8000-000000000001",
             "created": "2024-06-05T10:00:00.000Z", "modified": "2024-06-05T10:00:00.000Z",
             "sighting_of_ref": "indicator--00000000-0000-4000-8000-000000000001", "count": 1}  # fmt: skip
    newer = {**first, "modified": "2024-06-05T11:00:00.000Z", "count": 2}
    missing = "sighting--00000000-0000-4000-8000-000000000002"
    publisher.publish([first])
    publisher.publish([newer])

    stored = publisher.stored_versions([first["id"], missing])

    assert list(stored) == [first["id"]]
    assert stored[first["id"]] == {first["modified"], newer["modified"]}
    assert publisher.stored_versions([]) == {}


def test_stored_versions_of_unreadable_collection_raises() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "sightings", "can_read": False, "can_write": True}])
        publisher = make_publisher(f"{fake.base}/taxii2/", collection="sightings")

        with pytest.raises(RemoteRejectedError, match="does not allow reading"):
            publisher.stored_versions(["sighting--00000000-0000-4000-8000-000000000001"])

    assert fake.requests_to(f"/api1/collections/{COLLECTION}/objects/") == []


# The same interrupted send with a real process death: the child posts through the real publisher
# and kills itself with SIGKILL before the outbox records the outcome.
_CHILD = """
import json, os, signal, sys
from pathlib import Path

from stixbridge.engine import RunSummary
from stixbridge.secrets import Secret
from stixbridge.sightings.loop import outbox_of
from tests.connectors.taxii.conftest import make_publisher
from tests.core.sightings.loop_fixtures import NOW, make_loop, write_sightings

folder, url, username, password, target, hits = sys.argv[1:]
publisher = make_publisher(url, name=target, collection="sightings", username=username, password=Secret(password))


class DieAfterPost:
    name = publisher.name
    settings = publisher.settings

    def publish(self, objects):
        publisher.publish(objects)
        os.kill(os.getpid(), signal.SIGKILL)


engine, _ = make_loop(Path(folder), publishers=[publisher])
write_sightings(Path(folder) / "sightings" / "hits.jsonl", json.loads(hits))
engine.pull(RunSummary())
engine.read_sightings(RunSummary())
outbox = outbox_of(engine)
outbox.enqueue(target, NOW)
outbox.send(DieAfterPost(), NOW)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_after_post_not_posted_again(tmp_path: Path, server: MedallionServer, posted: Counter[str]) -> None:
    root = Path(__file__).resolve().parents[3]
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path), server.url, server.username, server.password, TARGET,
         json.dumps(HITS)],
        cwd=root, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr

    publisher = make_publisher(server.url, name=TARGET, collection="sightings", **medallion_auth(server))
    engine, _ = make_loop(tmp_path, publishers=[publisher])
    ids = [row["object_id"] for row in outbox_of(engine).rows()]
    assert len(ids) == 4
    assert {row["status"] for row in outbox_of(engine).rows()} == {"sending"}

    counts = outbox_of(engine).send(publisher, NOW)

    assert counts.confirmed == 4
    assert sum(posted.values()) == 0
    assert {row["status"] for row in outbox_of(engine).rows()} == {"published"}
    assert stored_once(publisher, ids)
