"""Every compressor backend writes standard gzip that GNU gzip reads back (one contract suite)."""

from __future__ import annotations

import io
import struct
import sys

import pytest

from dropgz.compression.compressors import (
    COMPRESSORS,
    MAX_GZIP_MTIME,
    Compressor,
    IsalCompressor,
    get_compressor,
    header_mtime,
)
from dropgz.core.errors import ConfigError
from tests.fixtures.peers import gunzip_bytes, gzip_header_name

TEXT = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i
                for i in range(20000))
FNAME = 0x08


@pytest.fixture(params=sorted(COMPRESSORS))
def compressor(request: pytest.FixtureRequest) -> Compressor:
    return get_compressor(request.param)


def compress(compressor: Compressor, data: bytes, *, name: bytes = b"a.txt",
             mtime: int = 1_700_000_000, level: int = 6) -> bytes:
    sink = io.BytesIO()
    with compressor.open_writer(sink, name=name, mtime=mtime, level=level) as writer:
        writer.write(data)
    assert not sink.closed, "open_writer must leave the caller's file open"
    return sink.getvalue()


def header(data: bytes) -> tuple[int, int, bytes]:
    """(flags, mtime, FNAME) of a gzip member, read per RFC 1952 section 2.3."""
    magic, method, flags, mtime = struct.unpack_from("<2sBBI", data)
    assert (magic, method) == (b"\x1f\x8b", 8)
    name = data[10:data.index(b"\0", 10)] if flags & FNAME else b""
    return flags, mtime, name


# ---------------------------------------------------------------- contract


@pytest.mark.parametrize("level", [1, 6, 9])
def test_gnu_gzip_reads_back_every_level(compressor: Compressor, level: int) -> None:
    assert gunzip_bytes(compress(compressor, TEXT, level=level)) == TEXT


def test_gnu_gzip_reads_back_empty_input(compressor: Compressor) -> None:
    assert gunzip_bytes(compress(compressor, b"")) == b""


def test_header_carries_name_and_mtime(compressor: Compressor) -> None:
    data = compress(compressor, TEXT, name="Réunion 2024.TXT".encode(), mtime=1_234_567_890)
    flags, mtime, name = header(data)
    assert flags & FNAME
    assert mtime == 1_234_567_890
    assert name == "Réunion 2024.TXT".encode()
    assert gzip_header_name(data) == "Réunion 2024.TXT"


def test_same_call_gives_the_same_bytes(compressor: Compressor) -> None:
    assert compress(compressor, TEXT) == compress(compressor, TEXT)


def test_higher_levels_do_not_compress_worse(compressor: Compressor) -> None:
    sizes = [len(compress(compressor, TEXT, level=level)) for level in (1, 9)]
    assert sizes[1] <= sizes[0]
    assert sizes[1] < len(TEXT) / 4


@pytest.mark.parametrize("level", [0, 10, -1, True, 6.0, "6"])
def test_levels_outside_1_to_9_are_rejected_naming_the_bounds(compressor: Compressor,
                                                              level: object) -> None:
    with pytest.raises(ValueError, match=r"1\.\.9|whole number"):
        compressor.open_writer(io.BytesIO(), name=b"a", mtime=0, level=level)  # type: ignore[arg-type]


def test_a_nul_in_the_name_is_rejected(compressor: Compressor) -> None:
    with pytest.raises(ValueError, match="NUL"):
        compressor.open_writer(io.BytesIO(), name=b"a\0b", mtime=0, level=6)


@pytest.mark.parametrize(("given", "written"), [
    (0, 0), (1, 1), (MAX_GZIP_MTIME, MAX_GZIP_MTIME), (MAX_GZIP_MTIME + 1, 0), (-86400, 0)])
def test_mtime_outside_the_32_bit_field_becomes_unknown(compressor: Compressor, given: int,
                                                        written: int) -> None:
    assert header_mtime(given) == written
    assert header(compress(compressor, b"x", mtime=given))[1] == written


# ---------------------------------------------------------------- levels per backend


def test_isal_maps_1_to_9_onto_its_0_to_3() -> None:
    isal = IsalCompressor()
    assert [isal.native_level(level) for level in range(1, 10)] == [0, 0, 1, 1, 2, 2, 3, 3, 3]


@pytest.mark.parametrize("name", ["gzip", "zlib-ng"])
def test_zlib_backends_use_the_level_as_given(name: str) -> None:
    backend = get_compressor(name)
    assert [backend.native_level(level) for level in range(1, 10)] == list(range(1, 10))


def test_isal_levels_that_map_alike_give_identical_output() -> None:
    isal = get_compressor("isal")
    assert compress(isal, TEXT, level=5) == compress(isal, TEXT, level=6)
    assert compress(isal, TEXT, level=1) != compress(isal, TEXT, level=6)


# ---------------------------------------------------------------- choosing a backend


def test_unknown_compressor_is_a_config_error_listing_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown compressor 'brotli' \(choose from "
                                          r"gzip, zlib-ng, isal\)"):
        get_compressor("brotli")


@pytest.mark.parametrize(("name", "module"), [("isal", "isal.igzip"),
                                              ("zlib-ng", "zlib_ng.gzip_ng")])
def test_a_missing_optional_backend_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                         name: str, module: str) -> None:
    # A None entry in sys.modules makes `import module` raise ImportError, as on a host
    # where the package is not installed.
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError) as caught:
        get_compressor(name)
    assert str(caught.value) == f"compressor '{name}' needs: pip install 'dropgz[{name}]'"


def test_gzip_needs_no_optional_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "isal.igzip", None)
    monkeypatch.setitem(sys.modules, "zlib_ng.gzip_ng", None)
    assert gunzip_bytes(compress(get_compressor("gzip"), TEXT)) == TEXT
