"""Sightings of stixbridge's own MISP attributes, read back as sighting records.

``sightings/restSearch`` is read in time windows from the cursor (minus ``lookback_seconds``, because a
sighting may be added with an earlier date) up to now. MISP sighting type 0 becomes kind ``seen`` and
type 1 kind ``false-positive``; type 2 (expiration) is skipped, stixbridge itself writes those.

Only attributes stixbridge wrote count: they carry a ``stixbridge:source=`` tag, and their comment starts
with the STIX indicator id, which is how a sighting finds its indicator again (the attribute UUID is a
one-way hash of the row key). One ``attributes/restSearch`` per window looks the attributes up.

MISP gives a sighting a new UUID and id whenever it is stored again (by sync or by a retried API call),
so records are distinguished by their content: attribute, organisation, sighting source, type and time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from stixbridge.connector import ConnectorContext
from stixbridge.model import SightingRecord
from stixbridge.sightings.base import SightingsReader
from stixbridge.timeutil import from_epoch

from .attribute_types import atom_type_of_attribute
from .attributes import SOURCE_TAG_PREFIX
from .client import MispClient
from .events import epoch_of, tag_names
from .settings import MispSightingsSettings

logger = logging.getLogger(__name__)

KIND_OF_TYPE = {"0": "seen", "1": "false-positive"}
"""MISP sighting types read back; type 2 (expiration) is not a sighting."""
LOOKUP_CHUNK = 1000
_INDICATOR_ID = re.compile(r"^(indicator--[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})")


class MispSightingsReader(SightingsReader):
    """Reads MISP sightings (seen, false positive) on the attributes the MISP sink wrote."""

    kind = "misp"
    settings_class = MispSightingsSettings
    settings: MispSightingsSettings

    def __init__(self, name: str, settings: MispSightingsSettings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        self.client = MispClient(settings, context.base_dir, f"MISP sightings reader {name!r}")

    def describe(self) -> str:
        return f"MISP sightings reader {self.name!r} reading sightings of stixbridge attributes at {self.settings.url}"

    def read(self, cursor: str | None) -> Iterator[tuple[list[SightingRecord], str | None]]:
        now = self.context.clock()
        start = self._start(cursor, now)
        window = timedelta(hours=self.settings.window_hours)
        total = 0

        while start < now:
            end = min(start + window, now)
            # MISP's from/to filter includes both ends, so every window but the last stops a second early.
            last = end if end == now else end - timedelta(seconds=1)
            records = self._read_window(start, last)
            total += len(records)
            yield records, json.dumps({"until": int(end.timestamp())})
            start = end
        logger.info("MISP sightings reader %s read %d sightings of stixbridge attributes.", self.name, total)

    def _start(self, cursor: str | None, now: datetime) -> datetime:
        if cursor:
            try:
                until = json.loads(cursor).get("until")
            except (ValueError, AttributeError):
                until = None
            if isinstance(until, int):
                return from_epoch(until) - timedelta(seconds=self.settings.lookback_seconds)
            logger.warning("MISP sightings reader %s ignores its unreadable cursor %r.", self.name, cursor)
        return now - timedelta(days=self.settings.initial_days)

    def _read_window(self, start: datetime, end: datetime) -> list[SightingRecord]:
        query = {"returnFormat": "json", "from": int(start.timestamp()), "to": int(end.timestamp()), "includeUuid": 1}
        answer = self.client.call("sightings/restSearch", query)
        sightings = [
            entry.get("Sighting", entry)
            for entry in (answer.body if isinstance(answer.body, list) else [])
            if isinstance(entry, dict)
        ]
        wanted = [s for s in sightings if str(s.get("type")) in KIND_OF_TYPE and s.get("attribute_uuid")]
        attributes = self._ours({str(s["attribute_uuid"]) for s in wanted})

        records: dict[str, SightingRecord] = {}
        for sighting in wanted:
            attribute = attributes.get(str(sighting["attribute_uuid"]))
            if attribute is None:
                continue
            record = self._record(sighting, attribute)
            if record is not None:
                records.setdefault(record.external_id, record)
        if wanted:
            logger.debug(
                "MISP sightings reader %s: %d sightings from %s to %s, %d on stixbridge attributes.",
                self.name, len(wanted), start, end, len(records),
            )  # fmt: skip
        return list(records.values())

    def _ours(self, uuids: set[str]) -> dict[str, dict[str, Any]]:
        """Return the attributes among ``uuids`` that stixbridge wrote, by UUID."""
        found: dict[str, dict[str, Any]] = {}
        ordered = sorted(uuids)
        for start in range(0, len(ordered), LOOKUP_CHUNK):
            chunk = ordered[start : start + LOOKUP_CHUNK]
            answer = self.client.call(
                "attributes/restSearch",
                {"returnFormat": "json", "uuid": chunk, "deleted": [0, 1], "includeEventUuid": 1},
            )
            body = answer.body if isinstance(answer.body, dict) else {}
            for attribute in body.get("Attribute") or []:
                if not isinstance(attribute, dict) or attribute.get("uuid") not in uuids:
                    continue
                ours = any(name.startswith(SOURCE_TAG_PREFIX) for name in tag_names(attribute))
                if ours and _INDICATOR_ID.match(str(attribute.get("comment") or "")):
                    found[str(attribute["uuid"])] = attribute
        return found

    def _record(self, sighting: dict[str, Any], attribute: dict[str, Any]) -> SightingRecord | None:
        seconds = epoch_of(sighting.get("date_sighting"))
        if seconds is None:
            logger.warning("MISP sighting %s has no valid date_sighting; skipped.", sighting.get("id"))
            return None
        match = _INDICATOR_ID.match(str(attribute.get("comment") or ""))
        assert match is not None, "only attributes with an indicator id in the comment are looked up"
        organisation = sighting.get("Organisation")
        org: dict[str, Any] = organisation if isinstance(organisation, dict) else {}
        org_ref = str(org.get("uuid") or sighting.get("org_id") or "")
        kind = KIND_OF_TYPE[str(sighting["type"])]
        source = str(sighting.get("source") or "")

        identity = f"{attribute['uuid']}\x00{org_ref}\x00{source}\x00{kind}\x00{seconds}"
        context = [
            ("misp_org", str(org.get("name") or "")),
            ("misp_org_identity", f"identity--{org['uuid']}" if org.get("uuid") else ""),
            ("misp_sighting_source", source),
            ("misp_attribute_uuid", str(attribute["uuid"])),
            ("misp_event_uuid", str(attribute.get("event_uuid") or sighting.get("event_uuid") or "")),
        ]
        value = str(attribute.get("value") or sighting.get("value") or "")
        return SightingRecord(
            source=self.name,
            value=value,
            seen_at=from_epoch(seconds),
            atom_type=atom_type_of_attribute(str(attribute.get("type") or ""), value),
            indicator_id=match.group(1).lower(),
            count=1,
            kind=kind,
            context=tuple((k, v) for k, v in context if v),
            external_id=hashlib.sha256(identity.encode()).hexdigest()[:32],
        )
