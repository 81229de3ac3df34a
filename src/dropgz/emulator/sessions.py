"""Upload sessions (upload_session/start, append_v2, finish): their bytes and bookkeeping.

Bytes go to one file per session in the root's hidden folder; the row in ``sessions`` records
how far the upload got, whether it is closed, and the 4 MiB block digests received so far, so
finish can compute the whole file's content_hash without reading it again (and a restart on
the same root keeps sessions alive, as Dropbox keeps them for a week).

A ``concurrent`` session takes appends at any 4 MiB-aligned offset in any order; the ranges
received are recorded and finish checks that they cover the file without gaps.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from dropgz.emulator.hashing import BLOCK_SIZE
from dropgz.emulator.state import StateDB

# An upload session lives 7 days.
# https://www.dropbox.com/developers/documentation/http/documentation#files-upload_session-start
SESSION_LIFETIME_SECONDS = 7 * 24 * 3600
# Concurrent sessions take appends whose offset and size are multiples of 4 MiB (except the
# closing one). Same page as above, "session_type".
CONCURRENT_ALIGNMENT = 4 * 1024 * 1024
assert CONCURRENT_ALIGNMENT % BLOCK_SIZE == 0


@dataclass
class Session:
    session_id: str
    kind: str                    # "sequential" | "concurrent"
    offset: int                  # sequential: bytes received; concurrent: end once closed
    closed: bool
    created: float
    digests: bytes | None        # concatenated 32-byte block digests; None once misaligned
    ranges: list[list] = field(default_factory=list)  # concurrent: [offset, length, digests_hex]


class Sessions:
    """The table of sessions plus a lock per session (appends to one session are serialized)."""

    def __init__(self, db: StateDB, directory: Path) -> None:
        self.db = db
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def path(self, session_id: str) -> Path:
        return self.directory / f"{session_id}.part"

    def lock(self, session_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(session_id, threading.Lock())

    def start(self, kind: str) -> Session:
        session = Session(secrets.token_hex(16), kind, 0, False, time.time(), b"")
        self.path(session.session_id).touch()
        self.save(session)
        return session

    def get(self, session_id: str) -> Session | None:
        rows = self.db.query("SELECT * FROM sessions WHERE session_id = ?", (session_id,))
        if not rows:
            return None
        row = rows[0]
        if time.time() - row["created"] > SESSION_LIFETIME_SECONDS:
            self.remove(session_id)
            return None
        return Session(row["session_id"], row["kind"], row["offset"], bool(row["closed"]),
                       row["created"], row["digests"], json.loads(row["ranges"]))

    def save(self, session: Session) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO sessions (session_id, kind, offset, closed, created, digests,"
            " ranges) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (session.session_id, session.kind, session.offset, int(session.closed),
             session.created, session.digests, json.dumps(session.ranges)))

    def remove(self, session_id: str) -> None:
        self.db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
        self.path(session_id).unlink(missing_ok=True)
        with self._locks_guard:
            self._locks.pop(session_id, None)

    def expire(self) -> int:
        """Drops sessions older than their lifetime; returns how many."""
        cutoff = time.time() - SESSION_LIFETIME_SECONDS
        rows = self.db.query("SELECT session_id FROM sessions WHERE created < ?", (cutoff,))
        for row in rows:
            self.remove(row["session_id"])
        return len(rows)


def append_digests(session: Session, offset: int, digests: list[bytes]) -> bytes | None:
    """The session's block digests after a sequential chunk at ``offset``.

    Digests of a chunk extend the file's only when the chunk starts on a block boundary and
    everything before ended on one; otherwise finish hashes the file from disk.
    """
    if session.digests is None or offset % BLOCK_SIZE:
        return None
    return session.digests + b"".join(digests)


def concurrent_gaps(session: Session) -> tuple[bool, bytes]:
    """(whether the received ranges cover ``[0, session.offset)`` exactly, their digests)."""
    position, digests = 0, b""
    for offset, length, hex_digests in sorted(session.ranges):
        if offset != position:
            return False, b""
        position += length
        digests += bytes.fromhex(hex_digests)
    return position == session.offset, digests
