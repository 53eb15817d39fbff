"""Hash-algorithm keys in object paths and the syntax check of their values.

Producers spell one algorithm several ways (``hashes.'SHA-256'``, ``hashes.SHA256``,
``hashes.sha256``). The lookup ignores case and hyphens, the same normalisation that
stix2-patterns 2.1.2 applies before its own hash-value check.
"""

import re

_HEX = re.compile(r"[0-9a-fA-F]+")
_SSDEEP = re.compile(r"[a-zA-Z0-9/+:.]{1,128}")

# Normalised key -> (name in the STIX hash-algorithm vocabulary, allowed hex lengths).
# SSDEEP and TLSH are not hex digests; TLSH values are not checked.
_ALGORITHMS: dict[str, tuple[str, tuple[int, ...]]] = {
    "MD5": ("MD5", (32,)),
    "MD6": ("MD6", (32, 40, 56, 64, 96, 128)),
    "RIPEMD160": ("RIPEMD-160", (40,)),
    "SHA1": ("SHA-1", (40,)),
    "SHA224": ("SHA-224", (56,)),
    "SHA256": ("SHA-256", (64,)),
    "SHA384": ("SHA-384", (96,)),
    "SHA512": ("SHA-512", (128,)),
    "SHA3224": ("SHA3-224", (56,)),
    "SHA3256": ("SHA3-256", (64,)),
    "SHA3384": ("SHA3-384", (96,)),
    "SHA3512": ("SHA3-512", (128,)),
    "WHIRLPOOL": ("WHIRLPOOL", (128,)),
    "SSDEEP": ("SSDEEP", ()),
    "TLSH": ("TLSH", ()),
}


def canonical_hash_name(key: str) -> str | None:
    """Return the vocabulary name (``'SHA-256'``) for a hash key as written, or None if unknown."""
    entry = _ALGORITHMS.get(key.upper().replace("-", ""))
    return entry[0] if entry else None


def is_hash_path(path: tuple[str | int, ...]) -> bool:
    """Tell whether a comparison on ``path`` compares a hash value (a ``hashes`` key, then a name)."""
    return len(path) >= 2 and isinstance(path[-1], str) and "hashes" in path[:-1]


def hash_value_problem(key: str, value: object) -> str | None:
    """Check a value compared with the hash named ``key``.

    Returns:
        None when the value is well formed or the algorithm is unknown (or TLSH), else a
        sentence saying what is wrong.
    """
    entry = _ALGORITHMS.get(key.upper().replace("-", ""))
    if entry is None:
        return None

    name, lengths = entry
    if not isinstance(value, str):
        return f"the {name} hash value must be a string literal, not {type(value).__name__} {value!r}"
    if name == "SSDEEP":
        if _SSDEEP.fullmatch(value) is None:
            return f"{value!r} is not a valid SSDEEP hash"
        return None
    if not lengths:
        return None

    if _HEX.fullmatch(value) is None or len(value) not in lengths:
        expected = " or ".join(str(length) for length in lengths)
        return (
            f"{value!r} is not a valid {name} hash: "
            f"expected {expected} hex digits, got {len(value)} characters"
        )
    return None
