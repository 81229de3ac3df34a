"""Dropbox paths: validation (nothing may escape the root), case folding, the mirror on disk.

A Dropbox path is ``""`` (the root, list_folder only) or ``/a/b`` with case-insensitive
components. Every file is kept on disk at ``root/<path_display>``, so a component that the
file system would interpret (``..``, ``.``, an empty one, NUL) is refused here with
``malformed_path``, before any file-system call sees it.
"""

from __future__ import annotations

import os
from pathlib import Path

from dropgz.emulator.errors import BadRequest, malformed_lookup

# Linux NAME_MAX: the disk mirror cannot hold a longer component. Dropbox allows 255
# characters per component (https://help.dropbox.com/organize/file-names).
MAX_COMPONENT_BYTES = 255
# Where the emulator keeps its own state (journal, tokens, upload sessions, temp files),
# inside the root; no Dropbox path may name it.
STATE_DIR_NAME = ".dropgz-emulator"


def lower(path: str) -> str:
    """The identity of a path (Dropbox's ``path_lower``)."""
    return path.lower()


def parent_of(path: str) -> str:
    """``/a/b`` -> ``/a``; ``/a`` -> ``""`` (the root)."""
    return path.rsplit("/", 1)[0]


def name_of(path: str) -> str:
    return path.rsplit("/", 1)[1]


def validate(path: str, *, allow_root: bool = False) -> str:
    """Returns ``path`` unchanged when it is a safe absolute Dropbox path.

    Raises LookupFailure(malformed_path) otherwise; ``"/"`` for the root is the 400 that
    Dropbox answers ("specify the root folder as an empty string").
    """
    if path == "":
        if allow_root:
            return path
        raise malformed_lookup("the root folder is not allowed here")
    if path == "/":
        raise BadRequest('path: Specify the root folder as an empty string rather than as "/".')
    if not path.startswith("/"):
        raise malformed_lookup("a path must start with '/'")
    for component in path[1:].split("/"):
        check_component(component)
    if lower(path[1:].split("/", 1)[0]) == STATE_DIR_NAME:
        raise malformed_lookup(f"{STATE_DIR_NAME} is reserved by the emulator")
    return path


def check_component(component: str) -> None:
    """One path component; raises LookupFailure(malformed_path) with the reason."""
    if component == "":
        raise malformed_lookup("empty path component (double or trailing '/')")
    if component in (".", ".."):
        raise malformed_lookup(f"path component {component!r} is not allowed")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in component):
        raise malformed_lookup("control characters (NUL...) are not allowed in a path")
    try:
        size = len(component.encode("utf-8"))
    except UnicodeEncodeError:
        raise malformed_lookup("path is not valid Unicode") from None
    if size > MAX_COMPONENT_BYTES:
        raise malformed_lookup(f"path component longer than {MAX_COMPONENT_BYTES} bytes")


def disk_path(root: Path, path_display: str) -> Path:
    """Where the entry ``path_display`` (already validated) lives under ``root``."""
    target = root.joinpath(*path_display[1:].split("/")) if path_display else root
    # Defence in depth: validate() already refused every component that could escape.
    if os.path.commonpath([root, target]) != str(root):
        raise malformed_lookup("path escapes the root")
    return target


def autorename(path: str, attempt: int, *, is_file: bool) -> str:
    """``/a/b.txt`` -> ``/a/b (1).txt``: Dropbox's autorename strategy."""
    parent, name = parent_of(path), name_of(path)
    stem, dot, ext = name.rpartition(".") if is_file else ("", "", "")
    if not is_file or not stem:
        stem, dot, ext = name, "", ""
    return f"{parent}/{stem} ({attempt}){dot}{ext}"
