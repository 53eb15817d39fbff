"""The sightings reader interface: where hits of alliance atoms in our own telemetry come from."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator

from ..connector import Connector
from ..model import SightingRecord


class SightingsReader(Connector):
    """A reader of matches: Splunk threat activity, Elastic indicator-match alerts, MISP sightings, a file.

    Override :meth:`read`. The engine passes the cursor stored after the last batch; each yielded batch is
    stored with its cursor in one transaction, so every hit is read once.
    """

    @abstractmethod
    def read(self, cursor: str | None) -> Iterator[tuple[list[SightingRecord], str | None]]:
        """Yield ``(records, cursor)`` batches of hits found since ``cursor``."""
