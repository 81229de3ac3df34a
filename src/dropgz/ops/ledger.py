"""Running totals of what this host's workers did, for ``dropgz status``.

A small SQLite file in ``data_dir``: one row per outcome status with files and bytes, and
one per kind of skip (``Outcome.kind``: already compressed, saves too little, ...).
Each worker process adds to it after every file; ``status`` reads it. Totals are
per host (on EC2, per worker instance), which is what an operator looking at one
host wants to see.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from dropgz.compression.compress import Outcome

_SCHEMA = """
CREATE TABLE IF NOT EXISTS totals (
    status TEXT PRIMARY KEY,
    files INTEGER NOT NULL DEFAULT 0,
    bytes_in INTEGER NOT NULL DEFAULT 0,
    bytes_out INTEGER NOT NULL DEFAULT 0,
    updated TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE IF NOT EXISTS skips (
    kind TEXT PRIMARY KEY,
    files INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class Totals:
    compressed: int = 0
    skipped: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    last_update: str | None = None

    @property
    def bytes_saved(self) -> int:
        return self.bytes_in - self.bytes_out


class Ledger:
    """Thread-safe; several processes may share one file (SQLite WAL, short transactions)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    @classmethod
    def in_dir(cls, data_path: Path) -> Ledger:
        return cls(data_path / "ledger.sqlite3")

    def record(self, outcome: Outcome) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO totals (status, files, bytes_in, bytes_out) VALUES (?, 1, ?, ?) "
                "ON CONFLICT(status) DO UPDATE SET files = files + 1, "
                "bytes_in = bytes_in + excluded.bytes_in, "
                "bytes_out = bytes_out + excluded.bytes_out, updated = datetime('now')",
                (outcome.status, outcome.bytes_in, outcome.bytes_out))
            if outcome.status == "skipped":
                self._db.execute(
                    "INSERT INTO skips (kind, files) VALUES (?, 1) "
                    "ON CONFLICT(kind) DO UPDATE SET files = files + 1",
                    (outcome.kind or "other",))

    def totals(self) -> Totals:
        with self._lock:
            rows = {r[0]: r[1:] for r in self._db.execute(
                "SELECT status, files, bytes_in, bytes_out, updated FROM totals")}
        done = rows.get("compressed", (0, 0, 0, None))
        skipped = rows.get("skipped", (0, 0, 0, None))
        updates = [r[3] for r in rows.values() if r[3]]
        return Totals(done[0], skipped[0], done[1], done[2], max(updates) if updates else None)

    def skips(self) -> dict[str, int]:
        """Skipped files by kind of skip, most frequent first."""
        with self._lock:
            return dict(self._db.execute(
                "SELECT kind, files FROM skips ORDER BY files DESC, kind").fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()
