"""Write a small file's ``.gz``: its bytes in one closed upload session, its commit in the
account's next batch (:mod:`.batch`), a taken name settled from the conflict answer.

A new small file costs two calls of its own: ``files/download`` (before this module) and
``upload_session/start`` (``close=true``, the bytes and their content hash), plus its share
of one ``finish_batch_v2``. The commit asks for ``mode=add`` with ``strict_conflict``, no
autorename: nothing is looked up beforehand. Only when Dropbox answers that the name is
taken does :func:`write_small` look at what is there, with one ranged ``files/download`` of
its first bytes (the metadata and the gzip header in one call):

- its content hash is the hash of our bytes: it already is what we would write. Nothing is
  written. On a message's first delivery that is another message's work (the same
  revision queued twice: a replayed notification, a backfill overlapping the delta tier):
  skipped as "already done", so the totals count the revision once. On a retry it is most
  likely this message's own earlier attempt (a commit whose answer was lost, a worker
  killed between commit and ack), which reported no compression: counted as compressed;
- its gzip header does not name our file: dropgz did not make it: skipped, never
  overwritten;
- ours, other bytes: when the original is still the revision we compressed, the same
  session is committed again with ``update(<its rev>)`` (a writer racing us makes that a
  conflict again, and we look again); when the original has moved on, our revision is
  superseded: skipped (the newer revision's own message writes its ``.gz``);
- a folder: skipped; gone meanwhile: committed again with ``add``.
"""

from __future__ import annotations

from dataclasses import dataclass

import dropbox
from dropbox.exceptions import ApiError
from dropbox.files import CommitInfo, FileMetadata, WriteMode

from dropgz.compression.batch import BatchCommitter
from dropgz.compression.route_errors import is_conflict, is_not_file, is_not_found
from dropgz.core import eligibility
from dropgz.core.errors import TransientError

HEADER_PROBE_BYTES = 1024  # enough for a gzip header with a 255-character name
# Commits of one file before a name that keeps changing under us is left to a later retry.
MAX_CONFLICT_ROUNDS = 3


@dataclass(frozen=True)
class Skip:
    """Why no ``.gz`` is written. ``kind``: "gz-taken", "superseded", "gone" or
    "already-done"."""

    kind: str
    reason: str


def gzip_header_name(header: bytes) -> bytes | None:
    """FNAME from a gzip header (RFC 1952 §2.3), or None when absent or not gzip."""
    if len(header) < 10 or header[:2] != eligibility.GZIP_MAGIC or header[2] != 8:
        return None
    flags, pos = header[3], 10
    if flags & 0x04:  # FEXTRA
        if len(header) < pos + 2:
            return None
        pos += 2 + int.from_bytes(header[pos:pos + 2], "little")
    if not flags & 0x08:  # no FNAME
        return None
    end = header.find(b"\x00", pos)
    return header[pos:end] if end != -1 else None


def read_header(dbx: dropbox.Dropbox, path: str, rev: str | None = None
                ) -> tuple[FileMetadata, bytes]:
    """``path``'s metadata and first :data:`HEADER_PROBE_BYTES` bytes, in one call."""
    metadata, response = dbx.files_download(
        path, rev=rev, extra_headers={"Range": f"bytes=0-{HEADER_PROBE_BYTES - 1}"})
    try:
        return metadata, response.raw.read(HEADER_PROBE_BYTES)
    finally:
        response.close()


def not_ours(target: str, name: str) -> Skip:
    return Skip("gz-taken", f"{target} exists and was not made by dropgz from {name}; "
                            "left alone")


def write_small(dbx: dropbox.Dropbox, committer: BatchCommitter, data: bytes,
                content_hash: str, target: str, source: FileMetadata, *,
                retry: bool = False) -> FileMetadata | Skip:
    """Write ``data`` (the whole ``.gz`` of ``source``, whose Dropbox content hash is
    ``content_hash``) to ``target``; returns the committed file's metadata or a skip.
    ``retry``: this message was delivered before (see the module docstring)."""
    session_id = dbx.files_upload_session_start(data, close=True,
                                                content_hash=content_hash).session_id
    mode = WriteMode.add
    for _ in range(MAX_CONFLICT_ROUNDS):
        commit = CommitInfo(path=target, mode=mode, autorename=False, mute=True,
                            client_modified=source.client_modified, strict_conflict=True)
        try:
            return committer.commit(dbx, session_id, len(data), commit)
        except ApiError as exc:
            if not is_conflict(exc):
                raise
        decided = _settle_conflict(dbx, target, content_hash, source, retry)
        if not isinstance(decided, WriteMode):
            return decided
        mode = decided
    raise TransientError(f"{target} keeps changing while compressing; retrying later")


def _settle_conflict(dbx: dropbox.Dropbox, target: str, content_hash: str,
                     source: FileMetadata, retry: bool) -> WriteMode | FileMetadata | Skip:
    """Something is at ``target``: how to go on (see the module docstring)."""
    try:
        existing, header = read_header(dbx, target)
    except ApiError as exc:
        if is_not_found(exc):
            return WriteMode.add  # removed meanwhile
        if is_not_file(exc):
            return Skip("gz-taken", f"{target} exists and is not a file")
        raise
    if existing.content_hash == content_hash:
        if retry:
            return existing
        return Skip("already-done", f"an identical {target} is already there: this revision "
                                    "was compressed before (a repeated delivery)")
    if gzip_header_name(header) != source.name.encode("utf-8"):
        return not_ours(target, source.name)
    try:
        current = dbx.files_get_metadata(source.path_lower)
    except ApiError as exc:
        if is_not_found(exc):
            return Skip("gone", "gone (deleted or moved) while compressing")
        raise
    if not isinstance(current, FileMetadata):
        return Skip("gone", "replaced by a folder while compressing")
    if current.rev != source.rev:
        return Skip("superseded", f"rev {source.rev} superseded by {current.rev} "
                                  "while compressing")
    return WriteMode.update(existing.rev)
