"""Dropbox ``content_hash`` computed while bytes stream by, keeping each block's digest.

content_hash = SHA-256 of the concatenated SHA-256 digests of each 4 MiB block
(https://www.dropbox.com/developers/reference/content-hash; the SDK's
``dropbox.content_hash.DropboxContentHasher`` is the reference). Keeping the block digests
lets an upload session build the whole file's hash from its chunks' digests when chunks are
4 MiB aligned (the SDK's Uploader sends 8 MiB chunks), so a 256 MiB file is hashed once, not
twice.
"""

from __future__ import annotations

import hashlib

from dropbox.content_hash import DropboxContentHasher

BLOCK_SIZE = DropboxContentHasher.BLOCK_SIZE


class BlockHasher:
    """Feed bytes with :meth:`update`; :meth:`finish` returns the list of block digests."""

    def __init__(self) -> None:
        self._block = hashlib.sha256()
        self._filled = 0
        self._digests: list[bytes] = []

    def update(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            take = min(BLOCK_SIZE - self._filled, len(view))
            self._block.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == BLOCK_SIZE:
                self._digests.append(self._block.digest())
                self._block = hashlib.sha256()
                self._filled = 0

    def finish(self) -> list[bytes]:
        if self._filled:
            self._digests.append(self._block.digest())
            self._block = hashlib.sha256()
            self._filled = 0
        return self._digests


def combine(digests: list[bytes]) -> str:
    """The content_hash of a file whose block digests are ``digests``."""
    return hashlib.sha256(b"".join(digests)).hexdigest()


def hash_file(path: str, chunk: int = 1 << 20) -> str:
    """content_hash of a file on disk (used when block digests are not available)."""
    hasher = BlockHasher()
    with open(path, "rb") as stream:
        while data := stream.read(chunk):
            hasher.update(data)
    return combine(hasher.finish())
