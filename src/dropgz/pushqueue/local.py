"""The single-host push queue: tasks kept in SQLite, delivered by a thread over HTTP.

Durable: a task stays in ``pushqueue.sqlite3`` until the app answered 2xx, so it survives
a crash or restart. Each delivery is a POST to ``base_url + task.url`` signed with
HMAC-SHA256 keyed by the task secret, which only this dispatcher and the app hold (the
app checks it in :meth:`LocalPushQueue.verify_origin`). Non-2xx answers are retried with
exponential backoff, honouring ``Retry-After``. Names coalesce like App Engine's: a name
already used (pending, running or delivered within :data:`TOMBSTONE_SECONDS`) is not
added again.

One dispatcher per data folder: on start it takes back tasks an earlier process had
claimed and not finished (that process is gone).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Request

from dropgz.core.keyfile import kept_key
from dropgz.core.logs import fields
from dropgz.core.secret import Secret
from dropgz.pushqueue.base import RECONCILE_URL, PushQueue, Task, coalesced_name, encode_payload

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Dropgz-Task-Signature"
NAME_HEADER = "X-Dropgz-Task-Name"
TIMESTAMP_HEADER = "X-Dropgz-Task-Timestamp"
RETRY_HEADER = "X-Dropgz-Task-Retry-Count"
# A signed request older than this is refused, so a captured one cannot be replayed later.
MAX_SIGNATURE_AGE_SECONDS = 300.0
# Like App Engine's push-queue deadline (10 minutes), plus room for the answer to arrive.
DELIVERY_TIMEOUT_SECONDS = 630.0
# A delivered name stays taken this long, so a late duplicate is still coalesced.
TOMBSTONE_SECONDS = 24 * 3600.0
# Task names remembered in memory to answer repeats without SQLite (a few hours of buckets).
RECENT_NAMES = 10_000
# Like queue.yaml's task_age_limit: after a day of failures give up (the reconcile task,
# every DEFAULT_RECONCILE_SECONDS, queues the account again anyway).
TASK_AGE_LIMIT_SECONDS = 24 * 3600.0
MIN_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0
# Same period as cron.yaml on App Engine: a lost webhook is healed within it.
DEFAULT_RECONCILE_SECONDS = 600.0
# Bound parameters per statement (SQLite's historical SQLITE_MAX_VARIABLE_NUMBER is 999).
SQL_VARIABLES = 900
TASK_SECRET_FILE = "task_secret"  # noqa: S105 - a file name, not a secret

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    payload BLOB NOT NULL,
    eta REAL NOT NULL,          -- due time; while claimed: when the claim runs out
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    done_at REAL,               -- NULL while not yet delivered
    last_status TEXT
);
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (done_at, eta);
"""


def load_task_secret(data_path: Path, configured: Secret | None = None) -> Secret:
    """The configured task secret, else the one kept in ``data_path/task_secret``
    (made on first use, mode 0600)."""
    return kept_key(data_path, TASK_SECRET_FILE, configured, what="task secret",
                    setting="[Service] task_secret")


def sign(secret: Secret, method: str, path: str, name: str, timestamp: str,
         body: bytes) -> str:
    """Hex HMAC-SHA256 over the parts of a delivery that matter."""
    head = "\n".join((method.upper(), path, name, timestamp)).encode() + b"\n"
    return hmac.new(secret.reveal().encode(), head + body, hashlib.sha256).hexdigest()


def _backoff(attempts: int, retry_after: float | None) -> float:
    delay = min(MAX_BACKOFF_SECONDS, MIN_BACKOFF_SECONDS * 2 ** max(0, attempts - 1))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_BACKOFF_SECONDS))
    return delay


def _retry_after(response: requests.Response) -> float | None:
    raw = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


class LocalPushQueue(PushQueue):
    """SQLite-backed push queue with an in-process delivery thread."""

    def __init__(self, db_path: Path, secret: Secret, *, workers: int = 4,
                 reconcile_seconds: float | None = DEFAULT_RECONCILE_SECONDS,
                 session: requests.Session | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.db_path = Path(db_path)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._secret = secret
        self._workers = workers
        self._reconcile_seconds = reconcile_seconds
        self._session = session or requests.Session()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base_url = ""
        # One connection per thread, kept open: opening and closing one per webhook made
        # SQLite checkpoint its WAL on every close (4x slower webhook answers).
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        # Names added lately: a burst of notifications for one account hits the same
        # coalesced name, and needs no SQLite round trip to learn it is already queued.
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._recent_lock = threading.Lock()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> LocalPushQueue:
        """The queue under ``[Service] data_dir`` with the configured or kept task secret."""
        data_path = settings.service.data_path
        secret = load_task_secret(data_path, settings.service.task_secret)
        return cls(data_path / "pushqueue.sqlite3", secret, **kwargs)

    def __repr__(self) -> str:
        return f"LocalPushQueue({str(self.db_path)!r})"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None,
                                 check_same_thread=False)
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        try:
            yield db
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise

    def _close_connections(self) -> None:
        with self._connections_lock:
            for db in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._connections.clear()
        self._local = threading.local()

    # ------------------------------------------------------------ adding

    def add(self, tasks: Sequence[Task]) -> list[bool]:
        with self._recent_lock:
            fresh = [t for t in tasks if t.name not in self._recent]
        if not fresh:
            return [False] * len(tasks)
        now = time.time()
        rows = [(t.name, t.url, encode_payload(t), now + t.countdown, now) for t in fresh]
        names = list(dict.fromkeys(row[0] for row in rows))
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM tasks WHERE done_at < ?", (now - TOMBSTONE_SECONDS,))
            existing: set[str] = set()
            for first in range(0, len(names), SQL_VARIABLES):
                chunk = names[first:first + SQL_VARIABLES]
                existing.update(r[0] for r in db.execute(
                    f"SELECT name FROM tasks WHERE name IN ({','.join('?' * len(chunk))})",  # noqa: S608
                    chunk))
            # One statement for the batch: a notification naming a hundred accounts is one
            # round of SQLite's parser, not a hundred.
            db.executemany("INSERT OR IGNORE INTO tasks (name, url, payload, eta, created) "
                           "VALUES (?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        inserted = {name: name not in existing for name in names}
        with self._recent_lock:
            for task in fresh:
                self._recent[task.name] = None
            while len(self._recent) > RECENT_NAMES:
                self._recent.popitem(last=False)
        added = [inserted.pop(t.name, False) for t in tasks]  # only a name's first task counts
        if any(added):
            self._wake.set()
        return added

    def pending(self) -> list[dict[str, Any]]:
        """Tasks not yet delivered (for status and tests)."""
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT name, url, eta, attempts, last_status FROM tasks "
                              "WHERE done_at IS NULL ORDER BY eta").fetchall()
        return [dict(r) for r in rows]

    # ------------------------------------------------------------ checking

    def verify_origin(self, request: Request) -> bool:
        given = request.headers.get(SIGNATURE_HEADER, "")
        name = request.headers.get(NAME_HEADER, "")
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        try:
            age = abs(time.time() - float(stamp))
        except ValueError:
            return False
        if not given or not name or age > MAX_SIGNATURE_AGE_SECONDS:
            return False
        wanted = sign(self._secret, request.method, request.path, name, stamp,
                      request.get_data(cache=True))
        return hmac.compare_digest(given.encode(), wanted.encode())

    # ------------------------------------------------------------ delivering

    def start(self, base_url: str) -> None:
        """Deliver due tasks to ``base_url`` (``http://127.0.0.1:PORT``) from a thread."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"base_url must be http(s)://host:port, got {base_url!r}")
        if self._thread is not None:
            raise RuntimeError("dispatcher already started")
        self._base_url = base_url.rstrip("/")
        with self._connect() as db:  # claims of a process that is gone
            db.execute("UPDATE tasks SET eta = ? WHERE done_at IS NULL AND eta > ? "
                       "AND attempts > 0", (time.time(), time.time()))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="dropgz-pushqueue", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                # A delivery is still running and may use its connection: leave the
                # connections to be closed when their threads end.
                log.warning("push queue dispatcher still delivering after %.0fs", timeout)
                return
        self._close_connections()

    def _run(self) -> None:
        next_reconcile = time.time()
        with ThreadPoolExecutor(self._workers, thread_name_prefix="dropgz-deliver") as pool:
            while not self._stop.is_set():
                if self._reconcile_seconds and time.time() >= next_reconcile:
                    self._schedule_reconcile()
                    next_reconcile = time.time() + self._reconcile_seconds
                try:
                    claimed = self._claim(self._workers)
                    wait = 0.0 if claimed else self._seconds_to_next()
                except sqlite3.Error as exc:  # e.g. disk full: keep the thread alive
                    log.error("push queue database error: %s", exc)
                    claimed, wait = [], 1.0
                for row in claimed:
                    pool.submit(self._deliver, *row)
                self._wake.clear()
                if wait:
                    self._wake.wait(wait)

    def _schedule_reconcile(self) -> None:
        named = coalesced_name("reconcile", "all", bucket_seconds=self._reconcile_seconds or 1)
        try:
            self.add([Task(RECONCILE_URL, {}, named.name)])
        except sqlite3.Error as exc:
            log.warning("could not schedule reconcile: %s", exc)

    def _seconds_to_next(self) -> float:
        with self._connect() as db:
            row = db.execute("SELECT MIN(eta) FROM tasks WHERE done_at IS NULL").fetchone()
        if row[0] is None:
            return 1.0
        return min(1.0, max(0.01, row[0] - time.time()))

    def _claim(self, limit: int) -> list[tuple[str, str, bytes, int]]:
        """Take up to ``limit`` due tasks; a claim lasts one delivery timeout."""
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            rows = db.execute("SELECT name, url, payload, attempts FROM tasks "
                              "WHERE done_at IS NULL AND eta <= ? ORDER BY eta LIMIT ?",
                              (now, limit)).fetchall()
            for name, *_ in rows:
                db.execute("UPDATE tasks SET eta = ?, attempts = attempts + 1 WHERE name = ?",
                           (now + DELIVERY_TIMEOUT_SECONDS, name))
            db.execute("COMMIT")
        return [(name, url, payload, attempts) for name, url, payload, attempts in rows]

    def _deliver(self, name: str, url: str, payload: bytes, retries: int) -> None:
        stamp = f"{time.time():.3f}"
        headers = {
            "Content-Type": "application/json",
            NAME_HEADER: name,
            TIMESTAMP_HEADER: stamp,
            RETRY_HEADER: str(retries),
            SIGNATURE_HEADER: sign(self._secret, "POST", url, name, stamp, payload),
        }
        status, retry_after = "error", None
        try:
            response = self._session.post(self._base_url + url, data=payload, headers=headers,
                                          timeout=DELIVERY_TIMEOUT_SECONDS)
            status, retry_after = str(response.status_code), _retry_after(response)
            response.close()
            ok = 200 <= response.status_code < 300
        except requests.RequestException as exc:
            ok = False
            log.warning("task delivery failed: %s", fields(task=name, error=type(exc).__name__))
        self._finish(name, ok, status, retries + 1, retry_after)

    def _finish(self, name: str, ok: bool, status: str, attempts: int,
                retry_after: float | None) -> None:
        now = time.time()
        with self._connect() as db:
            if ok:
                db.execute("UPDATE tasks SET done_at = ?, last_status = ? WHERE name = ?",
                           (now, status, name))
            else:
                self._retry_or_give_up(db, name, status, attempts, retry_after, now)
        self._wake.set()

    @staticmethod
    def _retry_or_give_up(db: sqlite3.Connection, name: str, status: str, attempts: int,
                          retry_after: float | None, now: float) -> None:
        delay = _backoff(attempts, retry_after)
        cur = db.execute("UPDATE tasks SET done_at = ?, last_status = ? WHERE name = ? "
                         "AND created < ?", (now, f"gave up: {status}", name,
                                             now - TASK_AGE_LIMIT_SECONDS))
        if cur.rowcount:
            log.error("task given up after %s", fields(task=name, status=status,
                                                       attempts=attempts))
        else:
            db.execute("UPDATE tasks SET eta = ?, last_status = ? WHERE name = ?",
                       (now + delay, status, name))
            log.info("task will be retried: %s",
                     fields(task=name, status=status, attempts=attempts, delay=delay))
