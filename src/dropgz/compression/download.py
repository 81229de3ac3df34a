"""Streaming, resumable downloads of one file revision.

``files_download`` answers with the file's metadata and a streamed ``requests``
response. :func:`open_download` returns both, the body as an iterator of chunks that,
when the connection drops midway, asks again with ``Range: bytes=<offset>-`` for the
*same revision* (``rev:``-pinned), so a long download survives a flaky network without
starting over and never mixes two versions of a file.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import dropbox
import requests
from dropbox.files import FileMetadata

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # 1 MiB: large enough to keep per-chunk Python overhead negligible
MAX_RESUMES = 5
RESUME_BACKOFF_SECONDS = 0.5

_DROPPED = (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.Timeout)


class Download:
    """One file revision being downloaded: ``metadata`` plus ``chunks()``; close when done."""

    def __init__(self, dbx: dropbox.Dropbox, metadata: FileMetadata,
                 response: requests.Response, chunk_size: int = CHUNK_SIZE) -> None:
        self.metadata = metadata
        self._dbx = dbx
        self._response: requests.Response | None = response
        self._chunk_size = chunk_size
        self.resumes = 0

    def chunks(self) -> Iterator[bytes]:
        """The file's bytes in order, resuming after dropped connections."""
        offset = 0
        size = self.metadata.size
        while True:
            response = self._response
            if response is None:
                response = self._reopen(offset)
            try:
                for chunk in response.iter_content(self._chunk_size):
                    offset += len(chunk)
                    yield chunk
            except _DROPPED as exc:
                self.close()
                if self.resumes >= MAX_RESUMES:
                    raise
                self.resumes += 1
                log.info("download dropped at %d of %d bytes (%s); resuming",
                         offset, size, type(exc).__name__)
                time.sleep(RESUME_BACKOFF_SECONDS * self.resumes)
                continue
            self.close()
            if offset != size:
                raise requests.exceptions.ChunkedEncodingError(
                    f"download ended at {offset} of {size} bytes")
            return

    def _reopen(self, offset: int) -> requests.Response:
        # Pin the revision: the path may point at a newer version by now.
        _, response = self._dbx.files_download(
            self.metadata.path_display or self.metadata.path_lower,
            rev=self.metadata.rev, extra_headers={"Range": f"bytes={offset}-"})
        self._response = response
        return response

    def close(self) -> None:
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.close()
            self._response = None


def open_download(dbx: dropbox.Dropbox, path: str, chunk_size: int = CHUNK_SIZE) -> Download:
    """Start downloading the current revision of ``path`` (raises the SDK's errors)."""
    metadata, response = dbx.files_download(path)
    return Download(dbx, metadata, response, chunk_size)
