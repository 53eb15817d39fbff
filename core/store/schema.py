"""SQLite schema of the embedded store, with numbered migrations."""

from __future__ import annotations

import sqlite3

# Each entry upgrades the database from version (index) to version (index + 1). Never edit a released
# entry: add a new one.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

    CREATE TABLE indicators (
        id TEXT PRIMARY KEY,
        modified TEXT NOT NULL,
        created TEXT,
        spec_version TEXT,
        valid_from REAL,
        valid_until REAL,
        expires_at REAL,
        expiry_basis TEXT NOT NULL,
        primary_type TEXT,
        confidence INTEGER,
        tlp INTEGER,
        name TEXT,
        description TEXT,
        labels TEXT,
        pattern TEXT,
        pattern_type TEXT,
        composite_reason TEXT,
        window_start REAL,
        window_stop REAL,
        state TEXT NOT NULL,
        source TEXT NOT NULL,
        collection TEXT,
        created_by TEXT,
        direction TEXT,
        first_seen REAL NOT NULL,
        raw TEXT
    );
    CREATE INDEX indicators_state ON indicators (state, expires_at);

    CREATE TABLE indicator_sources (
        indicator_id TEXT NOT NULL,
        source TEXT NOT NULL,
        collection TEXT NOT NULL,
        created_by TEXT NOT NULL,
        confidence INTEGER,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        PRIMARY KEY (indicator_id, source, collection)
    ) WITHOUT ROWID;

    CREATE TABLE indicator_atoms (
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        indicator_id TEXT NOT NULL,
        display TEXT NOT NULL,
        role TEXT NOT NULL,
        context TEXT,
        PRIMARY KEY (type, value, indicator_id)
    ) WITHOUT ROWID;
    CREATE INDEX indicator_atoms_by_indicator ON indicator_atoms (indicator_id);

    CREATE TABLE dirty_atoms (type TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (type, value)) WITHOUT ROWID;

    CREATE TABLE versions (
        id TEXT NOT NULL,
        modified TEXT NOT NULL,
        source TEXT NOT NULL,
        seen_at REAL NOT NULL,
        PRIMARY KEY (id, modified, source)
    ) WITHOUT ROWID;

    CREATE TABLE objects (
        id TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        modified TEXT,
        spec_version TEXT,
        source TEXT NOT NULL,
        collection TEXT,
        raw TEXT NOT NULL
    );

    CREATE TABLE expired (
        id TEXT PRIMARY KEY,
        modified TEXT NOT NULL,
        source TEXT NOT NULL,
        collection TEXT,
        created_by TEXT,
        atoms TEXT NOT NULL,
        valid_from REAL,
        valid_until REAL,
        reason TEXT NOT NULL,
        expired_at REAL NOT NULL
    );

    CREATE TABLE quarantine (
        qid INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        collection TEXT,
        object_id TEXT,
        reason_code TEXT NOT NULL,
        reason TEXT NOT NULL,
        raw TEXT,
        at REAL NOT NULL,
        status TEXT NOT NULL DEFAULT 'held',
        released_at REAL
    );
    CREATE INDEX quarantine_object ON quarantine (object_id);

    CREATE TABLE cursors (name TEXT PRIMARY KEY, cursor TEXT, updated_at REAL NOT NULL);

    CREATE TABLE rows (
        key TEXT PRIMARY KEY,
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        digest TEXT NOT NULL,
        payload TEXT NOT NULL,
        UNIQUE (type, value)
    );

    CREATE TABLE delivered (
        sink TEXT NOT NULL,
        key TEXT NOT NULL,
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        digest TEXT NOT NULL,
        indicator_id TEXT NOT NULL,
        PRIMARY KEY (sink, key)
    ) WITHOUT ROWID;

    CREATE TABLE sink_state (
        sink TEXT PRIMARY KEY,
        generation INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        last_push REAL,
        last_error TEXT
    );

    CREATE TABLE sightings (
        sid INTEGER PRIMARY KEY,
        dedup TEXT NOT NULL UNIQUE,
        source TEXT NOT NULL,
        value TEXT NOT NULL,
        atom_type TEXT,
        indicator_id TEXT,
        seen_at REAL NOT NULL,
        count INTEGER NOT NULL,
        kind TEXT NOT NULL,
        context TEXT,
        external_id TEXT,
        status TEXT NOT NULL DEFAULT 'pending',
        reason TEXT
    );

    CREATE TABLE runs (
        run_id INTEGER PRIMARY KEY,
        command TEXT NOT NULL,
        started REAL NOT NULL,
        finished REAL,
        status TEXT,
        summary TEXT
    );
    """,
    # 2: trust guards, reviews of large pulls, and the sightings outbox.
    """
    ALTER TABLE quarantine ADD COLUMN held_atoms TEXT;
    ALTER TABLE quarantine ADD COLUMN matched TEXT;

    CREATE TABLE revoked_atoms (
        type TEXT NOT NULL,
        value TEXT NOT NULL,
        indicator_id TEXT NOT NULL,
        source TEXT NOT NULL,
        created_by TEXT NOT NULL,
        revoked_at REAL NOT NULL,
        PRIMARY KEY (type, value, indicator_id)
    ) WITHOUT ROWID;

    CREATE TABLE reviews (
        review_id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        created REAL NOT NULL,
        decided REAL,
        counts TEXT,
        reason TEXT
    );
    CREATE INDEX reviews_source ON reviews (source, status);

    CREATE TABLE review_pages (
        review_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        cursor TEXT,
        items TEXT NOT NULL,
        PRIMARY KEY (review_id, seq)
    ) WITHOUT ROWID;

    ALTER TABLE sightings ADD COLUMN object_id TEXT;
    ALTER TABLE sightings ADD COLUMN read_at REAL;
    CREATE INDEX sightings_status ON sightings (status, sid);

    CREATE TABLE sighting_windows (
        object_id TEXT PRIMARY KEY,
        object_type TEXT NOT NULL,
        indicator_id TEXT NOT NULL,
        window_start REAL NOT NULL,
        count INTEGER NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        context TEXT NOT NULL,
        created REAL NOT NULL,
        modified REAL NOT NULL
    );

    CREATE TABLE outbox (
        target TEXT NOT NULL,
        object_id TEXT NOT NULL,
        object_type TEXT NOT NULL,
        modified TEXT NOT NULL,
        tlp INTEGER,
        payload TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        updated REAL NOT NULL,
        PRIMARY KEY (target, object_id)
    );
    CREATE INDEX outbox_status ON outbox (target, status);
    """,
    # 3: sighting windows keep the TLP of their indicator and version times in whole milliseconds, so each
    # new STIX version is strictly later. No release wrote windows under version 2, so the table is rebuilt.
    """
    DROP TABLE sighting_windows;
    CREATE TABLE sighting_windows (
        object_id TEXT PRIMARY KEY,
        object_type TEXT NOT NULL,
        indicator_id TEXT NOT NULL,
        window_start REAL NOT NULL,
        tlp INTEGER,
        count INTEGER NOT NULL,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL,
        context TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        modified_ms INTEGER NOT NULL
    );
    """,
    # 4: an indicator that its source's trust policy no longer takes stays stored in state 'withheld', with
    # the policy's reason, so it leaves the sinks and comes back when the policy is relaxed.
    # A quarantine row also keeps the digest of (source, object, reason code), so a repeat of a held object
    # refreshes its row instead of adding one.
    """
    ALTER TABLE indicators ADD COLUMN withheld_reason TEXT;
    ALTER TABLE quarantine ADD COLUMN dedup TEXT;
    CREATE INDEX quarantine_dedup ON quarantine (dedup, status);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(connection: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; return the version it had before.

    Raises:
        RuntimeError: the database was written by a newer stixbridge.
    """
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"the state database has schema version {version}, newer than this stixbridge understands "
            f"({SCHEMA_VERSION}); upgrade stixbridge or point it at another state file"
        )
    for number in range(version, SCHEMA_VERSION):
        with connection:
            connection.executescript(MIGRATIONS[number])
            connection.execute(f"PRAGMA user_version = {number + 1}")
    return int(version)
