"""Writing rows to the state file from a second thread, so the writes overlap the caller's own work.

SQLite releases Python's interpreter lock while it writes, so a pull can decode its next page, or
wait for the server, while the previous page goes to disk. Landing a TAXII pull spent about a third
of its own time in these writes before they moved here.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from pathlib import Path
from typing import Any

from .sqlite import WAL_CHECKPOINT_PAGES

logger = logging.getLogger(__name__)

QUEUE_ROWS = 2
"""Rows waiting for the writer; the caller blocks beyond this, which bounds the memory they take."""


class BackgroundWriter:
    """Runs one INSERT statement for each row it is given, in order, each row in its own transaction.

    The writer has its own connection to the database file, so it needs a file (not ``:memory:``).
    Call :meth:`close` before reading what was written: it waits for the queue and raises the first
    error of the writer. After an error the remaining rows are dropped, not written.

    Args:
        path: the SQLite database file.
        sql: the INSERT statement, with ``?`` parameters.
        busy_timeout: seconds to wait for another connection's write lock.
    """

    def __init__(self, path: Path, sql: str, busy_timeout: float = 30.0) -> None:
        self.path = path
        self.sql = sql
        self.busy_timeout = busy_timeout
        self.rows_written = 0
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=QUEUE_ROWS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stixbridge-writer", daemon=True)
        self._thread.start()

    def put(self, row: tuple[Any, ...]) -> None:
        """Queue one row; raise the writer's error at once when it already failed."""
        self._raise_error()
        self._queue.put(row)

    def close(self) -> None:
        """Wait until every queued row is written, then stop the thread.

        Raises:
            sqlite3.Error: the writer failed; rows after the failing one were not written.
        """
        self._queue.put(None)
        self._thread.join()
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        db = None
        try:
            db = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            while (row := self._queue.get()) is not None:
                db.execute(self.sql, row)
                self.rows_written += 1
        except BaseException as exc:
            logger.error("Writing to %s in the background failed after %d rows: %s", self.path, self.rows_written, exc)
            self._error = exc
            # Keep taking rows and drop them, so the caller never blocks on a full queue.
            while self._queue.get() is not None:
                pass
        finally:
            if db is not None:
                db.close()
