"""A request body read incrementally: ``Content-Length`` or ``Transfer-Encoding: chunked``.

Route handlers pull it in bounded pieces (:meth:`RequestBody.readinto`), so a multi-GiB
upload streams to disk and never sits in memory. Whatever a handler did not read is drained
afterwards (or the connection closed) so the next keep-alive request starts at a boundary.
"""

from __future__ import annotations

from typing import BinaryIO

from dropgz.emulator.errors import BadRequest


class ClientGone(Exception):
    """The client closed the connection before sending the whole body."""


class RequestBody:
    def __init__(self, stream: BinaryIO, length: int | None, *, chunked: bool = False) -> None:
        self._stream = stream
        self.length = length          # declared size; None when chunked
        self._remaining = 0 if chunked else (length or 0)
        self._chunked = chunked
        self._done = not chunked and not length
        self._after_chunk = False     # a chunk's data was read; its CRLF is still pending

    @classmethod
    def from_headers(cls, stream: BinaryIO, headers: object) -> RequestBody:
        encoding = (headers.get("Transfer-Encoding") or "").lower()  # type: ignore[attr-defined]
        if "chunked" in encoding:
            return cls(stream, None, chunked=True)
        raw = headers.get("Content-Length")  # type: ignore[attr-defined]
        if raw is None:
            return cls(stream, 0)
        if not raw.strip().isdigit():
            raise BadRequest(f"bad Content-Length header: {raw!r}")
        return cls(stream, int(raw))

    @property
    def finished(self) -> bool:
        return self._done

    def readinto(self, buffer: memoryview) -> int:
        """Fills part of ``buffer``; 0 at the end of the body. Raises ClientGone on a cut."""
        if self._done:
            return 0
        if self._remaining == 0 and self._chunked and not self._next_chunk():
            return 0
        want = min(len(buffer), self._remaining)
        got = self._stream.readinto(buffer[:want])  # type: ignore[attr-defined]
        if not got:
            raise ClientGone("connection closed in the middle of the request body")
        self._remaining -= got
        if self._remaining == 0 and not self._chunked:
            self._done = True
        return got

    def read_all(self, limit: int) -> bytes:
        """The whole (small) body; BadRequest when it exceeds ``limit`` bytes."""
        if self.length is not None and self.length > limit:
            raise BadRequest(f"request body larger than {limit} bytes")
        data = bytearray()
        buffer = memoryview(bytearray(64 * 1024))
        while count := self.readinto(buffer):
            data += buffer[:count]
            if len(data) > limit:
                raise BadRequest(f"request body larger than {limit} bytes")
        return bytes(data)

    def drain(self, limit: int) -> bool:
        """Reads and drops the rest (at most ``limit`` bytes); True if the body is consumed."""
        if self._done:
            return True
        if self.length is not None and self._remaining > limit:
            return False
        buffer = memoryview(bytearray(1 << 20))
        drained = 0
        try:
            while count := self.readinto(buffer):
                drained += count
                if drained > limit:
                    return False
        except (ClientGone, OSError, BadRequest):
            return False
        return True

    def _next_chunk(self) -> bool:
        if self._after_chunk:
            self._stream.readline(16)
        line = self._stream.readline(1024)
        if not line:
            raise ClientGone("connection closed in the middle of a chunked body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadRequest("malformed chunked body") from None
        if size == 0:
            while self._stream.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            self._done = True
            return False
        self._remaining = size
        self._after_chunk = True
        return True
