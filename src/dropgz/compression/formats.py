"""Content that is already compressed, recognised by its first bytes (magic numbers).

gzip finds nothing left to squeeze in a JPEG, a ZIP or an MP4: their .gz would be a few
bytes *larger* and cost the user quota. The worker looks at the first chunk of a download
and, when it starts like one of these formats, skips the file and closes the download, so
it never fetches more than that chunk. Formats that often compress well are deliberately
absent: PDF, TIFF, BMP, WAV, SQLite, plain tar, Office 97 (OLE) files.

Magic numbers from each format's specification, cross-checked with file(1)'s magic database:
https://www.garykessler.net/library/file_sigs.html is a convenient index.
"""

from __future__ import annotations

# (offset, magic bytes, what it is). Checked in order; the first match wins.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG image"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG image"),
    (0, b"GIF87a", "GIF image"),
    (0, b"GIF89a", "GIF image"),
    (0, b"\xff\x0a", "JPEG XL image"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL image"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000 image"),
    # ZIP local file header / empty archive / spanned: also docx, xlsx, pptx, odt, jar,
    # apk, epub, which are ZIP containers of deflated parts.
    (0, b"PK\x03\x04", "ZIP archive (docx, xlsx, jar, epub...)"),
    (0, b"PK\x05\x06", "ZIP archive (docx, xlsx, jar, epub...)"),
    (0, b"PK\x07\x08", "ZIP archive (docx, xlsx, jar, epub...)"),
    (0, b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (0, b"\xfd7zXZ\x00", "xz data"),
    (0, b"\x28\xb5\x2f\xfd", "zstd data"),
    (0, b"\x04\x22\x4d\x18", "LZ4 data"),
    (0, b"Rar!\x1a\x07", "RAR archive"),
    (0, b"MSCF\x00\x00\x00\x00", "CAB archive"),
    (0, b"OggS", "Ogg audio/video"),
    (0, b"fLaC", "FLAC audio"),
    (0, b"ID3", "MP3 audio"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM video"),
    (0, b"wOFF", "WOFF font"),
    (0, b"wOF2", "WOFF2 font"),
    # ISO base media: MP4, MOV, M4A, 3GP, HEIC, AVIF ("ftyp" box first, after its size).
    (4, b"ftyp", "MP4/MOV video (ISO media: also m4a, HEIC, AVIF)"),
)
# RIFF containers: only the compressed kinds (WAV is usually PCM and compresses).
_RIFF_KINDS = {b"WEBP": "WebP image", b"AVI ": "AVI video"}


def compressed_format(head: bytes) -> str | None:
    """What already-compressed format ``head`` (a file's first bytes) starts like, or None.

    gzip itself is not reported here: :func:`dropgz.core.eligibility.looks_gzipped` has
    its own rule (a .gz is never compressed again, whatever ``min_savings`` says).
    """
    head = bytes(head[:16])
    for offset, magic, name in _MAGIC:
        if head.startswith(magic, offset):
            return name
    if head[:4] == b"RIFF" and head[8:12] in _RIFF_KINDS:
        return _RIFF_KINDS[head[8:12]]
    if head[:3] == b"BZh" and head[3:4].isdigit() and head[3:4] != b"0":
        return "bzip2 data"
    return _mpeg_audio(head)


def _mpeg_audio(head: bytes) -> str | None:
    """MP3 without an ID3 tag, or AAC (ADTS): an MPEG audio frame header first.

    A frame header is 11 sync bits, then fields with forbidden values; requiring valid
    fields keeps text out (a UTF-16LE byte-order mark, FF FE, starts with the sync too).
    """
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version, layer = head[1] >> 3 & 3, head[1] >> 1 & 3
    if version != 1 and layer == 0 and head[1] & 0xF6 == 0xF0:  # ADTS: layer bits 00
        return "AAC audio"
    bitrate, rate = head[2] >> 4, head[2] >> 2 & 3
    # MPEG version 1 (reserved), layer I (11, rare, and what FF FE looks like) excluded
    if version == 1 or layer in (0, 3) or bitrate in (0, 15) or rate == 3:
        return None
    return "MP3 audio"


def savings(bytes_in: int, bytes_out: int) -> float:
    """The fraction of ``bytes_in`` that compression saved (negative when it grew)."""
    return 1 - bytes_out / bytes_in if bytes_in else 0.0
