"""The ``entries`` table and the change journal behind it.

Every row change goes through :meth:`Journal.put` / :meth:`Journal.remove`, inside the
caller's transaction, and appends the path's new state to ``journal``; cursors are positions
in that journal (see :mod:`dropgz.emulator.listing`). The journal is trimmed to
``journal_limit`` rows; a cursor older than the trimmed part gets ``reset``.
"""

# SQL here is assembled from module constants (column lists, scope fragments); every value is
# a bound parameter, so the f-strings cannot inject anything.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3
from dataclasses import astuple

from dropgz.emulator.entry import COLUMN_LIST, COLUMNS, PLACEHOLDERS, Entry, scope
from dropgz.emulator.state import StateDB

# How often (in journal rows) the journal is trimmed to ``journal_limit``.
_TRIM_EVERY = 256
_J_COLUMNS = ", ".join("j." + column for column in COLUMNS)


class Journal:
    """Row-level writes (entries + journal) and the queries cursors are answered from."""

    def __init__(self, db: StateDB, *, journal_limit: int) -> None:
        self.db = db
        self.journal_limit = journal_limit

    # ------------------------------------------------------------------ writes

    def put(self, conn: sqlite3.Connection, entry: Entry) -> None:
        conn.execute(f"INSERT OR REPLACE INTO entries ({COLUMN_LIST}) VALUES ({PLACEHOLDERS})",
                     astuple(entry))
        self._append(conn, entry)

    def remove(self, conn: sqlite3.Connection, entry: Entry) -> None:
        conn.execute("DELETE FROM entries WHERE path_lower = ?", (entry.path_lower,))
        self._append(conn, Entry(entry.path_lower, entry.parent_lower, entry.path_display,
                                 "deleted"))

    def compact(self) -> int:
        """Drops the whole journal (admin route); every earlier cursor then gets ``reset``."""
        with self.db.transaction() as conn:
            latest = self.latest_seq()
            self._trim(conn, latest)
        return latest

    def _append(self, conn: sqlite3.Connection, entry: Entry) -> None:
        seq = conn.execute(f"INSERT INTO journal ({COLUMN_LIST}) VALUES ({PLACEHOLDERS})",
                           astuple(entry)).lastrowid
        if seq and seq % _TRIM_EVERY == 0 and seq - self.journal_limit > self.floor():
            self._trim(conn, seq - self.journal_limit)

    def _trim(self, conn: sqlite3.Connection, floor: int) -> None:
        conn.execute("DELETE FROM journal WHERE seq <= ?", (floor,))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('journal_floor', ?)",
                     (str(floor),))

    # ----------------------------------------------------------------- queries

    def latest_seq(self) -> int:
        rows = self.db.query("SELECT seq FROM sqlite_sequence WHERE name = 'journal'")
        return rows[0]["seq"] if rows else 0

    def floor(self) -> int:
        """Highest journal position dropped; a cursor older than this cannot be served."""
        return int(self.db.get_meta("journal_floor") or 0)

    def last_state(self, path_lower: str) -> Entry | None:
        """The latest journal row of ``path_lower``, if the journal still has one."""
        rows = self.db.query(f"SELECT {COLUMN_LIST} FROM journal WHERE path_lower = ? "
                             "ORDER BY seq DESC LIMIT 1", (path_lower,))
        return Entry.from_row(rows[0]) if rows else None

    def listing_rows(self, prefix: str, recursive: bool, after: str, include_deleted: bool,
                     limit: int) -> list[Entry]:
        """Current entries (and deleted paths if asked) under ``prefix`` after key ``after``,
        in ``path_lower`` order, so a folder always comes before its contents."""
        condition, params = scope(prefix, recursive)
        sql = (f"SELECT {COLUMN_LIST} FROM entries WHERE {condition} AND path_lower > ?")
        args: tuple = (*params, after)
        if include_deleted:
            sql += (f" UNION ALL SELECT {_J_COLUMNS} FROM journal j "
                    f"JOIN (SELECT MAX(seq) AS last FROM journal WHERE {condition} "
                    "AND path_lower > ? GROUP BY path_lower) g ON j.seq = g.last "
                    "WHERE j.tag = 'deleted'")
            args += (*params, after)
        rows = self.db.query(f"SELECT * FROM ({sql}) ORDER BY path_lower LIMIT ?",
                             (*args, limit))
        return [Entry.from_row(row) for row in rows]

    def changes(self, prefix: str, recursive: bool, since: int, upto: int,
                limit: int) -> list[tuple[int, Entry]]:
        """Latest state of each path under ``prefix`` changed in ``(since, upto]``, ordered by
        the position of that latest change."""
        condition, params = scope(prefix, recursive)
        rows = self.db.query(
            f"SELECT j.seq AS seq, {_J_COLUMNS} FROM journal j "
            f"JOIN (SELECT MAX(seq) AS last FROM journal WHERE seq > ? AND seq <= ? "
            f"AND {condition} GROUP BY path_lower) g ON j.seq = g.last ORDER BY j.seq LIMIT ?",
            (since, upto, *params, limit))
        return [(row["seq"], Entry.from_row(row)) for row in rows]
