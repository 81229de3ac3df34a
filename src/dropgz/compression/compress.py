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

No pointless .gz (``[Compression] min_savings``, 5 % by default; 0 turns this off): a
.gz must be at least that fraction smaller than its file, or none is made and the skip
says why. The decision is taken as early as it can be:

- content that starts like an already-compressed format (JPEG, PNG, ZIP, MP4, ...:
  :mod:`dropgz.compression.formats`) is skipped on its first download chunk, and the
  download is closed there;
- a small file (committed in a batch) is compressed whole in memory anyway, so the
  decision is exact, on the whole output, before anything is uploaded;
- a streamed file (over :data:`SINGLE_UPLOAD_MAX_SOURCE`) is decided on its first chunk
  (1 MiB), gzipped on its own before anything is uploaded: a file that starts
  incompressible and turns compressible later is skipped, and the reverse gets a .gz that
  may save less than ``min_savings``. Streaming the whole file to learn the answer would
  cost the full download and compression every time.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import dropbox
from dropbox.exceptions import ApiError
from dropbox.files import CommitInfo, FileMetadata, WriteMode

from dropgz.compression.batch import BatchCommitter
from dropgz.compression.commit import Skip, gzip_header_name, not_ours, read_header, write_small
from dropgz.compression.download import Download, open_download
from dropgz.compression.formats import compressed_format, savings
from dropgz.compression.gzstream import GzipReader, gzip_bytes, unix_mtime
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

# Kinds of skip, stable keys for counting them (the ledger, ``dropgz status``); .commit's
# Skip kinds are among them.
RULES = "rules"  # excluded, too small or large, name too long, already named .gz
GONE = "gone"  # deleted, moved, or a folder by now
SUPERSEDED = "superseded"  # a newer revision exists; its own message will come
ALREADY_GZIP = "already-gzip"
ALREADY_COMPRESSED = "already-compressed"  # a JPEG, ZIP, MP4... (min_savings > 0)
SAVES_TOO_LITTLE = "saves-too-little"  # gzip would save less than min_savings
GZ_TAKEN = "gz-taken"  # name.gz exists and is not ours
ALREADY_DONE = "already-done"  # an identical .gz is there: a repeated delivery


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
    kind: str = ""  # for a skip: one of the kinds above

    @classmethod
    def skipped(cls, path: str, kind: str, reason: str, rev: str | None) -> Outcome:
        return cls("skipped", path, reason, rev, kind=kind)

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

    def run(self, item: WorkItem, *, retry: bool = False) -> Outcome:
        """Compress ``item``'s file. ``retry``: an earlier attempt of this same message may
        have written the ``.gz`` (see :func:`~dropgz.compression.commit.write_small`)."""
        with self.committer.working():  # a batch may wait for this file
            return self._run(item, retry)

    def _run(self, item: WorkItem, retry: bool) -> Outcome:
        started = time.monotonic()
        reason = eligibility.skip_reason(item.path, item.size, self.rules)
        if reason:
            return Outcome.skipped(item.path, RULES, reason, item.rev)
        try:
            download = open_download(self.dbx, item.path)
        except ApiError as exc:
            if is_not_found(exc):
                return Outcome.skipped(item.path, GONE, "gone (deleted or moved)", item.rev)
            if is_not_file(exc):
                return Outcome.skipped(item.path, GONE, "is a folder", item.rev)
            raise
        try:
            return self._compress(item, download, started, retry)
        finally:
            download.close()  # also where a skip after the first chunk stops the download

    def _compress(self, item: WorkItem, download: Download, started: float,
                  retry: bool) -> Outcome:
        md: FileMetadata = download.metadata
        path = md.path_display or md.path_lower
        if item.rev and md.rev != item.rev:
            return Outcome.skipped(path, SUPERSEDED, f"rev {item.rev} superseded by {md.rev}",
                                   md.rev)
        reason = eligibility.skip_reason(path, md.size, self.rules)
        if reason:
            return Outcome.skipped(path, RULES, reason, md.rev)
        chunks: Iterator[bytes] = iter(download.chunks())
        head = next(chunks, b"")
        if eligibility.looks_gzipped(head):
            return Outcome.skipped(path, ALREADY_GZIP, "content is already gzip", md.rev)
        skip = self._not_worth_it(head, md)
        if skip is not None:
            return skip
        reader = GzipReader(itertools.chain([head], chunks), name=md.name,
                            mtime=unix_mtime(md.client_modified),
                            level=self.rules.level, compressor=self.rules.compressor)
        target = eligibility.gz_path(path)
        if md.size <= SINGLE_UPLOAD_MAX_SOURCE:
            data = reader.read()  # the whole .gz: the exact answer on what it saves
            skip = self._saves_too_little(path, md.rev, reader.bytes_in, len(data))
            if skip is not None:
                return skip
            uploaded = write_small(self.dbx, self.committer, data, reader.content_hash,
                                   target, md, retry=retry)
        else:
            previous: FileMetadata | None = None
            mode = self._write_mode(target, md.name)
            if isinstance(mode, tuple):
                mode, previous = mode
            uploaded = mode if isinstance(mode, Skip) else self._upload(reader, target, mode, md)
        if isinstance(uploaded, Skip):
            return Outcome.skipped(path, uploaded.kind, uploaded.reason, md.rev)
        if uploaded.content_hash != reader.content_hash:
            raise TransientError(f"uploaded {target} hash {uploaded.content_hash} differs from "
                                 f"the bytes sent ({reader.content_hash})")
        if md.size > SINGLE_UPLOAD_MAX_SOURCE and previous is not None and not retry \
                and previous.content_hash == reader.content_hash:
            # A streamed .gz is known only once sent: the same revision delivered twice
            # uploads the same bytes again, but counts once (as commit.py does for small).
            return Outcome.skipped(path, ALREADY_DONE, f"an identical {target} was already "
                                   "there: this revision was compressed before (a repeated "
                                   "delivery; its bytes were sent again)", md.rev)
        deleted = self.rules.replace_original and self._delete_original(md)
        return Outcome("compressed", path, "", md.rev, reader.bytes_in, reader.bytes_out,
                       time.monotonic() - started, deleted)

    def _not_worth_it(self, head: bytes, md: FileMetadata) -> Outcome | None:
        """A skip decided on the first chunk: an already-compressed format, or (for a
        streamed file) a first chunk whose own gzip saves less than ``min_savings``."""
        if not self.rules.min_savings:
            return None
        path = md.path_display or md.path_lower
        kind = compressed_format(head)
        if kind is not None:
            return Outcome.skipped(path, ALREADY_COMPRESSED, f"already compressed: {kind}",
                                   md.rev)
        if md.size <= SINGLE_UPLOAD_MAX_SOURCE or not head:
            return None  # decided on the whole output instead
        sample = gzip_bytes(head, name=md.name, mtime=0, level=self.rules.level,
                            compressor=self.rules.compressor)
        return self._saves_too_little(path, md.rev, len(head), len(sample),
                                      f" on the first {len(head):,} bytes")

    def _saves_too_little(self, path: str, rev: str, bytes_in: int, bytes_out: int,
                          where: str = "") -> Outcome | None:
        saved = savings(bytes_in, bytes_out)
        if not self.rules.min_savings or (bytes_in and saved >= self.rules.min_savings):
            return None
        minimum = f"min_savings {self.rules.min_savings * 100:g}%"
        if not bytes_in:
            return Outcome.skipped(path, SAVES_TOO_LITTLE,
                                   f"empty: a .gz would only add bytes ({minimum})", rev)
        return Outcome.skipped(path, SAVES_TOO_LITTLE,
                               f"gzip saves {saved:.1%}{where}, under {minimum}", rev)

    def _write_mode(self, target: str, name: str
                    ) -> WriteMode | tuple[WriteMode, FileMetadata] | Skip:
        """How to write a large file's ``target``: add, update(rev) of our own old .gz
        (with its metadata), or a skip."""
        try:
            existing = self.dbx.files_get_metadata(target)
        except ApiError as exc:
            if is_not_found(exc):
                return WriteMode.add
            raise
        if not isinstance(existing, FileMetadata):
            return Skip(GZ_TAKEN, f"{target} exists and is not a file")
        _, header = read_header(self.dbx, target, rev=existing.rev)
        if gzip_header_name(header) != name.encode("utf-8"):
            return not_ours(target, name)
        return WriteMode.update(existing.rev), existing

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
