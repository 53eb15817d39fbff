from datetime import UTC, datetime

from stixbridge.model import AtomLink, IndicatorRecord, Provenance
from stixbridge.trust.guard import GuardHold, GuardVerdict, TrustGuard
from stixbridge.trust.policy import SourcePolicy, TrustSettings

NOW = datetime(2024, 6, 15, tzinfo=UTC)


def record(*atoms, confidence=50, tlp=1, revoked=False, source="alliance", role="exact"):
    return IndicatorRecord(
        id="indicator--00000000-0000-4000-8000-000000000001",
        modified=NOW,
        created=NOW,
        spec_version="2.1",
        valid_from=NOW,
        valid_until=None,
        revoked=revoked,
        confidence=confidence,
        tlp=tlp,
        name="",
        description="",
        labels=("malicious-activity",),
        pattern="[x:y = 'z']",
        pattern_type="stix",
        provenance=Provenance(source, "c", "identity--a"),
        atoms=[AtomLink(t, v, v, role) for t, v in atoms],
        raw={"id": "indicator--00000000-0000-4000-8000-000000000001", "type": "indicator"},
    )


def guard(*policies, **settings):
    return TrustGuard(TrustSettings(sources=list(policies), **settings))


def test_guard_passes_ordinary_indicator():
    assert guard()(record(("ipv4", "45.9.148.3"), ("domain", "evil-c2.ru"))) is None


def test_guard_quarantines_indicator_when_every_atom_is_held():
    item = guard()(record(("ipv4", "8.8.8.8")))
    assert isinstance(item, GuardHold)
    assert item.reason_code == "guard"
    assert item.held_atoms == (("ipv4", "8.8.8.8"),)
    assert item.matched == ("public-dns-v4",)
    assert "public-dns-v4" in item.reason
    assert item.raw_text is not None


def test_guard_holds_single_atom_and_keeps_rest():
    rec = record(("ipv4", "8.8.8.8"), ("domain", "evil-c2.ru"))
    verdict = guard()(rec)
    assert isinstance(verdict, GuardVerdict)
    assert verdict.keep
    assert [(a.type, a.value) for a in rec.atoms] == [("domain", "evil-c2.ru")]
    assert len(verdict.quarantined) == 1
    held = verdict.quarantined[0]
    assert isinstance(held, GuardHold)
    assert held.held_atoms == (("ipv4", "8.8.8.8"),)
    assert "the rest of the indicator was stored" in held.reason


def test_guard_labels_cloud_atoms_without_holding():
    rec = record(("ipv4", "3.5.140.2"))
    assert guard()(rec) is None
    assert "warninglist:amazon-aws" in rec.labels


def test_guard_group_actions_follow_settings():
    assert isinstance(guard(warninglists={"cloud": "quarantine"})(record(("ipv4", "3.5.140.2"))), GuardHold)
    assert guard(warninglists={"public-dns": "off"})(record(("ipv4", "8.8.8.8"))) is None


def test_guard_allow_by_list_group_and_rule():
    assert guard(SourcePolicy(name="alliance", allow=["public-dns-v4"]))(record(("ipv4", "8.8.8.8"))) is None
    assert guard(SourcePolicy(name="alliance", allow=["public-dns"]))(record(("ipv4", "8.8.8.8"))) is None
    # A /8 also overlaps some public resolver, so both must be allowed.
    wide = guard(SourcePolicy(name="alliance", allow=["wide-network", "public-dns"]))
    assert wide(record(("ipv4-cidr", "45.0.0.0/8"))) is None
    other_source = guard(SourcePolicy(name="other", allow=["public-dns"]))
    assert isinstance(other_source(record(("ipv4", "8.8.8.8"))), GuardHold)


def test_guard_documentation_needs_opt_in():
    assert isinstance(guard()(record(("ipv4", "192.0.2.1"))), GuardHold)
    opted = guard(SourcePolicy(name="alliance", allow=["documentation"]))
    assert opted(record(("ipv4", "192.0.2.1"), ("domain", "c2.example.com"))) is None


def test_guard_documentation_opt_in_covers_nothing_else():
    opted = guard(SourcePolicy(name="alliance", allow=["documentation"]))
    assert isinstance(opted(record(("ipv4", "8.8.8.8"))), GuardHold)


def test_guard_passes_revocations():
    assert guard()(record(("ipv4", "8.8.8.8"), revoked=True)) is None


def test_guard_policy_skips_indicators():
    g = guard(SourcePolicy(name="alliance", min_confidence=60, max_tlp="green", atom_types=["domain"]))
    assert g(record(("domain", "evil-c2.ru"), confidence=40)) == GuardVerdict(keep=False)
    assert g(record(("domain", "evil-c2.ru"), tlp=2)) == GuardVerdict(keep=False)
    assert g(record(("ipv4", "45.9.148.3"))) == GuardVerdict(keep=False)
    assert g(record(("domain", "evil-c2.ru"), confidence=None)) is None
    skipped = g.take_skipped("alliance")
    assert sum(skipped.values()) == 3
    assert g.take_skipped("alliance") == {}


def test_guard_policy_drops_unaccepted_atoms_only():
    rec = record(("ipv4", "45.9.148.3"), ("domain", "evil-c2.ru"))
    assert guard(SourcePolicy(name="alliance", atom_types=["domain"]))(rec) is None
    assert [a.type for a in rec.atoms] == ["domain"]


def test_guard_skipped_stored_version_withheld():
    g = TrustGuard(TrustSettings(sources=[SourcePolicy(name="alliance", min_confidence=60)]), is_stored=lambda _: True)
    rec = record(("domain", "evil-c2.ru"), confidence=10)
    assert g(rec) == GuardVerdict(keep=True)
    assert [a.value for a in rec.atoms] == ["evil-c2.ru"]
    assert rec.withheld == "confidence below min_confidence 60"
    assert rec.composite_reason is None


def test_guard_release_and_repeat():
    g = guard()
    first = g(record(("ipv4", "8.8.8.8")))
    assert isinstance(first, GuardHold)
    assert g(record(("ipv4", "8.8.8.8"))) == GuardVerdict(keep=False)
    g.state.released.add((first.object_id, ("ipv4", "8.8.8.8")))
    assert g(record(("ipv4", "8.8.8.8"))) is None


def test_guard_checks_partial_atoms_but_not_context():
    assert isinstance(guard()(record(("ipv4", "8.8.8.8"), role="partial")), GuardHold)
    assert guard()(record(("ipv4", "8.8.8.8"), role="context")) is None
