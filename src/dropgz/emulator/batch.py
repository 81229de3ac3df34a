"""upload_session/start_batch and upload_session/finish_batch_v2: many files, few calls.

``finish_batch_v2`` commits up to 1,000 closed sessions in one synchronous call, as Dropbox
advises against namespace lock contention (see contention.py). Each entry is reported on its
own, ``success`` (FileMetadata) or ``failure`` (UploadSessionFinishError): ``lookup_failed``
(``not_found``, ``not_closed`` when the session was not closed with close=true,
``incorrect_offset``), ``path`` (a WriteError), ``content_hash_mismatch``, the concurrent
session errors, or ``too_many_write_operations`` for every entry when another commit holds
the account's namespace lock. More than 1,000 entries is a 400, from the SDK's own validator.

An entry's ``content_hash``, when given, is compared with the whole file's (no bytes travel in
this call). Dropbox documents the field as covering "the file content uploaded in this call";
this reading is the emulator's choice: a client can rely on the returned metadata's
``content_hash`` instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dropbox import files

from dropgz.emulator.body import RequestBody
from dropgz.emulator.errors import RouteError
from dropgz.emulator.upload_sessions import (
    commit_session,
    concurrent_digests,
    session_content_hash,
)

if TYPE_CHECKING:
    from dropgz.emulator.accounts import Account

ROUTE_NAME = "files/upload_session/finish_batch_v2"
Entry = files.UploadSessionFinishBatchResultEntry


def start_batch(account: Account, arg: files.UploadSessionStartBatchArg,
                body: RequestBody) -> files.UploadSessionStartBatchResult:
    """``num_sessions`` (1..1000, checked by the SDK's validator) empty sessions."""
    concurrent = arg.session_type is not None and arg.session_type.is_concurrent()
    kind = "concurrent" if concurrent else "sequential"
    ids = [account.sessions.start(kind).session_id for _ in range(arg.num_sessions)]
    return files.UploadSessionStartBatchResult(session_ids=ids)


def finish_batch_v2(account: Account, arg: files.UploadSessionFinishBatchArg,
                    body: RequestBody) -> files.UploadSessionFinishBatchResult:
    with account.namespace_lock.commit(ROUTE_NAME) as held:
        if not held:
            busy = Entry.failure(files.UploadSessionFinishError.too_many_write_operations)
            return files.UploadSessionFinishBatchResult(entries=[busy for _ in arg.entries])
        return files.UploadSessionFinishBatchResult(
            entries=[_finish_entry(account, entry) for entry in arg.entries])


def _finish_entry(account: Account, arg: files.UploadSessionFinishArg) -> Entry:
    errors, lookup = files.UploadSessionFinishError, files.UploadSessionLookupError
    session_id = arg.cursor.session_id
    try:
        with account.sessions.lock(session_id):
            session = account.sessions.get(session_id)
            if session is None:
                raise RouteError(errors.lookup_failed(lookup.not_found))
            if not session.closed:
                raise RouteError(errors.lookup_failed(lookup.not_closed))
            if session.kind == "concurrent":
                digests = concurrent_digests(account, session, arg.cursor.offset)
            elif arg.cursor.offset != session.offset:
                raise RouteError(errors.lookup_failed(lookup.incorrect_offset(
                    files.UploadSessionOffsetError(correct_offset=session.offset))))
            else:
                digests = session.digests
            content_hash = session_content_hash(account, session, digests)
            if arg.content_hash is not None and arg.content_hash != content_hash:
                raise RouteError(errors.content_hash_mismatch)
            return Entry.success(commit_session(account, session, arg.commit, content_hash))
    except RouteError as failure:
        return Entry.failure(failure.error)


def contention_failures(result: files.UploadSessionFinishBatchResult) -> int:
    """How many entries of a batch answer failed with too_many_write_operations."""
    return sum(1 for entry in result.entries
               if entry.is_failure() and entry.get_failure().is_too_many_write_operations())
