"""The shared rules deciding which Dropbox files get a .gz beside them."""

from __future__ import annotations

import pytest

from dropgz.compression.gzstream import gzip_bytes
from dropgz.core.config import CompressionSettings, load_settings
from dropgz.core.eligibility import (
    GZ_SUFFIX,
    GZIP_MAGIC,
    MAX_NAME_CHARS,
    excluding_pattern,
    gz_path,
    looks_gzipped,
    skip_reason,
)

DEFAULTS = CompressionSettings()


# ---------------------------------------------------------------- gz_path


@pytest.mark.parametrize(("path", "expected"), [
    ("/a/Foo.txt", "/a/Foo.txt.gz"),
    ("/Foo", "/Foo.gz"),
    ("/Dir With Space/Ünïcode.TXT", "/Dir With Space/Ünïcode.TXT.gz"),
])
def test_gz_path_is_beside_the_file_with_its_casing(path: str, expected: str) -> None:
    assert gz_path(path) == expected


@pytest.mark.parametrize("path", ["", "/", "/a/"])
def test_gz_path_rejects_a_path_without_a_name(path: str) -> None:
    with pytest.raises(ValueError, match="not a file path"):
        gz_path(path)


# ---------------------------------------------------------------- already .gz


@pytest.mark.parametrize("path", ["/a/x.gz", "/a/X.GZ", "/x.Gz", "/deep/er/.gz", "/a.tar.gz"])
def test_names_ending_in_gz_are_skipped_whatever_the_case(path: str) -> None:
    assert skip_reason(path, 10, DEFAULTS) == "already .gz"


@pytest.mark.parametrize("path", ["/a/x.gz.txt", "/a/x.tgz", "/a/gz", "/x.gz/inside.txt",
                                  "/a/x.gzip", "/a/x.g"])
def test_names_not_ending_in_gz_are_eligible(path: str) -> None:
    # x.tgz is gzip inside: the worker's magic check (looks_gzipped) catches such content.
    assert skip_reason(path, 10, DEFAULTS) is None


# ---------------------------------------------------------------- exclude patterns


def test_a_pattern_matches_the_name_case_insensitively() -> None:
    rules = CompressionSettings(exclude=("*.jpg", "thumbs.db"))
    assert skip_reason("/Photos/IMG_001.JPG", 10, rules) == "excluded by pattern '*.jpg'"
    assert skip_reason("/x/Thumbs.db", 10, rules) == "excluded by pattern 'thumbs.db'"
    assert skip_reason("/Photos/notes.txt", 10, rules) is None


def test_a_pattern_matches_the_full_lower_cased_path() -> None:
    rules = CompressionSettings(exclude=("/tmp/*",))
    assert skip_reason("/TMP/sub/a.txt", 10, rules) == "excluded by pattern '/tmp/*'"
    assert skip_reason("/home/tmp/a.txt", 10, rules) is None


def test_the_first_matching_pattern_is_named() -> None:
    rules = CompressionSettings(exclude=("*.log", "*.txt", "a*"))
    assert skip_reason("/a.txt", 1, rules) == "excluded by pattern '*.txt'"


def test_a_mixed_case_pattern_still_matches_and_is_reported_as_written() -> None:
    # load_settings lower-cases patterns; a CompressionSettings built in code may not.
    rules = CompressionSettings(exclude=("*.JPG",))
    assert skip_reason("/p/a.jpg", 1, rules) == "excluded by pattern '*.JPG'"


def test_patterns_from_the_real_settings_loader_apply() -> None:
    settings = load_settings(env={"DROPGZ_COMPRESSION_EXCLUDE": "*.MP4, /Backups/*",
                                  "DROPGZ_COMPRESSION_MIN_SIZE": "1KiB"})
    rules = settings.compression
    assert skip_reason("/Videos/Clip.mp4", 5000, rules) == "excluded by pattern '*.mp4'"
    assert skip_reason("/backups/db.sql", 5000, rules) == "excluded by pattern '/backups/*'"
    assert skip_reason("/docs/a.txt", 1023, rules) == "smaller than min_size 1024"
    assert skip_reason("/docs/a.txt", 1024, rules) is None


# ---------------------------------------------------------------- sizes


def test_min_size_boundary() -> None:
    rules = CompressionSettings(min_size=100)
    assert skip_reason("/a.txt", 99, rules) == "smaller than min_size 100"
    assert skip_reason("/a.txt", 100, rules) is None
    assert skip_reason("/a.txt", 0, rules) == "smaller than min_size 100"


def test_zero_byte_files_are_eligible_by_default() -> None:
    assert skip_reason("/empty.txt", 0, DEFAULTS) is None


def test_max_size_boundary() -> None:
    rules = CompressionSettings(max_size=1000)
    assert skip_reason("/a.txt", 1000, rules) is None
    assert skip_reason("/a.txt", 1001, rules) == "larger than max_size 1000"


def test_max_size_zero_means_no_limit() -> None:
    assert skip_reason("/huge.bin", 2**41, CompressionSettings(max_size=0)) is None


def test_unknown_size_skips_the_size_rules_only() -> None:
    rules = CompressionSettings(min_size=100, max_size=1000, exclude=("*.bin",))
    assert skip_reason("/a.txt", None, rules) is None
    assert skip_reason("/a.bin", None, rules) == "excluded by pattern '*.bin'"


# ---------------------------------------------------------------- name length


def test_a_name_whose_gz_is_exactly_255_characters_is_eligible() -> None:
    name = "n" * (MAX_NAME_CHARS - len(GZ_SUFFIX))
    assert len(name + GZ_SUFFIX) == 255
    assert skip_reason(f"/dir/{name}", 10, DEFAULTS) is None


def test_one_character_more_is_too_long() -> None:
    name = "n" * (MAX_NAME_CHARS - len(GZ_SUFFIX) + 1)
    assert skip_reason(f"/dir/{name}", 10, DEFAULTS) == (
        "name too long for .gz (256 characters, limit 255)")


def test_unicode_names_are_counted_in_characters_not_bytes() -> None:
    fits = "é" * 252  # 504 bytes of UTF-8, 252 characters
    assert len(fits.encode()) > MAX_NAME_CHARS
    assert skip_reason(f"/{fits}", 10, DEFAULTS) is None
    too_long = "日" * 253
    assert skip_reason(f"/{too_long}", 10, DEFAULTS) == (
        "name too long for .gz (256 characters, limit 255)")


def test_only_the_last_component_counts() -> None:
    folder = "/" + "d" * 300
    assert skip_reason(f"{folder}/a.txt", 10, DEFAULTS) is None


def test_already_gz_is_reported_before_other_reasons() -> None:
    rules = CompressionSettings(exclude=("*",), min_size=100)
    assert skip_reason("/a/x.gz", 1, rules) == "already .gz"


# ---------------------------------------------------------------- content


def test_looks_gzipped_on_real_gzip_output() -> None:
    data = gzip_bytes(b"hello", name="h.txt", mtime=1, level=6)
    assert looks_gzipped(data[:4])
    assert looks_gzipped(memoryview(data))


@pytest.mark.parametrize("first", [b"", b"\x1f", b"\x8b\x1f", b"PK\x03\x04", b"\x1f\x8a\x08",
                                   b"hello"])
def test_looks_gzipped_rejects_other_content(first: bytes) -> None:
    assert not looks_gzipped(first)


def test_magic_is_the_two_gzip_id_bytes() -> None:
    assert bytes([31, 139]) == GZIP_MAGIC


@pytest.mark.parametrize(("path", "expected"), [
    ("/a/B.JPG", "*.jpg"), ("/tmp/x", "/tmp/*"), ("/Tmp/Y/z.txt", "/tmp/*"),
    ("/a/thumbs.db", "thumbs.db"), ("/a/b.txt", None), ("/jpg", None), ("/a.jpg/b", None),
])
def test_excluding_pattern_names_the_match(path: str, expected: str | None) -> None:
    assert excluding_pattern(path, ("*.jpg", "/tmp/*", "thumbs.db")) == expected
