"""Receiving a request body: streamed to a sink in 1 MiB pieces while its 4 MiB block digests
(for ``content_hash``) are computed, never held whole in memory."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable

from dropgz.emulator.body import RequestBody
from dropgz.emulator.errors import RouteError
from dropgz.emulator.hashing import BlockHasher

PIECE_SIZE = 1 << 20
# Bodies larger than this are received with a writer thread (see receive()).
PIPELINE_THRESHOLD = 4 * PIECE_SIZE



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


def pwrite_sink(fd: int, offset: int) -> Callable[[memoryview], None]:
    position = offset

    def write(piece: memoryview) -> None:
        nonlocal position
        while piece:
            written = os.pwrite(fd, piece, position)
            position += written
            piece = piece[written:]
    return write
