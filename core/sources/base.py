"""The feed source interface: where STIX objects come from."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import ClassVar

from ..connector import Connector
from ..model import Page, Provenance, RawItem


class Source(Connector):
    """A feed of STIX objects: a TAXII collection, a folder of bundles, a MISP instance.

    Override :meth:`pull`. The engine calls it once per run with the cursor the previous completed pages
    left, stores each yielded page's objects and its cursor in one transaction, and stops early only on an
    exception. Override :meth:`fetch_by_id` when the source can return one object again by id (TAXII's
    ``match[id]``); the engine calls it for ``stixbridge refetch`` and when a sighting hits expired intel.
    """

    land_first: ClassVar[bool] = False
    """True when the engine reads a whole pass into the store before normalising any of it.

    A remote source whose paging tokens expire sets it: medallion drops a ``next`` token after 30
    seconds, and normalising a large page between two requests can take longer. Landing also releases
    the server sooner. The cursor still moves only as each landed page is stored.
    """

    @abstractmethod
    def pull(self, cursor: str | None) -> Iterator[Page]:
        """Yield pages of objects added since ``cursor`` (None: from the beginning)."""

    def fetch_by_id(self, object_id: str, provenance: Provenance) -> list[RawItem]:
        """Return every version the source still has of ``object_id`` from where ``provenance`` says.

        Raises:
            NotImplementedError: the source cannot fetch by id.
        """
        raise NotImplementedError(f"source kind {self.kind!r} cannot fetch objects by id")
