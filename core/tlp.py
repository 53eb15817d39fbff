"""Traffic Light Protocol levels and the markings that carry them.

TLP 1.0 ids are those in the STIX 2.1 specification (and ``stix2.TLP_*``); TLP 2.0 ids are those of the
OASIS TLP 2.0 extension objects (oasis-open/cti-stix-common-objects, ``extension-definition--60a3c5c5-...``).
An unknown marking counts as the most restrictive level, because sharing too little is recoverable and
sharing too much is not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from enum import IntEnum

logger = logging.getLogger(__name__)


class Tlp(IntEnum):
    """A TLP level; a higher value is more restrictive."""

    CLEAR = 0
    GREEN = 1
    AMBER = 2
    AMBER_STRICT = 3
    RED = 4

    @property
    def label(self) -> str:
        """Return the level as written in TLP 2.0, for example ``AMBER+STRICT``."""
        return self.name.replace("_", "+")

    @classmethod
    def parse(cls, text: str) -> Tlp:
        """Parse ``TLP:AMBER``, ``amber``, ``amber+strict``, ``white`` (TLP 1.0) and the like.

        Raises:
            ValueError: the text names no TLP level.
        """
        level = _NAMES.get(text.strip().lower().removeprefix("tlp:").replace("_", "+"))
        if level is None:
            raise ValueError(
                f"unknown TLP level {text!r}: expected one of clear, white, green, amber, amber+strict, red"
            )
        return level


_NAMES = {
    "clear": Tlp.CLEAR,
    "white": Tlp.CLEAR,
    "green": Tlp.GREEN,
    "amber": Tlp.AMBER,
    "amber+strict": Tlp.AMBER_STRICT,
    "red": Tlp.RED,
}

TLP_MARKING_IDS: dict[str, Tlp] = {
    # TLP 1.0, from the STIX 2.1 specification.
    "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9": Tlp.CLEAR,
    "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da": Tlp.GREEN,
    "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82": Tlp.AMBER,
    "marking-definition--5e57c739-391a-4eb3-b6be-7d15ca92d5ed": Tlp.RED,
    # TLP 2.0, from the OASIS extension objects.
    "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487": Tlp.CLEAR,
    "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb": Tlp.GREEN,
    "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421": Tlp.AMBER,
    "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003": Tlp.AMBER_STRICT,
    "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1": Tlp.RED,
}

# The ids stixbridge writes on objects it publishes (TLP 2.0).
TLP2_MARKING_IDS: dict[Tlp, str] = {
    Tlp.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Tlp.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Tlp.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Tlp.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Tlp.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}

TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"


def tlp_of_marking_definition(obj: dict) -> Tlp | None:
    """Return the TLP level a marking-definition object states, or None when it states none.

    Reads the TLP 1.0 ``definition`` form and the TLP 2.0 extension form, so that a feed which ships its
    own copy of a marking under another id is still understood.
    """
    definition = obj.get("definition")
    if obj.get("definition_type") == "tlp" and isinstance(definition, dict):
        level = definition.get("tlp")
        if isinstance(level, str):
            try:
                return Tlp.parse(level)
            except ValueError:
                return None

    extensions = obj.get("extensions")
    if isinstance(extensions, dict):
        ext = extensions.get(TLP2_EXTENSION_ID)
        if isinstance(ext, dict) and isinstance(ext.get("tlp_2_0"), str):
            try:
                return Tlp.parse(ext["tlp_2_0"])
            except ValueError:
                return None
    return None


def tlp_of_refs(
    refs: Iterable[str], learned: Mapping[str, Tlp | None] | None = None, *, object_id: str = ""
) -> Tlp | None:
    """Return the most restrictive TLP among marking ids, or None when no ref is a TLP marking.

    Args:
        refs: ``object_marking_refs`` of an object.
        learned: marking-definition ids read from the same feed, each with the TLP it states or None
            for a marking that is not TLP (a statement, for example).
        object_id: the marked object, named in the warning for an unknown marking.

    A marking that is neither a known TLP id nor a learned marking is treated as RED and logged, because
    it may be a TLP marking under an id this code has never seen.
    """
    found: Tlp | None = None
    for ref in refs:
        level = TLP_MARKING_IDS.get(ref)
        if level is None and learned is not None and ref in learned:
            level = learned[ref]
            if level is None:
                continue
        if level is None:
            logger.warning("Object %s has unknown marking %s; treating it as TLP:RED.", object_id, ref)
            level = Tlp.RED
        if found is None or level > found:
            found = level
    return found


def tlp_of_tags(tags: Iterable[str]) -> Tlp | None:
    """Return the most restrictive TLP named by MISP ``tlp:`` tags, or None when there is none."""
    found: Tlp | None = None
    for tag in tags:
        if not tag.lower().startswith("tlp:"):
            continue
        try:
            level = Tlp.parse(tag)
        except ValueError:
            logger.warning("Unknown TLP tag %r; treating it as TLP:RED.", tag)
            level = Tlp.RED
        if found is None or level > found:
            found = level
    return found
