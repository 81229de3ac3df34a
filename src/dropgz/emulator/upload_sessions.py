"""Upload-session routes: upload_session/start, append(_v2) and finish.

A sequential session takes its bytes in order (start, appends, finish); a concurrent one takes
4 MiB-aligned appends in any order (see sessions.py). Finish commits the session's file like
files/upload; many sessions are committed at once by batch.py.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dropbox import files

from dropgz.emulator.body import RequestBody
from dropgz.emulator.content import commit_file
from dropgz.emulator.errors import RouteError, WriteFailure
from dropgz.emulator.hashing import combine, hash_file
from dropgz.emulator.receive import pwrite_sink, receive
from dropgz.emulator.sessions import (
    CONCURRENT_ALIGNMENT,
    Session,
    append_digests,
    concurrent_gaps,
)

if TYPE_CHECKING:
    from dropgz.emulator.accounts import Account


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
        size, digests = receive(body, pwrite_sink(fd, offset), limit=account.settings.upload_limit,
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
            if body.length != 0:
                raise RouteError(errors.concurrent_session_data_not_allowed)
            digests = concurrent_digests(account, session, arg.cursor.offset)
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
        return commit_session(account, session, arg.commit,
                              session_content_hash(account, session, digests))


def concurrent_digests(account: Account, session: Session, offset: int) -> bytes:
    """A concurrent session's block digests once it is complete (its file cut to its size);
    RouteError(UploadSessionFinishError) when it is not closed, has gaps or ``offset`` is
    not its size."""
    errors, lookup = files.UploadSessionFinishError, files.UploadSessionLookupError
    if not session.closed:
        raise RouteError(errors.concurrent_session_not_closed)
    complete, digests = concurrent_gaps(session)
    if not complete:
        raise RouteError(errors.concurrent_session_missing_data)
    if offset != session.offset:
        raise RouteError(errors.lookup_failed(lookup.incorrect_offset(
            files.UploadSessionOffsetError(correct_offset=session.offset))))
    os.truncate(account.sessions.path(session.session_id), session.offset)
    return digests


def session_content_hash(account: Account, session: Session, digests: bytes | None) -> str:
    """The whole file's content_hash: from its block digests, else read from disk."""
    if digests is not None:
        return combine([digests])
    return hash_file(str(account.sessions.path(session.session_id)))


def commit_session(account: Account, session: Session, commit: files.CommitInfo,
                   content_hash: str) -> files.FileMetadata:
    """Commits the session's file and forgets the session (call holding its lock)."""
    try:
        entry = commit_file(account, commit, account.sessions.path(session.session_id),
                            session.offset, content_hash)
    except WriteFailure as failure:
        raise RouteError(files.UploadSessionFinishError.path(failure.error)) from None
    account.sessions.remove(session.session_id)
    return entry.to_metadata()
