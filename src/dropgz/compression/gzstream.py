"""Pull-based streaming gzip: a readable file of compressed bytes over an iterable of source bytes.

The worker downloads a file as an iterator of chunks (``response.iter_content``) and
uploads whatever it can ``read()``: :class:`GzipReader` sits between the two and
compresses only when the uploader asks for more. Memory therefore stays at a few
chunks whatever the file size::

    download chunks ──pull──▶ carry ──1 MiB blocks──▶ GzipFile ──▶ output queue ──read()──▶ upload

Output is deterministic: the same bytes, name, mtime, level and compressor always give
the same gzip, so a redelivered work message rewrites an identical ``.gz``. That needs
more than a fixed header: zlib-ng and ISA-L emit different deflate streams when the
same input arrives in different pieces, so the source is re-cut into blocks of exactly
``chunk_size`` bytes before it reaches the compressor, whatever sizes the download
produced (a resumed download, for one, restarts its chunking mid-file).
"""

from __future__ import annotations

import calendar
import io
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from dropbox.content_hash import DropboxContentHasher

from dropgz.compression.compressors import DEFAULT_LEVEL, get_compressor

CHUNK_SIZE = 1 << 20  # 1 MiB: per-call Python overhead is noise at this size
PEEK_LIMIT = 64  # source bytes kept for peek_source(): magic numbers are short
FIRST_BYTES = 4


def header_name(name: str) -> bytes:
    """The FNAME bytes for ``name``: its last path component, UTF-8 (what ``gunzip -N`` restores).

    RFC 1952 says ISO 8859-1, but GNU gzip writes back whatever bytes it finds, and on
    a UTF-8 system UTF-8 restores unicode names. A lone surrogate (possible in JSON)
    becomes ``?``: the header name is a courtesy, not worth failing a file over.
    """
    base = name.rsplit("/", 1)[-1]
    if "\0" in base:
        raise ValueError(f"file name must not contain NUL: {base!r}")
    return base.encode("utf-8", errors="replace")


def unix_mtime(when: datetime) -> int:
    """Unix seconds of a Dropbox timestamp such as ``FileMetadata.client_modified``.

    The SDK decodes ``"2024-01-02T03:04:05Z"`` to a *naive* datetime holding UTC, and
    ``naive.timestamp()`` would read it as local time: the header's MTIME (what
    ``gunzip -N`` restores) would then depend on the worker's time zone.
    """
    return calendar.timegm(when.utctimetuple())


class _Sink:
    """The file the ``GzipFile`` writer writes into: hands each piece to the reader."""

    __slots__ = ("_emit",)

    def __init__(self, emit: Callable[[bytes], None]) -> None:
        self._emit = emit

    def write(self, data: bytes) -> int:
        self._emit(data)
        return len(data)

    def flush(self) -> None:
        pass

    def detach(self) -> None:
        """Ignore further writes (a writer closed by the garbage collector after an abort)."""
        self._emit = _ignore


def _ignore(data: bytes) -> None:
    pass


class GzipReader(io.RawIOBase):
    """A read-only file of the gzip of ``chunks``, compressed as it is read.

    ``read(n)`` returns at most ``n`` bytes, and fewer when that is what one step of
    compression produced (raw-file semantics: callers loop, as the Dropbox SDK's
    ``ReaderUpload`` does); ``b""`` means the end. ``read()`` returns everything left.

    While and after reading (also after :meth:`close`):

    - ``bytes_in``: source bytes compressed so far; ``bytes_out``: gzip bytes produced.
    - ``content_hash``: Dropbox content hash of the gzip bytes produced so far; once
      ``finished``, of the whole ``.gz``, to compare with the uploaded file's metadata.
    - ``first_bytes``: the first (up to) 4 source bytes seen; :meth:`peek_source` pulls
      them without compressing anything, to check for the gzip magic first.
    - ``buffered`` / ``peak_buffered``: bytes held now / at most (source and gzip).
    """

    def __init__(self, chunks: Iterable[bytes], *, name: str, mtime: int,
                 level: int = DEFAULT_LEVEL, compressor: str = "gzip",
                 chunk_size: int = CHUNK_SIZE) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.source_name = name
        self.compressor = get_compressor(compressor)
        self.bytes_in = 0
        self.bytes_out = 0
        self.peak_buffered = 0
        self._chunk_size = chunk_size
        self._source = iter(chunks)
        self._source_done = False
        self._finished = False
        self._first = b""
        self._carry: deque[memoryview] = deque()  # pulled, not yet compressed
        self._carry_len = 0
        self._in_flight = 0  # the block being compressed right now
        self._out: deque[bytes] = deque()  # compressed, not yet read
        self._out_len = 0
        self._out_offset = 0  # bytes of _out[0] already read
        self._hasher = DropboxContentHasher()
        self._sink = _Sink(self._emit)
        self._writer: Any = self.compressor.open_writer(
            self._sink, name=header_name(name), mtime=mtime, level=level)  # type: ignore[arg-type]

    # ------------------------------------------------------------ file API

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` gzip bytes (all that is left when ``size`` is negative or None)."""
        self._check_open()
        if size is None or size < 0:
            return self.readall()
        if size == 0:
            return b""
        while not self._out_len and self._writer is not None:
            self._produce()
        return self._take(size)

    def readall(self) -> bytes:
        """Every gzip byte not read yet. Holds the whole rest in memory: for small files."""
        self._check_open()
        while self._writer is not None:
            self._produce()
        return self._take(self._out_len)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[:len(data)] = data
        return len(data)

    def close(self) -> None:
        """Stop: drop buffers and close the source iterator. Counters stay readable."""
        if self.closed:
            return
        self._sink.detach()
        self._writer = None
        self._carry.clear()
        self._out.clear()
        self._carry_len = self._out_len = self._out_offset = 0
        close_source = getattr(self._source, "close", None)
        if close_source is not None:
            close_source()
        super().close()

    def __repr__(self) -> str:
        return (f"<GzipReader {self.source_name!r} {self.compressor.name} "
                f"in={self.bytes_in} out={self.bytes_out}"
                f"{' finished' if self.finished else ''}>")

    # ------------------------------------------------------------ what the worker checks

    @property
    def finished(self) -> bool:
        """True once the gzip trailer has been produced (not necessarily read)."""
        return self._finished

    @property
    def content_hash(self) -> str:
        """Dropbox content hash (hex) of the gzip bytes produced so far."""
        return self._hasher.copy().hexdigest()

    @property
    def first_bytes(self) -> bytes:
        """The first (up to) 4 source bytes pulled so far."""
        return self._first[:FIRST_BYTES]

    @property
    def buffered(self) -> int:
        """Bytes held right now: source not yet compressed plus gzip not yet read."""
        return self._carry_len + self._in_flight + self._out_len

    def peek_source(self, n: int = FIRST_BYTES) -> bytes:
        """The first ``n`` source bytes (fewer if the file is shorter), compressing nothing."""
        self._check_open()
        if not 0 <= n <= PEEK_LIMIT:
            raise ValueError(f"peek_source: n must be within 0..{PEEK_LIMIT}, got {n}")
        while len(self._first) < n and self._pull():
            pass
        return self._first[:n]

    # ------------------------------------------------------------ machinery

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed GzipReader")

    def _pull(self) -> bool:
        """Move the next non-empty source chunk into the carry; False when the source is done."""
        if self._source_done:
            return False
        for chunk in self._source:
            if not chunk:
                continue
            if not isinstance(chunk, bytes):
                if isinstance(chunk, str):
                    raise TypeError("GzipReader source chunks must be bytes, not str")
                chunk = bytes(chunk)  # the producer may reuse its buffer for the next chunk
            if len(self._first) < PEEK_LIMIT:
                self._first += chunk[:PEEK_LIMIT - len(self._first)]
            self._carry.append(memoryview(chunk))
            self._carry_len += len(chunk)
            self._note_buffered()
            return True
        self._source_done = True
        return False

    def _next_block(self) -> memoryview | bytearray | None:
        """The next ``chunk_size`` source bytes (fewer only at the end), None at the end."""
        size = self._chunk_size
        while self._carry_len < size and self._pull():
            pass
        if not self._carry_len:
            return None
        head = self._carry[0]
        block: memoryview | bytearray
        if len(head) >= size or len(self._carry) == 1:
            block = head[:size]  # zero-copy: the usual case of 1 MiB download chunks
            if len(head) > size:
                self._carry[0] = head[size:]
            else:
                self._carry.popleft()
        else:
            block = bytearray()
            while len(block) < size and self._carry:
                piece = self._carry.popleft()
                need = size - len(block)
                if len(piece) > need:
                    self._carry.appendleft(piece[need:])
                    piece = piece[:need]
                block += piece
        self._carry_len -= len(block)
        return block

    def _produce(self) -> None:
        """Compress one block, or write the trailer when the source is exhausted."""
        block = self._next_block()
        if block is None:
            self._writer.close()
            self._writer = None
            self._finished = True
            return
        self._in_flight = len(block)
        self._writer.write(block)
        self.bytes_in += len(block)
        self._in_flight = 0

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if not isinstance(data, bytes):
            data = bytes(data)
        self._out.append(data)
        self._out_len += len(data)
        self.bytes_out += len(data)
        self._hasher.update(data)
        self._note_buffered()

    def _take(self, size: int) -> bytes:
        """Up to ``size`` bytes from the output queue, copying only what is returned."""
        parts = []
        taken = 0
        while self._out and taken < size:
            head = self._out[0]
            start = self._out_offset
            room = size - taken
            if len(head) - start <= room:
                parts.append(head[start:] if start else head)
                self._out.popleft()
                self._out_offset = 0
            else:
                parts.append(head[start:start + room])
                self._out_offset = start + room
            taken += len(parts[-1])
        self._out_len -= taken
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _note_buffered(self) -> None:
        self.peak_buffered = max(self.peak_buffered, self.buffered)


def gzip_bytes(data: bytes, *, name: str, mtime: int, level: int = DEFAULT_LEVEL,
               compressor: str = "gzip") -> bytes:
    """The gzip of ``data`` in one call; byte-identical to reading a :class:`GzipReader`."""
    with GzipReader([data], name=name, mtime=mtime, level=level, compressor=compressor) as reader:
        return reader.read()
