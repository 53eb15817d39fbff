"""Turns one raw STIX object into an indicator record, another stored object, or a quarantine item.

Objects are read as plain JSON dicts. The ``stix2`` library parses about 2,000 indicators a second, far
too slow for feeds of millions, so it is used only to build objects we publish.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .atoms import AtomError, atom_from_comparison, canonical_hash_algorithm
from .errors import InvalidInputError
from .identifiers import id_problem, is_valid_id_of
from .model import AtomLink, IndicatorRecord, Provenance, QuarantineItem, RawItem
from .patterns import Comparison, PatternError, flatten, parse_pattern
from .timeutil import parse_timestamp
from .tlp import Tlp, tlp_of_marking_definition, tlp_of_refs

logger = logging.getLogger(__name__)

DEFAULT_MAX_OBJECT_BYTES = 1_048_576

# A custom property that sources set when their own scoring (MISP decay, for example) estimates an expiry.
# The store uses it when the producer states no valid_until; it is never published as valid_until.
SCORE_EXPIRY_PROPERTY = "x_stixbridge_score_expiry"

# Object types STIX 2.0 and 2.1 define; anything else is custom and stored as it is.
STIX_TYPES = frozenset(
    {
        "attack-pattern", "campaign", "course-of-action", "grouping", "identity", "incident", "indicator",
        "infrastructure", "intrusion-set", "location", "malware", "malware-analysis", "note", "observed-data",
        "opinion", "report", "threat-actor", "tool", "vulnerability", "relationship", "sighting",
        "marking-definition", "language-content", "extension-definition", "artifact", "autonomous-system",
        "directory", "domain-name", "email-addr", "email-message", "file", "ipv4-addr", "ipv6-addr",
        "mac-addr", "mutex", "network-traffic", "process", "software", "url", "user-account",
        "windows-registry-key", "x509-certificate", "bundle",
    }
)  # fmt: skip

# indicator-type-ov values: 2.0 carries them in `labels`, 2.1 in `indicator_types`.
INDICATOR_TYPES = frozenset(
    {"anomalous-activity", "anonymization", "benign", "compromised", "malicious-activity", "attribution", "unknown"}
)

# Atom types that identify a thing on their own; in an AND group the strongest becomes the exact atom and
# the others its context. A file name or an e-mail subject alone is much broader than the indicator.
_STRENGTH = {
    "sha512": 9, "sha3-512": 9, "sha256": 9, "sha3-256": 9, "sha1": 8, "md5": 8, "tlsh": 7, "ssdeep": 7,
    "x509-sha256": 7, "x509-sha1": 7, "x509-md5": 7, "url": 6, "ipv4": 5, "ipv6": 5, "ipv4-cidr": 5,
    "ipv6-cidr": 5, "domain": 5, "email": 4, "x509-serial": 3, "registry-key": 3, "mutex": 3,
    "as-number": 2, "user-account": 2, "file-name": 1, "process-name": 1,
}  # fmt: skip
_STRONG = 5

# The shape of most indicators in real feeds: one equality on a plain or hash property, a value with no
# backslash and no apostrophe. Such patterns skip the general parser; anything else takes the full path.
_SIMPLE_PATTERN = re.compile(
    r"\[\s*([a-z0-9][a-z0-9-]*):(value|name|key|hashes\.(?:'[A-Za-z0-9-]+'|[A-Za-z0-9-]+))\s*=\s*'([^'\\]*)'\s*\]"
)


@dataclass
class FeedContext:
    """Facts the normaliser learns from a feed as it reads it: marking definitions and identities."""

    markings: dict[str, Tlp | None] = field(default_factory=dict)
    identities: dict[str, str] = field(default_factory=dict)
    provenances: dict[tuple[Provenance, str], Provenance] = field(default_factory=dict)
    """Provenance with each creator, built once per feed instead of once per indicator."""
    tlps: dict[tuple[str, ...], Tlp | None] = field(default_factory=dict)
    """TLP of each marking list seen; cleared when a marking definition is learnt."""
    valid_creators: set[str] = field(default_factory=set)
    """``created_by_ref`` values already checked and found valid; a feed has few producers."""
    dropped_creators: set[str] = field(default_factory=set)
    """Invalid ``created_by_ref`` values already logged, so a feed full of them logs each once."""


@dataclass
class Normalised:
    """The outcome for one raw item: exactly one of the three fields is set."""

    indicator: IndicatorRecord | None = None
    other: dict[str, Any] | None = None
    quarantine: QuarantineItem | None = None
    warnings: list[str] = field(default_factory=list)


def spec_version_of(obj: Mapping[str, Any]) -> str:
    """Return the STIX version of one object: its ``spec_version``, else 2.0, as STIX 2.1 specifies.

    The version is decided per object, never per bundle, because real bundles mix versions.
    """
    version = obj.get("spec_version")
    return version if isinstance(version, str) else "2.0"


def normalise_item(
    item: RawItem,
    feed: FeedContext,
    *,
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
) -> Normalised:
    """Normalise one raw item; a bad object becomes a quarantine item with its reason, never an exception."""
    provenance = item.provenance
    if item.obj is None:
        return Normalised(
            quarantine=QuarantineItem(
                provenance, item.error or "unreadable object", raw_text=item.raw_text, reason_code=item.reason_code
            )
        )
    obj = item.obj
    if item.size > max_object_bytes:
        return _reject(
            item,
            f"object is {item.size} bytes, over the limit of {max_object_bytes}; raise max_object_bytes "
            "in [engine] if such objects are expected",
            "too-large",
        )

    object_type = obj.get("type")
    if not isinstance(object_type, str) or not object_type:
        return _reject(item, f"object has no valid type (type {object_type!r}, id {obj.get('id')!r})", "invalid")
    object_id = obj.get("id")
    if not is_valid_id_of(object_id, object_type):
        # Only a failure pays for the explanation.
        problem = id_problem(object_id, object_type) or "it is not a valid identifier"
        # An id that is not <type>--<RFC 4122 UUID> cannot be referenced from the STIX 2.1 objects we
        # publish (stix2 raises on it), so the object never enters the store.
        return _reject(
            item,
            f"{object_type} id {obj.get('id')!r} is not a valid STIX identifier: {problem}; the producer "
            "must fix the id",
            "invalid-id",
        )
    object_id = str(obj["id"])

    if object_type == "marking-definition":
        feed.markings[object_id] = tlp_of_marking_definition(obj)
        feed.tlps.clear()
        return Normalised(other=obj)
    if object_type == "identity" and isinstance(obj.get("name"), str):
        feed.identities[object_id] = obj["name"]
        return Normalised(other=obj)
    if object_type != "indicator":
        # Custom types (x-..., or anything STIX does not define) are kept as they are and counted.
        return Normalised(other=obj)

    try:
        record = normalise_indicator(obj, provenance, feed)
    except InvalidInputError as exc:
        return _reject(item, str(exc), exc.reason_code)
    record.raw_text = item.raw_text
    return Normalised(indicator=record)


def _reject(item: RawItem, reason: str, code: str) -> Normalised:
    obj = item.obj or {}
    object_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    raw = item.raw_text
    if raw is None and item.obj is not None:
        import json

        raw = json.dumps(item.obj, separators=(",", ":"))
    return Normalised(
        quarantine=QuarantineItem(item.provenance, reason, object_id=object_id, raw_text=raw, reason_code=code)
    )


def _timestamp(obj: Mapping[str, Any], name: str, required: bool) -> Any:
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidInputError(f"indicator {obj.get('id')} has no {name}", reason_code="timestamp")
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        raise InvalidInputError(f"indicator {obj.get('id')}: {name}: {exc}", reason_code="timestamp") from exc


def normalise_indicator(obj: Mapping[str, Any], provenance: Provenance, feed: FeedContext) -> IndicatorRecord:
    """Build an indicator record from a STIX 2.0 or 2.1 indicator dict.

    Raises:
        InvalidInputError: a required property is missing or invalid, or the pattern does not parse.
    """
    object_id = str(obj["id"])
    spec_version = spec_version_of(obj)
    created = _timestamp(obj, "created", True)
    modified = _timestamp(obj, "modified", False) or created
    valid_from = _timestamp(obj, "valid_from", spec_version == "2.0")
    valid_until = _timestamp(obj, "valid_until", False)
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise InvalidInputError(
            f"indicator {object_id}: valid_until {obj.get('valid_until')} is not after valid_from "
            f"{obj.get('valid_from')}",
            reason_code="timestamp",
        )

    pattern = obj.get("pattern")
    if not isinstance(pattern, str) or not pattern.strip():
        raise InvalidInputError(f"indicator {object_id} has no pattern", reason_code="pattern")
    pattern_type = obj.get("pattern_type", "stix") if spec_version != "2.0" else "stix"
    labels = _strings(obj.get("labels"))
    types = _strings(obj.get("indicator_types"))
    if types:
        labels = tuple(dict.fromkeys(types + labels)) if labels or len(types) > 1 else types

    confidence = obj.get("confidence")
    if not (isinstance(confidence, int) and not isinstance(confidence, bool) and 0 <= confidence <= 100):
        confidence = None

    created_by = obj.get("created_by_ref")
    if created_by is not None and created_by not in feed.valid_creators:
        created_by = _creator(obj, feed)
    created_by = created_by or ""
    if created_by and not provenance.created_by:
        key = (provenance, created_by)
        cached = feed.provenances.get(key)
        if cached is None:
            cached = feed.provenances[key] = Provenance(provenance.source, provenance.collection, created_by)
        provenance = cached

    refs = obj.get("object_marking_refs")
    tlp = _tlp(refs, feed, object_id) if isinstance(refs, list) else None

    record = IndicatorRecord(
        id=object_id,
        modified=modified,
        created=created,
        spec_version=spec_version,
        valid_from=valid_from,
        valid_until=valid_until,
        revoked=obj.get("revoked") is True,
        confidence=confidence,
        tlp=None if tlp is None else int(tlp),
        name=_text(obj, "name"),
        description=_text(obj, "description"),
        labels=labels,
        pattern=pattern,
        pattern_type=pattern_type if isinstance(pattern_type, str) else "stix",
        provenance=provenance,
        raw=obj if isinstance(obj, dict) else dict(obj),
    )
    if isinstance(obj.get(SCORE_EXPIRY_PROPERTY), str):
        record.score_expiry = _timestamp(obj, SCORE_EXPIRY_PROPERTY, False)

    if record.pattern_type != "stix":
        record.composite_reason = f"pattern_type {record.pattern_type!r} is not a STIX pattern; kept, not matched"
        return record

    _extract_atoms(record)
    return record


def _creator(obj: Mapping[str, Any], feed: FeedContext) -> str:
    """Return the indicator's ``created_by_ref``, or "" when it has none or it is not an identity id.

    An invalid reference is dropped, not quarantined: the indicator itself is sound, the creator is only
    metadata for sinks and trust, and without it trust counts the source as the reporter.
    """
    value = obj.get("created_by_ref")
    if value is None:
        return ""
    if value in feed.valid_creators:
        return str(value)
    problem = id_problem(value, "identity")
    if problem is None:
        if len(feed.valid_creators) < 1024:
            feed.valid_creators.add(value)
        return str(value)

    key = repr(value)
    if key not in feed.dropped_creators and len(feed.dropped_creators) < 1024:
        feed.dropped_creators.add(key)
        logger.warning(
            "Indicator %s: created_by_ref %r is not a valid identity id (%s); the reference is dropped and the "
            "indicator is kept. Later objects with the same reference are not logged again.",
            obj.get("id"), value, problem,
        )  # fmt: skip
    return ""


def _tlp(refs: list[Any], feed: FeedContext, object_id: str) -> Tlp | None:
    key = tuple(r for r in refs if isinstance(r, str))
    if key in feed.tlps:
        return feed.tlps[key]
    level = tlp_of_refs(key, feed.markings, object_id=object_id)
    if len(feed.tlps) < 1024:
        feed.tlps[key] = level
    return level


def _strings(value: Any) -> tuple[str, ...]:
    """Return the strings of a JSON list, in order; anything else gives an empty tuple."""
    if not value or type(value) is not list:
        return ()
    return tuple(x for x in value if isinstance(x, str))


def _text(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    return value if isinstance(value, str) else ""


def _extract_atoms(record: IndicatorRecord) -> None:
    """Fill ``record.atoms`` and ``record.composite_reason`` from the pattern."""
    if _extract_simple(record):
        return
    try:
        flattened = flatten(parse_pattern(record.pattern))
    except PatternError as exc:
        raise InvalidInputError(f"indicator {record.id}: invalid pattern: {exc}", reason_code="pattern") from exc

    reasons = list(flattened.unflattenable)
    record.window_start = flattened.start
    record.window_stop = flattened.stop
    seen: dict[tuple[str, str], AtomLink] = {}

    for group in flattened.alternatives:
        links, reason = _atoms_of_group(record.id, group)
        if reason:
            reasons.append(reason)
        for link in links:
            key = (link.type, link.value)
            held = seen.get(key)
            if held is None or (held.role != "exact" and link.role == "exact"):
                seen[key] = link

    record.atoms = sorted(seen.values(), key=lambda a: (a.role != "exact", a.type, a.value))
    if reasons:
        record.composite_reason = "; ".join(dict.fromkeys(reasons))
    if any(link.type.startswith("ip") and _is_src(link) for link in record.atoms):
        record.observed_direction = "src"


def _extract_simple(record: IndicatorRecord) -> bool:
    """Handle a one-comparison pattern without the general parser; return False to take the full path.

    Gives the same atoms as the full path. Any value the fast path would judge differently (an invalid
    atom, a property that is not an atom) goes to the full path, so errors keep their codes and wording.
    """
    match = _SIMPLE_PATTERN.fullmatch(record.pattern)
    if match is None:
        return False
    object_type, property_path, value = match.groups()
    if property_path.startswith("hashes."):
        path: tuple[str, ...] = ("hashes", property_path[7:].strip("'"))
        if canonical_hash_algorithm(path[1]) is None:
            return False
    else:
        path = (property_path,)
    try:
        atom = atom_from_comparison(object_type, path, value)
    except AtomError:
        return False
    if atom is None:
        return False
    record.atoms = [AtomLink(atom.type, atom.value, atom.display, "exact")]
    return True


def _is_src(link: AtomLink) -> bool:
    return ("path", "src_ref.value") in link.context


def _atoms_of_group(indicator_id: str, group: tuple[Comparison, ...]) -> tuple[list[AtomLink], str | None]:
    """Pick the atoms of one AND group.

    A lone comparison gives an exact atom. In a group, a strong atom (hash, IP, domain, URL) stays exact and
    the other conditions become its context, as a destination port or a file name only narrow it. A weak
    atom with other conditions (a sender with a subject) is broader than the indicator, so it is partial.
    """
    found = []
    context: list[tuple[str, str]] = []
    for comparison in group:
        try:
            atom = atom_from_comparison(comparison.object_type, comparison.path, comparison.value)
        except AtomError as exc:
            raise InvalidInputError(f"indicator {indicator_id}: {exc}", reason_code="atom") from exc
        path = ".".join(str(p) for p in comparison.path)
        if atom is None:
            context.append((path, str(comparison.value)))
            continue
        found.append((atom, path))

    if not found:
        kinds = ", ".join(sorted({f"{c.object_type}:{'.'.join(map(str, c.path))}" for c in group}))
        return [], f"no matchable atom in {kinds}"

    ranked = sorted(found, key=lambda f: -_STRENGTH.get(str(f[0].type), 0))
    best, best_path = ranked[0]
    alone = len(group) == 1
    if alone or _STRENGTH.get(str(best.type), 0) >= _STRONG:
        extra = [(p, a.display) for a, p in ranked[1:]]
        if best_path.endswith("src_ref.value"):
            extra.append(("path", best_path))
        return [AtomLink(best.type, best.value, best.display, "exact", tuple(context + extra))], None

    links = [AtomLink(a.type, a.value, a.display, "partial", tuple(context)) for a, _ in found]
    return links, "AND with other conditions: each atom alone is broader than the indicator, kept as partial"
