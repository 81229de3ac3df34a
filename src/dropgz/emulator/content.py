"""Content routes files/upload and files/download (upload sessions: upload_sessions.py).

Bodies stream in 1 MiB pieces to a file in the hidden state folder while their content_hash
is computed (receive.py); a file is committed to the namespace only once its bytes and hash
check out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dropbox import files

from dropgz.emulator.body import RequestBody
from dropgz.emulator.entry import Entry
from dropgz.emulator.errors import ApiFailure, RouteError, WriteFailure, as_write_failure
from dropgz.emulator.hashing import combine
from dropgz.emulator.receive import receive

if TYPE_CHECKING:
    from dropgz.emulator.accounts import Account


@dataclass
class Download:
    """A files/download answer: the metadata and an open reader of the bytes."""

    metadata: files.FileMetadata
    stream: BinaryIO
    size: int


def commit_file(account: Account, commit: files.CommitInfo, staged: Path, size: int,
                content_hash: str) -> Entry:
    """Commits ``staged`` as ``commit`` says (WriteFailure when it cannot)."""
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
            entry = commit_file(account, arg, staged, size, content_hash)
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
