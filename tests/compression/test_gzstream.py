"""GzipReader: streaming gzip judged by GNU gzip, deterministic, bounded in memory."""

from __future__ import annotations

import io
import random
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from dropbox.content_hash import content_hash
from dropbox.file_transfer import UPLOAD_CHUNK_SIZE, ReaderUpload, _read_upload_chunk

from dropgz.compression.compressors import COMPRESSORS
from dropgz.compression.gzstream import CHUNK_SIZE, GzipReader, gzip_bytes, unix_mtime
from dropgz.core.eligibility import looks_gzipped
from dropgz.core.errors import ConfigError
from tests.fixtures.peers import gnu_gzip, gunzip_bytes, gzip_header_name

MIB = 1 << 20
MTIME = 1_700_000_123
ALL_COMPRESSORS = sorted(COMPRESSORS)


def make_text(size: int, seed: int = 7) -> bytes:
    """Word-salad text: compresses like prose, not like a repeated line."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"etaoinshrdlucmfw") for _ in range(rng.randint(1, 10)))
             for _ in range(3000)]
    out = bytearray()
    while len(out) < size:
        out += b" ".join(rng.choices(words, k=1000)) + b"\n"
    return bytes(out[:size])


TEXT = make_text(300_000)
RANDOM = random.Random(11).randbytes(200_000)
BIG = make_text(3 * MIB + 12345, seed=3)  # several 1 MiB blocks plus a ragged end


def odd_chunks(data: bytes, sizes: tuple[int, ...] = (1, 65_537, 999_983, 7, 2 * MIB + 3)
               ) -> Iterator[bytes]:
    """``data`` in pieces of cycling odd sizes, none aligned to the 1 MiB block."""
    pos, i = 0, 0
    while pos < len(data):
        step = sizes[i % len(sizes)]
        yield data[pos:pos + step]
        pos, i = pos + step, i + 1


def fixed_chunks(data: bytes, size: int) -> Iterator[bytes]:
    for pos in range(0, len(data), size):
        yield data[pos:pos + size]


def read_like_the_sdk(reader: GzipReader) -> bytes:
    """Drain ``reader`` exactly as dropbox.file_transfer's sequential upload does."""
    opened = ReaderUpload(reader).open()
    parts = []
    while True:
        chunk, eof = _read_upload_chunk(opened, UPLOAD_CHUNK_SIZE)
        parts.append(chunk)
        if eof:
            opened.close()
            return b"".join(parts)
        assert len(chunk) == UPLOAD_CHUNK_SIZE


# ---------------------------------------------------------------- GNU gzip reads it back


@pytest.mark.parametrize("compressor", ALL_COMPRESSORS)
@pytest.mark.parametrize("level", [1, 6, 9])
@pytest.mark.parametrize(("kind", "data"), [("text", TEXT), ("random", RANDOM), ("empty", b""),
                                            ("multi-MiB", BIG)])
def test_gnu_gzip_restores_the_exact_input(compressor: str, level: int, kind: str,
                                           data: bytes) -> None:
    chunks = odd_chunks(data) if kind == "multi-MiB" else iter([data])
    reader = GzipReader(chunks, name=f"{kind}.bin", mtime=MTIME, level=level,
                        compressor=compressor)
    gz = read_like_the_sdk(reader)
    assert gunzip_bytes(gz) == data
    assert (reader.bytes_in, reader.bytes_out, reader.finished) == (len(data), len(gz), True)
    if kind == "text":
        assert len(gz) < len(data) * 0.7


@pytest.mark.parametrize("compressor", ALL_COMPRESSORS)
def test_gzip_bytes_equals_the_streamed_output(compressor: str) -> None:
    one_shot = gzip_bytes(BIG, name="big.txt", mtime=MTIME, level=6, compressor=compressor)
    streamed = GzipReader(odd_chunks(BIG), name="big.txt", mtime=MTIME, level=6,
                          compressor=compressor).read()
    assert one_shot == streamed
    assert gunzip_bytes(one_shot) == BIG


def test_standard_io_wrappers_can_read_it() -> None:
    # readinto() makes it a proper raw file: io.BufferedReader and copyfileobj work.
    reader = io.BufferedReader(GzipReader(iter([TEXT]), name="t.txt", mtime=MTIME, level=6),
                               buffer_size=4096)
    out = bytearray()
    while block := reader.read(1000):
        out += block
    assert gunzip_bytes(bytes(out)) == TEXT


def test_small_reads_return_at_most_what_was_asked() -> None:
    reader = GzipReader(iter([RANDOM]), name="r", mtime=MTIME, level=1)
    sizes = []
    out = bytearray()
    while block := reader.read(777):
        sizes.append(len(block))
        out += block
    assert max(sizes) <= 777
    assert gunzip_bytes(bytes(out)) == RANDOM
    assert reader.read(777) == b""
    assert reader.read() == b""


# ---------------------------------------------------------------- header: name and mtime


@pytest.mark.parametrize("compressor", ALL_COMPRESSORS)
@pytest.mark.parametrize("name", ["Résumé final 2024.TXT", "with  two spaces.csv",
                                  "UPPER CASE.LOG", "日本語のファイル.txt", "plain"])
def test_gunzip_n_restores_the_name_and_mtime(tmp_path: Path, compressor: str, name: str) -> None:
    given = gzip_bytes(TEXT, name=f"/Some Folder/{name}", mtime=MTIME, level=6,
                       compressor=compressor)
    stored = tmp_path / "downloaded-under-another-name.gz"
    stored.write_bytes(given)
    result = subprocess.run([gnu_gzip(), "-dN", stored.name], cwd=tmp_path,
                            capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    restored = tmp_path / name
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert restored.read_bytes() == TEXT
    assert int(restored.stat().st_mtime) == MTIME


def test_unix_mtime_reads_the_sdks_naive_timestamps_as_utc(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    from dropbox import stone_serializers, stone_validators
    decoded = stone_serializers.json_compat_obj_decode(
        stone_validators.Timestamp("%Y-%m-%dT%H:%M:%SZ"), "2024-01-02T03:04:05Z")
    assert decoded.tzinfo is None  # what FileMetadata.client_modified holds
    monkeypatch.setenv("TZ", "America/New_York")  # a worker far from UTC
    time.tzset()
    try:
        assert unix_mtime(decoded) == 1_704_164_645
    finally:
        monkeypatch.undo()
        time.tzset()
    aware = datetime(2024, 1, 1, 22, 4, 5, tzinfo=timezone(timedelta(hours=-5)))
    assert unix_mtime(aware) == unix_mtime(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert unix_mtime(aware) == 1_704_164_645


def test_header_name_is_utf8_of_the_last_component() -> None:
    gz = gzip_bytes(b"x", name="/a/b/Ça va.txt", mtime=MTIME, level=6)
    assert gzip_header_name(gz) == "Ça va.txt"
    assert "Ça va.txt".encode() + b"\0" in gz[:40]


def test_a_nul_in_the_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="NUL"):
        GzipReader(iter([b"x"]), name="a\0b.txt", mtime=MTIME, level=6)


# ---------------------------------------------------------------- determinism


@pytest.mark.parametrize("compressor", ALL_COMPRESSORS)
def test_the_same_input_chunked_differently_gives_the_same_bytes(compressor: str) -> None:
    # zlib-ng and ISA-L alone emit different streams for different input pieces
    # (measured); GzipReader re-cuts the source into fixed blocks so this holds anyway.
    def gz(chunks: Iterator[bytes]) -> bytes:
        return GzipReader(chunks, name="big.txt", mtime=MTIME, level=6,
                          compressor=compressor).read()

    reference = gz(fixed_chunks(BIG, CHUNK_SIZE))
    assert gz(fixed_chunks(BIG, CHUNK_SIZE)) == reference
    assert gz(iter([BIG])) == reference
    assert gz(odd_chunks(BIG)) == reference
    assert gz(fixed_chunks(BIG, 65_536)) == reference
    assert gz(odd_chunks(BIG, (MIB - 1, MIB + 1))) == reference


def test_name_mtime_level_and_compressor_all_show_in_the_output() -> None:
    base = {"name": "a.txt", "mtime": MTIME, "level": 6, "compressor": "gzip"}
    reference = gzip_bytes(TEXT, **base)  # type: ignore[arg-type]
    for change in ({"name": "b.txt"}, {"mtime": MTIME + 1}, {"level": 1},
                   {"compressor": "isal"}, {"compressor": "zlib-ng"}):
        assert gzip_bytes(TEXT, **{**base, **change}) != reference, change  # type: ignore[arg-type]


# ---------------------------------------------------------------- bounded memory


def test_memory_stays_bounded_over_200_mib() -> None:
    block = random.Random(5).randbytes(MIB)  # incompressible: output as large as input
    pulled = 0

    def download() -> Iterator[bytes]:
        nonlocal pulled
        for _ in range(200):
            pulled += 1
            yield block

    reader = GzipReader(download(), name="huge.bin", mtime=MTIME, level=1, compressor="isal")
    opened = ReaderUpload(reader).open()
    total = 0
    while True:
        chunk, eof = _read_upload_chunk(opened, UPLOAD_CHUNK_SIZE)
        total += len(chunk)
        # Pulled no further ahead than the bytes handed out need, and holds a few MiB.
        assert pulled * MIB - reader.bytes_in <= 2 * MIB
        assert reader.buffered <= 3 * MIB
        if eof:
            break
    opened.close()
    assert reader.bytes_in == 200 * MIB
    assert total == reader.bytes_out > 200 * MIB
    assert reader.peak_buffered <= 4 * MIB


def test_nothing_is_pulled_before_the_first_read() -> None:
    pulled = []

    def download() -> Iterator[bytes]:
        for i in range(50):
            pulled.append(i)
            yield BIG[:MIB]

    reader = GzipReader(download(), name="x", mtime=MTIME, level=1, compressor="isal")
    assert pulled == []
    first = reader.read(100)
    assert first[:2] == b"\x1f\x8b"
    assert len(pulled) <= 2


# ---------------------------------------------------------------- content hash


@pytest.mark.parametrize("compressor", ALL_COMPRESSORS)
def test_content_hash_is_dropbox_hash_of_the_output(compressor: str) -> None:
    data = random.Random(2).randbytes(9 * MIB + 5)  # > two 4 MiB hash blocks of output
    reader = GzipReader(fixed_chunks(data, MIB), name="r.bin", mtime=MTIME, level=1,
                        compressor=compressor)
    midway_hashes = []
    out = bytearray()
    while block := reader.read(3 * MIB):
        out += block
        midway_hashes.append(reader.content_hash)  # asking must not disturb the total
    assert len(out) > 8 * MIB
    assert reader.content_hash == content_hash(bytes(out))
    assert midway_hashes[-1] == reader.content_hash
    assert len(set(midway_hashes)) > 1


def test_content_hash_of_empty_input() -> None:
    reader = GzipReader(iter([]), name="e", mtime=MTIME, level=6)
    gz = reader.read()
    assert gunzip_bytes(gz) == b""
    assert reader.content_hash == content_hash(gz)


# ---------------------------------------------------------------- peeking at the source


def test_peek_sees_the_gzip_magic_before_compressing_anything() -> None:
    already = gzip_bytes(TEXT, name="t.txt", mtime=MTIME, level=6)
    reader = GzipReader(fixed_chunks(already, 1), name="t.txt.bin", mtime=MTIME, level=6)
    assert reader.peek_source(4) == already[:4]
    assert looks_gzipped(reader.peek_source())
    assert reader.first_bytes == already[:4]
    assert reader.bytes_in == 0


def test_peeked_bytes_are_still_compressed() -> None:
    reader = GzipReader(iter([b"ab", b"cdef", TEXT]), name="t", mtime=MTIME, level=6)
    assert reader.peek_source(5) == b"abcde"
    assert not looks_gzipped(reader.first_bytes)
    assert gunzip_bytes(reader.read()) == b"abcdef" + TEXT


@pytest.mark.parametrize(("data", "expected"),
                         [(b"", b""), (b"z", b"z"), (b"\x1f\x8b", b"\x1f\x8b")])
def test_peek_on_short_files(data: bytes, expected: bytes) -> None:
    reader = GzipReader(iter([data]), name="s", mtime=MTIME, level=6)
    assert reader.peek_source(4) == expected
    assert gunzip_bytes(reader.read()) == data


def test_first_bytes_are_known_after_reading_without_peeking() -> None:
    reader = GzipReader(iter([b"PK\x03\x04rest"]), name="z.zip", mtime=MTIME, level=6)
    reader.read()
    assert reader.first_bytes == b"PK\x03\x04"


# ---------------------------------------------------------------- lifecycle and bad input


def test_close_stops_the_download_and_keeps_the_counters() -> None:
    closed = []

    def download() -> Iterator[bytes]:
        try:
            while True:
                yield BIG[:MIB]
        finally:
            closed.append(True)

    reader = GzipReader(download(), name="x", mtime=MTIME, level=1, compressor="isal")
    while reader.bytes_in == 0:  # the header alone needs no download
        reader.read(1000)
    reader.close()
    assert closed == [True]
    assert reader.closed
    assert reader.bytes_in > 0
    assert reader.bytes_out >= 1000
    assert len(reader.content_hash) == 64
    assert not reader.finished
    with pytest.raises(ValueError, match="closed"):
        reader.read(1)


def test_context_manager_closes() -> None:
    with GzipReader(iter([TEXT]), name="t", mtime=MTIME, level=6) as reader:
        assert reader.readable()
        assert not reader.seekable()
    assert reader.closed


def test_str_chunks_are_refused_clearly() -> None:
    reader = GzipReader(iter(["text"]), name="t", mtime=MTIME, level=6)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="bytes, not str"):
        reader.read()


def test_bytearray_chunks_reused_by_the_producer_are_copied() -> None:
    def download() -> Iterator[bytearray]:
        buffer = bytearray(b"A" * 1000)
        yield buffer
        buffer[:] = b"B" * 1000  # a producer that refills its buffer
        yield buffer

    reader = GzipReader(download(), name="t", mtime=MTIME, level=6, chunk_size=4096)
    assert gunzip_bytes(reader.read()) == b"A" * 1000 + b"B" * 1000


def test_empty_chunks_are_skipped() -> None:
    reader = GzipReader(iter([b"", b"ab", b"", b"", b"c", b""]), name="t", mtime=MTIME, level=6)
    assert gunzip_bytes(reader.read()) == b"abc"


@pytest.mark.parametrize("bad", [0, -1])
def test_chunk_size_must_be_positive(bad: int) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        GzipReader(iter([]), name="t", mtime=MTIME, level=6, chunk_size=bad)


def test_bad_level_and_compressor_fail_at_construction() -> None:
    with pytest.raises(ValueError, match=r"1\.\.9"):
        GzipReader(iter([]), name="t", mtime=MTIME, level=0)
    with pytest.raises(ConfigError, match="unknown compressor"):
        GzipReader(iter([]), name="t", mtime=MTIME, level=6, compressor="zstd")


def test_random_bytes_really_are_incompressible_here() -> None:
    # Guards the "random" cases above: they must exercise stored/expanding output.
    assert len(gzip_bytes(RANDOM, name="r", mtime=MTIME, level=9)) >= len(RANDOM)
