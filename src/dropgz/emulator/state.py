"""An account's persistent state: one SQLite file in its root's hidden folder.

It holds the namespace (``entries``), the change journal cursors point into (``journal``),
upload sessions and (in the first account's file) OAuth grants and access tokens, so cursors,
sessions and tokens survive a restart on the same root. One connection guarded by one
re-entrant lock: every write is a short transaction (file bytes move outside the lock), which
is plenty for an emulator and keeps each namespace change atomic.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    path_lower TEXT PRIMARY KEY,
    parent_lower TEXT NOT NULL,
    path_display TEXT NOT NULL,
    tag TEXT NOT NULL,                 -- 'file' | 'folder'
    id TEXT NOT NULL UNIQUE,
    rev TEXT, size INTEGER, content_hash TEXT,
    client_modified TEXT, server_modified TEXT
);
CREATE INDEX IF NOT EXISTS entries_parent ON entries (parent_lower);
CREATE INDEX IF NOT EXISTS entries_rev ON entries (rev);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    path_lower TEXT NOT NULL,
    parent_lower TEXT NOT NULL,
    path_display TEXT NOT NULL,
    tag TEXT NOT NULL,                 -- 'file' | 'folder' | 'deleted'
    id TEXT, rev TEXT, size INTEGER, content_hash TEXT,
    client_modified TEXT, server_modified TEXT
);
CREATE INDEX IF NOT EXISTS journal_path ON journal (path_lower, seq);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,                -- 'sequential' | 'concurrent'
    offset INTEGER NOT NULL,           -- bytes received (sequential) / declared end (concurrent)
    closed INTEGER NOT NULL,
    created REAL NOT NULL,
    digests BLOB,                      -- 32-byte block digests; NULL once misaligned
    ranges TEXT NOT NULL DEFAULT '[]'  -- concurrent: JSON [[offset, length, close], ...]
);
-- OAuth (first account's file only). A grant is one authorization of the app by a user.
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,                -- 'fixed' (an account's own refresh token) | 'oauth'
    refresh_sha256 TEXT UNIQUE,        -- NULL for online access (no refresh token)
    scope TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS access_tokens (
    token_sha256 TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    kind TEXT NOT NULL,                -- 'fixed' (never expires) | 'minted'
    grant_id TEXT,                     -- the grant a minted token came from
    expires_at REAL,                   -- NULL: never
    revoked INTEGER NOT NULL DEFAULT 0
);
"""


class StateDB:
    """The SQLite file plus the lock every user of it takes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        # WAL + NORMAL: a crash may lose the last commits but never corrupts; an emulator
        # does not need an fsync per upload.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA journal_mode=WAL")
        # One transaction for the whole schema: one sync instead of one per table, which
        # matters when --accounts creates hundreds of these files.
        self._conn.executescript(f"BEGIN; {SCHEMA} COMMIT;")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Holds the lock; commits when the block ends, rolls back if it raises."""
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self._conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        with self.lock:
            self._conn.execute(sql, params)

    def get_meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def meta_default(self, key: str, make: Any) -> str:
        """The stored value of ``key``, storing ``make()`` first if there is none."""
        with self.lock:
            value = self.get_meta(key)
            if value is None:
                value = make()
                self.set_meta(key, value)
            return value

    def close(self) -> None:
        with self.lock:
            self._conn.close()
