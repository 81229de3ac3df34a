"""Content routes: files/upload, files/download and the upload_session family.

Bodies stream in 1 MiB pieces to a file in the hidden state folder while their content_hash
is computed; a file is committed to the namespace only once its bytes and hash check out.
"""

from __future__ import annotations

import os
import queue
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dropbox import files

from dropgz.emulator.body import RequestBody
from dropgz.emulator.errors import ApiFailure, RouteError, WriteFailure, as_write_failure
from dropgz.emulator.hashing import BlockHasher, combine, hash_file
from dropgz.emulator.sessions import (
    CONCURRENT_ALIGNMENT,
    Session,
    append_digests,
    concurrent_gaps,
)

if TYPE_CHECKING:
    from dropgz.emulator.accounts import Account

PIECE_SIZE = 1 << 20
# Bodies larger than this are received with a writer thread (see receive()).
PIPELINE_THRESHOLD = 4 * PIECE_SIZE


@dataclass
class Download:
    """A files/download answer: the metadata and an open reader of the bytes."""

    metadata: files.FileMetadata
    stream: BinaryIO
    size: int


def receive(body: RequestBody, sink: Callable[[memoryview], None], *, limit: int,
            too_large: RouteError) -> tuple[int, list[bytes]]:
    """Streams the body into ``sink``; returns its size and 4 MiB block digests.

    A large body is pipelined: this thread reads the socket and hashes while a writer thread
    hands the previous pieces to ``sink`` (socket reads, SHA-256 and file writes all release
    the GIL), which roughly doubles upload throughput over doing the three in turn.
    """
    if body.length is not None and body.length > limit:
        raise too_large
    if body.length is not None and body.length <= PIPELINE_THRESHOLD:
        return _receive_inline(body, sink, limit=limit, too_large=too_large)
    with _PieceWriter(sink) as writer:
        hasher = BlockHasher()
        size = 0
        while True:
            view = writer.free_buffer()
            count = body.readinto(view)
            if not count:
                break
            size += count
            if size > limit:
                raise too_large
            hasher.update(view[:count])
            writer.write(view, count)
    return size, hasher.finish()


def _receive_inline(body: RequestBody, sink: Callable[[memoryview], None], *, limit: int,
                    too_large: RouteError) -> tuple[int, list[bytes]]:
    view = memoryview(bytearray(PIECE_SIZE))
    hasher = BlockHasher()
    size = 0
    while count := body.readinto(view):
        size += count
        if size > limit:
            raise too_large
        piece = view[:count]
        hasher.update(piece)
        sink(piece)
    return size, hasher.finish()


class _PieceWriter:
    """A writer thread fed through a small ring of buffers (bounded memory: 4 pieces)."""

    BUFFERS = 4

    def __init__(self, sink: Callable[[memoryview], None]) -> None:
        self._sink = sink
        self._free: queue.Queue[memoryview] = queue.Queue()
        for _ in range(self.BUFFERS):
            self._free.put(memoryview(bytearray(PIECE_SIZE)))
        self._full: queue.Queue[tuple[memoryview, int] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="emulator-writer", daemon=True)

    def __enter__(self) -> _PieceWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._full.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error

    def free_buffer(self) -> memoryview:
        if self._error is not None:
            raise self._error
        return self._free.get()

    def write(self, view: memoryview, count: int) -> None:
        self._full.put((view, count))

    def _run(self) -> None:
        while (item := self._full.get()) is not None:
            view, count = item
            if self._error is None:
                try:
                    self._sink(view[:count])
                except BaseException as exc:
                    self._error = exc
            self._free.put(view)


def _pwrite_sink(fd: int, offset: int) -> Callable[[memoryview], None]:
    position = offset

    def write(piece: memoryview) -> None:
        nonlocal position
        while piece:
            written = os.pwrite(fd, piece, position)
            position += written
            piece = piece[written:]
    return write


def _commit(account: Account, commit: files.CommitInfo, staged: Path, size: int,
            content_hash: str):
    return account.writer.commit_file(
        commit.path, staged, size=size, content_hash=content_hash, mode=commit.mode,
        autorename=commit.autorename, strict_conflict=commit.strict_conflict,
        client_modified=commit.client_modified)


# ------------------------------------------------------------------ files/upload

def upload(account: Account, arg: files.UploadArg, body: RequestBody) -> files.FileMetadata:
    def write_failed(error: files.WriteError) -> RouteError:
        return RouteError(files.UploadError.path(
            files.UploadWriteFailed(reason=error, upload_session_id="")))

    try:  # refuse a bad path before reading a byte
        account.namespace.resolve(arg.path)
    except ApiFailure as failure:
        raise write_failed(as_write_failure(failure).error) from None
    staged = account.staging_dir / secrets.token_hex(8)
    try:
        with open(staged, "wb") as out:
            size, digests = receive(body, out.write, limit=account.settings.upload_limit,
                                    too_large=RouteError(files.UploadError.payload_too_large))
        content_hash = combine(digests)
        if arg.content_hash is not None and arg.content_hash != content_hash:
            raise RouteError(files.UploadError.content_hash_mismatch)
        try:
            entry = _commit(account, arg, staged, size, content_hash)
        except WriteFailure as failure:
            raise write_failed(failure.error) from None
    finally:
        staged.unlink(missing_ok=True)
    return entry.to_metadata()


# --------------------------------------------------------------- files/download

def download(account: Account, arg: files.DownloadArg, body: RequestBody) -> Download:
    try:
        entry, stream = account.namespace.open_file(arg.path, arg.rev)
    except ApiFailure as failure:
        raise RouteError(files.DownloadError.path(failure.error)) from None
    return Download(entry.to_metadata(), stream, entry.size or 0)


# ------------------------------------------------------------- upload sessions

def _append_sequential(account: Account, session: Session, body: RequestBody,
                       content_hash: str | None, errors: type) -> None:
    """Appends the body at the session's offset; on any failure the file is cut back."""
    too_large = RouteError(errors.payload_too_large)
    with open(account.sessions.path(session.session_id), "r+b") as out:
        out.seek(session.offset)
        try:
            size, digests = receive(body, out.write, limit=account.settings.upload_limit,
                                    too_large=too_large)
            if content_hash is not None and content_hash != combine(digests):
                raise RouteError(errors.content_hash_mismatch)
        except BaseException:
            out.truncate(session.offset)
            raise
        out.truncate()
    session.digests = append_digests(session, session.offset, digests)
    session.offset += size


def session_start(account: Account, arg: files.UploadSessionStartArg,
                  body: RequestBody) -> files.UploadSessionStartResult:
    errors = files.UploadSessionStartError
    concurrent = arg.session_type is not None and arg.session_type.is_concurrent()
    if concurrent and arg.close:
        raise RouteError(errors.concurrent_session_close_not_allowed)
    if concurrent and body.length != 0:
        raise RouteError(errors.concurrent_session_data_not_allowed)
    session = account.sessions.start("concurrent" if concurrent else "sequential")
    try:
        with account.sessions.lock(session.session_id):
            _append_sequential(account, session, body, arg.content_hash, errors)
            session.closed = arg.close
            account.sessions.save(session)
    except BaseException:
        account.sessions.remove(session.session_id)
        raise
    return files.UploadSessionStartResult(session_id=session.session_id)


def session_append(account: Account, arg: files.UploadSessionAppendArg, body: RequestBody) -> None:
    errors = files.UploadSessionAppendError
    session_id = arg.cursor.session_id
    if (session := account.sessions.get(session_id)) is None:
        raise RouteError(errors.not_found)
    if session.kind == "concurrent":
        return _append_concurrent(account, session, arg, body)
    with account.sessions.lock(session_id):
        if (session := account.sessions.get(session_id)) is None:
            raise RouteError(errors.not_found)
        # The offset is checked first: a client retrying a chunk whose answer it lost learns
        # the chunk landed (correct_offset = its end) even if that chunk closed the session.
        if arg.cursor.offset != session.offset:
            raise RouteError(errors.incorrect_offset(
                files.UploadSessionOffsetError(correct_offset=session.offset)))
        if session.closed:
            raise RouteError(errors.closed)
        _append_sequential(account, session, body, arg.content_hash, errors)
        session.closed = arg.close
        account.sessions.save(session)
    return None


def session_append_v1(account: Account, arg: files.UploadSessionCursor, body: RequestBody) -> None:
    return session_append(account, files.UploadSessionAppendArg(cursor=arg, close=False), body)


def _append_concurrent(account: Account, session: Session, arg: files.UploadSessionAppendArg,
                       body: RequestBody) -> None:
    """Appends to a concurrent session may run in parallel: bytes go to their own range."""
    errors = files.UploadSessionAppendError
    offset = arg.cursor.offset
    if offset % CONCURRENT_ALIGNMENT:
        raise RouteError(errors.concurrent_session_invalid_offset)
    if session.closed and (arg.close or offset >= session.offset):
        raise RouteError(errors.closed)
    fd = os.open(account.sessions.path(session.session_id), os.O_WRONLY)
    try:
        size, digests = receive(body, _pwrite_sink(fd, offset), limit=account.settings.upload_limit,
                                too_large=RouteError(errors.payload_too_large))
    finally:
        os.close(fd)
    if size % CONCURRENT_ALIGNMENT and not arg.close:
        raise RouteError(errors.concurrent_session_invalid_data_size)
    if arg.content_hash is not None and arg.content_hash != combine(digests):
        raise RouteError(errors.content_hash_mismatch)
    with account.sessions.lock(session.session_id):
        if (current := account.sessions.get(session.session_id)) is None:
            raise RouteError(errors.not_found)
        current.ranges = [r for r in current.ranges if r[0] != offset]
        current.ranges.append([offset, size, b"".join(digests).hex()])
        if arg.close:
            current.closed, current.offset = True, offset + size
        account.sessions.save(current)


def session_finish(account: Account, arg: files.UploadSessionFinishArg,
                   body: RequestBody) -> files.FileMetadata:
    errors, lookup = files.UploadSessionFinishError, files.UploadSessionLookupError
    session_id = arg.cursor.session_id
    with account.sessions.lock(session_id):
        if (session := account.sessions.get(session_id)) is None:
            raise RouteError(errors.lookup_failed(lookup.not_found))
        if session.kind == "concurrent":
            digests = _finish_concurrent(account, session, arg, body)
        else:
            if arg.cursor.offset != session.offset:
                raise RouteError(errors.lookup_failed(lookup.incorrect_offset(
                    files.UploadSessionOffsetError(correct_offset=session.offset))))
            if session.closed and body.length != 0:
                raise RouteError(errors.lookup_failed(lookup.closed))
            # content_hash of finish covers the bytes of this call, as on append.
            _append_sequential(account, session, body, arg.content_hash, errors)
            account.sessions.save(session)  # a retried finish must see the new offset
            digests = session.digests
        staged = account.sessions.path(session_id)
        content_hash = combine([digests]) if digests is not None else hash_file(str(staged))
        try:
            entry = _commit(account, arg.commit, staged, session.offset, content_hash)
        except WriteFailure as failure:
            raise RouteError(errors.path(failure.error)) from None
        account.sessions.remove(session_id)
    return entry.to_metadata()


def _finish_concurrent(account: Account, session: Session, arg: files.UploadSessionFinishArg,
                       body: RequestBody) -> bytes:
    errors, lookup = files.UploadSessionFinishError, files.UploadSessionLookupError
    if body.length != 0:
        raise RouteError(errors.concurrent_session_data_not_allowed)
    if not session.closed:
        raise RouteError(errors.concurrent_session_not_closed)
    complete, digests = concurrent_gaps(session)
    if not complete:
        raise RouteError(errors.concurrent_session_missing_data)
    if arg.cursor.offset != session.offset:
        raise RouteError(errors.lookup_failed(lookup.incorrect_offset(
            files.UploadSessionOffsetError(correct_offset=session.offset))))
    os.truncate(account.sessions.path(session.session_id), session.offset)
    return digests
