"""The SQLite state store on disk: ciphertext only, and files from an older dropgz still open."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from dropgz.core.encryption import TokenCipher
from dropgz.core.secret import Secret
from dropgz.state.sqlite import SqliteStateStore
from tests.web.conftest import ENCRYPTION_KEY

T0 = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
REFRESH = "emu-refresh-plaintext-marker-0123456789"


def test_the_database_file_never_holds_the_refresh_token(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = SqliteStateStore(path, TokenCipher(Secret(ENCRYPTION_KEY)))
    store.connect_account("dbid:u1", refresh_token=Secret(REFRESH), email="u1@x.test",
                          display_name="U1", watch_start=T0, cursor="c0")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(FULL)")
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert b"u1@x.test" in on_disk  # the row is there...
    assert REFRESH.encode() not in on_disk  # ...its token only as ciphertext


def test_a_file_made_before_connected_accounts_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE accounts (account TEXT PRIMARY KEY, cursor TEXT, "
                   "synced_at REAL, modified_since REAL, watch_start REAL, lease_owner TEXT, "
                   "lease_expires REAL)")
        db.execute("INSERT INTO accounts (account, cursor, watch_start) VALUES (?, ?, ?)",
                   ("dbid:seed", "c-old", T0.timestamp()))
    store = SqliteStateStore(path)
    record = store.get("dbid:seed")
    assert (record.cursor, record.watch_start, record.status) == ("c-old", T0, "watching")
    assert not record.has_credential
    assert store.count_accounts("watching") == 1
