import pytest

from stixbridge.trust.rules import Rules, is_documentation
from stixbridge.trust.warninglists import WARNINGLIST_GROUPS, WarningListIndex, lists_folder, public_suffixes


@pytest.fixture(scope="module")
def index():
    return WarningListIndex(list(WARNINGLIST_GROUPS))


def names(hits):
    return {hit.name for hit in hits}


def test_lists_ship_inside_the_package():
    folder = lists_folder()
    for group in WARNINGLIST_GROUPS.values():
        for name in group:
            assert (folder / name / "list.json").is_file(), name


@pytest.mark.parametrize(
    ("atom_type", "value", "expected"),
    [
        ("ipv4", "8.8.8.8", "public-dns-v4"),
        ("ipv4", "1.1.1.1", "public-dns-v4"),
        ("ipv6", "2001:4860:4860::8888", "public-dns-v6"),
        ("ipv4", "104.16.1.1", "cloudflare"),
        ("ipv4-cidr", "104.16.0.0/24", "cloudflare"),
        ("ipv4-cidr", "8.8.8.0/24", "public-dns-v4"),
        ("domain", "google.com", "tranco10k"),
        ("domain", "www.google.com", "google"),
        ("url", "https://www.wikipedia.org/", "tranco10k"),
        ("sha256", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "empty-hashes"),
        ("md5", "d41d8cd98f00b204e9800998ecf8427e", "empty-hashes"),
    ],
)
def test_index_finds_listed_atoms(index, atom_type, value, expected):
    assert expected in names(index.match(atom_type, value))


@pytest.mark.parametrize(
    ("atom_type", "value"),
    [
        ("ipv4", "45.9.148.3"),
        ("domain", "evil-c2-update.ru"),
        ("domain", "attacker.blogspot.com"),
        ("url", "https://docs.google.com/uc?id=malware"),
        ("url", "https://www.google.com/x/payload.exe"),
        ("sha256", "a" * 64),
        ("email", "ceo@google.com"),
    ],
)
def test_index_passes_unlisted_and_narrow_atoms(index, atom_type, value):
    assert index.match(atom_type, value) == []


def test_cloud_ranges_are_their_own_group(index):
    hits = index.match("ipv4", "3.5.140.2")
    assert {hit.group for hit in hits} == {"cloud"}


def test_public_suffixes_hold_tlds_and_private_suffixes():
    suffixes = public_suffixes()
    assert {"com", "co.uk", "github.io"} <= suffixes
    assert "example.com" not in suffixes


@pytest.mark.parametrize(
    ("atom_type", "value", "rule"),
    [
        ("ipv4-cidr", "10.0.0.0/8", "wide-network"),
        ("ipv4-cidr", "45.0.0.0/8", "wide-network"),
        ("ipv6-cidr", "2a00::/12", "wide-network"),
        ("ipv4", "10.1.2.3", "non-public-address"),
        ("ipv4", "127.0.0.1", "non-public-address"),
        ("ipv4", "100.64.1.1", "non-public-address"),
        ("ipv6", "fe80::1", "non-public-address"),
        ("ipv6", "fd00::1", "non-public-address"),
        ("ipv4-cidr", "192.168.0.0/24", "non-public-address"),
        ("url", "http://10.0.0.5/admin", "non-public-address"),
        ("domain", "com", "public-suffix"),
        ("domain", "co.uk", "public-suffix"),
        ("url", "http://github.io/", "public-suffix"),
        ("domain", "printer.local", "reserved-name"),
        ("email", "admin@corp.internal", "reserved-name"),
        ("ipv4", "192.0.2.7", "documentation"),
        ("ipv4-cidr", "198.51.100.0/28", "documentation"),
        ("ipv6", "2001:db8::1", "documentation"),
        ("domain", "c2.example.com", "documentation"),
        ("url", "http://dl.example.net/a.bin", "documentation"),
        ("email", "phish@example.org", "documentation"),
        ("domain", "site.test", "documentation"),
    ],
)
def test_rules_hold_what_must_never_be_blocked(atom_type, value, rule):
    rules = Rules(16, 32, public_suffixes)
    assert rule in {hit.name for hit in rules.check(atom_type, value)}


@pytest.mark.parametrize(
    ("atom_type", "value"),
    [
        ("ipv4", "45.9.148.3"),
        ("ipv4-cidr", "45.9.148.0/24"),
        ("ipv4-cidr", "45.9.0.0/16"),
        ("ipv6-cidr", "2a00:1450::/32"),
        ("domain", "evil.co.uk"),
        ("url", "http://evil.co.uk/x"),
        ("sha256", "b" * 64),
    ],
)
def test_rules_pass_ordinary_atoms(atom_type, value):
    assert Rules(16, 32, public_suffixes).check(atom_type, value) == []


def test_rules_prefix_limits_follow_settings():
    assert Rules(8, 32).check("ipv4-cidr", "45.0.0.0/8") == []
    assert [hit.name for hit in Rules(24, 32).check("ipv4-cidr", "45.9.0.0/16")] == ["wide-network"]


def test_documentation_values_are_exactly_the_reserved_ones():
    assert is_documentation("ipv4", "203.0.113.250")
    assert not is_documentation("ipv4", "203.0.114.1")
    assert not is_documentation("ipv4-cidr", "192.0.0.0/16")
    assert not is_documentation("domain", "example.co")
    assert not is_documentation("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
