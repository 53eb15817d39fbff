"""The TAXII publisher: envelopes, status polling and per-object outcomes, on medallion and a scripted server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stixbridge.connectors.taxii.medallion_server import run_medallion
from stixbridge.connectors.taxii.publish import PublishOutcome, PublishResult
from stixbridge.errors import ConfigError, RemoteRejectedError
from stixbridge.model import Provenance
from stixbridge.secrets import Secret

from .conftest import make_publisher, make_source, medallion_auth
from .fake_server import (
    STIX_20,
    TAXII_20,
    TAXII_21,
    Recorded,
    Reply,
    fake_taxii_server,
    indicator,
    taxii20_layout,
    taxii21_layout,
)
from .test_paging import object_ids, run_pull

COLLECTION = "5a1c0f3e-7d2b-4c4e-9a8f-0b1c2d3e4f50"
OBJECTS = f"/api1/collections/{COLLECTION}/objects/"


def sighting(number: int) -> dict[str, Any]:
    return {
        "type": "sighting",
        "spec_version": "2.1",
        "id": f"sighting--00000000-0000-4000-8000-{number:012d}",
        "created": "2024-06-05T10:00:00.000Z",
        "modified": "2024-06-05T10:00:00.000Z",
        "sighting_of_ref": indicator(number)["id"],
        "count": 2,
    }


def status(status_id: str, state: str, **lists: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {name: len(lists.get(name, [])) for name in ("successes", "failures", "pendings")}
    return {
        "id": status_id, "status": state,
        "total_count": sum(counts.values()), "success_count": counts["successes"],
        "failure_count": counts["failures"], "pending_count": counts["pendings"], **lists,
    }  # fmt: skip


def detail(obj: dict[str, Any], message: str | None = None) -> dict[str, Any]:
    entry = {"id": obj["id"], "version": obj["modified"]}
    if message:
        entry["message"] = message
    return entry


def outcome_of(result: PublishResult, object_id: str) -> PublishOutcome:
    outcome = result.outcome(object_id)
    assert outcome is not None, f"no outcome for {object_id}"
    return outcome


def writable_layout(fake: Any, **options: Any) -> None:
    taxii21_layout(fake, [{"id": COLLECTION, "title": "sightings", "can_write": True}], **options)
    # Failed objects are read back to tell repeats from real failures; this server stores none of them.
    fake.route(OBJECTS, Reply(body={}))


# -- against medallion ------------------------------------------------------------------------------------------


def test_publish_then_pull_back() -> None:
    objects = [sighting(n) for n in range(10)]
    with run_medallion({"sightings": []}) as server:
        publisher = make_publisher(server.url, collection="sightings", **medallion_auth(server))
        source = make_source(server.url, collections=["sightings"], **medallion_auth(server))

        result = publisher.publish(objects)
        pages, error = run_pull(source)

    assert len(result.succeeded) == 10
    assert result.failed == []
    assert result.pending == []
    assert result.requests == 1
    assert len(result.status_ids) == 1
    assert error is None
    assert sorted(object_ids(pages)) == sorted(o["id"] for o in objects)


def test_double_publish_counts_as_success() -> None:
    objects = [sighting(n) for n in range(5)]
    with run_medallion({"sightings": []}) as server:
        publisher = make_publisher(server.url, collection="sightings", **medallion_auth(server))
        publisher.publish(objects)

        again = publisher.publish(objects)
        raw = publisher.status_outcomes(again.status_ids[0])
        source = make_source(server.url, collections=["sightings"], **medallion_auth(server))
        pages, _ = run_pull(source)

    assert len(again.succeeded) == 5
    assert again.failed == []
    assert all("already stores" in outcome.message for outcome in again.succeeded)
    assert {outcome.state for outcome in raw} == {"success"}
    assert len(object_ids(pages)) == 5


def test_publish_new_version_after_old() -> None:
    first = sighting(1)
    newer = {**first, "modified": "2024-06-05T11:00:00.000Z", "count": 3}
    with run_medallion({"sightings": []}) as server:
        publisher = make_publisher(server.url, collection="sightings", **medallion_auth(server))
        publisher.publish([first])

        result = publisher.publish([newer])
        source = make_source(server.url, collections=["sightings"], **medallion_auth(server))
        items = source.fetch_by_id(first["id"], Provenance("alliance", "sightings"))

    assert [o.state for o in result.outcomes] == ["success"]
    assert sorted(item.obj["modified"] for item in items if item.obj) == [first["modified"], newer["modified"]]


def test_incremental_pull_sees_only_published(medallion: Any) -> None:
    objects = [sighting(100 + n) for n in range(3)]
    with run_medallion({"feed": [indicator(n) for n in range(20)]}) as server:
        source = make_source(server.url, **medallion_auth(server))
        first, _ = run_pull(source)
        publisher = make_publisher(server.url, collection="feed", **medallion_auth(server))
        publisher.publish(objects)

        second, error = run_pull(source, first[-1].cursor)

    assert error is None
    assert sorted(object_ids(second)) == sorted(o["id"] for o in objects)
    assert second[-1].cursor != first[-1].cursor


def test_publish_wrong_password_raises() -> None:
    with run_medallion({"sightings": []}) as server:
        publisher = make_publisher(server.url, collection="sightings", username=server.username,
                                   password=Secret("wrong"))  # fmt: skip

        with pytest.raises(RemoteRejectedError) as caught:
            publisher.publish([sighting(1)])

    assert caught.value.status == 401


# -- against a scripted server ----------------------------------------------------------------------------------


def test_pending_status_polled_until_complete(waits: list[float]) -> None:
    one, two = sighting(1), sighting(2)
    with fake_taxii_server() as fake:
        writable_layout(fake)
        fake.expect(OBJECTS, Reply(202, status("s1", "pending", pendings=[detail(one), detail(two)])),
                    method="POST", headers={"Content-Type": TAXII_21, "Accept": TAXII_21})  # fmt: skip
        fake.expect("/api1/status/s1/", Reply(body=status("s1", "pending", successes=[detail(one)],
                                                          pendings=[detail(two)])))  # fmt: skip
        fake.expect("/api1/status/s1/", Reply(body=status("s1", "complete", successes=[detail(one)],
                                                          failures=[detail(two, "rejected by policy")])))  # fmt: skip
        publisher = make_publisher(f"{fake.base}/taxii2/", collection="sightings", poll_interval=2.0)

        result = publisher.publish([one, two])

    posted = json.loads(fake.requests_to(OBJECTS)[0].body)
    assert fake.mismatches == []
    assert posted == {"objects": [one, two]}
    assert waits == [2.0, 2.0]
    assert [(o.object_id, o.state) for o in result.outcomes] == [(one["id"], "success"), (two["id"], "failure")]
    assert outcome_of(result, two["id"]).message == "rejected by policy"
    assert outcome_of(result, one["id"]).status_id == "s1"


def test_status_still_pending_after_timeout(waits: list[float]) -> None:
    one = sighting(1)
    with fake_taxii_server() as fake:
        writable_layout(fake)
        fake.expect(OBJECTS, Reply(202, status("s2", "pending", pendings=[detail(one)])), method="POST")
        fake.route("/api1/status/s2/", Reply(body=status("s2", "pending", pendings=[detail(one)])))
        publisher = make_publisher(f"{fake.base}/taxii2/", collection="sightings", poll_interval=1.0,
                                   poll_timeout=5.0)  # fmt: skip

        result = publisher.publish([one])

    assert waits == [1.0] * 5
    assert len(fake.requests_to("/api1/status/s2/")) == 5
    assert [(o.state, o.status_id) for o in result.outcomes] == [("pending", "s2")]


def test_unreadable_status_leaves_objects_pending() -> None:
    one = sighting(1)
    with fake_taxii_server() as fake:
        writable_layout(fake)
        fake.expect(OBJECTS, Reply(202, status("s3", "pending", pendings=[detail(one)])), method="POST")
        fake.route("/api1/status/s3/", Reply(500, {"title": "InternalError"}))
        publisher = make_publisher(f"{fake.base}/taxii2/", collection="sightings", retries=0)

        result = publisher.publish([one])

    assert [(o.state, o.status_id) for o in result.outcomes] == [("pending", "s3")]
    assert "status could not be read" in result.outcomes[0].message
    assert result.status_ids == ["s3"]


def test_envelopes_kept_under_max_content_length() -> None:
    objects = [sighting(n) for n in range(12)]
    size = len(json.dumps(objects[0], separators=(",", ":")))

    def accept(request: Recorded) -> Reply:
        posted = json.loads(request.body)["objects"]
        return Reply(202, status(f"s{len(fake.requests)}", "complete", successes=[detail(o) for o in posted]))

    with fake_taxii_server() as fake:
        writable_layout(fake, max_content_length=size * 5)
        fake.route(OBJECTS, accept, method="POST")
        publisher = make_publisher(f"{fake.base}/taxii2/", collection="sightings")

        result = publisher.publish(objects)

    bodies = [r.body for r in fake.requests_to(OBJECTS)]
    assert len(result.succeeded) == 12
    assert all(len(body) <= size * 5 for body in bodies)
    assert len(bodies) == 3
    assert sum(len(json.loads(body)["objects"]) for body in bodies) == 12
    assert result.requests == 3
    assert result.bytes_sent == sum(len(body) for body in bodies)


def test_object_over_limit_fails_alone() -> None:
    small = sighting(1)
    large = {**sighting(2), "description": "x" * 5000}

    def accept(request: Recorded) -> Reply:
        posted = json.loads(request.body)["objects"]
        return Reply(202, status("s1", "complete", successes=[detail(o) for o in posted]))

    with fake_taxii_server() as fake:
        writable_layout(fake, max_content_length=2000)
        fake.route(OBJECTS, accept, method="POST")
        publisher = make_publisher(f"{fake.base}/taxii2/", collection="sightings")

        result = publisher.publish([small, large])

    assert outcome_of(result, small["id"]).state == "success"
    assert outcome_of(result, large["id"]).state == "failure"
    assert "max_content_length of 2000" in outcome_of(result, large["id"]).message
    assert len(fake.requests_to(OBJECTS)) == 1


def test_payload_too_large_splits_envelope() -> None:
    objects = [sighting(n) for n in range(4)]

    def picky(request: Recorded) -> Reply:
        posted = json.loads(request.body)["objects"]
        if len(posted) > 1:
            return Reply(413, {"title": "Payload Too Large"})
        return Reply(202, status("s", "complete", successes=[detail(o) for o in posted]))

    with fake_taxii_server() as fake:
        writable_layout(fake)
        fake.route(OBJECTS, picky, method="POST")
        publisher = make_publisher(f"{fake.base}/taxii2/", collection="sightings")

        result = publisher.publish(objects)

    assert len(result.succeeded) == 4
    assert [len(json.loads(r.body)["objects"]) for r in fake.requests_to(OBJECTS)] == [4, 2, 1, 1, 2, 1, 1]


def test_unreachable_server_fails_rest(waits: list[float]) -> None:
    objects = [sighting(n) for n in range(4)]

    def first_only(request: Recorded) -> Reply:
        posted = json.loads(request.body)["objects"]
        if posted[0]["id"] == objects[0]["id"]:
            return Reply(202, status("s", "complete", successes=[detail(o) for o in posted]))
        return Reply(503, {"title": "down"})

    with fake_taxii_server() as fake:
        writable_layout(fake)
        fake.route(OBJECTS, first_only, method="POST")
        publisher = make_publisher(f"{fake.base}/taxii2/", collection="sightings", max_objects_per_request=1,
                                   retries=1)  # fmt: skip

        result = publisher.publish(objects)

    # The 503 came after the server read the body, so it may have stored it; the rest were never sent.
    assert [o.state for o in result.outcomes] == ["success", "unknown", "failure", "failure"]
    assert "may have reached the server" in result.outcomes[1].message
    assert "HTTP 503" in result.outcomes[1].message
    assert "after an earlier failure" in result.outcomes[2].message
    assert len(fake.requests_to(OBJECTS)) == 3


def test_unmentioned_object_fails_and_duplicates_sent_once() -> None:
    one, two = sighting(1), sighting(2)
    with fake_taxii_server() as fake:
        writable_layout(fake)
        fake.expect(OBJECTS, Reply(202, status("s1", "complete", successes=[detail(one)])), method="POST")
        publisher = make_publisher(f"{fake.base}/taxii2/", collection="sightings")

        mixed: list[Any] = [one, two, one, {"id": "no type"}, "text"]
        result = publisher.publish(mixed)

    posted = json.loads(fake.requests_to(OBJECTS)[0].body)["objects"]
    states = {o.object_id: o.state for o in result.outcomes}
    assert posted == [one, two]
    assert states[one["id"]] == "success"
    assert states[two["id"]] == "failure"
    assert outcome_of(result, two["id"]).message == "the completed status resource does not mention this object"
    assert states["no type"] == "failure"
    assert states["object 4"] == "failure"


def test_failure_of_held_version_confirmed_by_read_back() -> None:
    stored, other = sighting(1), sighting(2)
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "sightings", "can_write": True}])
        fake.expect(OBJECTS, Reply(202, status("s1", "complete", failures=[detail(stored, "Unable to process object"),
                                                                           detail(other, "Unable to process object")])),
                    method="POST")  # fmt: skip
        # The server stores ``stored`` in the posted version and ``other`` only in an older one.
        older = {**other, "modified": "2024-06-01T00:00:00Z"}
        fake.expect(OBJECTS, Reply(body={"objects": [stored, older]}),
                    {"match[id]": f"{stored['id']},{other['id']}", "match[version]": "all", "limit": "1000"})  # fmt: skip
        publisher = make_publisher(f"{fake.base}/taxii2/", collection="sightings")

        result = publisher.publish([stored, other])

    assert fake.mismatches == []
    assert outcome_of(result, stored["id"]).state == "success"
    assert outcome_of(result, other["id"]).state == "failure"
    assert outcome_of(result, other["id"]).message == "Unable to process object"


def test_read_only_collection_refused() -> None:
    with fake_taxii_server() as fake:
        taxii21_layout(fake, [{"id": COLLECTION, "title": "sightings", "can_write": False}])
        publisher = make_publisher(f"{fake.base}/taxii2/", collection="sightings")

        with pytest.raises(RemoteRejectedError, match="does not allow writing"):
            publisher.publish([sighting(1)])

    assert fake.requests_to(OBJECTS) == []



def test_disabled_publisher_sends_nothing() -> None:
    with fake_taxii_server() as fake:
        publisher = make_publisher(f"{fake.base}/taxii2/", collection="sightings", enabled=False)

        with pytest.raises(ConfigError, match="set enabled = true"):
            publisher.publish([sighting(1)])

    assert fake.requests == []
    assert "off until enabled = true" in publisher.describe()


def test_taxii20_posts_a_bundle() -> None:
    obj = {key: value for key, value in sighting(1).items() if key != "spec_version"}
    with fake_taxii_server() as fake:
        taxii20_layout(fake, [{"id": COLLECTION, "title": "sightings", "can_write": True}])
        fake.expect(OBJECTS, Reply(202, status("s1", "complete", successes=[detail(obj)]), content_type=TAXII_20),
                    method="POST", headers={"Content-Type": STIX_20, "Accept": TAXII_20})  # fmt: skip
        publisher = make_publisher(f"{fake.base}/taxii/", collection="sightings", version="2.0")

        result = publisher.publish([obj])

    posted = json.loads(fake.requests_to(OBJECTS)[0].body)
    assert fake.mismatches == []
    assert posted["type"] == "bundle"
    assert posted["spec_version"] == "2.0"
    assert posted["id"].startswith("bundle--")
    assert posted["objects"] == [obj]
    assert [o.state for o in result.outcomes] == ["success"]
