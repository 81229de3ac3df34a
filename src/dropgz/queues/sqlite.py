"""The embedded work queue: one SQLite file, shared by every process on one host.

Single-host mode runs the delta tier, the worker and ``dropgz status`` as separate
processes over this file, so everything that changes a message runs in a
``BEGIN IMMEDIATE`` transaction (one writer at a time, across processes) and the file is
in WAL mode (readers never block the writer). The file must be on a local disk: SQLite's
locking is not reliable over network filesystems.

Durability: a transaction that adds a message (send, a delayed send, redrive) is synced to
disk before it returns (``synchronous=FULL``), so a power cut cannot lose work. One that
only changes a message's state (receive, ack, release, extend) is not (``NORMAL``: one fsync
less per file, ~4 ms here, which serialised the worker's acks behind each other): after a
power cut it may be undone, and the message is then delivered again, which at-least-once
delivery already allows (the worker's processing is idempotent). A killed process loses
nothing either way. Acks that arrive together (a batch commit settles 20-40 files at
once) are deleted in one transaction by whichever of them gets the write lock first.

Nothing is held in memory between calls: a killed process loses nothing, its un-acked
messages simply become visible again when their visibility timeout expires. Times are
wall-clock (``time.time()``) because several processes, possibly across a reboot, compare
them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dropgz.core.errors import DropgzError, TransientError
from dropgz.core.logs import fields
from dropgz.queues.base import (
    DEFAULT_CLAIM_SECONDS,
    DeadLetter,
    Message,
    QueueStats,
    WorkQueue,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# How long a call waits for another process's write transaction before giving up.
BUSY_TIMEOUT_SECONDS = 30.0
# Long polling is emulated by polling; a lock-free read first keeps an idle poll cheap.
POLL_INTERVAL_SECONDS = 0.05

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- send order
        id TEXT NOT NULL UNIQUE,
        body TEXT NOT NULL,
        sent_at REAL NOT NULL,
        visible_at REAL NOT NULL,               -- hidden until then (in flight or delayed)
        receive_count INTEGER NOT NULL DEFAULT 0,
        handle TEXT                             -- receipt handle of the latest receive
    )""",
    "CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (visible_at, seq)",
    """CREATE TABLE IF NOT EXISTS dead (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        reason TEXT,                            -- NULL: never set (kept for old rows)
        receive_count INTEGER NOT NULL,
        died_at REAL NOT NULL
    )""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


class SQLiteWorkQueue(WorkQueue):
    """A :class:`~dropgz.queues.base.WorkQueue` in the SQLite file at ``path``."""

    def __init__(self, path: str | Path, visibility_timeout: int = DEFAULT_CLAIM_SECONDS,
                 max_receive_count: int = 5) -> None:
        super().__init__(visibility_timeout, max_receive_count)
        self.path = Path(path)
        # One connection per queue object, guarded by a lock: calls are short, and
        # SQLite serialises writers anyway. Other processes are kept in line by SQLite's
        # own file locks (busy timeout below).
        self._lock = threading.Lock()
        self._conn = self._connect()
        self._durable = True  # the connection's synchronous mode: FULL (True) or NORMAL
        # Acks waiting for the write lock; the first to get it deletes them all (_ack).
        self._acks: list[_PendingAck] = []
        self._acks_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SQLiteWorkQueue({str(self.path)!r})"


    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS,
                                   isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise DropgzError(f"cannot open the work queue {self.path}: {exc}") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed send survives a power cut too, not only a killed process.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise DropgzError(f"{self.path}: work queue schema {version} is newer than this "
                                  f"dropgz understands ({SCHEMA_VERSION}): upgrade dropgz")
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            raise DropgzError(f"cannot open the work queue {self.path}: {exc}") from None
        return conn

    @contextmanager
    def _write(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One write transaction, exclusive across threads and processes; synced to disk
        before it returns when ``durable`` (see the module docstring)."""
        with self._lock, self._transaction(durable) as conn:
            yield conn

    @contextmanager
    def _transaction(self, durable: bool) -> Iterator[sqlite3.Connection]:
        """:meth:`_write`'s transaction, for a caller that holds ``self._lock``."""
        with _translated(self.path):
            if durable != self._durable:
                self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._durable = durable
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _translated(self.path):
            yield self._conn

    # ------------------------------------------------------------ primitives

    def _send(self, bodies: list[str]) -> None:
        self._send_later(bodies, 0.0)

    def _send_later(self, bodies: list[str], delay: float) -> None:
        now = time.time()
        rows = [(uuid.uuid4().hex, body, now, now + delay) for body in bodies]
        with self._write() as conn:
            conn.executemany(
                "INSERT INTO messages (id, body, sent_at, visible_at) VALUES (?, ?, ?, ?)", rows)

    def _receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        deadline = time.monotonic() + wait_seconds
        while True:
            if self._any_visible():
                received = self._receive_now(max_messages)
                if received:
                    return received
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            time.sleep(min(POLL_INTERVAL_SECONDS, remaining))

    def _any_visible(self) -> bool:
        # A plain read: in WAL mode it takes no lock that could block another process.
        with self._read() as conn:
            row = conn.execute("SELECT 1 FROM messages WHERE visible_at <= ? LIMIT 1",
                               (time.time(),)).fetchone()
        return row is not None

    def _receive_now(self, max_messages: int) -> list[Message]:
        received: list[Message] = []
        with self._write(durable=False) as conn:
            now = time.time()
            while len(received) < max_messages:
                rows = conn.execute(
                    "SELECT id, body, receive_count FROM messages WHERE visible_at <= ? "
                    "ORDER BY visible_at, seq LIMIT ?", (now, max_messages - len(received)),
                ).fetchall()
                if not rows:
                    break
                for message_id, body, count in rows:
                    if count >= self.max_receive_count:
                        # SQS's redrive: the receive that would exceed the limit moves it.
                        self._bury(conn, message_id, f"received {count} times without success")
                        continue
                    handle = uuid.uuid4().hex
                    conn.execute(
                        "UPDATE messages SET receive_count = receive_count + 1, handle = ?, "
                        "visible_at = ? WHERE id = ?",
                        (handle, now + self.visibility_timeout, message_id))
                    received.append(Message(message_id, body, count + 1, handle))
        return received

    def _bury(self, conn: sqlite3.Connection, message_id: str, reason: str,
              handle: str | None = None) -> bool:
        """Move a message to the dead table (only if ``handle`` still holds it, when given)."""
        # ?2 NULL: whoever holds it (redrive); otherwise only the holder of that receipt.
        moved = conn.execute(
            "INSERT INTO dead (id, body, reason, receive_count, died_at) "
            "SELECT id, body, ?3, receive_count, ?4 FROM messages "
            "WHERE id = ?1 AND (?2 IS NULL OR handle = ?2)",
            (message_id, handle, reason, time.time())).rowcount
        conn.execute("DELETE FROM messages WHERE id = ?1 AND (?2 IS NULL OR handle = ?2)",
                     (message_id, handle))
        if moved:
            log.warning("dead-lettered %s", fields(queue=self.path, id=message_id, reason=reason))
        return bool(moved)

    def _ack(self, message: Message) -> None:
        # Group commit: a batch commit settles 20-40 files at once, and one transaction
        # each queued their acks (and the worker's next receive) behind one another. Each
        # ack joins a list; whoever gets the write lock deletes everything on it.
        mine = _PendingAck(message)
        with self._acks_lock:
            self._acks.append(mine)
        with self._lock:
            if not mine.done:
                with self._acks_lock:
                    batch, self._acks = self._acks, []
                try:
                    with self._transaction(durable=False) as conn:
                        for ack in batch:
                            ack.gone = conn.execute(
                                "DELETE FROM messages WHERE id = ? AND handle = ?",
                                (ack.message.id, ack.message.handle)).rowcount > 0
                except Exception as exc:
                    for ack in batch:
                        ack.error = str(exc)
                    raise
                finally:
                    for ack in batch:
                        ack.done = True
        if mine.error is not None:
            raise TransientError(f"ack of message {message.id} failed: {mine.error}")
        if not mine.gone:
            _lost("ack", message)

    def _change_visibility(self, message: Message, seconds: float) -> None:
        with self._write(durable=False) as conn:
            changed = conn.execute("UPDATE messages SET visible_at = ? WHERE id = ? AND handle = ?",
                                   (time.time() + seconds, message.id, message.handle)).rowcount
        if not changed:
            _lost("change visibility of", message)

    def _extend_all(self, messages: list[Message], seconds: float) -> None:
        lost = []
        with self._write(durable=False) as conn:  # one transaction for the whole heartbeat
            visible_at = time.time() + seconds
            for message in messages:
                if not conn.execute(
                        "UPDATE messages SET visible_at = ? WHERE id = ? AND handle = ?",
                        (visible_at, message.id, message.handle)).rowcount:
                    lost.append(message)
        for message in lost:
            _lost("change visibility of", message)

    def _dead_letter(self, message: Message, reason: str) -> None:
        with self._write() as conn:
            moved = self._bury(conn, message.id, reason, message.handle)
        if not moved:
            _lost("dead-letter", message)

    def _dead_letters(self, limit: int) -> list[DeadLetter]:
        with self._read() as conn:
            rows = conn.execute("SELECT body, reason, seq FROM dead ORDER BY seq LIMIT ?",
                                (limit,)).fetchall()
        return [DeadLetter(body, reason, str(seq)) for body, reason, seq in rows]

    def _move_dead(self, ids: set[str] | None, requeue: bool) -> int:
        where, args = "", []
        if ids is not None:
            seqs = [int(i) for i in ids if i.isdigit()]
            if not seqs:
                return 0
            where, args = f"WHERE seq IN ({', '.join('?' * len(seqs))})", seqs
        with self._write() as conn:
            if requeue:
                now = time.time()
                conn.execute("INSERT INTO messages (id, body, sent_at, visible_at) "  # noqa: S608
                             f"SELECT lower(hex(randomblob(16))), body, ?, ? FROM dead {where} "
                             "ORDER BY seq", [now, now, *args])
            moved = conn.execute(f"DELETE FROM dead {where}", args).rowcount  # noqa: S608
        log.info("%s %d dead letter(s) %s", "redrove" if requeue else "deleted", moved,
                 fields(queue=self.path))
        return moved

    # ------------------------------------------------------------ the rest

    def stats(self) -> QueueStats:
        with self._read() as conn:
            visible, hidden = conn.execute(
                "SELECT COALESCE(SUM(visible_at <= ?1), 0), COALESCE(SUM(visible_at > ?1), 0) "
                "FROM messages", (time.time(),)).fetchone()
            dead = conn.execute("SELECT COUNT(*) FROM dead").fetchone()[0]
        return QueueStats(visible=visible, in_flight=hidden, dead=dead)

    def purge(self) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM messages")
            conn.execute("DELETE FROM dead")

    def close(self) -> None:
        with self._lock:
            self._conn.close()


@dataclass
class _PendingAck:
    """One ack waiting to be deleted with others (:meth:`SQLiteWorkQueue._ack`)."""

    message: Message
    done: bool = False
    gone: bool = False  # deleted; False when the receipt no longer held it
    error: str | None = None


def _lost(action: str, message: Message) -> None:
    # At-least-once delivery: the visibility timeout expired and the message was deleted
    # or received again by someone else. Not an error; its new holder takes care of it.
    log.warning("could not %s message %s: no longer held by this receipt (visibility "
                "timeout expired?)", action, message.id)


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """sqlite3 errors as dropgz errors: a busy or failing disk is worth retrying."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise TransientError(f"work queue {path}: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise DropgzError(f"work queue {path}: {exc}") from exc
