"""STIX identifiers: ``<object-type>--<UUID>``, checked the way the ``stix2`` library checks references.

STIX 2.1 (section 2.9) requires the UUID part to be an RFC 4122 UUID. ``stix2`` 3.0 checks a STIX 2.1
reference by parsing the UUID and requiring the RFC 4122 variant bits, and raises ``InvalidValueError``
otherwise. Every object we publish is STIX 2.1, so an id that passes :func:`id_problem` can be referenced
from a Sighting or an Opinion we build, whatever the version of the object that carries it.
"""

from __future__ import annotations

import re
import uuid

# The hyphenated 8-4-4-4-12 form only: ``uuid.UUID`` also takes braces, ``urn:uuid:`` and bare hex,
# which are not STIX identifiers. Hex digits may be upper case, as the STIX JSON schemas allow.
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Object type names: lowercase ASCII letters, digits and hyphens (STIX 2.1 section 3.1).
_TYPE_TEXT = re.compile(r"[a-z0-9][a-z0-9-]*")
# The UUID part of a valid identifier, RFC 4122 variant included (8, 9, a or b starts the fourth group).
_RFC4122_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}")
# The identifier prefix ("indicator--") of each type name already checked against _TYPE_TEXT; a feed
# uses a handful of types.
_PREFIXES: dict[str, str] = {}


def is_valid_id_of(value: object, object_type: str) -> bool:
    """Tell quickly whether ``value`` is a valid identifier of an object of type ``object_type``.

    Normalisation calls this for every object, so it does less than :func:`id_problem`: one prefix
    comparison and one match of the UUID part at an offset. A single pattern for the whole identifier
    backtracks over the type name, which made it several times slower.
    """
    if not isinstance(value, str):
        return False
    prefix = _PREFIXES.get(object_type)
    if prefix is None:
        if not _TYPE_TEXT.fullmatch(object_type):
            return False
        prefix = object_type + "--"
        if len(_PREFIXES) < 1024:
            _PREFIXES[object_type] = prefix
    return value.startswith(prefix) and _RFC4122_UUID.fullmatch(value, len(prefix)) is not None


def id_problem(value: object, object_type: str | None = None) -> str | None:
    """Return what is wrong with a STIX identifier, or None when it is valid.

    Args:
        value: the identifier as read from JSON; anything that is not a string is invalid.
        object_type: the type the identifier must name; None accepts any well-formed type.

    Returns:
        A sentence fragment that names the fault, for example
        ``"its UUID part '...' is not an RFC 4122 UUID (variant bits ...)"``; callers quote the id
        in front of it.
    """
    if object_type is not None and is_valid_id_of(value, object_type):
        return None
    if value is None:
        return "it is missing"
    if not isinstance(value, str):
        return f"it is not a string but the {type(value).__name__} {value!r}"

    prefix, separator, uuid_text = value.partition("--")
    if not separator or not _TYPE_TEXT.fullmatch(prefix):
        return "it is not of the form '<object-type>--<UUID>'"
    if object_type is not None and prefix != object_type:
        return f"its type prefix {prefix!r} is not the object's type {object_type!r}"
    if not _UUID_TEXT.fullmatch(uuid_text):
        return f"its UUID part {uuid_text!r} is not a UUID in the form 8-4-4-4-12 hexadecimal digits"

    variant = uuid.UUID(uuid_text).variant
    if variant != uuid.RFC_4122:
        return (
            f"its UUID part {uuid_text!r} is not an RFC 4122 UUID: the variant bits (first digit of the "
            f"fourth group) must give 8, 9, a or b, and these are of the {_variant_name(variant)} variant"
        )
    return None


def is_valid_id(value: object, object_type: str | None = None) -> bool:
    """Tell whether ``value`` is a STIX identifier that ``stix2`` accepts as a STIX 2.1 reference."""
    return id_problem(value, object_type) is None


def _variant_name(variant: str) -> str:
    names = {
        uuid.RESERVED_NCS: "NCS (reserved)",
        uuid.RESERVED_MICROSOFT: "Microsoft (reserved)",
        uuid.RESERVED_FUTURE: "future (reserved)",
    }
    return names.get(variant, variant)
