"""Reports in one SQLite file (WAL) beside the state store: ``reports.sqlite3``.

One write transaction per batch: every counter is an upsert that adds. Trimming (rollups
past 30 days, file records past the last 1,000, silent workers) runs in the same
transaction, at most once a minute for the rollups.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from dropgz.state import sqlite_db
from dropgz.state.reports import (
    RECENT_FILES,
    RETENTION,
    WORKER_FORGET,
    FileRecord,
    Heartbeat,
    Increments,
    Point,
    ReportStore,
    Sums,
    minute_of,
    utcnow,
)

_SUMS = ("compressed", "skipped", "retried", "failed", "bytes_in", "bytes_out")
_COLUMNS = ", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _SUMS)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS minutes (minute INTEGER PRIMARY KEY, {_COLUMNS});
CREATE TABLE IF NOT EXISTS hours (hour INTEGER PRIMARY KEY, {_COLUMNS});
CREATE TABLE IF NOT EXISTS account_sums (account TEXT PRIMARY KEY, {_COLUMNS});
CREATE TABLE IF NOT EXISTS type_sums (type TEXT PRIMARY KEY, {_COLUMNS});
CREATE TABLE IF NOT EXISTS files (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT, path TEXT, outcome TEXT, at REAL,
    bytes_in INTEGER, bytes_out INTEGER, seconds REAL, reason TEXT, worker TEXT);
CREATE TABLE IF NOT EXISTS workers (
    worker TEXT PRIMARY KEY, host TEXT, pid INTEGER, version TEXT, started_at REAL,
    concurrency INTEGER, in_flight INTEGER, seen_at REAL, reports_dropped INTEGER);
"""
_UPSERT = ("INSERT INTO {table} ({key}, {cols}) VALUES (?, {marks}) ON CONFLICT({key}) "
           "DO UPDATE SET {adds}")
PRUNE_EVERY_SECONDS = 60.0


def _upsert_sql(table: str, key: str) -> str:
    return _UPSERT.format(table=table, key=key, cols=", ".join(_SUMS),
                          marks=", ".join("?" * len(_SUMS)),
                          adds=", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS))


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def _sums(row: Sequence[int]) -> Sums:
    return Sums(*row)


class SqliteReportStore(ReportStore):
    """Reports in ``path`` (created with its folder if missing); safe across processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pruned_at = 0.0
        self._lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"SqliteReportStore({str(self.path)!r})"

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return sqlite_db.connect(self.path)

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return sqlite_db.transaction(self.path)

    # ------------------------------------------------------------ writing

    def _apply(self, inc: Increments, records: list[FileRecord]) -> None:
        with self._transaction() as db:
            db.executemany("INSERT INTO totals (name, value) VALUES (?, ?) ON CONFLICT(name) "
                           "DO UPDATE SET value = value + excluded.value", inc.totals.items())
            for table, key, rows in (("minutes", "minute", inc.minutes),
                                     ("hours", "hour", inc.hours),
                                     ("account_sums", "account", inc.accounts),
                                     ("type_sums", "type", inc.types)):
                db.executemany(_upsert_sql(table, key),
                               [(k, *(c[s] for s in _SUMS)) for k, c in rows.items()])
            if records:
                db.executemany(
                    "INSERT INTO files (account, path, outcome, at, bytes_in, bytes_out, "
                    "seconds, reason, worker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(r.account, r.path, r.outcome, r.at.timestamp(), r.bytes_in, r.bytes_out,
                      r.seconds, r.reason, r.worker) for r in records])
                db.execute("DELETE FROM files WHERE seq <= (SELECT MAX(seq) FROM files) - ?",
                           (RECENT_FILES,))
            self._prune(db)

    def _prune(self, db: sqlite3.Connection) -> None:
        with self._lock:
            if time.monotonic() - self._pruned_at < PRUNE_EVERY_SECONDS:
                return
            self._pruned_at = time.monotonic()
        cutoff = minute_of(utcnow() - RETENTION)
        db.execute("DELETE FROM minutes WHERE minute < ?", (cutoff,))
        db.execute("DELETE FROM hours WHERE hour < ?", (cutoff // 60,))

    def heartbeat(self, beat: Heartbeat) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO workers (worker, host, pid, version, started_at, "
                "concurrency, in_flight, seen_at, reports_dropped) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (beat.worker, beat.host, beat.pid, beat.version, beat.started_at.timestamp(),
                 beat.concurrency, beat.in_flight, beat.seen_at.timestamp(),
                 beat.reports_dropped))
            db.execute("DELETE FROM workers WHERE seen_at < ?",
                       ((utcnow() - WORKER_FORGET).timestamp(),))

    # ------------------------------------------------------------ reading

    def totals(self) -> dict[str, int]:
        with self._connect() as db:
            return dict(db.execute("SELECT name, value FROM totals").fetchall())

    def series(self, since: datetime, hourly: bool = False) -> list[Point]:
        table, key, scale = ("hours", "hour", 3600) if hourly else ("minutes", "minute", 60)
        start = int(since.timestamp() // scale)
        with self._connect() as db:
            rows = db.execute(f"SELECT {key}, {', '.join(_SUMS)} FROM {table} "  # noqa: S608
                              f"WHERE {key} >= ? ORDER BY {key}", (start,)).fetchall()
        return [Point(_dt(row[0] * scale), _sums(row[1:])) for row in rows]

    def recent_files(self, offset: int = 0, limit: int = 50) -> list[FileRecord]:
        with self._connect() as db:
            rows = db.execute("SELECT account, path, outcome, at, bytes_in, bytes_out, seconds, "
                              "reason, worker FROM files ORDER BY seq DESC LIMIT ? OFFSET ?",
                              (limit, offset)).fetchall()
        return [FileRecord(a, p, o, _dt(at), bi, bo, s, r, w)
                for a, p, o, at, bi, bo, s, r, w in rows]

    def recent_count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM files").fetchone()[0])

    def account_sums(self, accounts: Sequence[str]) -> dict[str, Sums]:
        if not accounts:
            return {}
        marks = ", ".join("?" * len(accounts))
        with self._connect() as db:
            rows = db.execute(f"SELECT account, {', '.join(_SUMS)} FROM account_sums "  # noqa: S608
                              f"WHERE account IN ({marks})", list(accounts)).fetchall()
        return {row[0]: _sums(row[1:]) for row in rows}

    def type_sums(self) -> dict[str, Sums]:
        with self._connect() as db:
            rows = db.execute(f"SELECT type, {', '.join(_SUMS)} FROM type_sums").fetchall()  # noqa: S608
        return {row[0]: _sums(row[1:]) for row in rows}

    def workers(self) -> list[Heartbeat]:
        with self._connect() as db:
            rows = db.execute("SELECT worker, host, pid, version, started_at, concurrency, "
                              "in_flight, seen_at, reports_dropped FROM workers "
                              "ORDER BY seen_at DESC").fetchall()
        return [Heartbeat(w, h, p, v, _dt(st), c, f, _dt(seen), d)
                for w, h, p, v, st, c, f, seen, d in rows]
