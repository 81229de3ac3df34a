"""Compress one Dropbox file: download → gzip → upload ``name.gz`` beside it, streaming.

The unit of work of the compression tier (:mod:`dropgz.compression.worker` runs many of these).
Every decision not to compress is an :class:`Outcome` with ``status="skipped"`` and a
reason; every failure is an exception for the retry policy (:mod:`dropgz.core.retries`).

Safety rules, each for a reason:

- Never compress a superseded revision: the message's ``rev`` must be the current one.
- Never overwrite a ``name.gz`` that dropgz did not make: an existing ``name.gz`` is
  replaced only when its gzip header names ``name`` (what our output carries), and only
  with ``mode=update(<its rev>)`` so two workers racing on one file cannot interleave.
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

from dropgz.compression.download import open_download
from dropgz.compression.gzstream import GzipReader, unix_mtime
from dropgz.compression.upload import upload_stream
from dropgz.core import eligibility
from dropgz.core.config import CompressionSettings
from dropgz.core.errors import TransientError
from dropgz.core.message import WorkItem

log = logging.getLogger(__name__)

# Up to this many source bytes, compress into memory and send one files/upload (one call);
# above it, stream through an upload session (dropgz.compression.upload: compression and
# sending overlap, at most three 4 MiB chunks in memory).
SINGLE_UPLOAD_MAX_SOURCE = 8 * 1024 * 1024
HEADER_PROBE_BYTES = 1024  # enough for a gzip header with a 255-character name


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


def _path_error(exc: ApiError) -> object | None:
    """The LookupError/WriteError inside a route error, whichever route raised it."""
    err = exc.error
    if not getattr(err, "is_path", lambda: False)():
        return None
    inner = err.get_path()
    # files/upload wraps the WriteError in UploadWriteFailed(reason=...).
    return getattr(inner, "reason", inner)


def _is_not_found(exc: ApiError) -> bool:
    err = _path_error(exc)
    return bool(err is not None and getattr(err, "is_not_found", lambda: False)())


def _is_not_file(exc: ApiError) -> bool:
    err = _path_error(exc)
    return bool(err is not None and getattr(err, "is_not_file", lambda: False)())


def _is_conflict(exc: ApiError) -> bool:
    err = _path_error(exc)
    return bool(err is not None and getattr(err, "is_conflict", lambda: False)())


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


class FileCompressor:
    """Compresses files of one account with one Dropbox client and one set of rules."""

    def __init__(self, dbx: dropbox.Dropbox, rules: CompressionSettings) -> None:
        self.dbx = dbx
        self.rules = rules

    def run(self, item: WorkItem) -> Outcome:
        started = time.monotonic()
        reason = eligibility.skip_reason(item.path, item.size, self.rules)
        if reason:
            return Outcome("skipped", item.path, reason, item.rev)
        try:
            download = open_download(self.dbx, item.path)
        except ApiError as exc:
            if _is_not_found(exc):
                return Outcome("skipped", item.path, "gone (deleted or moved)", item.rev)
            if _is_not_file(exc):
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
        mode = self._write_mode(target, md.name)
        if isinstance(mode, str):
            return Outcome("skipped", path, mode, md.rev)
        uploaded = self._upload(reader, target, mode, md)
        if uploaded.content_hash != reader.content_hash:
            raise TransientError(f"uploaded {target} hash {uploaded.content_hash} differs from "
                                 f"the bytes sent ({reader.content_hash})")
        deleted = self.rules.replace_original and self._delete_original(md)
        return Outcome("compressed", path, "", md.rev, reader.bytes_in, reader.bytes_out,
                       time.monotonic() - started, deleted)

    def _write_mode(self, target: str, name: str) -> WriteMode | str:
        """How to write ``target``: add, update(rev) of our own old .gz, or a skip reason."""
        try:
            existing = self.dbx.files_get_metadata(target)
        except ApiError as exc:
            if _is_not_found(exc):
                return WriteMode.add
            raise
        if not isinstance(existing, FileMetadata):
            return f"{target} exists and is not a file"
        _, response = self.dbx.files_download(
            target, rev=existing.rev,
            extra_headers={"Range": f"bytes=0-{HEADER_PROBE_BYTES - 1}"})
        try:
            header = response.raw.read(HEADER_PROBE_BYTES)
        finally:
            response.close()
        if gzip_header_name(header) != name.encode("utf-8"):
            return f"{target} exists and was not made by dropgz from {name}; left alone"
        return WriteMode.update(existing.rev)

    def _upload(self, reader: GzipReader, target: str, mode: WriteMode,
                md: FileMetadata) -> FileMetadata:
        commit = CommitInfo(path=target, mode=mode, autorename=False, mute=True,
                            client_modified=md.client_modified, strict_conflict=True)
        try:
            if md.size <= SINGLE_UPLOAD_MAX_SOURCE:
                data = reader.read()
                # Our hash of the bytes: Dropbox checks it, and the SDK need not hash again.
                return self.dbx.files_upload(
                    data, target, mode=mode, autorename=False, mute=True,
                    client_modified=md.client_modified, strict_conflict=True,
                    content_hash=reader.content_hash)
            return upload_stream(self.dbx, reader, commit)
        except ApiError as exc:
            if _is_conflict(exc):
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
