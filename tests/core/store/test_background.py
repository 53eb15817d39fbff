import sqlite3

import pytest

from stixbridge.store.background import BackgroundWriter


def _table(path):
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, text TEXT)")


def test_rows_written_in_order(tmp_path):
    path = tmp_path / "s.db"
    _table(path)
    writer = BackgroundWriter(path, "INSERT INTO t (n, text) VALUES (?, ?)")

    for n in range(10):
        writer.put((n, f"row {n}"))
    writer.close()

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT n, text FROM t ORDER BY n").fetchall() == [(n, f"row {n}") for n in range(10)]
    assert writer.rows_written == 10


def test_error_raised_on_close(tmp_path):
    path = tmp_path / "s.db"
    _table(path)
    writer = BackgroundWriter(path, "INSERT INTO t (n, text) VALUES (?, ?)")

    writer.put((1, "first"))
    writer.put((1, "same key"))
    for n in range(2, 6):
        try:
            writer.put((n, "after the failure"))
        except sqlite3.IntegrityError:
            break
    with pytest.raises(sqlite3.IntegrityError):
        writer.close()

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT n FROM t").fetchall() == [(1,)]


def test_missing_table_is_an_error(tmp_path):
    writer = BackgroundWriter(tmp_path / "empty.db", "INSERT INTO t (n, text) VALUES (?, ?)")
    writer.put((1, "x"))

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        writer.close()
