"""Compress one Dropbox file: download → gzip → upload ``name.gz`` beside it, streaming.

The unit of work of the compression tier (:mod:`dropgz.compression.worker` runs many of these).
Every decision not to compress is an :class:`Outcome` with ``status="skipped"`` and a
reason; every failure is an exception for the retry policy (:mod:`dropgz.core.retries`).

Safety rules, each for a reason:

- Never compress a superseded revision: the message's ``rev`` must be the current one.
- Never overwrite a ``name.gz`` that dropgz did not make: an existing ``name.gz`` is
  replaced only when its gzip header names ``name`` (what our output carries), and only
  with ``mode=update(<its rev>)`` so two workers racing on one file cannot interleave.
  A small file's ``.gz`` is written with ``mode=add`` in its account's next batch commit,
  and the existing one is looked at only when that conflicts (:mod:`.commit`); a large
  file's target is looked at first, as its upload is long.
- ``replace_original`` deletes the original only after Dropbox's content hash of the
  uploaded .gz equals the hash of the bytes sent, and only if the original is still the
  revision that was compressed (``delete_v2`` with ``parent_rev``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import dropbox
from dropbox.exceptions import ApiError
from dropbox.files import CommitInfo, FileMetadata, WriteMode

from dropgz.compression.batch import BatchCommitter
from dropgz.compression.commit import Skip, gzip_header_name, not_ours, read_header, write_small
from dropgz.compression.download import open_download
from dropgz.compression.gzstream import GzipReader, unix_mtime
from dropgz.compression.route_errors import is_conflict, is_not_file, is_not_found
from dropgz.compression.upload import upload_stream
from dropgz.core import eligibility
from dropgz.core.config import CompressionSettings
from dropgz.core.errors import TransientError
from dropgz.core.message import WorkItem

log = logging.getLogger(__name__)

# Up to this many source bytes, compress into memory, send it in one closed upload session
# and commit it in a batch (dropgz.compression.commit); above it, stream through an upload
# session of its own (dropgz.compression.upload: compression and sending overlap, at most
# three 4 MiB chunks in memory).
SINGLE_UPLOAD_MAX_SOURCE = 8 * 1024 * 1024


@dataclass(frozen=True)
class Outcome:
    """What happened to one file."""

    status: str  # "compressed" | "skipped"
    path: str
    reason: str = ""
    rev: str | None = None
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    original_deleted: bool = False
    account: str | None = None

    @property
    def ratio(self) -> float:
        return self.bytes_out / self.bytes_in if self.bytes_in else 0.0


class FileCompressor:
    """Compresses files of one account with one Dropbox client and one set of rules."""

    def __init__(self, dbx: dropbox.Dropbox, rules: CompressionSettings,
                 committer: BatchCommitter | None = None) -> None:
        self.dbx = dbx
        self.rules = rules
        # Small .gz files are committed in batches per account: share one per account.
        self.committer = committer or BatchCommitter()

    def run(self, item: WorkItem) -> Outcome:
        with self.committer.working():  # a batch may wait for this file
            return self._run(item)

    def _run(self, item: WorkItem) -> Outcome:
        started = time.monotonic()
        reason = eligibility.skip_reason(item.path, item.size, self.rules)
        if reason:
            return Outcome("skipped", item.path, reason, item.rev)
        try:
            download = open_download(self.dbx, item.path)
        except ApiError as exc:
            if is_not_found(exc):
                return Outcome("skipped", item.path, "gone (deleted or moved)", item.rev)
            if is_not_file(exc):
                return Outcome("skipped", item.path, "is a folder", item.rev)
            raise
        try:
            return self._compress(item, download, started)
        finally:
            download.close()

    def _compress(self, item: WorkItem, download, started: float) -> Outcome:
        md: FileMetadata = download.metadata
        path = md.path_display or md.path_lower
        if item.rev and md.rev != item.rev:
            return Outcome("skipped", path, f"rev {item.rev} superseded by {md.rev}", md.rev)
        reason = eligibility.skip_reason(path, md.size, self.rules)
        if reason:
            return Outcome("skipped", path, reason, md.rev)
        reader = GzipReader(download.chunks(), name=md.name,
                            mtime=unix_mtime(md.client_modified),
                            level=self.rules.level, compressor=self.rules.compressor)
        if eligibility.looks_gzipped(reader.peek_source(2)):
            return Outcome("skipped", path, "content is already gzip", md.rev)
        target = eligibility.gz_path(path)
        if md.size <= SINGLE_UPLOAD_MAX_SOURCE:
            data = reader.read()
            uploaded = write_small(self.dbx, self.committer, data, reader.content_hash,
                                   target, md)
        else:
            mode = self._write_mode(target, md.name)
            uploaded = mode if isinstance(mode, Skip) else self._upload(reader, target, mode, md)
        if isinstance(uploaded, Skip):
            return Outcome("skipped", path, uploaded.reason, md.rev)
        if uploaded.content_hash != reader.content_hash:
            raise TransientError(f"uploaded {target} hash {uploaded.content_hash} differs from "
                                 f"the bytes sent ({reader.content_hash})")
        deleted = self.rules.replace_original and self._delete_original(md)
        return Outcome("compressed", path, "", md.rev, reader.bytes_in, reader.bytes_out,
                       time.monotonic() - started, deleted)

    def _write_mode(self, target: str, name: str) -> WriteMode | Skip:
        """How to write a large file's ``target``: add, update(rev) of our own old .gz, or
        a skip."""
        try:
            existing = self.dbx.files_get_metadata(target)
        except ApiError as exc:
            if is_not_found(exc):
                return WriteMode.add
            raise
        if not isinstance(existing, FileMetadata):
            return Skip("gz-taken", f"{target} exists and is not a file")
        _, header = read_header(self.dbx, target, rev=existing.rev)
        if gzip_header_name(header) != name.encode("utf-8"):
            return not_ours(target, name)
        return WriteMode.update(existing.rev)

    def _upload(self, reader: GzipReader, target: str, mode: WriteMode,
                md: FileMetadata) -> FileMetadata:
        commit = CommitInfo(path=target, mode=mode, autorename=False, mute=True,
                            client_modified=md.client_modified, strict_conflict=True)
        try:
            return upload_stream(self.dbx, reader, commit)
        except ApiError as exc:
            if is_conflict(exc):
                # Another worker wrote target meanwhile (a redelivery or a newer rev): let the
                # retry re-read the situation rather than overwrite what we did not see.
                raise TransientError(f"{target} changed while compressing; retrying") from None
            raise

    def _delete_original(self, md: FileMetadata) -> bool:
        try:
            self.dbx.files_delete_v2(md.path_lower, parent_rev=md.rev)
        except ApiError as exc:
            log.info("kept original %s: it changed after compression (%s)",
                     md.path_display, exc.error)
            return False
        return True
