"""The gzip compressors dropgz can use; every one writes standard gzip (RFC 1952).

``[Compression] compressor`` picks one:

- ``gzip``: the standard library's :mod:`gzip` (zlib); levels 1..9 used as given.
- ``zlib-ng``: ``zlib_ng.gzip_ng`` (PyPI ``zlib-ng``); levels 1..9 used as given.
- ``isal``: ``isal.igzip`` (PyPI ``isal``). ISA-L knows only levels 0..3, so the
  configured 1..9 is mapped onto them (see :meth:`IsalCompressor.native_level`).

All three writer classes subclass :class:`gzip.GzipFile`, so the header is written by
the standard library in every case: FNAME is the name given (as bytes, written
verbatim), MTIME the time given, OS = 255. One quirk of ``GzipFile`` stays: a name
ending in ``.gz`` loses that suffix in the header. dropgz never compresses such a file
(see :mod:`dropgz.core.eligibility`), so it does not matter here.

The optional modules are imported when a compressor is asked for, not when this
module is imported, so a host without them can still use ``gzip``.
"""

from __future__ import annotations

import gzip
import importlib
from abc import ABC, abstractmethod
from types import ModuleType
from typing import BinaryIO, ClassVar, cast

from dropgz.core.errors import ConfigError

# The configured level, for every compressor (config.py accepts the same range).
MIN_LEVEL = 1
MAX_LEVEL = 9
DEFAULT_LEVEL = 6  # Python's default is 9: about 4x slower here for ~1% smaller output
# RFC 1952 section 2.3.1: MTIME is 32 bits, and 0 means "no time stamp is available".
# https://www.rfc-editor.org/rfc/rfc1952#section-2.3.1
MAX_GZIP_MTIME = 2**32 - 1
NO_MTIME = 0


class Compressor(ABC):
    """One way of producing gzip. Backends only say which ``GzipFile`` class to use."""

    name: ClassVar[str]

    def open_writer(self, fileobj: BinaryIO, *, name: bytes, mtime: int,
                    level: int) -> BinaryIO:
        """A ``GzipFile``-like writer: ``write()`` source bytes, ``close()`` writes the trailer.

        ``fileobj`` receives the gzip bytes and is left open. ``name`` goes to the
        header's FNAME field as given (use UTF-8, no NUL); ``mtime`` (Unix seconds) to
        MTIME, or 0 ("unknown") when it does not fit the 32-bit field; ``level`` is
        1..9 whatever the backend.
        """
        check_level(level)
        if b"\0" in name:
            raise ValueError(f"gzip file name must not contain NUL: {name!r}")
        writer = self._gzip_file_class()(
            filename=name, mode="wb", compresslevel=self.native_level(level),
            fileobj=fileobj, mtime=header_mtime(mtime))
        return cast(BinaryIO, writer)

    def native_level(self, level: int) -> int:
        """The backend's own level for the configured 1..9 ``level``."""
        return level

    @abstractmethod
    def _gzip_file_class(self) -> type[gzip.GzipFile]:
        """The writer class; optional backends import their module here."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class GzipCompressor(Compressor):
    """Python's own :mod:`gzip` (zlib): always there; the seed's choice."""

    name = "gzip"

    def _gzip_file_class(self) -> type[gzip.GzipFile]:
        return gzip.GzipFile


class ZlibNgCompressor(Compressor):
    """zlib-ng through PyPI ``zlib-ng``: about twice Python's speed at the same level."""

    name = "zlib-ng"

    def _gzip_file_class(self) -> type[gzip.GzipFile]:
        return _optional("zlib_ng.gzip_ng", "zlib-ng").GzipNGFile


class IsalCompressor(Compressor):
    """Intel ISA-L through PyPI ``isal``: the fastest, with slightly larger output."""

    name = "isal"
    MIN_NATIVE_LEVEL = 0  # isal.isal_zlib.ISAL_BEST_SPEED
    MAX_NATIVE_LEVEL = 3  # isal.isal_zlib.ISAL_BEST_COMPRESSION

    def native_level(self, level: int) -> int:
        """Map 1..9 onto ISA-L's 0..3 in pairs: 1-2 → 0, 3-4 → 1, 5-6 → 2, 7-9 → 3.

        So the default 6 gives ISA-L's own default, 2, and 9 its best, 3.
        """
        check_level(level)
        return min(self.MAX_NATIVE_LEVEL, (level - 1) // 2)

    def _gzip_file_class(self) -> type[gzip.GzipFile]:
        return _optional("isal.igzip", "isal").IGzipFile


COMPRESSORS: dict[str, type[Compressor]] = {
    cls.name: cls for cls in (GzipCompressor, ZlibNgCompressor, IsalCompressor)
}


def get_compressor(name: str) -> Compressor:
    """The compressor called ``name``, its module already imported.

    Raises :class:`~dropgz.core.errors.ConfigError` for an unknown name or a missing
    optional module, so a misconfigured worker stops at start, not at its first file.
    """
    cls = COMPRESSORS.get(name)
    if cls is None:
        raise ConfigError(f"unknown compressor {name!r} (choose from {', '.join(COMPRESSORS)})")
    compressor = cls()
    compressor._gzip_file_class()  # import now: fail early
    return compressor


def check_level(level: int) -> None:
    """Reject a level outside 1..9 with a ValueError naming the bounds."""
    if isinstance(level, bool) or not isinstance(level, int):
        raise ValueError(f"compression level must be a whole number, got {level!r}")
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise ValueError(f"compression level {level} is outside {MIN_LEVEL}..{MAX_LEVEL}")


def header_mtime(mtime: int) -> int:
    """``mtime`` for the gzip header, or 0 when the 32-bit field cannot hold it."""
    mtime = int(mtime)
    return mtime if 0 <= mtime <= MAX_GZIP_MTIME else NO_MTIME


def _optional(module: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"compressor {extra!r} needs: pip install 'dropgz[{extra}]'") from None
