"""Adopting changes made directly under a namespace's root while the emulator was stopped
(files dropped in to seed an account, files removed by hand)."""

# SQL here is assembled from module constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from dropgz.emulator import paths
from dropgz.emulator.entry import (
    COLUMN_LIST,
    TIME_FORMAT,
    Entry,
    folder_entry,
    new_id,
    new_rev,
    now_text,
    timestamp,
)
from dropgz.emulator.errors import ApiFailure, BadRequest
from dropgz.emulator.hashing import hash_file
from dropgz.emulator.namespace import Namespace

log = logging.getLogger("dropgz.emulator.namespace")


def reconcile(ns: Namespace) -> int:
    """Brings the namespace in line with the disk; returns how many paths changed.

    A file counts as changed when its size differs or it was modified after the entry's
    server_modified. Symlinks, names Dropbox would refuse and case-only duplicates are
    skipped with a warning.
    """
    seen: set[str] = set()
    changed = 0
    with ns.db.transaction() as conn:
        for display, full, is_dir in _walk_disk(ns.root):
            low = paths.lower(display)
            if low in seen:
                log.warning("skipping %s: differs from another name only by case", full)
                continue
            seen.add(low)
            entry = ns.get(low)
            if is_dir and (entry is None or entry.tag != "folder"):
                ns.journal.put(conn, folder_entry(display))
                changed += 1
            elif not is_dir and _disk_file_changed(entry, full):
                stat = full.stat()
                modified = datetime.fromtimestamp(stat.st_mtime, UTC).strftime(TIME_FORMAT)
                ns.journal.put(conn, Entry(
                    low, paths.lower(paths.parent_of(display)), display, "file",
                    entry.id if entry and entry.tag == "file" else new_id(), new_rev(),
                    stat.st_size, hash_file(str(full)), modified, now_text()))
                changed += 1
        gone = ns.db.query(f"SELECT {COLUMN_LIST} FROM entries ORDER BY path_lower")
        for row in gone:
            if row["path_lower"] not in seen:
                ns.journal.remove(conn, Entry.from_row(row))
                changed += 1
    return changed


def _walk_disk(root: Path) -> Iterator[tuple[str, Path, bool]]:
    """(display path, disk path, is a folder) for everything under the root, parents
    first, leaving out the state folder."""
    for directory, dirnames, filenames in os.walk(root):
        base = Path(directory)
        prefix = "" if base == root else "/" + base.relative_to(root).as_posix()
        keep = []
        for name in sorted(dirnames) + sorted(filenames):
            full = base / name
            display = f"{prefix}/{name}"
            try:
                paths.validate(display)
            except (ApiFailure, BadRequest):
                if not (base == root and name == paths.STATE_DIR_NAME):
                    log.warning("skipping %s: not a valid Dropbox path", full)
                continue
            if full.is_symlink():
                log.warning("skipping %s: symlinks are not followed", full)
                continue
            if name in dirnames:
                keep.append(name)
            yield display, full, name in dirnames
        dirnames[:] = keep


def _disk_file_changed(entry: Entry | None, full: Path) -> bool:
    if entry is None or entry.tag != "file":
        return True
    stat = full.stat()
    recorded = timestamp(entry.server_modified)
    written = recorded.replace(tzinfo=UTC).timestamp() if recorded else 0
    return stat.st_size != entry.size or stat.st_mtime > written + 1
