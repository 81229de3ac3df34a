"""State store in one SQLite file (WAL), safe across threads and processes on one host.

Every call opens its own connection; compare-and-set steps run under ``BEGIN IMMEDIATE``,
which takes SQLite's write lock before reading, so two processes cannot both see a lease
as free.
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dropgz.core.encryption import TokenCipher
from dropgz.state import sqlite_db
from dropgz.state.base import PAUSED, WATCHING, AccountState, LeaseLost, StateStore, utcnow

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
# Columns added for connected accounts; a file made by an older dropgz gets them on open.
_ADDED_COLUMNS = {
    "email": "TEXT", "display_name": "TEXT", "connected_at": "REAL",
    "status": f"TEXT NOT NULL DEFAULT '{WATCHING}'", "status_reason": "TEXT NOT NULL DEFAULT ''",
    "status_since": "REAL", "credential": "TEXT",
}
_INDEXES = "CREATE INDEX IF NOT EXISTS accounts_status ON accounts (status, account);"
_COLUMNS = ("account, cursor, synced_at, modified_since, watch_start, lease_owner, "
            "lease_expires, email, display_name, connected_at, status, status_reason, "
            "status_since, credential IS NOT NULL")
_SELECT = f"SELECT {_COLUMNS} FROM accounts WHERE account = ?"  # noqa: S608 - constants only


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _record(row: tuple) -> AccountState:
    (account, cursor, fetched, since, start, owner, expires, email, name, connected,
     status, reason, status_since, has_credential) = row
    return AccountState(account, cursor, _dt(fetched), _dt(since), _dt(start), owner,
                        _dt(expires), email, name, _dt(connected), status, reason,
                        _dt(status_since), bool(has_credential))


class SqliteStateStore(StateStore):
    """Accounts in ``path`` (created with its folder if missing)."""

    def __init__(self, path: Path, cipher: TokenCipher | None = None) -> None:
        self.path = Path(path)
        self.cipher = cipher
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            have = {row[1] for row in db.execute("PRAGMA table_info(accounts)")}
            for column, kind in _ADDED_COLUMNS.items():
                if column not in have:
                    db.execute(f"ALTER TABLE accounts ADD COLUMN {column} {kind}")
            db.executescript(_INDEXES)

    def __repr__(self) -> str:
        return f"SqliteStateStore({str(self.path)!r})"

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return sqlite_db.connect(self.path)

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return sqlite_db.transaction(self.path)

    def get(self, account: str) -> AccountState | None:
        with self._connect() as db:
            row = db.execute(_SELECT, (account,)).fetchone()
        return None if row is None else _record(row)

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

    # ------------------------------------------------------------ connected accounts

    def _save_grant(self, account: str, blob: str, *, email: str | None,
                    display_name: str | None, watch_start: datetime, cursor: str | None,
                    now: datetime) -> bool:
        with self._transaction() as db:
            row = db.execute("SELECT watch_start, cursor FROM accounts WHERE account = ?",
                             (account,)).fetchone()
            new = row is None or (row[0] is None and row[1] is None)
            db.execute("INSERT INTO accounts (account) VALUES (?) ON CONFLICT DO NOTHING",
                       (account,))
            if new:
                db.execute("UPDATE accounts SET watch_start = ?, cursor = ?, synced_at = ? "
                           "WHERE account = ?",
                           (_ts(watch_start), cursor, _ts(now) if cursor else None, account))
            db.execute("UPDATE accounts SET email = ?, display_name = ?, connected_at = ?, "
                       "credential = ? WHERE account = ?",
                       (email, display_name, _ts(now), blob, account))
            # A new grant ends "needs reconnect"; an operator's pause stays.
            db.execute("UPDATE accounts SET status = ?, status_reason = '', status_since = ? "
                       "WHERE account = ? AND status != ?",
                       (WATCHING, _ts(now), account, PAUSED))
        return new

    def raw_credential(self, account: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT credential FROM accounts WHERE account = ?",
                             (account,)).fetchone()
        return row[0] if row else None

    def _any_credential(self) -> tuple[str, str] | None:
        with self._connect() as db:
            row = db.execute("SELECT account, credential FROM accounts "
                             "WHERE credential IS NOT NULL LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    def _set_status(self, account: str, status: str, reason: str, now: datetime) -> bool:
        with self._connect() as db:
            cur = db.execute("UPDATE accounts SET status = ?, status_reason = ?, "
                             "status_since = CASE WHEN status = ? AND status_since IS NOT NULL "
                             "THEN status_since ELSE ? END WHERE account = ?",
                             (status, reason, status, _ts(now), account))
        return cur.rowcount == 1

    def forget_account(self, account: str) -> bool:
        with self._connect() as db:
            cur = db.execute("DELETE FROM accounts WHERE account = ?", (account,))
        return cur.rowcount == 1

    def list_accounts(self, *, after: str | None = None, offset: int = 0, limit: int = 100,
                      status: str | None = None) -> list[AccountState]:
        self._check_page(offset, limit, status)
        where, args = [], []
        if after is not None:
            where.append("account > ?")
            args.append(after)
        if status is not None:
            where.append("status = ?")
            args.append(status)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        with self._connect() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM accounts {clause}"  # noqa: S608
                              "ORDER BY account LIMIT ? OFFSET ?",
                              (*args, limit, 0 if after is not None else offset)).fetchall()
        return [_record(row) for row in rows]

    def count_accounts(self, status: str | None = None) -> int:
        with self._connect() as db:
            if status is None:
                return db.execute("SELECT COUNT(*) FROM accounts").fetchone()[0]
            return db.execute("SELECT COUNT(*) FROM accounts WHERE status = ?",
                              (status,)).fetchone()[0]
