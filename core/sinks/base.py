"""The sink interface: where live atoms go."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from ..connector import Connector
from ..model import AtomRow, Changes, PushResult


class Sink(Connector):
    """A destination that holds the live atoms: CSV lookups, a KV store, an index, a MISP instance.

    Override :meth:`push`. The engine computes what changed since the sink's last successful push (new
    and changed rows, and rows to delete) and calls :meth:`push` with batches of those changes; keys the
    sink reports as failed are sent again on the next run. Override :meth:`accepts` to say which rows the
    sink can hold at all; rows it refuses count as absent, so a row that stops being accepted is deleted.
    A sink that must see every live row each run (a file that is rewritten whole) sets ``full_snapshot``.
    """

    full_snapshot: ClassVar[bool] = False
    batch_size: ClassVar[int] = 5000
    """How many changes the engine passes to one :meth:`push` call."""

    def accepts(self, row: AtomRow) -> bool:
        """Return True when the sink can hold this row."""
        return True

    def begin(self) -> None:
        """Prepare a push (open a file, check the remote index); called before the first :meth:`push`."""

    @abstractmethod
    def push(self, changes: Changes) -> PushResult:
        """Write ``changes.upserts`` and remove ``changes.deletes``; report per key what happened."""

    def maintain(self) -> None:
        """Do upkeep on a run where the sink has no changes to receive (re-stamping old documents, say).

        Must not write rows the engine did not send; errors are logged by the engine and do not fail the run.
        """

    def finish(self, complete: bool) -> None:
        """End a push; ``complete`` is False when an earlier batch raised. Files are renamed into place here."""
