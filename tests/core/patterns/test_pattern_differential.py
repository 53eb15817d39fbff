"""Differential tests: our valid/invalid verdict against stix2-patterns, the reference validator.

Verdicts must agree for every pattern, except for the disagreement kinds in
ALLOWED_DISAGREEMENTS. docs/patterns.md explains each kind, and a test below keeps the table
there and this allow-list identical.
"""

import glob
import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from stixbridge.patterns import (
    STRING_FORM,
    Comparison,
    CompoundComparison,
    CompoundObservation,
    Observation,
    ObservationExpression,
    Pattern,
    PatternError,
    QualifiedObservation,
    StartStop,
    parse_pattern,
)
from stixbridge.patterns.hashes import canonical_hash_name, is_hash_path
from stixbridge.patterns.lexer import WHITESPACE, tokenize
from tests.core.patterns import pattern_corpus

validator = pytest.importorskip("stix2patterns.validator")

REPO_ROOT = Path(__file__).parents[3]
SHARED = REPO_ROOT / ".." / "shared"
DOCS = REPO_ROOT / "docs" / "patterns.md"

ALLOWED_DISAGREEMENTS = {
    "start-stop-plain-string",
    "exists-in-stix-2.0",
    "repeated-qualifier-in-stix-2.0",
    "hash-list-checked-per-value",
    "hash-match-expression-not-checked",
    "non-string-hash-value",
    "negative-list-index",
    "impossible-timestamp",
    "leading-comment",
}


def reference_accepts(text: str, stix_version: str) -> bool:
    """Return the stix2-patterns verdict; an exception inside it counts as a rejection."""
    try:
        return not validator.run_validator(text, stix_version)
    except Exception:
        # stix2-patterns 2.1.2 raises instead of reporting for some inputs, such as "" or [-1].
        return False


def our_verdict(text: str) -> tuple[Pattern | None, PatternError | None]:
    try:
        return parse_pattern(text), None
    except PatternError as exc:
        return None, exc


def disagreement_kind(text: str, stix_version: str, tree: Pattern | None, error: PatternError | None) -> str:
    """Name the documented kind of a disagreement, or describe it when it fits no kind."""
    if tree is not None:
        comparisons = list(_comparisons(tree.expression))
        if any(
            isinstance(qualifier, StartStop) and qualifier.form == STRING_FORM
            for qualifier in _qualifiers(tree.expression)
        ):
            return "start-stop-plain-string"
        if stix_version == "2.0" and any(comparison.operator == "EXISTS" for comparison in comparisons):
            return "exists-in-stix-2.0"
        hash_operators = {comparison.operator for comparison in comparisons if _is_checked_hash(comparison)}
        if "IN" in hash_operators:
            return "hash-list-checked-per-value"
        if hash_operators & {"LIKE", "MATCHES"}:
            return "hash-match-expression-not-checked"
        if _has_negative_index(text):
            return "negative-list-index"
        if re.match(rf"[({WHITESPACE}]*/", text):
            return "leading-comment"
    elif error is not None:
        if "is not a valid date and time" in error.reason:
            return "impossible-timestamp"
        if stix_version == "2.0" and "appears twice on one observation" in error.reason:
            return "repeated-qualifier-in-stix-2.0"
        if "hash value must be a string literal" in error.reason:
            return "non-string-hash-value"
    return f"unexplained: ours={'valid' if tree else error}"


def _has_negative_index(text: str) -> bool:
    """Tell whether a list index is written with a minus sign (``[-1]``, also ``[-0]``)."""
    tokens = tokenize(text)
    return any(
        previous.kind == "[" and token.kind == "INT" and token.text.startswith("-")
        for previous, token in zip(tokens, tokens[1:], strict=False)
    )


def _is_checked_hash(comparison: Comparison) -> bool:
    if not is_hash_path(comparison.path):
        return False
    return canonical_hash_name(str(comparison.path[-1])) not in (None, "TLSH")


def _comparisons(node: ObservationExpression | Comparison | CompoundComparison) -> Iterator[Comparison]:
    if isinstance(node, Comparison):
        yield node
    elif isinstance(node, CompoundComparison | CompoundObservation):
        for operand in node.operands:
            yield from _comparisons(operand)
    elif isinstance(node, Observation | QualifiedObservation):
        yield from _comparisons(node.expression)


def _qualifiers(node: ObservationExpression) -> Iterator[object]:
    if isinstance(node, QualifiedObservation):
        yield node.qualifier
        yield from _qualifiers(node.expression)
    elif isinstance(node, CompoundObservation):
        for operand in node.operands:
            yield from _qualifiers(operand)


def compare_verdicts(patterns: list[tuple[str, str]]) -> tuple[Counter[str], list[str]]:
    """Compare verdicts for (pattern, spec version) pairs.

    Returns:
        Counts by outcome ("agree-valid", "agree-invalid" or a disagreement kind), and one
        line per disagreement that is not in ALLOWED_DISAGREEMENTS.
    """
    counts: Counter[str] = Counter()
    unexplained = []
    for text, stix_version in patterns:
        tree, error = our_verdict(text)
        reference = reference_accepts(text, stix_version)
        if (tree is not None) == reference:
            counts["agree-valid" if reference else "agree-invalid"] += 1
            continue

        kind = disagreement_kind(text, stix_version, tree, error)
        counts[kind] += 1
        if kind not in ALLOWED_DISAGREEMENTS:
            verdict = "accepts" if reference else "rejects"
            unexplained.append(f"{stix_version} {text!r}: reference {verdict}, {kind}")
    return counts, unexplained


def indicator_patterns(document: object) -> Iterator[tuple[str, str]]:
    """Yield (pattern, spec version) of every indicator in a JSON document, even inside strings."""
    if isinstance(document, dict):
        if document.get("type") == "indicator" and isinstance(document.get("pattern"), str):
            yield document["pattern"], document.get("spec_version", "2.0")
        for value in document.values():
            yield from indicator_patterns(value)
    elif isinstance(document, list):
        for value in document:
            yield from indicator_patterns(value)
    elif isinstance(document, str) and document.lstrip().startswith("{"):
        try:
            yield from indicator_patterns(json.loads(document))
        except json.JSONDecodeError:
            return


def test_feed_patterns_agree_with_reference() -> None:
    data = SHARED / "data"
    files = sorted(glob.glob(str(data / "pan-unit42-playbook_viewer" / "playbook_json" / "*.json")))
    files += sorted(glob.glob(str(data / "mvt-project-mvt-indicators" / "**" / "*.stix2"), recursive=True))
    if not files:
        pytest.skip("no STIX feed files next to the repository")

    patterns: dict[tuple[str, str], None] = {}
    for name in files:
        with open(name, encoding="utf-8") as handle:
            for pair in indicator_patterns(json.load(handle)):
                patterns[pair] = None

    counts, unexplained = compare_verdicts(list(patterns))

    assert unexplained == []
    assert counts["agree-valid"] > 1000


def test_case_patterns_agree_with_reference() -> None:
    files = sorted(glob.glob(str(SHARED / "cases" / "*.json")))
    if not files:
        pytest.skip("no bug-report cases next to the repository")

    patterns = []
    for name in files:
        with open(name, encoding="utf-8") as handle:
            case = json.load(handle)
        patterns += list(indicator_patterns(case.get("input")))
        generated = case.get("expected", {}).get("patterns_stix_text", {})
        patterns += [(text, "2.1") for text in generated.values()]

    counts, unexplained = compare_verdicts(patterns)

    assert unexplained == []
    assert counts["start-stop-plain-string"] >= 1
    assert counts["agree-invalid"] >= 2


def test_generated_patterns_agree_with_reference() -> None:
    rng = random.Random(20240501)
    valid = [(pattern_corpus.valid_pattern(rng), "2.1") for _ in range(1200)]
    mutated = [(pattern_corpus.mutated_pattern(rng), "2.1") for _ in range(1800)]

    valid_counts, valid_unexplained = compare_verdicts(valid)
    mutated_counts, mutated_unexplained = compare_verdicts(mutated)

    assert valid_unexplained == []
    assert mutated_unexplained == []
    assert valid_counts["agree-valid"] == len(valid)
    assert mutated_counts["agree-invalid"] > len(mutated) // 2


DIFFERENCE_PATTERNS = [
    ("[a:x = 1] START '2024-01-01T00:00:00Z' STOP '2024-02-01T00:00:00Z'", "2.1", "start-stop-plain-string"),
    ("[EXISTS a:x]", "2.0", "exists-in-stix-2.0"),
    ("[a:x = 1] WITHIN 1 SECONDS WITHIN 2 SECONDS", "2.0", "repeated-qualifier-in-stix-2.0"),
    ("[file:hashes.MD5 IN ('d41d8cd98f00b204e9800998ecf8427e')]", "2.1", "hash-list-checked-per-value"),
    ("[file:hashes.MD5 LIKE 'd41d%']", "2.1", "hash-match-expression-not-checked"),
    ("[file:hashes.MD5 = 12345678901234567890123456789012]", "2.1", "non-string-hash-value"),
    ("[file:parts[-1] = 'a']", "2.1", "negative-list-index"),
    ("[file:parts[-0] = 'a']", "2.1", "negative-list-index"),
    ("[a:x = t'2024-02-30T00:00:00Z']", "2.1", "impossible-timestamp"),
    ("[a:x = t'0000-01-01T00:00:00Z']", "2.1", "impossible-timestamp"),
    ("/* comment */ [a:x = 1]", "2.1", "leading-comment"),
]


@pytest.mark.parametrize(("text", "stix_version", "kind"), DIFFERENCE_PATTERNS)
def test_documented_difference_still_differs(text: str, stix_version: str, kind: str) -> None:
    tree, error = our_verdict(text)

    assert (tree is not None) != reference_accepts(text, stix_version)
    assert disagreement_kind(text, stix_version, tree, error) == kind


def test_allow_list_matches_documentation() -> None:
    table_kinds = set(re.findall(r"^\| `([a-z0-9.-]+)` \|", DOCS.read_text(encoding="utf-8"), re.MULTILINE))

    assert table_kinds == ALLOWED_DISAGREEMENTS
