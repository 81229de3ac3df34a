"""Connections to the state stores' SQLite files: one per call, closed after it; writes in
``BEGIN IMMEDIATE`` transactions (one writer at a time, across processes)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

BUSY_TIMEOUT = 30  # seconds a writer waits for another process's transaction


@contextlib.contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """An autocommit connection to ``path``, closed on leaving."""
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    try:
        yield db
    finally:
        db.close()


@contextlib.contextmanager
def transaction(path: Path) -> Iterator[sqlite3.Connection]:
    """A write transaction on ``path``: committed on leaving, rolled back on any error."""
    with connect(path) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
