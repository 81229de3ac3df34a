"""Commit many small ``.gz`` files of one account in one call: ``finish_batch_v2``.

Dropbox serializes the commits into one account (its namespace lock); commits that overlap
get 429 ``too_many_write_operations``. Its advice (data-ingress guide,
https://developers.dropbox.com/dbx-performance-guide): upload each file's bytes in its own
session closed with ``close=true``, then commit many at once with
``upload_session/finish_batch_v2`` (synchronous, at most 1,000 entries, each answered on
its own), one batch in flight per account. A :class:`BatchCommitter` does that for one
account:

- a file's thread calls :meth:`BatchCommitter.commit` and waits; meanwhile it gives its
  worker slot back (:mod:`.parking`), so the worker keeps downloading other files;
- a batch leaves when none of this account is in flight and either every file of the
  account being worked on here is waiting (nothing more will come soon), or
  :data:`MAX_BATCH_ENTRIES` wait, or the oldest has waited :data:`GATHER_SECONDS`;
- one sender thread per account sends the batches and hands each entry its answer; it
  lives while entries wait, and ends when none is left (an idle account costs no thread);
- only what failed is retried, in a later batch: an entry refused for contention
  (``too_many_write_operations``, ``too_many_shared_folder_targets``) after a backoff, every
  entry of a call that failed as a whole (429: after its ``Retry-After``; 5xx or a dropped
  connection: after a backoff). After :data:`MAX_COMMIT_ATTEMPTS` tries the caller gets the
  error (:class:`~dropgz.core.errors.RateLimited` for contention) for the worker's retry
  policy. Any other refusal of an entry is raised to its caller as the SDK's ``ApiError``
  carrying the entry's ``UploadSessionFinishError``, as ``upload_session/finish`` would.

A retried call whose first attempt did commit finds its sessions gone (``lookup_failed``):
the file is then retried whole and finds its own ``.gz`` already there (see :mod:`.commit`).
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dropbox
import requests
from dropbox.exceptions import ApiError, InternalServerError, RateLimitError
from dropbox.files import (
    CommitInfo,
    FileMetadata,
    UploadSessionCursor,
    UploadSessionFinishArg,
    UploadSessionFinishBatchResultEntry,
    UploadSessionFinishError,
)

from dropgz.compression.parking import park
from dropgz.core.errors import RateLimited, TransientError
from dropgz.core.logs import fields

log = logging.getLogger(__name__)

# finish_batch_v2 takes at most 1,000 entries (files.stone, UploadSessionFinishBatchArg):
# https://www.dropbox.com/developers/documentation/http/documentation#files-upload_session-finish_batch_v2
MAX_BATCH_ENTRIES = 1000
# How long the first waiting entry lets others gather while files are still coming. Short
# next to a commit's own round trip; it bounds what a file waits beyond that.
GATHER_SECONDS = 0.3
# Tries of one entry before its file is handed back to the worker's retry policy.
MAX_COMMIT_ATTEMPTS = 8
# Per-entry contention carries no Retry-After: wait this, doubling per try, at most the cap.
CONTENTION_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 16.0
DEFAULT_RETRY_AFTER_SECONDS = 1.0

_TRANSIENT = (InternalServerError, requests.exceptions.ConnectionError,
              requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError)


# A batch call's answer: its entries in order, or the exception of the whole call.
_Answer = list[UploadSessionFinishBatchResultEntry] | BaseException


@dataclass(eq=False)
class _Entry:
    arg: UploadSessionFinishArg
    client: dropbox.Dropbox
    ready_at: float  # monotonic time from which it may go in a batch
    attempts: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    metadata: FileMetadata | None = None
    error: BaseException | None = None


def is_contention(failure: UploadSessionFinishError) -> bool:
    """An entry refused because the namespace was busy: worth retrying as it is."""
    if failure.is_too_many_write_operations() or failure.is_too_many_shared_folder_targets():
        return True
    return bool(failure.is_path() and failure.get_path().is_too_many_write_operations())


class BatchCommitter:
    """Commits closed upload sessions of one account, batched; thread-safe."""

    def __init__(self, *, gather_seconds: float = GATHER_SECONDS,
                 max_entries: int = MAX_BATCH_ENTRIES,
                 max_attempts: int = MAX_COMMIT_ATTEMPTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 1 <= max_entries <= MAX_BATCH_ENTRIES:
            raise ValueError(f"max_entries must be in 1..{MAX_BATCH_ENTRIES} "
                             "(finish_batch_v2's limit)")
        if gather_seconds < 0 or max_attempts < 1:
            raise ValueError("gather_seconds must be >= 0 and max_attempts >= 1")
        self.gather_seconds = gather_seconds
        self.max_entries = max_entries
        self.max_attempts = max_attempts
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: list[_Entry] = []
        self._sender: threading.Thread | None = None
        self._working = 0
        self._raw: tuple[dropbox.Dropbox, dropbox.Dropbox] | None = None
        self.batches = 0  # finish_batch_v2 calls made (for logs and tests)

    def __repr__(self) -> str:
        return f"BatchCommitter(pending={len(self._pending)}, working={self._working})"

    @contextmanager
    def working(self) -> Iterator[None]:
        """One of this account's files is being worked on here: a batch may wait for it."""
        with self._cond:
            self._working += 1
        try:
            yield
        finally:
            with self._cond:
                self._working -= 1
                self._cond.notify_all()

    def commit(self, dbx: dropbox.Dropbox, session_id: str, size: int,
               commit: CommitInfo) -> FileMetadata:
        """Commit the closed session ``session_id`` (``size`` bytes) as ``commit`` says, in
        a batch; returns the file's metadata. Raises ``ApiError`` (the entry's
        ``UploadSessionFinishError``), :class:`RateLimited`, or the batch call's error."""
        entry = _Entry(UploadSessionFinishArg(UploadSessionCursor(session_id, size), commit),
                       dbx, self._clock())
        park()
        with self._cond:
            self._pending.append(entry)
            if self._sender is None:
                self._sender = threading.Thread(target=self._send_batches, daemon=True,
                                                name="dropgz-batch-commit")
                self._sender.start()
            self._cond.notify_all()
        entry.done.wait()
        if entry.error is not None:
            raise entry.error
        assert entry.metadata is not None
        return entry.metadata

    def _send_batches(self) -> None:
        """The sender thread: batches while entries wait."""
        with self._cond:
            try:
                while self._pending:
                    batch, wait = self._take_ready()
                    if batch:
                        self._send(batch)
                    else:
                        self._cond.wait(wait)
            except BaseException as exc:  # a bug here must not leave files waiting forever
                for entry in self._pending:
                    self._finish(entry, error=exc)
                self._pending = []
                raise
            finally:
                self._sender = None

    # ------------------------------------------------------------ under the lock

    def _take_ready(self) -> tuple[list[_Entry], float]:
        """A batch to send now, or none and how long to wait before looking again."""
        now = self._clock()
        ready = sorted((e for e in self._pending if e.ready_at <= now),
                       key=lambda e: e.ready_at)
        if not ready:
            return [], max(min(e.ready_at for e in self._pending) - now, 0.001)
        gathered = now - ready[0].ready_at
        if (len(ready) >= self.max_entries or len(self._pending) >= self._working
                or gathered >= self.gather_seconds):
            batch = ready[:self.max_entries]
            taken = set(map(id, batch))
            self._pending = [e for e in self._pending if id(e) not in taken]
            return batch, 0.0
        return [], max(self.gather_seconds - gathered, 0.001)

    def _send(self, batch: list[_Entry]) -> None:
        """Send ``batch`` with the lock let go, then settle every entry (lock held again)."""
        try:
            self._cond.release()
            try:
                answer = self._call(batch)
            finally:
                self._cond.acquire()
            self._settle(batch, answer)
        except BaseException as exc:
            for entry in batch:
                if not entry.done.is_set() and not any(e is entry for e in self._pending):
                    self._finish(entry, error=exc)
            raise

    def _settle(self, batch: list[_Entry], answer: _Answer) -> None:
        now = self._clock()
        if isinstance(answer, BaseException):
            if isinstance(answer, RateLimitError):
                wait = float(answer.backoff or DEFAULT_RETRY_AFTER_SECONDS)
                for entry in batch:
                    self._retry(entry, now, wait, answer)
            elif isinstance(answer, _TRANSIENT):
                for entry in batch:
                    self._retry(entry, now, self._backoff(entry), answer)
            else:
                for entry in batch:
                    self._finish(entry, error=answer)
            return
        contended = 0
        for entry, result in zip(batch, answer, strict=True):
            if result.is_success():
                self._finish(entry, metadata=result.get_success())
                continue
            failure = result.get_failure()
            if is_contention(failure):
                contended += 1
                busy = RateLimited(f"{entry.arg.commit.path}: Dropbox kept refusing the commit "
                                   f"({failure!r})", self._backoff(entry))
                self._retry(entry, now, self._backoff(entry), busy)
            else:
                self._finish(entry, error=ApiError(None, failure, None, None))
        if contended:
            log.info("batch commit %s", fields(entries=len(batch), contended=contended,
                                               retrying=contended))

    def _retry(self, entry: _Entry, now: float, wait: float, error: BaseException) -> None:
        entry.attempts += 1
        if entry.attempts >= self.max_attempts:
            self._finish(entry, error=error)
            return
        entry.ready_at = now + wait
        self._pending.append(entry)

    def _backoff(self, entry: _Entry) -> float:
        return min(CONTENTION_BACKOFF_SECONDS * 2 ** entry.attempts, MAX_BACKOFF_SECONDS)

    @staticmethod
    def _finish(entry: _Entry, *, metadata: FileMetadata | None = None,
                error: BaseException | None = None) -> None:
        entry.metadata, entry.error = metadata, error
        entry.done.set()

    # ------------------------------------------------------------ the call, no lock held

    def _call(self, batch: list[_Entry]) -> _Answer:
        """The answer's entries, in order, or the exception of the whole call."""
        raw = self._raw_client(batch[-1].client)  # the newest client: the freshest token
        self.batches += 1
        try:
            result = raw.files_upload_session_finish_batch_v2([e.arg for e in batch])
        except Exception as exc:  # settled per entry by the caller
            return exc
        if len(result.entries) != len(batch):
            return TransientError(f"finish_batch_v2 answered {len(result.entries)} entries "
                                  f"for {len(batch)}")
        return list(result.entries)

    def _raw_client(self, client: dropbox.Dropbox) -> dropbox.Dropbox:
        """``client`` without the SDK's own retries: a failed batch goes back to pending,
        where later entries join it, instead of sleeping in the SDK."""
        if self._raw is None or self._raw[0] is not client:
            self._raw = (client, client.clone(max_retries_on_error=0,
                                              max_retries_on_rate_limit=0))
        return self._raw[1]


class Committers:
    """One :class:`BatchCommitter` per account, for as long as anything uses it."""

    def __init__(self, **options: float) -> None:
        self._options = options
        self._committers: weakref.WeakValueDictionary[str | None, BatchCommitter] = \
            weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def for_account(self, account: str | None) -> BatchCommitter:
        with self._lock:
            committer = self._committers.get(account)
            if committer is None:
                committer = BatchCommitter(**self._options)  # type: ignore[arg-type]
                self._committers[account] = committer
            return committer
