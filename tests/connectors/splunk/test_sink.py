"""The Splunk sink against the fake splunkd, through the real splunk-sdk."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest

from stixbridge.connectors.splunk.sink import SplunkSink
from stixbridge.errors import RemoteRejectedError, TransientError
from stixbridge.model import AtomRow, Changes, DeliveredRow
from stixbridge.plugins import load

from .conftest import INDICATOR, NOW, make_row, many_rows
from .fake_splunk import FakeSplunk

APP = ("TA-stixbridge", "stixbridge_intel")
ES = "DA-ESS-ThreatIntelligence"


def delivered(row: AtomRow) -> DeliveredRow:
    return DeliveredRow(row.key, row.type, row.value, row.digest, row.indicator_id)


def test_entry_point_names_sink() -> None:
    assert load("sink", "splunk") is SplunkSink


def test_push_writes_app_collection(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    sink = make_sink()
    row = make_row("Evil.Example.COM", "domain", display="Evil.Example.COM")

    result = sink.push(Changes(upserts=[row]))

    assert result.written == [row.key]
    assert result.failed == {}
    stored = fake.rows(*APP)[row.key]
    assert stored["value"] == "evil.example.com"
    assert stored["display"] == "Evil.Example.COM"
    assert stored["threat_key"] == INDICATOR
    assert stored["time"] == pytest.approx((NOW - timedelta(days=1)).timestamp())
    assert stored["valid_until"] == pytest.approx((NOW + timedelta(days=30)).timestamp())
    assert stored["weight"] == 75
    assert stored["tlp"] == "GREEN"
    assert stored["labels"] == ["malicious-activity"]


def test_push_creates_missing_app_collection(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    assert APP not in fake.collections

    make_sink().push(Changes(upserts=[make_row()]))

    assert APP in fake.collections
    assert fake.requests_to(method="POST", contains="/storage/collections/config")


def test_missing_app_collection_rejected_without_create(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    sink = make_sink(create_collection=False)

    with pytest.raises(RemoteRejectedError, match="stixbridge_intel.*install the TA-stixbridge app"):
        sink.push(Changes(upserts=[make_row()]))


def test_es_rows_use_type_collections(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    rows = [
        make_row("198.51.100.0/24", "ipv4-cidr"),
        make_row("2001:DB8::1", "ipv6"),
        make_row("Evil.Example.com", "domain"),
        make_row("http://evil.example.com/Path?Q=1", "url"),
        make_row("D41D8CD98F00B204E9800998ECF8427E", "md5"),
        make_row("Invoice.EXE", "file-name"),
        make_row("Bad@Example.com", "email"),
        make_row("HKEY_LOCAL_MACHINE\\Software\\Run", "registry-key"),
        make_row("0A:1B", "x509-serial"),
        make_row("Evil.exe", "process-name"),
        make_row("Admin", "user-account"),
    ]

    result = make_sink(targets=["es"]).push(Changes(upserts=rows))

    assert sorted(result.written) == sorted(r.key for r in rows)
    assert fake.rows(ES, "ip_intel")[rows[0].key]["ip"] == "198.51.100.0/24"
    assert fake.rows(ES, "ip_intel")[rows[1].key]["ip"] == "2001:db8::1"
    assert fake.rows(ES, "ip_intel")[rows[2].key]["domain"] == "evil.example.com"
    assert fake.rows(ES, "http_intel")[rows[3].key]["url"] == "http://evil.example.com/Path?Q=1"
    assert fake.rows(ES, "file_intel")[rows[4].key]["file_hash"] == "d41d8cd98f00b204e9800998ecf8427e"
    assert fake.rows(ES, "file_intel")[rows[5].key]["file_name"] == "invoice.exe"
    assert fake.rows(ES, "email_intel")[rows[6].key]["src_user"] == "bad@example.com"
    assert sorted(r["registry_path"] for r in fake.rows(ES, "registry_intel").values()) == [
        "\\registry\\machine\\software\\run",
        "hkey_local_machine\\software\\run",
        "hklm\\software\\run",
    ]
    assert fake.rows(ES, "certificate_intel")[rows[8].key]["certificate_serial"] == "0a:1b"
    assert fake.rows(ES, "process_intel")[rows[9].key]["process_file_name"] == "evil.exe"
    assert fake.rows(ES, "user_intel")[rows[10].key]["user"] == "admin"


def test_es_row_fields(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    row = make_row()

    make_sink(targets=["es"]).push(Changes(upserts=[row]))

    stored = fake.rows(ES, "ip_intel")[row.key]
    assert stored["_key"] == row.key
    assert stored["threat_key"] == INDICATOR
    assert stored["time"] == pytest.approx((NOW - timedelta(days=1)).timestamp())
    assert stored["description"] == "Example C2: Command and control server"
    assert stored["weight"] == 75
    assert "domain_intel" not in {name for _, name in fake.collections}


def test_es_time_is_valid_from_not_write_time(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    old = NOW - timedelta(days=400)
    row = make_row(valid_from=old)

    make_sink(targets=["es"]).push(Changes(upserts=[row]))

    assert fake.rows(ES, "ip_intel")[row.key]["time"] == pytest.approx(old.timestamp())


def test_es_unsupported_types_skipped_and_counted(make_sink: Callable[..., SplunkSink]) -> None:
    sink = make_sink(targets=["app", "es"])
    rows = [make_row("Global\\evil", "mutex"), make_row("3:abc:def", "ssdeep"), make_row()]

    result = sink.push(Changes(upserts=rows))

    assert sorted(result.written) == sorted(r.key for r in rows)
    assert result.skipped == {
        "ES: ES has no collection for mutexes": 1,
        "ES: fuzzy hash; ES matches file_hash exactly": 1,
    }


def test_es_only_sink_refuses_unsupported_rows(make_sink: Callable[..., SplunkSink]) -> None:
    sink = make_sink(targets=["es"])

    assert sink.accepts(make_row("Global\\evil", "mutex")) is False
    assert sink.accepts(make_row("AS64500", "as-number")) is False
    assert sink.accepts(make_row()) is True
    assert sink.not_accepted == {
        "ES: ES has no collection for mutexes": 1,
        "ES: ES has no collection for autonomous systems": 1,
    }


def test_missing_es_collections_rejected(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    fake.collections = {k: v for k, v in fake.collections.items() if k[0] != ES}

    with pytest.raises(RemoteRejectedError, match="ip_intel.*Enterprise Security"):
        make_sink(targets=["es"]).push(Changes(upserts=[make_row()]))


def test_no_change_sends_no_request(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    sink = make_sink(targets=["app", "es"])
    sink.begin()

    result = sink.push(Changes())
    sink.finish(True)

    assert result.requests == 0
    assert fake.log == []


def test_batches_cut_by_document_count(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    rows = many_rows(2500)

    result = make_sink(max_batch_docs=1000).push(Changes(upserts=rows))

    saves = fake.requests_to(method="POST", contains="batch_save")
    assert len(result.written) == 2500
    assert len(saves) == 3
    assert len(fake.rows(*APP)) == 2500


def test_batches_cut_by_bytes(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    rows = many_rows(300)

    result = make_sink(max_batch_bytes=64 * 1024).push(Changes(upserts=rows))

    saves = fake.requests_to(method="POST", contains="batch_save")
    assert len(result.written) == 300
    assert len(saves) > 1
    assert max(r.body_size for r in saves) <= 64 * 1024


def test_server_limit_lowers_batch_size(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    fake.limits["max_documents_per_batch_save"] = 200

    result = make_sink().push(Changes(upserts=many_rows(1000)))

    saves = fake.requests_to(method="POST", contains="batch_save")
    assert len(result.written) == 1000
    assert [r.status for r in saves] == [200] * 5


def test_hidden_limits_halve_on_400(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    fake.expose_limits = False
    fake.limits["max_documents_per_batch_save"] = 300

    result = make_sink().push(Changes(upserts=many_rows(1000)))

    saves = fake.requests_to(method="POST", contains="batch_save")
    assert len(result.written) == 1000
    assert result.failed == {}
    assert [r.status for r in saves[:3]] == [400, 400, 200]
    assert len(fake.rows(*APP)) == 1000


def test_row_refused_alone_reported_failed(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    fake.expose_limits = False
    rows = many_rows(3)
    fake.inject(400, match="batch_save", times=2)

    result = make_sink().push(Changes(upserts=rows))

    # The batch of 3 is refused, then its first half (1 row) alone, which is reported failed. The rest
    # goes out in batches of that half's size and is stored.
    assert list(result.failed) == [rows[0].key]
    assert "HTTP 400" in result.failed[rows[0].key]
    assert result.written == [rows[1].key, rows[2].key]


def test_rejected_document_keeps_batch_size(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    fake.inject(400, match="batch_save", times=1)

    result = make_sink().push(Changes(upserts=many_rows(2500)))

    saves = fake.requests_to(method="POST", contains="batch_save")
    assert len(result.written) == 2500
    assert [r.status for r in saves] == [400, 200, 200, 200, 200]


def test_rejected_documents_bounded_requests(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    fake.inject(400, match="batch_save", times=100_000)
    rows = many_rows(1000)

    result = make_sink().push(Changes(upserts=rows))

    saves = fake.requests_to(method="POST", contains="batch_save")
    assert result.written == []
    assert set(result.failed) == {r.key for r in rows}
    assert len(saves) <= 1 + 64 + 2


def test_deletes_remove_only_given_keys(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    sink = make_sink(targets=["app", "es"])
    rows = many_rows(400)
    sink.push(Changes(upserts=rows))

    result = sink.push(Changes(deletes=[delivered(r) for r in rows[:250]]))

    assert sorted(result.deleted) == sorted(r.key for r in rows[:250])
    assert set(fake.rows(*APP)) == {r.key for r in rows[250:]}
    assert set(fake.rows(ES, "ip_intel")) == {r.key for r in rows[250:]}
    deletes = fake.requests_to(method="DELETE")
    assert len(deletes) > 2
    assert all(len(fake.url) + len(r.raw_target) <= 7000 for r in deletes)


def test_foreign_rows_survive_deletes(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    sink = make_sink(targets=["app", "es"])
    rows = many_rows(5)
    sink.push(Changes(upserts=rows))
    foreign = {"_key": "iblocklist_spyware|198.51.100.7", "ip": "198.51.100.7", "threat_key": "iblocklist_spyware"}
    fake.rows(ES, "ip_intel")[foreign["_key"]] = dict(foreign)
    fake.rows(*APP)["manual-entry"] = {"_key": "manual-entry", "value": "198.51.100.7"}
    lookalike = DeliveredRow("iblocklist_spyware|198.51.100.7", "ipv4", "198.51.100.7", "x")

    result = sink.push(Changes(deletes=[delivered(r) for r in rows] + [lookalike]))

    assert fake.rows(ES, "ip_intel") == {foreign["_key"]: {**foreign}}
    assert set(fake.rows(*APP)) == {"manual-entry"}
    assert "iblocklist_spyware|198.51.100.7" in result.failed
    assert "iblocklist_spyware|198.51.100.7" not in result.deleted


def test_registry_key_spellings_written_and_deleted(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    sink = make_sink(targets=["app", "es"])
    row = make_row("HKEY_CURRENT_USER\\Software\\Evil", "registry-key")

    written = sink.push(Changes(upserts=[row]))
    spelled = set(fake.rows(ES, "registry_intel"))
    deleted = sink.push(Changes(deletes=[delivered(row)]))

    assert written.written == [row.key]
    assert len(spelled) > 1
    assert row.key in spelled
    assert all(key.startswith(row.key) for key in spelled)
    assert deleted.deleted == [row.key]
    assert fake.rows(ES, "registry_intel") == {}
    assert fake.rows(*APP) == {}


def test_delete_of_absent_key_counts_deleted(make_sink: Callable[..., SplunkSink]) -> None:
    sink = make_sink()
    row = make_row()
    sink.push(Changes(upserts=[row]))
    sink.push(Changes(deletes=[delivered(row)]))

    result = sink.push(Changes(deletes=[delivered(row)]))

    assert result.deleted == [row.key]


def test_keys_never_contain_slash(make_sink: Callable[..., SplunkSink], fake: FakeSplunk) -> None:
    tricky = [
        make_row("http://evil.example.com/a/b/c", "url"),
        make_row("HKLM\\Software/Run", "registry-key"),
        make_row("a/b", "file-name", indicator_id="indicator--0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b"),
    ]

    make_sink().push(Changes(upserts=tricky))

    assert all("/" not in key for key in fake.rows(*APP))
    assert all(key.startswith("stixbridge-") for key in fake.rows(*APP))


def test_fake_cannot_delete_slash_key(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    # Why keys never hold "/": splunkd stores such a key but cannot reach it by key afterwards.
    make_sink().push(Changes(upserts=[make_row()]))
    fake.rows(*APP)["a/b"] = {"_key": "a/b"}
    sink = make_sink()

    result = sink.push(Changes(deletes=[DeliveredRow("a/b", "ipv4", "x", "y")]))

    assert "a/b" in result.failed
    assert "a/b" in fake.rows(*APP)


def test_rewrite_of_same_rows_sends_no_write(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    rows = many_rows(1200)
    make_sink(read_page=1000).push(Changes(upserts=rows))
    fake.clear_log()

    # A new sink (as after a lost state store) gets every row again and finds them current.
    result = make_sink(read_page=1000).push(Changes(upserts=rows))

    assert len(result.written) == 1200
    assert fake.write_requests() == []
    reads = fake.requests_to(method="GET", contains="/storage/collections/data/")
    assert len(reads) == 2
    assert all(int(r.params["limit"]) <= 1000 for r in reads)


def test_changed_rows_sent_after_read(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    rows = many_rows(1200)
    make_sink(read_page=1000).push(Changes(upserts=rows))
    fake.clear_log()
    changed = many_rows(1200, tag="v2-")[:10] + rows[10:]

    result = make_sink(read_page=1000).push(Changes(upserts=changed))

    assert len(result.written) == 1200
    saves = fake.requests_to(method="POST", contains="batch_save")
    assert len(saves) == 1
    assert fake.rows(*APP)[rows[0].key]["stixbridge_digest"] == "1:v2-0"


def test_read_below_server_row_cap(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    fake.limits["max_rows_per_query"] = 500
    rows = many_rows(1200)
    make_sink(read_page=5000).push(Changes(upserts=rows))
    fake.clear_log()

    result = make_sink(read_page=5000).push(Changes(upserts=rows))

    assert len(result.written) == 1200
    assert fake.write_requests() == []
    reads = fake.requests_to(method="GET", contains="/storage/collections/data/")
    assert all(int(r.params["limit"]) < 500 for r in reads)


def test_bad_credentials_name_the_fix(make_sink: Callable[..., SplunkSink]) -> None:
    from stixbridge.secrets import Secret

    sink = make_sink(password=Secret("wrong"))

    with pytest.raises(RemoteRejectedError, match="HTTP 401.*check username and password") as caught:
        sink.push(Changes(upserts=[make_row()]))

    assert caught.value.status == 401


def test_injected_401_after_login_rejected(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    fake.inject(401, match="batch_save", times=5)

    with pytest.raises(RemoteRejectedError, match="HTTP 401"):
        make_sink().push(Changes(upserts=[make_row()]))


def test_expired_session_logs_in_again(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    sink = make_sink()
    sink.push(Changes(upserts=[make_row("198.51.100.1")]))
    fake.expire_sessions()

    result = sink.push(Changes(upserts=[make_row("198.51.100.2")]))

    assert len(result.written) == 1
    assert len(fake.requests_to(contains="/auth/login")) == 2


def test_bearer_token_auth(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    from stixbridge.secrets import Secret

    fake.token = "fake-bearer-token"
    sink = make_sink(username="", password=None, token=Secret("fake-bearer-token"))

    result = sink.push(Changes(upserts=[make_row()]))

    assert len(result.written) == 1
    assert fake.requests_to(contains="/auth/login") == []


def test_503_retried_then_succeeds(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    waits: list[float] = []
    sink = make_sink()
    sink.client.sleep = waits.append
    fake.inject(503, match="batch_save", times=2, retry_after="7")

    result = sink.push(Changes(upserts=[make_row()]))

    assert len(result.written) == 1
    assert waits == [7.0, 7.0]
    assert [r.status for r in fake.requests_to(contains="batch_save")] == [503, 503, 200]


def test_503_gives_up_after_retries(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    fake.inject(503, match="batch_save", times=10)

    with pytest.raises(TransientError, match="HTTP 503"):
        make_sink(retries=2).push(Changes(upserts=[make_row()]))

    assert len(fake.requests_to(contains="batch_save")) == 3


def test_timeout_is_transient(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    fake.inject(None, delay=1.0, match="batch_save", times=2)

    with pytest.raises(TransientError, match="did not respond in time"):
        make_sink(timeout=0.3, retries=1).push(Changes(upserts=[make_row()]))


def test_timeout_then_retry_succeeds(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    fake.inject(None, delay=1.0, match="batch_save", times=1)

    result = make_sink(timeout=0.3, retries=1).push(Changes(upserts=[make_row()]))

    assert len(result.written) == 1


def test_refused_connection_is_transient(make_sink: Callable[..., SplunkSink], fake: FakeSplunk) -> None:
    sink = make_sink(retries=0)
    fake.stop()

    with pytest.raises(TransientError, match="connection to Splunk failed"):
        sink.push(Changes(upserts=[make_row()]))


def test_secret_never_logged(
    fake: FakeSplunk, make_sink: Callable[..., SplunkSink], caplog: pytest.LogCaptureFixture
) -> None:
    from stixbridge.secrets import Secret

    caplog.set_level(logging.DEBUG)
    fake.password = "sentinel-Pa55-value"
    sink = make_sink(password=Secret("sentinel-Pa55-value"))
    fake.inject(503, match="batch_save", times=1)

    sink.push(Changes(upserts=[make_row()]))

    assert "sentinel-Pa55-value" not in caplog.text
    assert "sentinel-Pa55-value" not in repr(sink)
    assert "sentinel-Pa55-value" not in sink.describe()


def test_failed_push_counts_requests(fake: FakeSplunk, make_sink: Callable[..., SplunkSink]) -> None:
    result = make_sink().push(Changes(upserts=many_rows(10)))

    assert result.requests == len(fake.log) - 1  # the login is splunk-sdk's own request
    assert result.bytes_sent >= sum(r.body_size for r in fake.requests_to(contains="batch_save"))


def test_describe_names_places(make_sink: Callable[..., SplunkSink]) -> None:
    text = make_sink(targets=["app", "es"]).describe()

    assert "TA-stixbridge/stixbridge_intel" in text
    assert "DA-ESS-ThreatIntelligence/*_intel" in text
