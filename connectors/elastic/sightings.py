"""The ``elastic`` sightings reader: indicator-match alerts on our documents, read back as sightings.

Kibana writes an alert to ``.alerts-security.alerts-<space>`` when an indicator-match rule finds an event
value equal to an indicator. For each indicator that matched it appends an entry to the nested field
``threat.enrichments``. The entry contains a copy of the document's ``threat.indicator`` object and these:

* ``matched.atomic`` and ``matched.field``: the event value and the event field;
* ``matched.id`` and ``matched.index``: the indicator document's ``_id`` and its concrete index.

Alerts are read in ``(@timestamp, kibana.alert.uuid)`` order with ``search_after``, and the cursor is the
sort values of the last alert read. ``_id`` cannot be the tie-breaker because Elasticsearch 8 refuses to sort on
``_id`` by default. Alerts younger than ``settle_seconds`` are left for the next run, because an alert may
become searchable after later ones and the cursor would otherwise pass it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stixbridge.connector import ConnectorContext
from stixbridge.model import SightingRecord
from stixbridge.sightings.base import SightingsReader
from stixbridge.timeutil import format_timestamp, parse_timestamp

from .client import TrafficMeter, build_client, translate_error
from .ecs import atom_type_of, base_document_id, first, lookup
from .settings import ElasticSightingsSettings

logger = logging.getLogger(__name__)

# Alert fields copied into a sighting's context, as (context name, alert field).
CONTEXT_FIELDS = (
    ("host.name", "host.name"),
    ("host.ip", "host.ip"),
    ("source.ip", "source.ip"),
    ("destination.ip", "destination.ip"),
    ("user.name", "user.name"),
    ("rule.name", "kibana.alert.rule.name"),
    ("alert.uuid", "kibana.alert.uuid"),
)

SOURCE_FIELDS = [
    "@timestamp",
    "kibana.alert.*",
    "threat.enrichments",
    "host.name",
    "host.ip",
    "source.ip",
    "destination.ip",
    "user.name",
]


def alerts_index(space: str) -> str:
    """Return the alias of the security alerts of a Kibana space."""
    return f".alerts-security.alerts-{space}"


@dataclass
class _Match:
    """One enrichment of ours in one alert, before the missing facts are looked up."""

    alert_uuid: str
    seen_at: datetime
    value: str
    matched_id: str
    matched_index: str
    atom_type: str | None
    indicator_id: str | None
    count: int
    kind: str
    context: list[tuple[str, str]] = field(default_factory=list)


class ElasticSightingsReader(SightingsReader):
    """Reads indicator-match alerts whose enrichments point at our index or alias."""

    kind = "elastic"
    sdk_modules = (("elasticsearch", "elastic"),)
    settings_class = ElasticSightingsSettings
    settings: ElasticSightingsSettings

    def __init__(self, name: str, settings: ElasticSightingsSettings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        self.meter = TrafficMeter()
        self._client: Any = None

    def describe(self) -> str:
        return (
            f"elastic sightings {self.name!r}: indicator-match alerts in {alerts_index(self.settings.space)} "
            f"that matched {self.settings.alias}"
        )

    def _connect(self) -> Any:
        if self._client is None:
            self._client = build_client(self.settings, self.context.base_dir, self.meter, name=self.name)
        return self._client

    def read(self, cursor: str | None) -> Iterator[tuple[list[SightingRecord], str | None]]:
        """Yield one batch of sightings per page of alerts, each with the cursor after that page.

        Raises:
            TransientError, RemoteRejectedError: a search failed.
        """
        after = _parse_cursor(cursor)
        now = self.context.clock()
        ours = self._our_indices()
        body = self._search_body(now, ours, after)

        while True:
            try:
                response = self._connect().search(
                    index=alerts_index(self.settings.space), ignore_unavailable=True, **body
                )
            except Exception as exc:
                raise translate_error(exc, f"searching {alerts_index(self.settings.space)}") from exc
            hits = response.get("hits", {}).get("hits", [])
            if not hits:
                return

            matches = [match for hit in hits for match in self._matches(hit, ours)]
            self._complete(matches)
            records = _dedupe([self._record(match) for match in matches])
            new_cursor = json.dumps(hits[-1]["sort"])
            logger.info("Elastic sightings %r read %d alerts and %d sightings.", self.name, len(hits), len(records))
            yield records, new_cursor

            if len(hits) < self.settings.page_size:
                return
            body["search_after"] = hits[-1]["sort"]

    def _our_indices(self) -> list[str]:
        """Return our index, our alias, and the indices the alias points to now."""
        names = [self.settings.index, self.settings.alias]
        try:
            response = self._connect().indices.get_alias(name=self.settings.alias, ignore_unavailable=True)
            names.extend(index for index in response if index not in names)
        except Exception as exc:
            logger.info("Elastic sightings %r could not resolve alias %s: %s", self.name, self.settings.alias, exc)
        return names

    def _search_body(self, now: datetime, ours: list[str], after: list[Any] | None) -> dict[str, Any]:
        settled = now - timedelta(seconds=self.settings.settle_seconds)
        time_range: dict[str, str] = {"lte": format_timestamp(settled)}
        if after is None:
            time_range["gte"] = format_timestamp(now - timedelta(days=self.settings.first_run_days))
        body: dict[str, Any] = {
            "size": self.settings.page_size,
            "sort": [{"@timestamp": {"order": "asc"}}, {"kibana.alert.uuid": {"order": "asc"}}],
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"kibana.alert.rule.type": "threat_match"}},
                        {"range": {"@timestamp": time_range}},
                        {
                            "nested": {
                                "path": "threat.enrichments",
                                "query": {"terms": {"threat.enrichments.matched.index": ours}},
                            }
                        },
                    ],
                    "must_not": [{"exists": {"field": "kibana.alert.building_block_type"}}],
                }
            },
            "source": SOURCE_FIELDS,
        }
        if after is not None:
            body["search_after"] = after
        return body

    def _matches(self, hit: dict[str, Any], ours: list[str]) -> Iterator[_Match]:
        source = hit.get("_source", {})
        alert_uuid = str(first(source, "kibana.alert.uuid") or hit.get("_id", ""))
        seen_text = first(source, "kibana.alert.original_time") or first(source, "@timestamp")
        try:
            seen_at = parse_timestamp(seen_text)
        except ValueError:
            logger.warning("Elastic sightings %r skipped alert %s with bad time %r.", self.name, alert_uuid, seen_text)
            return

        closed_as_false_positive = (
            first(source, "kibana.alert.workflow_status") == "closed"
            and first(source, "kibana.alert.workflow_reason") == "false_positive"
        )
        # TODO: an alert closed as a false positive after it was read is not read again.
        suppressed = first(source, "kibana.alert.suppression.docs_count")
        count = 1 + (int(suppressed) if isinstance(suppressed, int | float) else 0)
        alert_context = _context(source)

        for enrichment in lookup(source, "threat.enrichments"):
            if first(enrichment, "matched.index") not in ours:
                continue
            indicator = first(enrichment, "indicator") or {}
            value = first(indicator, "name") or first(enrichment, "matched.atomic")
            if not isinstance(value, str):
                continue
            indicator_id = first(indicator, "id")
            context = list(alert_context)
            for name in ("matched.field", "matched.atomic"):
                found = first(enrichment, name)
                if found is not None:
                    context.append((name, str(found)))
            yield _Match(
                alert_uuid=alert_uuid,
                seen_at=seen_at,
                value=value,
                matched_id=str(first(enrichment, "matched.id") or ""),
                matched_index=str(first(enrichment, "matched.index")),
                atom_type=atom_type_of(indicator),
                indicator_id=indicator_id if isinstance(indicator_id, str) else None,
                count=count,
                kind="false-positive" if closed_as_false_positive else "seen",
                context=context,
            )

    def _complete(self, matches: list[_Match]) -> None:
        """Read our own documents for what the alert's copy cannot tell.

        That is the indicator id or atom type when the copy lacks them, and the canonical value when the
        match was on the document for another spelling of a registry key (``_id`` ``<row key>-<n>``).
        """
        incomplete = [
            match
            for match in matches
            if match.matched_id
            and (
                match.indicator_id is None
                or match.atom_type is None
                or base_document_id(match.matched_id) != match.matched_id
            )
        ]
        if not incomplete:
            return
        requests = {(m.matched_index, base_document_id(m.matched_id)) for m in incomplete}
        docs = [{"_index": index, "_id": document_id} for index, document_id in sorted(requests)]
        try:
            response = self._connect().mget(
                docs=docs, source_includes=["threat.indicator.id", "threat.indicator.name", "stixbridge.atom_type"]
            )
        except Exception as exc:
            logger.warning("Elastic sightings %r could not read %d indicator documents: %s", self.name, len(docs), exc)
            return
        found = {doc.get("_id"): doc.get("_source", {}) for doc in response.get("docs", []) if doc.get("found")}

        for match in incomplete:
            base_id = base_document_id(match.matched_id)
            source = found.get(base_id)
            if source is None:
                continue
            if match.indicator_id is None:
                match.indicator_id = first(source, "threat.indicator.id")
            if match.atom_type is None:
                match.atom_type = first(source, "stixbridge.atom_type")
            if base_id != match.matched_id:
                match.value = first(source, "threat.indicator.name") or match.value

    def _record(self, match: _Match) -> SightingRecord:
        return SightingRecord(
            source=self.name,
            value=match.value,
            seen_at=match.seen_at,
            atom_type=match.atom_type,
            indicator_id=match.indicator_id,
            count=match.count,
            kind=match.kind,
            context=tuple(match.context),
            external_id=f"{match.alert_uuid}/{match.matched_id}",
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _context(source: dict[str, Any]) -> list[tuple[str, str]]:
    context = []
    for name, path in CONTEXT_FIELDS:
        values = [str(value) for value in lookup(source, path)]
        if values:
            context.append((name, ",".join(values)))
    return context


def _dedupe(records: list[SightingRecord]) -> list[SightingRecord]:
    """Drop repeats of the same alert and indicator document, which Kibana can write twice."""
    seen: set[str] = set()
    unique = []
    for record in records:
        if record.external_id in seen:
            continue
        seen.add(record.external_id)
        unique.append(record)
    return unique


def _parse_cursor(cursor: str | None) -> list[Any] | None:
    if not cursor:
        return None
    try:
        after = json.loads(cursor)
    except ValueError:
        after = None
    if not (isinstance(after, list) and len(after) == 2):
        logger.warning("Ignoring unreadable Elastic sightings cursor %r; reading from the start.", cursor)
        return None
    return after
