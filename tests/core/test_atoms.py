"""Tests for canonical atoms: one test group per type, then the STIX path mapping."""

from __future__ import annotations

import dataclasses

import pytest

from stixbridge.atoms import (
    ATOM_TYPES,
    Atom,
    AtomError,
    AtomType,
    atom_from_comparison,
    atom_from_value,
    canonical_hash_algorithm,
    refang,
    registry_key_aliases,
)
from stixbridge.errors import InvalidInputError

# Digests of the empty input, the reserved documentation values that the cases below use.
MD5_EMPTY = "d41d8cd98f00b204e9800998ecf8427e"
SHA1_EMPTY = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
SHA512_EMPTY = (
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
    "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
)
SHA3_256_EMPTY = "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a"
SHA3_512_EMPTY = (
    "a69f73cca23a9ac5c8b567dc185a756e97c982164fe25859e0d1dcc1475c80a6"
    "15b2123af1f5f94c11e3e9402c3ac558f500199d95b6d3e301758586281dcd26"
)
TLSH_DIGEST = "T1" + "A0B1C2D3E4F5" * 5 + "0123456789"


def ip(value: object) -> Atom | None:
    return atom_from_comparison("ipv4-addr", ("value",), value)


def ipv6(value: object) -> Atom | None:
    return atom_from_comparison("ipv6-addr", ("value",), value)


def domain(value: object) -> Atom | None:
    return atom_from_comparison("domain-name", ("value",), value)


def url(value: object) -> Atom | None:
    return atom_from_comparison("url", ("value",), value)


def email(value: object) -> Atom | None:
    return atom_from_comparison("email-addr", ("value",), value)


def file_hash(key: str, value: object) -> Atom | None:
    return atom_from_comparison("file", ("hashes", key), value)


def registry_key(value: object) -> Atom | None:
    return atom_from_comparison("windows-registry-key", ("key",), value)


# --- Types and the Atom value object -------------------------------------------------------------------


def test_atom_type_values_are_stable() -> None:
    # These strings are stored in the database and written in configuration files.
    assert {member.name: member.value for member in AtomType} == {
        "IPV4": "ipv4",
        "IPV6": "ipv6",
        "IPV4_CIDR": "ipv4-cidr",
        "IPV6_CIDR": "ipv6-cidr",
        "DOMAIN": "domain",
        "URL": "url",
        "EMAIL": "email",
        "MD5": "md5",
        "SHA1": "sha1",
        "SHA256": "sha256",
        "SHA512": "sha512",
        "SHA3_256": "sha3-256",
        "SHA3_512": "sha3-512",
        "SSDEEP": "ssdeep",
        "TLSH": "tlsh",
        "FILE_NAME": "file-name",
        "X509_SERIAL": "x509-serial",
        "X509_SHA1": "x509-sha1",
        "X509_SHA256": "x509-sha256",
        "X509_MD5": "x509-md5",
        "REGISTRY_KEY": "registry-key",
        "MUTEX": "mutex",
        "USER_ACCOUNT": "user-account",
        "PROCESS_NAME": "process-name",
        "AS_NUMBER": "as-number",
    }


def test_atom_types_lists_every_value() -> None:
    assert ATOM_TYPES == {member.value for member in AtomType}
    assert isinstance(ATOM_TYPES, frozenset)


def test_atom_equality_ignores_display_and_original() -> None:
    plain = Atom(AtomType.DOMAIN, "xn--bcher-kva.example", "bücher.example")
    from_unicode = Atom(AtomType.DOMAIN, "xn--bcher-kva.example", "bücher.example", "Bücher.example")

    assert plain == from_unicode
    assert hash(plain) == hash(from_unicode)
    assert len({plain, from_unicode}) == 1


def test_atom_equality_needs_same_type() -> None:
    assert Atom(AtomType.MD5, MD5_EMPTY, MD5_EMPTY) != Atom(AtomType.X509_MD5, MD5_EMPTY, MD5_EMPTY)


def test_atom_is_frozen() -> None:
    atom = Atom(AtomType.MUTEX, "Global\\x", "Global\\x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(atom, "value", "other")  # noqa: B010 - a plain assignment would not type-check


def test_atom_error_is_invalid_input() -> None:
    with pytest.raises(AtomError) as caught:
        ip("not an address")

    error = caught.value
    assert error.reason_code == "atom"
    assert error.atom_type is AtomType.IPV4
    assert error.value == "not an address"
    assert isinstance(error, InvalidInputError)
    assert isinstance(error, ValueError)


def test_atom_error_cuts_very_long_value() -> None:
    with pytest.raises(AtomError) as caught:
        file_hash("MD5", "z" * 10_000)

    message = str(caught.value)
    assert len(message) < 400
    assert "10002 characters" in message


def test_refang_is_exported() -> None:
    assert refang("example[.]com") == ("example.com", True)


# --- Hash key spellings and hash values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("SHA-256", "SHA-256"),
        ("SHA256", "SHA-256"),
        ("sha256", "SHA-256"),
        ("sha-256", "SHA-256"),
        ("'SHA-256'", "SHA-256"),
        ('"sha_256"', "SHA-256"),
        ("MD5", "MD5"),
        ("md5", "MD5"),
        ("'md5'", "MD5"),
        ("SHA1", "SHA-1"),
        ("sha-1", "SHA-1"),
        ("SHA-512", "SHA-512"),
        ("sha512", "SHA-512"),
        ("SHA3-256", "SHA3-256"),
        ("sha3_256", "SHA3-256"),
        ("SHA3-512", "SHA3-512"),
        ("sha3512", "SHA3-512"),
        ("SSDEEP", "SSDEEP"),
        ("ssdeep", "SSDEEP"),
        ("TLSH", "TLSH"),
        ("'tlsh'", "TLSH"),
    ],
)
def test_canonical_hash_algorithm_spelling(key: str, expected: str) -> None:
    assert canonical_hash_algorithm(key) == expected


@pytest.mark.parametrize("key", ["SHA-384", "imphash", "x_vendor_hash", "", "'"])
def test_canonical_hash_algorithm_unknown(key: str) -> None:
    assert canonical_hash_algorithm(key) is None


def test_hash_key_spellings_give_one_sha256_atom() -> None:
    # One feed wrote hashes.'SHA-256' with an upper-case value, others the non-spec spellings.
    spellings = [
        ("SHA-256", SHA256_EMPTY.upper()),
        ("SHA256", SHA256_EMPTY),
        ("sha256", SHA256_EMPTY),
        ("'sha-256'", SHA256_EMPTY),
    ]
    atoms = {file_hash(key, value) for key, value in spellings}

    assert atoms == {Atom(AtomType.SHA256, SHA256_EMPTY, SHA256_EMPTY)}


def test_md5_value_lower_cased() -> None:
    assert file_hash("MD5", MD5_EMPTY.upper()) == Atom(AtomType.MD5, MD5_EMPTY, MD5_EMPTY)
    assert file_hash("'md5'", MD5_EMPTY) == Atom(AtomType.MD5, MD5_EMPTY, MD5_EMPTY)


def test_sha1_unquoted_key() -> None:
    assert file_hash("SHA1", SHA1_EMPTY) == Atom(AtomType.SHA1, SHA1_EMPTY, SHA1_EMPTY)


def test_sha256_with_63_characters_rejected() -> None:
    short = SHA256_EMPTY[:-1]

    with pytest.raises(AtomError) as caught:
        file_hash("SHA-256", short)

    assert str(caught.value) == f"SHA-256 needs 64 hex characters, got 63: {short!r}"
    assert caught.value.atom_type is AtomType.SHA256


@pytest.mark.parametrize(
    ("key", "digest", "atom_type"),
    [
        ("MD5", MD5_EMPTY, AtomType.MD5),
        ("SHA-1", SHA1_EMPTY, AtomType.SHA1),
        ("SHA-256", SHA256_EMPTY, AtomType.SHA256),
        ("SHA-512", SHA512_EMPTY, AtomType.SHA512),
        ("SHA3-256", SHA3_256_EMPTY, AtomType.SHA3_256),
        ("SHA3-512", SHA3_512_EMPTY, AtomType.SHA3_512),
    ],
)
def test_hex_digest_length_per_algorithm(key: str, digest: str, atom_type: AtomType) -> None:
    assert file_hash(key, f"  {digest.upper()}\n") == Atom(atom_type, digest, digest)

    with pytest.raises(AtomError, match=f"needs {len(digest)} hex characters, got {len(digest) + 1}"):
        file_hash(key, digest + "0")
    with pytest.raises(AtomError, match=f"needs {len(digest)} hex characters, got {len(digest) - 1}"):
        file_hash(key, digest[:-1])


def test_sha3_256_not_taken_for_sha256() -> None:
    assert file_hash("SHA3-256", SHA3_256_EMPTY).type is AtomType.SHA3_256  # type: ignore[union-attr]


def test_hash_with_non_hex_character_rejected() -> None:
    value = SHA1_EMPTY[:-1] + "g"

    with pytest.raises(AtomError, match=r"SHA-1 needs 40 hex characters, found 'g'"):
        file_hash("SHA-1", value)


def test_empty_hash_rejected() -> None:
    with pytest.raises(AtomError, match="MD5 needs 32 hex characters, got 0"):
        file_hash("MD5", "")


def test_hash_value_must_be_string() -> None:
    with pytest.raises(AtomError, match="must be a string, got int"):
        file_hash("MD5", 12345)


@pytest.mark.parametrize(
    "value",
    [
        "3::",
        "96:abcXYZ+/09:xyz",
        "24576:" + "A" * 64 + ":" + "b" * 32,
        "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C",
    ],
)
def test_ssdeep_kept_as_given(value: str) -> None:
    # Base64 letters are case-sensitive, so the value is never lower-cased.
    assert file_hash("ssdeep", f" {value} ") == Atom(AtomType.SSDEEP, value, value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("97:abc:xyz", "blocksize 97 is not 3 times a power of two"),
        ("0:abc:xyz", "blocksize 0 is not 3 times a power of two"),
        ("9:abc:xyz", "blocksize 9 is not 3 times a power of two"),
        ("96:abc", "blocksize:hash:hash"),
        ("96:ab c:xyz", "blocksize:hash:hash"),
        ("96:" + "A" * 65 + ":x", "blocksize:hash:hash"),
        ('96:abc:xyz,"file.exe"', "blocksize:hash:hash"),
    ],
)
def test_ssdeep_shape_checked(value: str, message: str) -> None:
    with pytest.raises(AtomError, match=message):
        file_hash("SSDEEP", value)


@pytest.mark.parametrize(
    "value",
    [TLSH_DIGEST, TLSH_DIGEST[2:], "t1" + TLSH_DIGEST[2:].lower(), f" {TLSH_DIGEST} "],
)
def test_tlsh_upper_cased(value: str) -> None:
    atom = file_hash("TLSH", value)

    assert atom is not None
    assert atom.type is AtomType.TLSH
    assert atom.value == value.strip().upper()


@pytest.mark.parametrize(
    "value",
    [TLSH_DIGEST[:-1], TLSH_DIGEST[2:-1], TLSH_DIGEST + "AB", "T2" + TLSH_DIGEST[2:], TLSH_DIGEST[:-1] + "G"],
)
def test_tlsh_shape_checked(value: str) -> None:
    with pytest.raises(AtomError, match="TLSH needs 70 hex characters, optionally after the prefix 'T1'"):
        file_hash("TLSH", value)


def test_artifact_hashes_are_file_hashes() -> None:
    assert atom_from_comparison("artifact", ("hashes", "SHA256"), SHA256_EMPTY) == Atom(
        AtomType.SHA256, SHA256_EMPTY, SHA256_EMPTY
    )


def test_process_image_hash_is_file_hash() -> None:
    assert atom_from_comparison("process", ("image_ref", "hashes", "MD5"), MD5_EMPTY) == Atom(
        AtomType.MD5, MD5_EMPTY, MD5_EMPTY
    )


def test_unknown_hash_algorithm_not_matchable() -> None:
    assert file_hash("SHA-384", "ab" * 48) is None
    assert file_hash("x_vendor", "anything") is None


# --- Certificates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "atom_type", "expected"),
    [
        ("SHA-1", SHA1_EMPTY.upper(), AtomType.X509_SHA1, SHA1_EMPTY),
        ("sha256", SHA256_EMPTY, AtomType.X509_SHA256, SHA256_EMPTY),
        ("MD5", MD5_EMPTY, AtomType.X509_MD5, MD5_EMPTY),
        (
            "SHA-1",
            ":".join(SHA1_EMPTY.upper()[index : index + 2] for index in range(0, 40, 2)),
            AtomType.X509_SHA1,
            SHA1_EMPTY,
        ),
    ],
)
def test_x509_fingerprint(key: str, value: str, atom_type: AtomType, expected: str) -> None:
    assert atom_from_comparison("x509-certificate", ("hashes", key), value) == Atom(atom_type, expected, expected)


def test_x509_fingerprint_length_checked() -> None:
    with pytest.raises(AtomError, match="SHA-256 needs 64 hex characters, got 40"):
        atom_from_comparison("x509-certificate", ("hashes", "SHA-256"), SHA1_EMPTY)


def test_x509_sha512_not_matchable() -> None:
    assert atom_from_comparison("x509-certificate", ("hashes", "SHA-512"), SHA512_EMPTY) is None


def test_file_hash_keeps_colons_invalid() -> None:
    with pytest.raises(AtomError, match="found ':'"):
        file_hash("MD5", ":".join(MD5_EMPTY[index : index + 2] for index in range(0, 32, 2)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("36:f7:d4:32:f4:ab:70:ea:d3:ce:98:6e:ea:99:93:49:32:0a:b7:06", "36F7D432F4AB70EAD3CE986EEA999349320AB706"),
        ("4c:0b:1d:19:74:86:a7:66:b4:1a:bf:40:27:21:76:28", "4C0B1D197486A766B41ABF4027217628"),
        ("0x0C9CE3AD", "0C9CE3AD"),
        ("0c 9c e3 ad", "0C9CE3AD"),
        ("55FBB9C7DEBF09809D12CCAA", "55FBB9C7DEBF09809D12CCAA"),
    ],
)
def test_x509_serial_upper_hex_without_separators(value: str, expected: str) -> None:
    assert atom_from_comparison("x509-certificate", ("serial_number",), value) == Atom(
        AtomType.X509_SERIAL, expected, expected
    )


@pytest.mark.parametrize("value", ["", "0x", "serial-xyz", "12:zz"])
def test_x509_serial_invalid(value: str) -> None:
    with pytest.raises(AtomError, match="serial number needs hex digits"):
        atom_from_comparison("x509-certificate", ("serial_number",), value)


# --- IP addresses -------------------------------------------------------------------------------------------


def test_ipv4_network_kept() -> None:
    assert ip("198.51.100.0/24") == Atom(AtomType.IPV4_CIDR, "198.51.100.0/24", "198.51.100.0/24")
    assert ip("192.0.2.0/25") == Atom(AtomType.IPV4_CIDR, "192.0.2.0/25", "192.0.2.0/25")


def test_ipv4_slash_32_is_plain_address() -> None:
    assert ip("203.0.113.9/32") == Atom(AtomType.IPV4, "203.0.113.9", "203.0.113.9")


def test_ipv4_host_bits_rejected_naming_network() -> None:
    with pytest.raises(AtomError) as caught:
        ip("198.51.100.77/24")

    message = str(caught.value)
    assert "'198.51.100.77/24'" in message
    assert "host bits set" in message
    assert "198.51.100.0/24" in message
    assert caught.value.atom_type is AtomType.IPV4_CIDR


def test_ipv4_host_bits_message_suggests_network() -> None:
    with pytest.raises(AtomError, match=r"write the network 198\.51\.100\.0/24"):
        ip("198.51.100.7/24")


@pytest.mark.parametrize("value", ["0.0.0.0/0", "10.0.0.0/8", "198.51.100.128/25"])
def test_ipv4_network_prefixes(value: str) -> None:
    assert ip(value) == Atom(AtomType.IPV4_CIDR, value, value)


def test_ipv4_bad_octet_rejected() -> None:
    with pytest.raises(AtomError, match="300 is not a valid octet"):
        ip("198.51.100.300")


@pytest.mark.parametrize("value", ["010.0.0.1", "198.51.100.07", "198.051.100.7"])
def test_ipv4_leading_zero_rejected(value: str) -> None:
    with pytest.raises(AtomError, match="leading zero"):
        ip(value)


def test_ipv4_cidr_leading_zero_rejected() -> None:
    with pytest.raises(AtomError, match="leading zero"):
        ip("010.0.0.0/8")


@pytest.mark.parametrize("value", ["198.51.100.0/33", "198.51.100.0/", "198.51.100.0/024", "198.51.100.0/x"])
def test_ipv4_bad_prefix_rejected(value: str) -> None:
    with pytest.raises(AtomError, match="prefix length must be 0 to 32"):
        ip(value)


@pytest.mark.parametrize("value", ["198.51.100", "198.51.100.7.1"])
def test_ipv4_wrong_octet_count_rejected(value: str) -> None:
    with pytest.raises(AtomError, match="has 4 octets"):
        ip(value)


@pytest.mark.parametrize("value", ["example.com", "", "   ", "198.51.100.x"])
def test_ipv4_non_address_rejected(value: str) -> None:
    with pytest.raises(AtomError):
        ip(value)


def test_ip_value_must_be_string() -> None:
    with pytest.raises(AtomError, match="must be a string, got int"):
        ip(3325256704)


def test_ipv6_under_ipv4_object_typed_ipv6() -> None:
    assert ip("2001:db8::5") == Atom(AtomType.IPV6, "2001:db8::5", "2001:db8::5")


def test_ipv6_long_upper_case_compressed() -> None:
    atom = ipv6("2001:0DB8:0000:0000:0000:0000:0000:0005")

    assert atom == Atom(AtomType.IPV6, "2001:db8::5", "2001:db8::5")
    assert atom == ip("2001:db8::5")


def test_ipv4_mapped_ipv6_stays_ipv6() -> None:
    assert ipv6("::ffff:198.51.100.5") == Atom(AtomType.IPV6, "::ffff:198.51.100.5", "::ffff:198.51.100.5")
    assert ipv6("::FFFF:C633:6405") == Atom(AtomType.IPV6, "::ffff:198.51.100.5", "::ffff:198.51.100.5")


def test_plain_ipv4() -> None:
    assert ip("198.51.100.5") == Atom(AtomType.IPV4, "198.51.100.5", "198.51.100.5")


def test_ipv4_under_ipv6_object_typed_ipv4() -> None:
    assert ipv6("198.51.100.6") == Atom(AtomType.IPV4, "198.51.100.6", "198.51.100.6")


def test_ipv6_network_kept() -> None:
    assert ipv6("2001:db8:abcd::/48") == Atom(AtomType.IPV6_CIDR, "2001:db8:abcd::/48", "2001:db8:abcd::/48")
    assert ipv6("2001:DB8:ABCD:0::/48") == Atom(AtomType.IPV6_CIDR, "2001:db8:abcd::/48", "2001:db8:abcd::/48")


def test_ipv6_network_under_ipv4_object_typed_ipv6() -> None:
    assert ip("2001:db8:abcd::/48") == Atom(AtomType.IPV6_CIDR, "2001:db8:abcd::/48", "2001:db8:abcd::/48")


def test_ipv6_slash_128_is_plain_address() -> None:
    assert ipv6("2001:db8::5/128") == Atom(AtomType.IPV6, "2001:db8::5", "2001:db8::5")


def test_ipv6_host_bits_rejected_naming_network() -> None:
    with pytest.raises(AtomError, match=r"has host bits set: write the network 2001:db8::/64"):
        ipv6("2001:db8::5/64")


@pytest.mark.parametrize("value", ["2001:db8::5::1", "2001:db8:::5", "12345::1", "2001:db8::/129"])
def test_ipv6_invalid_rejected(value: str) -> None:
    with pytest.raises(AtomError, match="invalid IPv6"):
        ipv6(value)


def test_ipv6_zone_index_rejected() -> None:
    with pytest.raises(AtomError, match="zone index"):
        ipv6("fe80::1%eth0")


# --- Domain names -----------------------------------------------------------------------------------------


def test_domain_lower_cased_without_trailing_dot() -> None:
    assert domain("Login.EXAMPLE.com.") == Atom(AtomType.DOMAIN, "login.example.com", "login.example.com")


def test_domain_with_underscore_accepted() -> None:
    assert domain("_dmarc.example.com") == Atom(AtomType.DOMAIN, "_dmarc.example.com", "_dmarc.example.com")


def test_domain_single_label_accepted() -> None:
    assert domain("localhost") == Atom(AtomType.DOMAIN, "localhost", "localhost")


def test_idn_spellings_give_same_atom() -> None:
    from_unicode = domain("Bücher.Example.")
    from_punycode = domain("xn--bcher-kva.example")

    assert from_unicode == from_punycode
    assert from_unicode is not None and from_punycode is not None
    assert from_unicode.value == "xn--bcher-kva.example"
    assert from_unicode.display == "bücher.example"
    assert from_punycode.display == "bücher.example"


def test_idn_original_only_when_encoding_changed_value() -> None:
    from_unicode = domain("bücher.example")
    from_punycode = domain("xn--bcher-kva.example")

    assert from_unicode is not None and from_punycode is not None
    assert from_unicode.original == "bücher.example"
    assert from_punycode.original is None


def test_idn_uses_idna_2008() -> None:
    # IDNA 2003 maps 'ß' to 'ss', but IDNA 2008 keeps it, so this name differs from fass.de.
    atom = domain("faß.de")

    assert atom == Atom(AtomType.DOMAIN, "xn--fa-hia.de", "faß.de")


def test_idn_ideographic_full_stop_is_separator() -> None:
    atom = domain("例え。テスト")

    assert atom is not None
    assert atom.value == "xn--r8jz45g.xn--zckzah"
    assert atom.display == "例え.テスト"


def test_idn_trailing_ideographic_full_stop_removed() -> None:
    assert domain("例え。テスト。") == domain("例え.テスト")


def test_idn_label_with_underscore_next_to_unicode_label() -> None:
    atom = domain("_dmarc.bücher.example")

    assert atom == Atom(AtomType.DOMAIN, "_dmarc.xn--bcher-kva.example", "_dmarc.bücher.example")


def test_domain_invalid_punycode_rejected() -> None:
    with pytest.raises(AtomError, match="punycode"):
        domain("xn--zz.example")


def test_domain_invalid_unicode_label_rejected() -> None:
    with pytest.raises(AtomError, match="invalid internationalised domain name"):
        domain("bü☃cher.example")


def test_domain_label_over_63_octets_rejected() -> None:
    with pytest.raises(AtomError, match="is 64 characters long, the maximum is 63"):
        domain("a" * 64 + ".example")


def test_domain_label_of_63_octets_accepted() -> None:
    name = "a" * 63 + ".example"
    assert domain(name) == Atom(AtomType.DOMAIN, name, name)


def test_domain_idn_label_over_63_octets_rejected() -> None:
    with pytest.raises(AtomError):
        domain("ü" * 60 + ".example")


def test_domain_over_253_octets_rejected() -> None:
    name = ".".join(["a" * 63] * 4)  # 255 characters

    with pytest.raises(AtomError, match="is 255 characters long, the maximum is 253"):
        domain(name)


def test_domain_of_253_octets_accepted() -> None:
    name = ".".join(["a" * 63] * 3 + ["a" * 61])

    assert len(name) == 253
    assert domain(name) == Atom(AtomType.DOMAIN, name, name)


@pytest.mark.parametrize("value", ["a..example", ".example.com", "example.com.."])
def test_domain_empty_label_rejected(value: str) -> None:
    with pytest.raises(AtomError, match="empty label"):
        domain(value)


@pytest.mark.parametrize("value", ["exa mple.com", "example.com/path", "example.com:80", "*.example.com"])
def test_domain_bad_character_rejected(value: str) -> None:
    with pytest.raises(AtomError, match="is not allowed in a domain name"):
        domain(value)


def test_domain_unicode_with_space_rejected() -> None:
    with pytest.raises(AtomError, match="white space"):
        domain("bü cher.example")


def test_domain_empty_rejected() -> None:
    with pytest.raises(AtomError, match="domain name is empty"):
        domain("  ")


def test_domain_all_digit_last_label_rejected() -> None:
    with pytest.raises(AtomError, match="last label is all digits"):
        domain("host.123")


def test_domain_holding_ip_typed_as_ip() -> None:
    assert domain("198.51.100.1") == Atom(AtomType.IPV4, "198.51.100.1", "198.51.100.1")
    assert domain("2001:db8::1") == Atom(AtomType.IPV6, "2001:db8::1", "2001:db8::1")


def test_domain_holding_bad_ip_rejected() -> None:
    with pytest.raises(AtomError, match="300 is not a valid octet"):
        domain("198.51.100.300")


# --- URLs ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("HTTP://Example.COM/Path?Query=A#Frag", "http://example.com/Path?Query=A#Frag"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com:0443/a", "https://example.com/a"),
        ("http://example.com:/a", "http://example.com/a"),
        ("http://example.com", "http://example.com"),
        ("http://example.com./a", "http://example.com/a"),
        ("http://User:Secret@Example.com/a", "http://User:Secret@example.com/a"),
        ("http://198.51.100.7:8080/x", "http://198.51.100.7:8080/x"),
        ("http://[2001:DB8:0::1]:80/x", "http://[2001:db8::1]/x"),
        ("http://[2001:db8::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        ("ftp://Files.Example.org/Pub", "ftp://files.example.org/Pub"),
        ("https://example.com/a%2Fb?x=%41", "https://example.com/a%2Fb?x=%41"),
        ("  https://example.com/a  ", "https://example.com/a"),
    ],
)
def test_url_canonical(value: str, expected: str) -> None:
    assert url(value) == Atom(AtomType.URL, expected, expected)


def test_url_idn_host_punycode_with_unicode_display() -> None:
    atom = url("HTTPS://Bücher.Example:443/Straße?q=Ä")

    assert atom == Atom(AtomType.URL, "https://xn--bcher-kva.example/Straße?q=Ä", "https://bücher.example/Straße?q=Ä")
    assert atom is not None
    assert atom.original == "HTTPS://Bücher.Example:443/Straße?q=Ä"


def test_url_punycode_host_keeps_no_original() -> None:
    atom = url("https://xn--bcher-kva.example/")

    assert atom is not None
    assert atom.display == "https://bücher.example/"
    assert atom.original is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Example.COM/Path", "example.com/Path"),
        ("Example.COM:8080/Path", "example.com:8080/Path"),
        ("WWW.Example.com", "www.example.com"),
        ("198.51.100.7/Path", "198.51.100.7/Path"),
        ("mailto:Someone@Example.com", "mailto:Someone@Example.com"),
        ("urn:isbn:0451450523", "urn:isbn:0451450523"),
        ("/Relative/Path", "/Relative/Path"),
        ("Not A Host/x", "Not A Host/x"),
    ],
)
def test_url_without_scheme(value: str, expected: str) -> None:
    assert url(value) == Atom(AtomType.URL, expected, expected)


def test_url_without_scheme_idn_host() -> None:
    assert url("Bücher.example/a") == Atom(AtomType.URL, "xn--bcher-kva.example/a", "bücher.example/a")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http:///path", "it has no host"),
        ("https://example.com:99999/", "port '99999' is not a number"),
        ("https://example.com:8o/", "port '8o' is not a number"),
        ("http://exa mple.com/", "the host is invalid"),
        ("http://198.51.100.300/", "300 is not a valid octet"),
        ("http://[2001:db8::1/", "no closing"),
        ("http://[2001:db8::1]x/", "unexpected text after the IPv6 host"),
        ("http://[not-v6]/", "the host is invalid"),
        ("http://[198.51.100.1]/", "the host is invalid"),
        ("http://[fe80::1%25eth0]/", "zone index"),
        ("http://[2001:db8::/32]/", "no closing"),
        ("", "URL is empty"),
    ],
)
def test_url_invalid(value: str, message: str) -> None:
    with pytest.raises(AtomError, match=message):
        url(value)


def test_url_without_host_kept_for_file_scheme() -> None:
    assert url("file:///C:/Users/Public/x.exe") == Atom(
        AtomType.URL, "file:///C:/Users/Public/x.exe", "file:///C:/Users/Public/x.exe"
    )


def test_url_error_quotes_whole_url() -> None:
    with pytest.raises(AtomError) as caught:
        url("http://exa mple.com/x")

    assert "'http://exa mple.com/x'" in str(caught.value)
    assert caught.value.atom_type is AtomType.URL


# --- Email addresses -----------------------------------------------------------------------------------------


def test_email_domain_lower_cased_local_part_kept() -> None:
    assert email("Billing.Dept@Example.COM") == Atom(
        AtomType.EMAIL, "Billing.Dept@example.com", "Billing.Dept@example.com"
    )


def test_email_idn_domain() -> None:
    atom = email("Info@Bücher.Example")

    assert atom == Atom(AtomType.EMAIL, "Info@xn--bcher-kva.example", "Info@bücher.example")
    assert atom is not None
    assert atom.original == "Info@Bücher.Example"


def test_email_splits_on_last_at_sign() -> None:
    assert email('"a@b"@example.com') == Atom(AtomType.EMAIL, '"a@b"@example.com', '"a@b"@example.com')


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("billing.example.com", "expected local-part@domain"),
        ("@example.com", "expected local-part@domain"),
        ("billing@", "expected local-part@domain"),
        ("bill ing@example.com", "local part contains white space"),
        ("billing@exa mple.com", "the domain is invalid"),
        ("Billing <billing@example.com>", "white space"),
    ],
)
def test_email_invalid(value: str, message: str) -> None:
    with pytest.raises(AtomError, match=message):
        email(value)


@pytest.mark.parametrize(
    "path",
    [
        ("from_ref", "value"),
        ("sender_ref", "value"),
        ("to_refs", "*", "value"),
        ("to_refs", 0, "value"),
        ("to_ref", "value"),
        ("cc_refs", "*", "value"),
        ("bcc_refs", 3, "value"),
    ],
)
def test_email_message_address_paths(path: tuple[str | int, ...]) -> None:
    assert atom_from_comparison("email-message", path, "Billing@Example.com") == Atom(
        AtomType.EMAIL, "Billing@example.com", "Billing@example.com"
    )


def test_email_message_path_as_list_accepted() -> None:
    path = ["to_refs", "*", "value"]
    atom = atom_from_comparison("email-message", path, "a@example.com")

    assert atom == Atom(AtomType.EMAIL, "a@example.com", "a@example.com")


# --- Defanged values -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("object_type", "path", "defanged", "atom_type", "expected"),
    [
        ("url", ("value",), "hxxps://login.example[.]com/reset", AtomType.URL, "https://login.example.com/reset"),
        ("domain-name", ("value",), "cdn[.]example[.]net", AtomType.DOMAIN, "cdn.example.net"),
        ("domain-name", ("value",), "update[dot]example[dot]org", AtomType.DOMAIN, "update.example.org"),
        ("email-addr", ("value",), "billing[@]example.com", AtomType.EMAIL, "billing@example.com"),
        ("ipv4-addr", ("value",), "198.51.100[.]23", AtomType.IPV4, "198.51.100.23"),
        ("url", ("value",), "h[tt]p://example.net/a", AtomType.URL, "http://example.net/a"),
        ("domain-name", ("value",), "cdn[.]example[.]org", AtomType.DOMAIN, "cdn.example.org"),
        ("email-message", ("from_ref", "value"), "billing[at]example(.)com", AtomType.EMAIL, "billing@example.com"),
        ("network-traffic", ("dst_ref", "value"), "198.51.100(.)23", AtomType.IPV4, "198.51.100.23"),
        ("ipv6-addr", ("value",), "2001[:]db8[:][:]5", AtomType.IPV6, "2001:db8::5"),
    ],
)
def test_defanged_network_value_refanged(
    object_type: str, path: tuple[str, ...], defanged: str, atom_type: AtomType, expected: str
) -> None:
    atom = atom_from_comparison(object_type, path, defanged)

    assert atom == Atom(atom_type, expected, expected)
    assert atom is not None
    assert atom.display == expected
    assert atom.original == defanged


def test_live_network_value_has_no_original() -> None:
    atom = url("https://login.example.com/reset")

    assert atom is not None
    assert atom.original is None


def test_defanged_and_live_spellings_give_same_atom() -> None:
    assert domain("cdn[.]example[.]net") == domain("cdn.example.net")


def test_defanged_value_still_invalid_rejected() -> None:
    with pytest.raises(AtomError, match="300 is not a valid octet"):
        ip("198.51.100[.]300")


def test_file_name_with_bracket_marker_untouched() -> None:
    atom = atom_from_comparison("file", ("name",), "report[.]pdf")

    assert atom == Atom(AtomType.FILE_NAME, "report[.]pdf", "report[.]pdf")
    assert atom is not None
    assert atom.original is None


def test_registry_key_not_refanged() -> None:
    value = "HKEY_CLASSES_ROOT\\.lnk\\ShellEx"

    assert registry_key(value) == Atom(AtomType.REGISTRY_KEY, value, value)


def test_mutex_with_bracket_marker_untouched() -> None:
    assert atom_from_comparison("mutex", ("name",), "Global\\lock[at]1") == Atom(
        AtomType.MUTEX, "Global\\lock[at]1", "Global\\lock[at]1"
    )


# --- Registry keys -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("HKLM\\Software\\Run", "HKEY_LOCAL_MACHINE\\Software\\Run"),
        ("hklm\\Software\\Run", "HKEY_LOCAL_MACHINE\\Software\\Run"),
        ("HKCU\\Software\\Run", "HKEY_CURRENT_USER\\Software\\Run"),
        ("HKU\\S-1-5-18\\Software", "HKEY_USERS\\S-1-5-18\\Software"),
        ("HKCR\\.lnk", "HKEY_CLASSES_ROOT\\.lnk"),
        ("HKCC\\System", "HKEY_CURRENT_CONFIG\\System"),
        ("hkey_local_machine\\SOFTWARE", "HKEY_LOCAL_MACHINE\\SOFTWARE"),
        ("HKEY_LOCAL_MACHINE\\SOFTWARE", "HKEY_LOCAL_MACHINE\\SOFTWARE"),
        ("\\REGISTRY\\MACHINE\\SOFTWARE\\Run", "HKEY_LOCAL_MACHINE\\SOFTWARE\\Run"),
        ("\\Registry\\User\\S-1-5-18\\Software", "HKEY_USERS\\S-1-5-18\\Software"),
        ("HKLM", "HKEY_LOCAL_MACHINE"),
        ("  HKLM\\Software  ", "HKEY_LOCAL_MACHINE\\Software"),
        (
            "HKLM\\SYSTEM\\CurrentControlSet\\Services\\BitStreamSvc\\",
            "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\BitStreamSvc",
        ),
        ("HKLM\\", "HKEY_LOCAL_MACHINE"),
        ("\\REGISTRY\\MACHINE\\", "HKEY_LOCAL_MACHINE"),
    ],
)
def test_registry_hive_spelled_out(given: str, expected: str) -> None:
    atom = registry_key(given)

    assert atom is not None
    assert atom.type is AtomType.REGISTRY_KEY
    assert atom.value == expected
    assert atom.display == given.strip()


def test_registry_key_case_preserved() -> None:
    assert registry_key("HKLM\\SOFTWARE\\Microsoft").value != registry_key("HKLM\\software\\microsoft").value  # type: ignore[union-attr]


@pytest.mark.parametrize("value", ["Software\\Microsoft\\Run", "\\REGISTRY\\MACHINEX\\a", "HKXX\\a"])
def test_registry_key_without_known_hive_kept(value: str) -> None:
    assert registry_key(value) == Atom(AtomType.REGISTRY_KEY, value, value)


def test_registry_key_empty_rejected() -> None:
    with pytest.raises(AtomError, match="registry key is empty"):
        registry_key(" ")
    with pytest.raises(AtomError, match="has no key name"):
        registry_key("\\\\")


def test_registry_key_without_hive_loses_trailing_backslash() -> None:
    assert registry_key("Software\\Run\\") == Atom(AtomType.REGISTRY_KEY, "Software\\Run", "Software\\Run\\")


def test_registry_key_aliases() -> None:
    assert registry_key_aliases("HKEY_LOCAL_MACHINE\\SOFTWARE\\Run") == (
        "HKEY_LOCAL_MACHINE\\SOFTWARE\\Run",
        "HKLM\\SOFTWARE\\Run",
        "\\REGISTRY\\MACHINE\\SOFTWARE\\Run",
    )
    assert registry_key_aliases("HKEY_CURRENT_USER\\Software") == (
        "HKEY_CURRENT_USER\\Software",
        "HKCU\\Software",
    )
    assert registry_key_aliases("Software\\x") == ("Software\\x",)


# --- Names, accounts and numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("object_type", "path", "atom_type"),
    [
        ("file", ("name",), AtomType.FILE_NAME),
        ("mutex", ("name",), AtomType.MUTEX),
        ("user-account", ("user_id",), AtomType.USER_ACCOUNT),
        ("user-account", ("account_login",), AtomType.USER_ACCOUNT),
        ("process", ("name",), AtomType.PROCESS_NAME),
        ("process", ("image_ref", "name"), AtomType.PROCESS_NAME),
        ("process", ("binary_ref", "name"), AtomType.PROCESS_NAME),
    ],
)
def test_name_kept_exactly(object_type: str, path: tuple[str, ...], atom_type: AtomType) -> None:
    value = " Mixed Case name.EXE "

    assert atom_from_comparison(object_type, path, value) == Atom(atom_type, value, value)

    with pytest.raises(AtomError, match="is empty"):
        atom_from_comparison(object_type, path, "   ")
    with pytest.raises(AtomError, match="must be a string"):
        atom_from_comparison(object_type, path, None)


@pytest.mark.parametrize(
    ("value", "expected"), [(64496, "64496"), ("64496", "64496"), ("AS64496", "64496"), (" as0 ", "0")]
)
def test_as_number_decimal(value: object, expected: str) -> None:
    assert atom_from_comparison("autonomous-system", ("number",), value) == Atom(AtomType.AS_NUMBER, expected, expected)


def test_as_number_max_accepted() -> None:
    assert atom_from_comparison("autonomous-system", ("number",), 4294967295) == Atom(
        AtomType.AS_NUMBER, "4294967295", "4294967295"
    )


@pytest.mark.parametrize("value", [True, -1, 4294967296, "AS", "AS-1", "64496.5", 64496.0, None])
def test_as_number_invalid(value: object) -> None:
    with pytest.raises(AtomError, match="autonomous system number must be an integer from 0 to 4294967295"):
        atom_from_comparison("autonomous-system", ("number",), value)


# --- Network-traffic references --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.77", Atom(AtomType.IPV4, "203.0.113.77", "203.0.113.77")),
        ("2001:DB8::7", Atom(AtomType.IPV6, "2001:db8::7", "2001:db8::7")),
        ("198.51.100.0/24", Atom(AtomType.IPV4_CIDR, "198.51.100.0/24", "198.51.100.0/24")),
        ("Portal.Example.com", Atom(AtomType.DOMAIN, "portal.example.com", "portal.example.com")),
    ],
)
@pytest.mark.parametrize("reference", ["dst_ref", "src_ref"])
def test_network_traffic_reference_typed_by_value(reference: str, value: str, expected: Atom) -> None:
    assert atom_from_comparison("network-traffic", (reference, "value"), value) == expected


def test_network_traffic_mac_address_not_matchable() -> None:
    assert atom_from_comparison("network-traffic", ("dst_ref", "value"), "00:00:5E:00:53:01") is None


def test_network_traffic_invalid_host_rejected() -> None:
    with pytest.raises(AtomError, match="is not allowed in a domain name"):
        atom_from_comparison("network-traffic", ("dst_ref", "value"), "not a host")


def test_domain_resolves_to_ip() -> None:
    assert atom_from_comparison("domain-name", ("resolves_to_refs", "*", "value"), "198.51.100.14") == Atom(
        AtomType.IPV4, "198.51.100.14", "198.51.100.14"
    )


# --- Properties that are not matchable ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("object_type", "path", "value"),
    [
        ("file", ("size",), 1024),
        ("network-traffic", ("dst_port",), 443),
        ("network-traffic", ("protocols", "*"), "tcp"),
        ("email-message", ("subject",), "Invoice"),
        ("email-message", ("from_ref", "display_name"), "Billing"),
        ("directory", ("path",), "C:\\Users\\Public"),
        ("file", ("parent_directory_ref", "path"), "C:\\Users\\Public"),
        ("windows-registry-key", ("values", "*", "data"), "x"),
        ("x-custom-object", ("value",), "x"),
        ("file", (), "x"),
        ("file", ("hashes",), "x"),
    ],
)
def test_property_not_matchable(object_type: str, path: tuple[str | int, ...], value: object) -> None:
    assert atom_from_comparison(object_type, path, value) is None


# --- MISP composite attribute parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("atom_type", "value", "expected"),
    [
        # domain|ip "portal.example.com|198.51.100.14"
        (AtomType.DOMAIN, "portal.example.com", Atom(AtomType.DOMAIN, "portal.example.com", "portal.example.com")),
        (AtomType.IPV4, "198.51.100.14", Atom(AtomType.IPV4, "198.51.100.14", "198.51.100.14")),
        # ip-dst|port "203.0.113.77|8443" and ip-src|port "2001:db8::7|53"
        (AtomType.IPV4, "203.0.113.77", Atom(AtomType.IPV4, "203.0.113.77", "203.0.113.77")),
        ("ipv4", "2001:db8::7", Atom(AtomType.IPV6, "2001:db8::7", "2001:db8::7")),
        # filename|sha256 and malware-sample "sample.zip|<md5>"
        (AtomType.FILE_NAME, "invoice_2024.exe", Atom(AtomType.FILE_NAME, "invoice_2024.exe", "invoice_2024.exe")),
        (AtomType.SHA256, SHA256_EMPTY, Atom(AtomType.SHA256, SHA256_EMPTY, SHA256_EMPTY)),
        (AtomType.FILE_NAME, "sample.zip", Atom(AtomType.FILE_NAME, "sample.zip", "sample.zip")),
        ("md5", MD5_EMPTY, Atom(AtomType.MD5, MD5_EMPTY, MD5_EMPTY)),
    ],
)
def test_misp_composite_part_canonical(atom_type: AtomType | str, value: str, expected: Atom) -> None:
    assert atom_from_value(atom_type, value) == expected


def test_misp_regkey_part_hive_spelled_out() -> None:
    given = "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\Updater"
    atom = atom_from_value(AtomType.REGISTRY_KEY, given)

    assert atom.value == "HKEY_CURRENT_USER\\Software\\Microsoft\\Windows\\CurrentVersion\\Run\\Updater"
    assert atom.display == given
    assert atom == registry_key(given)


def test_atom_from_value_unknown_type_rejected() -> None:
    with pytest.raises(AtomError, match="unknown atom type 'ip-dst'"):
        atom_from_value("ip-dst", "198.51.100.14")


def test_atom_from_value_checks_hash_length() -> None:
    with pytest.raises(AtomError, match="SHA-1 needs 40 hex characters, got 32"):
        atom_from_value(AtomType.SHA1, MD5_EMPTY)


def test_atom_from_value_every_type_has_builder() -> None:
    samples = {
        AtomType.IPV4: "198.51.100.1",
        AtomType.IPV6: "2001:db8::1",
        AtomType.IPV4_CIDR: "198.51.100.0/24",
        AtomType.IPV6_CIDR: "2001:db8::/32",
        AtomType.DOMAIN: "example.com",
        AtomType.URL: "https://example.com/",
        AtomType.EMAIL: "a@example.com",
        AtomType.MD5: MD5_EMPTY,
        AtomType.SHA1: SHA1_EMPTY,
        AtomType.SHA256: SHA256_EMPTY,
        AtomType.SHA512: SHA512_EMPTY,
        AtomType.SHA3_256: SHA3_256_EMPTY,
        AtomType.SHA3_512: SHA3_512_EMPTY,
        AtomType.SSDEEP: "3::",
        AtomType.TLSH: TLSH_DIGEST,
        AtomType.FILE_NAME: "a.exe",
        AtomType.X509_SERIAL: "0A",
        AtomType.X509_SHA1: SHA1_EMPTY,
        AtomType.X509_SHA256: SHA256_EMPTY,
        AtomType.X509_MD5: MD5_EMPTY,
        AtomType.REGISTRY_KEY: "HKEY_USERS\\x",
        AtomType.MUTEX: "m",
        AtomType.USER_ACCOUNT: "u",
        AtomType.PROCESS_NAME: "p.exe",
        AtomType.AS_NUMBER: "64496",
    }

    assert set(samples) == set(AtomType)
    for atom_type, value in samples.items():
        assert atom_from_value(atom_type, value).type is atom_type
