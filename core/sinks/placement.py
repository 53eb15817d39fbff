"""The event of each attribute, kept on disk so that a million attributes cost almost no memory.

A Python dict from attribute UUID to event costs about 96 bytes an attribute (measured with tracemalloc
on CPython 3.11), 96 MB at a million attributes, a third of the peak of a million-indicator sync. This index keeps
the same map in SQLite in a temporary file instead: memory stays at SQLite's page cache (about 2 MB)
and the file takes about 40 bytes an attribute. On the benchmark machine (docs/performance.md), placing
a million random UUIDs took 6 s and a lookup 5.5 µs. A 16 MB page cache saved only a fifth of that.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable


class Placement:
    """Maps attribute UUIDs (strings) to the position of their event (an int chosen by the caller).

    The file is SQLite's private temporary database, opened with an empty name. SQLite puts it in the
    system's temporary folder (``SQLITE_TMPDIR`` or ``TMPDIR``) and keeps its first pages in the page
    cache. It deletes the file when the connection closes, also when the connection is garbage-collected
    without :meth:`close`. It is rebuilt by every run that needs it, so it carries no state between runs.
    """

    def __init__(self) -> None:
        self._db = sqlite3.connect("", isolation_level=None)

        # A crash loses nothing: the next run rebuilds the index from the event files.
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("CREATE TABLE place (uuid BLOB PRIMARY KEY, event INTEGER NOT NULL) WITHOUT ROWID")

    def close(self) -> None:
        """Close and delete the file, after which the index cannot be used."""
        self._db.close()

    def place(self, attribute_uuids: Iterable[str], event: int) -> None:
        """Record that the attributes are in ``event``, moving those that were recorded elsewhere."""
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT INTO place (uuid, event) VALUES (?, ?) ON CONFLICT (uuid) DO UPDATE SET event = excluded.event",
                ((uuid.UUID(u).bytes, event) for u in attribute_uuids),
            )
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def event_of(self, attribute_uuid: str) -> int | None:
        """Return the event position of an attribute, or None when it is in no event."""
        row = self._db.execute("SELECT event FROM place WHERE uuid = ?", (uuid.UUID(attribute_uuid).bytes,)).fetchone()
        return None if row is None else int(row[0])

    def forget(self, attribute_uuids: Iterable[str]) -> None:
        """Remove attributes that left their event."""
        self._db.execute("BEGIN")
        try:
            self._db.executemany("DELETE FROM place WHERE uuid = ?", ((uuid.UUID(u).bytes,) for u in attribute_uuids))
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
