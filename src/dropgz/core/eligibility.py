"""Which files get a ``.gz``: one set of rules for the delta tier and the worker alike.

The delta tier applies :func:`skip_reason` to skip files before queueing them; the
worker applies it again on the metadata it downloads (the file may have been renamed
or have grown since), then checks :func:`looks_gzipped` on the first source bytes.
Checks that need metadata — folders, deletions, stale revisions — are the callers'.
"""

from __future__ import annotations

import fnmatch

from dropgz.core.config import CompressionSettings

# Longest name component we create, counted in characters (code points), not bytes.
# rclone's Dropbox backend refuses longer names (backend/dropbox/dropbox.go,
# maxFileNameLength = 255, citing
# https://help.dropbox.com/installs-integrations/sync-uploads/files-not-syncing);
# the same Dropbox help also asks for paths under 260 characters.
MAX_NAME_CHARS = 255
GZIP_MAGIC = b"\x1f\x8b"  # RFC 1952 section 2.3.1: ID1 ID2
GZ_SUFFIX = ".gz"


def name_of(path: str) -> str:
    """The last component of a Dropbox path: ``"/a/Foo.txt"`` → ``"Foo.txt"``."""
    return path.rsplit("/", 1)[-1]


def gz_path(path: str) -> str:
    """Where the gzip of ``path`` goes: beside it, casing kept (``/a/F.txt`` → ``/a/F.txt.gz``)."""
    if not name_of(path):
        raise ValueError(f"not a file path: {path!r}")
    return path + GZ_SUFFIX


def excluding_pattern(path: str, patterns: tuple[str, ...]) -> str | None:
    """The first pattern matching ``path`` or its name, case-insensitively; None if none does.

    Same matching as :meth:`CompressionSettings.excluded`, but says which pattern.
    """
    lower = path.lower()
    name = name_of(lower)
    for pattern in patterns:
        wanted = pattern.lower()
        if fnmatch.fnmatchcase(lower, wanted) or fnmatch.fnmatchcase(name, wanted):
            return pattern
    return None


def skip_reason(path: str, size: int | None, rules: CompressionSettings) -> str | None:
    """None when the file at ``path`` should be compressed, else a short reason why not.

    ``size`` None means unknown: the size rules are then not applied.
    """
    name = name_of(path)
    if name.lower().endswith(GZ_SUFFIX):
        return "already .gz"
    pattern = excluding_pattern(path, rules.exclude)
    if pattern is not None:
        return f"excluded by pattern {pattern!r}"
    if size is not None and size < rules.min_size:
        return f"smaller than min_size {rules.min_size}"
    if size is not None and rules.max_size and size > rules.max_size:
        return f"larger than max_size {rules.max_size}"
    gz_chars = len(name) + len(GZ_SUFFIX)
    if gz_chars > MAX_NAME_CHARS:
        return f"name too long for .gz ({gz_chars} characters, limit {MAX_NAME_CHARS})"
    return None


def looks_gzipped(first_bytes: bytes) -> bool:
    """True when the content starts with the gzip magic, whatever the file's name."""
    return bytes(first_bytes[:len(GZIP_MAGIC)]) == GZIP_MAGIC
