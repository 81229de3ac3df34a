"""Already-compressed content is recognised by its first bytes, from real files where the
standard library can make them; text and formats that do compress are not."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import struct
import wave
import zipfile

import pytest

from dropgz.compression.formats import compressed_format, savings
from dropgz.ops.samples import sample_set


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", "<w:p>hello</w:p>" * 100)
    return out.getvalue()


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"\x00\x01" * 800)
    return out.getvalue()


PNG = next(s.data for s in sample_set(0) if s.path.endswith(".png"))
MP4 = struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 40
MP3_FRAME = b"\xff\xfb\x90\x64" + bytes(100)  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz


@pytest.mark.parametrize(("data", "expected"), [
    (PNG, "PNG image"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(50), "JPEG image"),
    (b"GIF89a\x01\x00\x01\x00" + bytes(20), "GIF image"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 " + bytes(20), "WebP image"),
    (_zip(), "ZIP archive (docx, xlsx, jar, epub...)"),
    (lzma.compress(b"text " * 1000), "xz data"),
    (bz2.compress(b"text " * 1000), "bzip2 data"),
    (b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24), "7z archive"),
    (b"\x28\xb5\x2f\xfd\x24\x05" + bytes(10), "zstd data"),
    (b"Rar!\x1a\x07\x01\x00" + bytes(10), "RAR archive"),
    (MP4, "MP4/MOV video (ISO media: also m4a, HEIC, AVIF)"),
    (b"ID3\x04\x00\x00" + bytes(20), "MP3 audio"),
    (MP3_FRAME, "MP3 audio"),
    (b"\xff\xf1\x50\x80" + bytes(20), "AAC audio"),
    (b"OggS\x00\x02" + bytes(20), "Ogg audio/video"),
    (b"fLaC\x00\x00\x00\x22" + bytes(20), "FLAC audio"),
    (b"wOF2\x00\x01\x00\x00" + bytes(20), "WOFF2 font"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81" + bytes(20), "Matroska/WebM video"),
])
def test_compressed_formats_are_recognised(data: bytes, expected: str) -> None:
    assert compressed_format(data[:1 << 20]) == expected


@pytest.mark.parametrize("data", [
    b"",
    b"plain text\n" * 10,
    "\ufeffUTF-16 text with a byte-order mark".encode("utf-16-le"),  # FF FE, like an MPEG sync
    "UTF-16 text".encode("utf-16"),
    b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(40),  # PDFs often compress well: left to gzip
    _wav(),  # PCM audio compresses
    b"SQLite format 3\x00" + bytes(84),
    b"\xff\xfe\x00\x00",
    gzip.compress(b"x", mtime=0),  # gzip has its own rule (eligibility.looks_gzipped)
    random.Random(1).randbytes(4096).replace(b"\xff", b"\x00"),
])
def test_other_content_is_not_taken_for_compressed(data: bytes) -> None:
    assert compressed_format(data) is None


def test_savings() -> None:
    assert savings(1000, 200) == pytest.approx(0.8)
    assert savings(1000, 1010) == pytest.approx(-0.01)
    assert savings(0, 20) == 0.0
