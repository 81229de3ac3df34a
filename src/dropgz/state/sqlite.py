"""State store in one SQLite file (WAL), safe across threads and processes on one host.

Every call opens its own connection; compare-and-set steps run under ``BEGIN IMMEDIATE``,
which takes SQLite's write lock before reading, so two processes cannot both see a lease
as free.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dropgz.state.base import AccountState, LeaseLost, StateStore, utcnow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT PRIMARY KEY,
    cursor TEXT,
    synced_at REAL,
    modified_since REAL,
    watch_start REAL,
    lease_owner TEXT,
    lease_expires REAL
);
"""
_SELECT = ("SELECT account, cursor, synced_at, modified_since, watch_start, lease_owner, "
           "lease_expires FROM accounts WHERE account = ?")


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class SqliteStateStore(StateStore):
    """Accounts in ``path`` (created with its folder if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"SqliteStateStore({str(self.path)!r})"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def get(self, account: str) -> AccountState | None:
        with self._connect() as db:
            row = db.execute(_SELECT, (account,)).fetchone()
        if row is None:
            return None
        account, cursor, fetched, since, start, owner, expires = row
        return AccountState(account, cursor, _dt(fetched), _dt(since), _dt(start), owner,
                            _dt(expires))

    def add_account(self, account: str, *, watch_start: datetime,
                    cursor: str | None = None) -> bool:
        now = utcnow()
        with self._transaction() as db:
            row = db.execute("SELECT watch_start, cursor FROM accounts WHERE account = ?",
                             (account,)).fetchone()
            if row is not None and (row[0] is not None or row[1] is not None):
                return False
            # A record made by a lease alone is not "known" yet: fill it in.
            db.execute("INSERT INTO accounts (account) VALUES (?) ON CONFLICT DO NOTHING",
                       (account,))
            db.execute("UPDATE accounts SET watch_start = ?, cursor = ?, synced_at = ? "
                       "WHERE account = ?",
                       (_ts(watch_start), cursor, _ts(now) if cursor else None, account))
        return True

    def accounts(self) -> list[str]:
        with self._connect() as db:
            rows = db.execute("SELECT account FROM accounts ORDER BY account").fetchall()
        return [r[0] for r in rows]

    def acquire_lease(self, account: str, owner: str, seconds: float) -> bool:
        now = utcnow()
        with self._transaction() as db:
            row = db.execute("SELECT lease_owner, lease_expires FROM accounts WHERE account = ?",
                             (account,)).fetchone()
            if row is not None and row[0] not in (None, owner) and row[1] > _ts(now):
                return False
            db.execute("INSERT INTO accounts (account) VALUES (?) ON CONFLICT DO NOTHING",
                       (account,))
            db.execute("UPDATE accounts SET lease_owner = ?, lease_expires = ? WHERE account = ?",
                       (owner, _ts(now + timedelta(seconds=seconds)), account))
        return True

    def release_lease(self, account: str, owner: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE accounts SET lease_owner = NULL, lease_expires = NULL "
                       "WHERE account = ? AND lease_owner = ?", (account, owner))

    def save_cursor(self, account: str, cursor: str, *, lease_owner: str,
                    synced_at: datetime | None, modified_since: datetime | None = None) -> None:
        with self._transaction() as db:
            cur = db.execute("UPDATE accounts SET cursor = ?, synced_at = ?, "
                             "modified_since = ? WHERE account = ? AND lease_owner = ?",
                             (cursor, _ts(synced_at), _ts(modified_since), account,
                              lease_owner))
            if cur.rowcount != 1:
                raise LeaseLost(f"lease on {account} is not held by this run")
