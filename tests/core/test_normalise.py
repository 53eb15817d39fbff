from stixbridge.model import Provenance, RawItem
from stixbridge.normalise import FeedContext, normalise_item, spec_version_of
from stixbridge.tlp import Tlp
from tests.core.helpers import indicator

PROV = Provenance("feed", "bundle.json")
SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def run(obj, feed=None):
    return normalise_item(RawItem(obj, PROV), feed or FeedContext())


def atoms(obj):
    result = run(obj)
    assert result.indicator is not None, result.quarantine
    return [(a.type, a.value, a.role) for a in result.indicator.atoms]


def test_normalise_version_detected_per_object():
    assert spec_version_of({"spec_version": "2.1"}) == "2.1"
    assert spec_version_of({"type": "indicator"}) == "2.0"
    result = run(indicator(1, "[ipv4-addr:value = '203.0.113.61']", spec=None))
    assert result.indicator is not None
    assert result.indicator.spec_version == "2.0"
    assert result.indicator.labels == ("malicious-activity",)


def test_normalise_or_splits_into_exact_atoms():
    obj = indicator(1, "[domain-name:value = 'a.example.com' OR domain-name:value = 'b.example.com']")
    assert atoms(obj) == [("domain", "a.example.com", "exact"), ("domain", "b.example.com", "exact")]


def test_normalise_two_observations_or():
    obj = indicator(1, "[ipv4-addr:value = '198.51.100.1'] OR [ipv4-addr:value = '198.51.100.2']")
    assert atoms(obj) == [("ipv4", "198.51.100.1", "exact"), ("ipv4", "198.51.100.2", "exact")]


def test_normalise_hash_with_file_name_keeps_name_as_context():
    obj = indicator(1, f"[file:name = 'setup.exe' AND file:hashes.'SHA-256' = '{SHA256_EMPTY}']")
    result = run(obj)
    assert result.indicator is not None
    (atom,) = result.indicator.atoms
    assert (atom.type, atom.value, atom.role) == ("sha256", SHA256_EMPTY, "exact")
    assert ("name", "setup.exe") in atom.context


def test_normalise_traffic_keeps_ip_with_port_context():
    obj = indicator(1, "[network-traffic:dst_ref.value = '203.0.113.50' AND network-traffic:dst_port = 443]")
    result = run(obj)
    assert result.indicator is not None
    (atom,) = result.indicator.atoms
    assert (atom.type, atom.value, atom.role) == ("ipv4", "203.0.113.50", "exact")
    assert ("dst_port", "443") in atom.context


def test_normalise_sender_with_subject_is_partial():
    obj = indicator(
        1, "[email-message:from_ref.value = 'invoice@example.org' AND email-message:subject = 'Payment due']"
    )
    result = run(obj)
    assert result.indicator is not None
    assert [(a.type, a.value, a.role) for a in result.indicator.atoms] == [("email", "invoice@example.org", "partial")]
    assert result.indicator.composite_reason


def test_normalise_followedby_is_composite_without_atoms():
    obj = indicator(
        1,
        f"([file:hashes.'SHA-256' = '{SHA256_EMPTY}'] FOLLOWEDBY [domain-name:value = 'dl.example.org']) "
        "WITHIN 600 SECONDS",
    )
    result = run(obj)
    assert result.indicator is not None
    assert result.indicator.atoms == []
    assert result.indicator.composite_reason


def test_normalise_partly_flattenable_keeps_or_branch():
    obj = indicator(
        1, "[domain-name:value = 'p.example.com'] OR ([ipv4-addr:value = '198.51.100.9'] AND [url:value = 'http://x.example.com/'])"
    )
    result = run(obj)
    assert result.indicator is not None
    assert [(a.type, a.value) for a in result.indicator.atoms] == [("domain", "p.example.com")]
    assert result.indicator.composite_reason


def test_normalise_hash_key_spellings_one_atom():
    for key in ("'SHA-256'", "SHA256", "sha256"):
        assert atoms(indicator(1, f"[file:hashes.{key} = '{SHA256_EMPTY.upper()}']")) == [
            ("sha256", SHA256_EMPTY, "exact")
        ]


def test_normalise_wrong_hash_length_quarantined():
    result = run(indicator(1, f"[file:hashes.'SHA-256' = '{SHA256_EMPTY[:63]}']"))
    assert result.quarantine is not None
    # The pattern parser checks hash lengths as stix2-patterns does, so this is a pattern error.
    assert result.quarantine.reason_code == "pattern"
    assert "indicator--00000000-0000-4000-8000-000000000001" in result.quarantine.reason
    assert "SHA-256" in result.quarantine.reason


def test_normalise_start_stop_both_forms_set_window():
    plain = run(indicator(1, "[ipv4-addr:value = '198.51.100.7'] START '2024-01-01T00:00:00Z' STOP '2024-02-01T00:00:00Z'", spec=None))
    stamped = run(indicator(2, "[domain-name:value = 'c2.example.net'] START t'2024-01-01T00:00:00Z' STOP t'2024-02-01T00:00:00.000Z'"))
    for result in (plain, stamped):
        assert result.indicator is not None
        assert result.indicator.window_stop is not None
        assert result.indicator.window_stop.isoformat() == "2024-02-01T00:00:00+00:00"
        assert len(result.indicator.atoms) == 1


def test_normalise_escaped_literals_decoded():
    assert atoms(indicator(1, "[file:name = 'o\\'brien_invoice.pdf']")) == [("file-name", "o'brien_invoice.pdf", "exact")]


def test_normalise_invalid_escape_quarantined():
    result = run(indicator(1, "[file:name = 'C:\\Windows\\evil.exe']"))
    assert result.quarantine is not None
    assert result.quarantine.reason_code == "pattern"


def test_normalise_bad_timestamp_quarantined():
    result = run(indicator(1, "[ipv4-addr:value = '198.51.100.7']", valid_from="last tuesday"))
    assert result.quarantine is not None
    assert result.quarantine.reason_code == "timestamp"
    assert "last tuesday" in result.quarantine.reason


def test_normalise_custom_objects_kept():
    custom = {"type": "x-example-collection", "id": "x-example-collection--e17c7173-d85c-41e1-ae4c-f84ab44615a5"}
    assert run(custom).other == custom
    obj = indicator(1, "[domain-name:value = 'custom-props.example.com']", x_example_confidence_band="high")
    result = run(obj)
    assert result.indicator is not None
    assert result.indicator.raw is not None
    assert result.indicator.raw["x_example_confidence_band"] == "high"


def test_normalise_unknown_observable_type_kept_without_atoms():
    result = run(indicator(1, "[x-example-device:serial = 'ABC']"))
    assert result.indicator is not None
    assert result.indicator.atoms == []
    assert "x-example-device" in (result.indicator.composite_reason or "")


def test_normalise_too_large_quarantined():
    result = normalise_item(RawItem(indicator(1, "[ipv4-addr:value = '198.51.100.7']"), PROV, size=10), FeedContext(), max_object_bytes=5)
    assert result.quarantine is not None
    assert result.quarantine.reason_code == "too-large"


def test_normalise_tlp_from_feed_marking():
    feed = FeedContext()
    marking = {
        "type": "marking-definition",
        "id": "marking-definition--22222222-2222-4222-8222-222222222222",
        "definition_type": "tlp",
        "definition": {"tlp": "amber"},
    }
    run(marking, feed)
    result = run(indicator(1, "[ipv4-addr:value = '198.51.100.7']", object_marking_refs=[marking["id"]]), feed)
    assert result.indicator is not None
    assert result.indicator.tlp == Tlp.AMBER


def test_normalise_ipv6_typed_as_ipv4_becomes_ipv6():
    assert atoms(indicator(1, "[ipv4-addr:value = '2001:db8::1']")) == [("ipv6", "2001:db8::1", "exact")]


def test_normalise_cidr_host_bits_quarantined_and_32_is_address():
    assert atoms(indicator(1, "[ipv4-addr:value = '198.51.100.7/32']")) == [("ipv4", "198.51.100.7", "exact")]
    assert run(indicator(2, "[ipv4-addr:value = '198.51.100.7/24']")).quarantine is not None


def test_normalise_score_expiry_kept_apart_from_valid_until():
    result = run(indicator(1, "[ipv4-addr:value = '198.51.100.7']", x_stixbridge_score_expiry="2024-07-01T00:00:00Z"))
    assert result.indicator is not None
    assert result.indicator.valid_until is None
    assert result.indicator.score_expiry is not None
    assert result.indicator.score_expiry.isoformat() == "2024-07-01T00:00:00+00:00"


def test_normalise_fast_path_matches_full_parser(monkeypatch):
    import stixbridge.normalise as normalise
    from stixbridge.samples import generate_indicators

    objects = [o for o in generate_indicators(2000) if o["type"] == "indicator"]
    objects += [
        indicator(9001, "[file:hashes.sha256 = 'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855']"),
        indicator(9002, "[ipv4-addr:value = '2001:db8::1']"),
        indicator(9003, "[domain-name:value='Example.COM.']"),
        indicator(9004, "[file:hashes.'SHA-256' = 'abc']"),
        indicator(9005, "[url:value = 'hxxp://example[.]com/a']"),
    ]
    fast = [run(o) for o in objects]
    monkeypatch.setattr(normalise, "_extract_simple", lambda record: False)
    full = [run(o) for o in objects]
    for left, right in zip(fast, full, strict=True):
        if left.quarantine is not None or right.quarantine is not None:
            assert left.quarantine == right.quarantine
            continue
        assert left.indicator is not None
        assert right.indicator is not None
        assert [(a.type, a.value, a.display, a.role, a.context) for a in left.indicator.atoms] == [
            (a.type, a.value, a.display, a.role, a.context) for a in right.indicator.atoms
        ]
        assert left.indicator.composite_reason == right.indicator.composite_reason


BAD_IDS = {
    "indicator--not-a-uuid": "is not a UUID in the form 8-4-4-4-12",
    "indicator--00000000-0000-0000-0000-00000000000e": "is not an RFC 4122 UUID",
    "malware--00000000-0000-4000-8000-000000000001": "its type prefix 'malware' is not the object's type",
    "indicator-00000000-0000-4000-8000-000000000001": "is not of the form '<object-type>--<UUID>'",
}


def test_normalise_bad_ids_quarantined_as_invalid_id():
    for bad_id, fault in BAD_IDS.items():
        obj = dict(indicator(1, "[ipv4-addr:value = '198.51.100.1']"), id=bad_id)
        result = run(obj)
        assert result.indicator is None, bad_id
        assert result.quarantine is not None, bad_id
        assert result.quarantine.reason_code == "invalid-id"
        assert repr(bad_id) in result.quarantine.reason
        assert fault in result.quarantine.reason
        assert result.quarantine.object_id == bad_id


def test_normalise_missing_id_quarantined():
    obj = indicator(1, "[ipv4-addr:value = '198.51.100.1']")
    del obj["id"]
    result = run(obj)
    assert result.quarantine is not None
    assert result.quarantine.reason_code == "invalid-id"
    assert "indicator id None is not a valid STIX identifier: it is missing" in result.quarantine.reason


def test_normalise_bad_ids_of_other_objects_quarantined():
    identity = {"type": "identity", "id": "identity--acme", "name": "ACME"}
    marking = {"type": "marking-definition", "id": "marking-definition--00000000-0000-0000-0000-000000000000"}
    custom = {"type": "x-acme-note", "id": "x-acme-note--1"}
    feed = FeedContext()
    for obj in (identity, marking, custom):
        result = run(obj, feed)
        assert result.quarantine is not None, obj
        assert result.quarantine.reason_code == "invalid-id"
    assert feed.identities == {}
    assert feed.markings == {}


def test_normalise_missing_type_stays_invalid():
    result = run({"id": "indicator--00000000-0000-4000-8000-000000000001"})
    assert result.quarantine is not None
    assert result.quarantine.reason_code == "invalid"


def test_normalise_uppercase_uuid_accepted():
    obj = dict(indicator(1, "[ipv4-addr:value = '198.51.100.1']"), id="indicator--6BA7B810-9DAD-41D1-B0B4-00C04FD430C8")
    result = run(obj)
    assert result.indicator is not None, result.quarantine


def test_normalise_bad_created_by_ref_dropped_once_logged(caplog):
    feed = FeedContext()
    first = indicator(1, "[ipv4-addr:value = '198.51.100.1']", created_by_ref="identity--not-a-uuid")
    second = indicator(2, "[ipv4-addr:value = '198.51.100.2']", created_by_ref="identity--not-a-uuid")
    with caplog.at_level("WARNING", logger="stixbridge.normalise"):
        results = [run(first, feed), run(second, feed)]
    for result in results:
        assert result.indicator is not None
        assert result.indicator.provenance.created_by == ""
    assert len(caplog.records) == 1
    assert "created_by_ref 'identity--not-a-uuid' is not a valid identity id" in caplog.text
    assert "the reference is dropped and the indicator is kept" in caplog.text


def test_normalise_created_by_ref_of_wrong_type_dropped():
    obj = indicator(
        1, "[ipv4-addr:value = '198.51.100.1']", created_by_ref="malware--6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    )
    result = run(obj)
    assert result.indicator is not None
    assert result.indicator.provenance.created_by == ""


def test_normalise_valid_created_by_ref_kept():
    creator = "identity--6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    result = run(indicator(1, "[ipv4-addr:value = '198.51.100.1']", created_by_ref=creator))
    assert result.indicator is not None
    assert result.indicator.provenance.created_by == creator
