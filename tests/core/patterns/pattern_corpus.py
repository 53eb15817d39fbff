"""Deterministic generators of STIX patterns and comparisons for the pattern tests.

Every generator takes a random.Random, so a fixed seed gives the same corpus on every run.
The patterns cover the whole grammar: all operators and literal kinds, quoted and unquoted
path keys, list indexes, nested AND/OR in and between observations, all qualifiers, and
irregular spacing and comments.
"""

import base64
import random
import string
from datetime import UTC, datetime, timedelta

from stixbridge.patterns import Comparison, escape_literal

OBJECT_TYPES = [
    "file", "ipv4-addr", "domain-name", "url", "x-foo", "app", "network-traffic",
    "windows-registry-key", "email-message", "x509-certificate", "_private", "a1-b_",
]
PLAIN_PATHS = [
    "name", "value", "dst_ref.value", "values[*].data", "x[+1]", "parent_ref.name",
    "extensions.'windows-pebinary-ext'.sections[0].name", "'quoted key'", "_x", "request_header.'Cookie'",
]
HASH_KEYS = ["'SHA-256'", "SHA256", "sha256", "'sha-256'", "MD5", "'md5'", "SHA1", "'SHA-1'", "'SHA-512'"]
HASH_LENGTHS = {"SHA256": 64, "MD5": 32, "SHA1": 40, "SHA512": 128}
# Characters that exercise escaping: apostrophes, backslashes, pattern syntax, non-ASCII.
TRICKY_CHARACTERS = "'\\'\\ab c:/.%_[]()=<>\"é€\t"


def random_text(rng: random.Random, max_length: int = 12) -> str:
    """Return a string rich in apostrophes and backslashes."""
    alphabet = TRICKY_CHARACTERS + string.ascii_letters + string.digits
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_length)))


def random_timestamp(rng: random.Random) -> datetime:
    """Return a UTC datetime with whole or fractional seconds between 1970 and 2100."""
    seconds = rng.randint(0, 4_102_444_800)
    micros = rng.choice([0, 0, rng.randint(1, 999_999)])
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds, microseconds=micros)


def timestamp_text(value: datetime) -> str:
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def _string_literal(rng: random.Random) -> str:
    return escape_literal(random_text(rng))


def _number_literal(rng: random.Random) -> str:
    choice = rng.randint(0, 5)
    if choice == 0:
        return str(rng.randint(-1000, 1000))
    if choice == 1:
        return "+" + str(rng.randint(0, 99))
    if choice == 2:
        return f"{rng.randint(-99, 99)}.{rng.randint(0, 999)}"
    if choice == 3:
        return "." + str(rng.randint(0, 99))
    if choice == 4:
        return "-." + str(rng.randint(0, 99))
    return "0" + f"{rng.randint(0, 9)}.5"


def _literal(rng: random.Random, orderable: bool = False) -> str:
    kinds = ["string", "string", "number", "hex", "binary", "timestamp"]
    if not orderable:
        kinds.append("bool")
    kind = rng.choice(kinds)
    if kind == "string":
        return _string_literal(rng)
    if kind == "number":
        return _number_literal(rng)
    if kind == "hex":
        return "h'" + bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 6))).hex() + "'"
    if kind == "binary":
        encoded = base64.b64encode(bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 7))))
        return "b'" + encoded.decode() + "'"
    if kind == "timestamp":
        return "t'" + timestamp_text(random_timestamp(rng)) + "'"
    return rng.choice(["true", "false"])


def _hash_comparison(rng: random.Random, object_type: str) -> str:
    key = rng.choice(HASH_KEYS)
    normalised = key.strip("'").upper().replace("-", "")
    digest = "".join(rng.choice("0123456789abcdefABCDEF") for _ in range(HASH_LENGTHS[normalised]))
    return f"{object_type}:hashes.{key} {rng.choice(['=', '!=', '=='])} '{digest}'"


def comparison_text(rng: random.Random, object_type: str | None = None) -> str:
    """Return one valid comparison, such as ``file:name LIKE '%.exe'``."""
    object_type = object_type or rng.choice(OBJECT_TYPES)
    if rng.random() < 0.2:
        return _hash_comparison(rng, object_type)
    if rng.random() < 0.05:
        return f"{rng.choice(['', 'NOT '])}EXISTS {object_type}:{rng.choice(PLAIN_PATHS)}"

    path = f"{object_type}:{rng.choice(PLAIN_PATHS)}"
    negation = "NOT " if rng.random() < 0.15 else ""
    operator = rng.choice(["=", "=", "=", "!=", "==", "<>", "<", "<=", ">", ">=", "IN", "LIKE", "MATCHES",
                           "ISSUBSET", "ISSUPERSET"])
    if operator in ("<", "<=", ">", ">="):
        value = _literal(rng, orderable=True)
    elif operator == "IN":
        value = "(" + ", ".join(_literal(rng) for _ in range(rng.randint(0, 4))) + ")"
    elif operator in ("LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"):
        value = _string_literal(rng)
    else:
        value = _literal(rng)
    return f"{path} {negation}{operator} {value}"


def comparison_expression(rng: random.Random, depth: int = 0) -> str:
    """Return the text inside one observation's brackets."""
    if depth >= 2 or rng.random() < 0.6:
        return comparison_text(rng)

    operator = rng.choice(["AND", "OR"])
    operands = [comparison_expression(rng, depth + 1) for _ in range(rng.randint(2, 3))]
    text = f" {operator} ".join(operands)
    return f"({text})" if rng.random() < 0.4 else text


def _qualifier(rng: random.Random) -> str:
    choice = rng.randint(0, 2)
    if choice == 0:
        return f"WITHIN {rng.choice([str(rng.randint(0, 900)), '1.5', '+30', '0.25'])} SECONDS"
    if choice == 1:
        return f"REPEATS {rng.randint(0, 9)} TIMES"
    start = random_timestamp(rng)
    stop = start + timedelta(days=rng.randint(1, 90))
    return f"START t'{timestamp_text(start)}' STOP t'{timestamp_text(stop)}'"


def observation_expression(rng: random.Random, depth: int = 0) -> str:
    """Return a valid observation expression; qualifier kinds never repeat on one observation."""
    if depth >= 2 or rng.random() < 0.65:
        text = "[" + comparison_expression(rng) + "]"
    else:
        operator = rng.choice(["AND", "OR", "FOLLOWEDBY"])
        operands = [observation_expression(rng, depth + 1) for _ in range(rng.randint(2, 3))]
        text = "(" + f" {operator} ".join(operands) + ")"

    kinds_used: set[str] = set()
    while rng.random() < 0.2:
        qualifier = _qualifier(rng)
        kind = qualifier.split()[0]
        if kind in kinds_used:
            break
        kinds_used.add(kind)
        text += " " + qualifier
    return text


def _respace(rng: random.Random, text: str) -> str:
    """Vary spacing around operators and punctuation outside literals, and add the odd comment."""
    parts = []
    in_literal = False
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and in_literal:
            parts.append(text[index : index + 2])
            index += 2
            continue
        if char == "'":
            in_literal = not in_literal
        if not in_literal and char == " " and rng.random() < 0.3:
            replacement = rng.choice(["", "  ", "\t", "\n", " /* note */ "])
            between_words = _is_word_end(text[index - 1]) and _is_word_end(text[index + 1 : index + 2])
            parts.append(" " if replacement == "" and between_words else replacement)
        else:
            parts.append(char)
        index += 1
    return "".join(parts)


def _is_word_end(char: str) -> bool:
    return char.isalnum() or char in "_'"


def valid_pattern(rng: random.Random) -> str:
    """Return a pattern that stix2-patterns 2.1.2 accepts (spacing and comments vary)."""
    text = observation_expression(rng)
    if rng.random() < 0.3:
        text = _respace(rng, text)
    return text


_INSERTIONS = list("'\\[]()=:. ,-+*!<>/tbh0") + ["AND ", " OR", "NOT ", "''", "\\'", "\\\\", "\\W", "[*]",
                                               " START '2024-01-01T00:00:00Z' STOP '2024-02-01T00:00:00Z'",
                                               " WITHIN 5 SECONDS", " REPEATS 2 TIMES", "and", "-1"]


def mutated_pattern(rng: random.Random) -> str:
    """Return a valid pattern with one random edit; most edits make it invalid."""
    text = valid_pattern(rng)
    position = rng.randint(0, len(text))
    edit = rng.randint(0, 4)
    if edit == 0 and text:
        return text[:position] + text[position + 1 :]
    if edit == 1:
        return text[:position] + rng.choice(_INSERTIONS) + text[position:]
    if edit == 2 and len(text) > 1:
        position = min(position, len(text) - 2)
        return text[:position] + text[position + 1] + text[position] + text[position + 2 :]
    if edit == 3:
        return text[:position]
    return text.replace("t'", "'", 1)


def random_comparison(rng: random.Random) -> Comparison:
    """Return a Comparison whose keys and values need quoting and escaping."""
    object_type = rng.choice(OBJECT_TYPES)
    path: list[str | int] = [rng.choice(["name", random_text(rng, 6) or "k", "AND", "true", "a-b"])]
    for _ in range(rng.randint(0, 3)):
        steps: list[str | int] = [random_text(rng, 6), rng.randint(-3, 5), "*", "value", "SHA-256"]
        path.append(rng.choice(steps))
    if "hashes" in path:
        path.remove("hashes")

    operator = rng.choice(["=", "!=", "<", "<=", ">", ">=", "IN", "LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET",
                           "EXISTS"])
    value: object
    if operator == "EXISTS":
        value = None
    elif operator in ("LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"):
        value = random_text(rng)
    elif operator == "IN":
        value = tuple(_random_value(rng, allow_bool=True) for _ in range(rng.randint(0, 4)))
    else:
        value = _random_value(rng, allow_bool=operator in ("=", "!="))
    return Comparison(object_type, tuple(path), operator, rng.random() < 0.2, value)


def _random_value(rng: random.Random, allow_bool: bool) -> object:
    kinds = ["str", "str", "int", "float", "bytes", "datetime"] + (["bool"] if allow_bool else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return random_text(rng)
    if kind == "int":
        return rng.randint(-(10**12), 10**12)
    if kind == "float":
        return rng.choice([rng.uniform(-1e6, 1e6), 1e-7 * rng.random(), 1e20 * rng.random(), -0.0, 0.5])
    if kind == "bytes":
        return bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 8)))
    if kind == "datetime":
        return random_timestamp(rng)
    return rng.choice([True, False])
