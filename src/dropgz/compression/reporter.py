"""The worker tells the web tier what it did: per-file outcomes and a heartbeat.

:meth:`Reporter.record` is called by the worker for every settled file and only appends
to a bounded in-memory buffer (a lock and a deque: microseconds). A background thread
sends the buffer every :data:`FLUSH_SECONDS` to ``POST /internal/report`` and a heartbeat
every :data:`HEARTBEAT_SECONDS` to ``POST /internal/heartbeat``, signed with
``[Service] internal_key`` (:class:`~dropgz.compression.internal_client.InternalClient`).

A web tier that is down never slows or stops compression: sends happen off the files'
threads, a failed send keeps its records for the next try (with backoff), and when the
buffer is full the oldest records are dropped and counted; the count travels with the
next heartbeat, so the dashboard shows what was lost.

The heartbeat's answer lists the paused accounts: :meth:`Reporter.paused` is how the
worker knows to defer their files.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from dropgz import __version__
from dropgz.compression.internal_client import InternalCallRefused, InternalClient
from dropgz.core.errors import TransientError

log = logging.getLogger(__name__)

REPORT_PATH = "/internal/report"
HEARTBEAT_PATH = "/internal/heartbeat"
FLUSH_SECONDS = 2.0
HEARTBEAT_SECONDS = 10.0
MAX_BUFFER = 10_000  # records kept while the web tier is unreachable (~2 MB)
MAX_BATCH = 500  # records per request (the web tier refuses larger bodies)
MAX_BACKOFF_SECONDS = 60.0
SEND_TIMEOUT_SECONDS = 5.0
CLOSE_SECONDS = 5.0  # the last flush at shutdown waits at most this long


@dataclass(frozen=True)
class FileEvent:
    """One settled file, as the worker saw it."""

    account: str
    path: str
    outcome: str  # compressed | skipped | retried | failed
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    reason: str = ""
    at: float = 0.0  # seconds since the epoch; set by record() when 0


class Reporter:
    """Buffers :class:`FileEvent` s and sends them, with heartbeats, from one thread."""

    def __init__(self, client: InternalClient, *, concurrency: int,
                 in_flight: Callable[[], int] = lambda: 0,
                 flush_seconds: float = FLUSH_SECONDS,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS,
                 max_buffer: int = MAX_BUFFER) -> None:
        self.client = client
        self.concurrency = concurrency
        self.in_flight = in_flight
        self.flush_seconds = flush_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.started_at = time.time()
        self.host = socket.gethostname()
        self.worker_id = f"{self.host}:{os.getpid()}:{int(self.started_at)}"
        self.dropped = 0
        self.sent = 0
        self._buffer: collections.deque[FileEvent] = collections.deque()
        self._max_buffer = max_buffer
        self._lock = threading.Lock()
        self._paused: frozenset[str] = frozenset()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = 0.0
        self._next_beat = 0.0

    def __repr__(self) -> str:
        return f"Reporter({self.client.base_url!r}, worker={self.worker_id!r})"

    # ------------------------------------------------------------ the worker's side

    def record(self, event: FileEvent) -> None:
        """Queue one event; never blocks, never raises for a full buffer (drops the oldest)."""
        if not event.at:
            event = FileEvent(**{**asdict(event), "at": time.time()})
        with self._lock:
            if len(self._buffer) >= self._max_buffer:
                self._buffer.popleft()
                self.dropped += 1
            self._buffer.append(event)

    def paused(self, account: str | None) -> bool:
        """True when the web tier said (in its last heartbeat answer) the account is paused."""
        return account is not None and account in self._paused

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    # ------------------------------------------------------------ the thread

    def start(self) -> Reporter:
        self._thread = threading.Thread(target=self._run, name="dropgz-reporter", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Stop the thread after one last flush (bounded by ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.client.close()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds + self._backoff):
            self.tick()
        deadline = time.monotonic() + CLOSE_SECONDS
        while self.pending and time.monotonic() < deadline and self._flush():
            pass

    def tick(self) -> None:
        """One round: the heartbeat when due, then the buffer (tests call this directly)."""
        ok = True
        if time.monotonic() >= self._next_beat:
            ok = self._beat()
        if ok:
            while self.pending and self._flush():
                pass

    def _beat(self) -> bool:
        payload = {"worker": self.worker_id, "host": self.host, "pid": os.getpid(),
                   "version": __version__, "started_at": self.started_at,
                   "concurrency": self.concurrency, "in_flight": int(self.in_flight()),
                   "reports_dropped": self.dropped}
        status, answer = self._send(HEARTBEAT_PATH, payload)
        if answer is None:
            return status == "refused"
        paused = answer.get("paused")
        if isinstance(paused, list):
            self._paused = frozenset(a for a in paused if isinstance(a, str))
        self._next_beat = time.monotonic() + self.heartbeat_seconds
        return True

    def _flush(self) -> bool:
        """Send one batch; True when it went (or was refused for good and dropped)."""
        with self._lock:
            batch = [self._buffer.popleft() for _ in range(min(MAX_BATCH, len(self._buffer)))]
        if not batch:
            return True
        status, _ = self._send(REPORT_PATH, {"worker": self.worker_id,
                                             "files": [asdict(e) for e in batch]})
        if status == "sent":
            self.sent += len(batch)
            return True
        if status == "refused":  # retrying cannot help: drop them, counted
            with self._lock:
                self.dropped += len(batch)
            return True
        with self._lock:  # unreachable: keep them (oldest first) for the next try
            room = self._max_buffer - len(self._buffer)
            keep = batch[-room:] if room > 0 else []
            self.dropped += len(batch) - len(keep)
            self._buffer.extendleft(reversed(keep))
        return False

    def _send(self, path: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """("sent", answer), ("retry", None) with backoff set, or ("refused", None)."""
        try:
            answer = self.client.post(path, payload)
        except TransientError as exc:
            self._backoff = min(max(self._backoff * 2, self.flush_seconds), MAX_BACKOFF_SECONDS)
            log.warning("cannot report to the web tier, will retry in %.0f s: %s",
                        self.flush_seconds + self._backoff, exc)
            return "retry", None
        except InternalCallRefused as exc:
            self._backoff = 0.0
            log.error("the web tier refused a report to %s (%s): dropped", path, exc.reason)
            return "refused", None
        self._backoff = 0.0
        return "sent", answer
