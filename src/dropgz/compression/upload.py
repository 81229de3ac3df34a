"""Upload a compressed stream through an upload session, compressing and sending at once.

Why not ``dropbox.file_transfer.Uploader``: it reads a chunk, then sends it, then reads
the next, one after the other, and hashes every chunk again although the caller already
hashes the stream. With a fast compressor (isal: ~550 MB/s here) that halves throughput
(bench/throughput.py, profiled). Here a producer thread reads (downloads and compresses)
chunk *n+1* while this thread sends chunk *n*; zlib/ISA-L, hashlib and sockets release the
GIL, so the two overlap on two cores. At most three chunks exist at once (being produced,
waiting, being sent), so memory stays bounded whatever the file size.

Integrity: chunks go without a per-chunk ``content_hash`` (that would be a second hash
pass); the caller compares Dropbox's content hash of the finished file with the hash of
every byte it produced, which catches any corruption end to end.

Upload session limits: https://www.dropbox.com/developers/documentation/http/documentation#files-upload_session-start
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import BinaryIO, TypeVar

import dropbox
import requests
from dropbox.exceptions import ApiError, InternalServerError, RateLimitError
from dropbox.files import CommitInfo, FileMetadata, UploadSessionCursor

CHUNK_SIZE = 4 * 1024 * 1024  # a multiple of 4 MiB, as Dropbox asks of session appends
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 0.5
_PUT_POLL_SECONDS = 0.5

T = TypeVar("T")
_EOF = object()
_RETRYABLE = (InternalServerError, RateLimitError, requests.exceptions.ConnectionError,
              requests.exceptions.Timeout, requests.exceptions.ChunkedEncodingError)


class _Cancelled(Exception):
    """The consumer gave up; the producer stops."""


def _read_chunk(reader: BinaryIO, size: int) -> bytes:
    """Exactly ``size`` bytes, or fewer only at the end of the stream."""
    parts: list[bytes] = []
    got = 0
    while got < size:
        data = reader.read(size - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _correct_offset(exc: ApiError) -> int | None:
    """``correct_offset`` of an append's ``incorrect_offset`` error, else None."""
    err = exc.error
    if getattr(err, "is_incorrect_offset", lambda: False)():
        return err.get_incorrect_offset().correct_offset
    return None


def _retrying(call: Callable[[], T]) -> T:
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return call()
        except _RETRYABLE as exc:
            if attempt == MAX_ATTEMPTS:
                raise
            wait = exc.backoff if isinstance(exc, RateLimitError) and exc.backoff else \
                RETRY_BASE_SECONDS * 2 ** (attempt - 1)
            time.sleep(wait)
    raise AssertionError("unreachable")


class _Producer(threading.Thread):
    """Reads chunks from the reader into a one-slot queue until the end or cancellation."""

    def __init__(self, reader: BinaryIO, chunk_size: int) -> None:
        super().__init__(name="dropgz-compress", daemon=True)
        self.reader = reader
        self.chunk_size = chunk_size
        self.chunks: queue.Queue[object] = queue.Queue(maxsize=1)
        self.cancelled = threading.Event()

    def run(self) -> None:
        try:
            while True:
                data = _read_chunk(self.reader, self.chunk_size)
                if data:
                    self._put(data)
                if len(data) < self.chunk_size:
                    self._put(_EOF)
                    return
        except _Cancelled:
            return
        except BaseException as exc:  # handed to the consumer, raised there
            with contextlib.suppress(_Cancelled):
                self._put(exc)

    def _put(self, item: object) -> None:
        while True:
            if self.cancelled.is_set():
                raise _Cancelled
            try:
                self.chunks.put(item, timeout=_PUT_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def next(self) -> bytes | None:
        item = self.chunks.get()
        if item is _EOF:
            return None
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[return-value]

    def cancel(self) -> None:
        self.cancelled.set()
        with contextlib.suppress(queue.Empty):
            self.chunks.get_nowait()  # unblock a producer waiting to put
        self.join(timeout=30)


def _append(dbx: dropbox.Dropbox, session_id: str, offset: int, data: bytes) -> None:
    def call() -> None:
        try:
            dbx.files_upload_session_append_v2(data, UploadSessionCursor(session_id, offset))
        except ApiError as exc:
            # A retried append whose first attempt did land: the server is already past it.
            if _correct_offset(exc) != offset + len(data):
                raise
    _retrying(call)


def upload_stream(dbx: dropbox.Dropbox, reader: BinaryIO, commit: CommitInfo,
                  chunk_size: int = CHUNK_SIZE) -> FileMetadata:
    """Upload everything ``reader`` yields to ``commit.path``; returns the file's metadata.

    Raises the SDK's errors (``ApiError`` for a conflict at finish, transient errors after
    :data:`MAX_ATTEMPTS`), or whatever reading the stream raised.
    """
    if chunk_size <= 0 or chunk_size % (4 * 1024 * 1024):
        raise ValueError("chunk_size must be a positive multiple of 4 MiB")
    raw = dbx.clone(auto_content_hash=False)  # the caller verifies the whole file instead
    producer = _Producer(reader, chunk_size)
    producer.start()
    try:
        first = producer.next() or b""
        session_id = _retrying(lambda: raw.files_upload_session_start(first)).session_id
        offset = len(first)
        while (data := producer.next()) is not None:
            _append(raw, session_id, offset, data)
            offset += len(data)
        cursor = UploadSessionCursor(session_id, offset)
        return _retrying(lambda: raw.files_upload_session_finish(b"", cursor, commit))
    finally:
        producer.cancel()
