"""Changes to a namespace: commit a file, create a folder, delete, move.

Each is one transaction that updates ``entries`` and the journal through
:class:`~dropgz.emulator.journal.Journal`; bytes move on disk (``os.replace``) inside it, and
``on_change`` (the webhook) is called after it committed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from dropbox import files

from dropgz.emulator import paths
from dropgz.emulator.entry import TIME_FORMAT, Entry, folder_entry, new_id, new_rev, now_text
from dropgz.emulator.errors import (
    ApiFailure,
    LookupFailure,
    RouteError,
    as_write_failure,
    conflict,
)
from dropgz.emulator.namespace import Namespace

# Dropbox tries this many autorename suffixes before giving up.
_MAX_AUTORENAME = 10_000


class Writer:
    """The write operations of one :class:`Namespace`."""

    def __init__(self, namespace: Namespace, on_change: Callable[[], None] = lambda: None
                 ) -> None:
        self.ns = namespace
        self.db = namespace.db
        self.journal = namespace.journal
        self._on_change = on_change

    def commit_file(self, path: str, staged: Path, *, size: int, content_hash: str,
                    mode: files.WriteMode, autorename: bool, strict_conflict: bool,
                    client_modified: datetime | None) -> Entry:
        """Moves ``staged`` to ``path`` following Dropbox's write modes; returns the entry.

        Identical content already at the path is not a new revision (as Dropbox: no new rev,
        no change reported), unless ``add`` + ``strict_conflict`` asks for a conflict.
        """
        client_text = client_modified.strftime(TIME_FORMAT) if client_modified else None
        with self.db.transaction() as conn:
            display = self._write_target(path)
            existing = self.ns.get(paths.lower(display))
            if existing is not None and existing.tag == "folder":
                display = self._renamed(display, autorename, "folder", is_file=True)
                existing = None
            elif existing is not None:
                same = existing.content_hash == content_hash
                stale = mode.is_update() and mode.get_update() != existing.rev
                if stale or (mode.is_add() and (strict_conflict or not same)):
                    display = self._renamed(display, autorename, "file", is_file=True)
                    existing = None
                elif same:
                    staged.unlink(missing_ok=True)
                    return existing
                else:
                    display = existing.path_display  # an overwrite keeps the name's casing
            elif mode.is_update() and strict_conflict:
                raise conflict("file")  # the revision being updated no longer exists
            self._ensure_parents(conn, display)
            os.replace(staged, self.ns.disk_path(display))
            now = now_text()
            entry = Entry(paths.lower(display), paths.lower(paths.parent_of(display)), display,
                          "file", existing.id if existing else new_id(), new_rev(), size,
                          content_hash, client_text or now, now)
            self.journal.put(conn, entry)
        self._on_change()
        return entry

    def create_folder(self, path: str, *, autorename: bool) -> Entry:
        with self.db.transaction() as conn:
            display = self._write_target(path)
            existing = self.ns.get(paths.lower(display))
            if existing is not None:
                display = self._renamed(display, autorename, existing.tag, is_file=False)
            self._ensure_parents(conn, display)
            entry = self._make_folder(conn, display)
        self._on_change()
        return entry

    def delete(self, path: str, *, parent_rev: str | None = None) -> Entry:
        """Deletes a file or a folder with everything under it; returns what was deleted."""
        with self.db.transaction() as conn:
            entry = self.ns.lookup(path)
            if parent_rev is not None and (entry.tag != "file" or entry.rev != parent_rev):
                raise conflict("file")
            moved = self.ns.trash / secrets.token_hex(8)
            os.replace(self.ns.disk_path(entry.path_display), moved)
            for gone in [entry, *self.ns.descendants(entry)]:
                self.journal.remove(conn, gone)
        if moved.is_dir():
            shutil.rmtree(moved, ignore_errors=True)
        else:
            moved.unlink(missing_ok=True)
        self._on_change()
        return entry

    def move(self, from_path: str, to_path: str, *, autorename: bool) -> Entry:
        """files/move_v2. Raises RouteError(RelocationError) itself (move and copy only)."""
        with self.db.transaction() as conn:
            source, target = self._relocation(from_path, to_path, autorename, copy=False)
            if paths.lower(target) == source.path_lower:
                return self._rename_case(conn, source, target)
            self._ensure_parents(conn, target)
            moved = self._relocate(conn, source, target)
        self._on_change()
        return moved

    def copy(self, from_path: str, to_path: str, *, autorename: bool) -> Entry:
        """files/copy_v2: the file, or the folder with everything in it, under new ids."""
        with self.db.transaction() as conn:
            source, target = self._relocation(from_path, to_path, autorename, copy=True)
            self._ensure_parents(conn, target)
            copied = self._duplicate(conn, source, target)
        self._on_change()
        return copied

    def _relocation(self, from_path: str, to_path: str, autorename: bool, *,
                    copy: bool) -> tuple[Entry, str]:
        """The source entry and the display path it goes to; RouteError(RelocationError)."""
        try:
            source = self.ns.lookup(from_path)
        except ApiFailure as failure:
            raise RouteError(files.RelocationError.from_lookup(failure.error)) from None
        try:
            target = self._write_target(to_path)
            target_lower = paths.lower(target)
            if target_lower == source.path_lower:
                if copy or target == source.path_display:
                    raise conflict(source.tag)
                return source, target  # a case-only rename
            if target_lower.startswith(source.path_lower + "/"):
                raise RouteError(files.RelocationError.cant_move_folder_into_itself)
            existing = self.ns.get(target_lower)
            if existing is not None:
                target = self._renamed(target, autorename, existing.tag,
                                       is_file=source.tag == "file")
        except ApiFailure as failure:
            raise RouteError(files.RelocationError.to(as_write_failure(failure).error)) \
                from None
        return source, target

    # ---------------------------------------------------------------- internals

    def _write_target(self, path: str) -> str:
        """The display path a write lands on: existing ancestors keep their casing, the last
        component is the caller's.

        Raises WriteFailure for a malformed path or a file where a folder is needed.
        """
        try:
            display = self.ns.resolve(path)
        except LookupFailure as failure:
            raise as_write_failure(failure) from None
        *ancestors, name = display[1:].split("/")
        current = ""
        for index, part in enumerate(ancestors):
            entry = self.ns.get(paths.lower(f"{current}/{part}"))
            if entry is None:
                return current + "".join("/" + rest for rest in [*ancestors[index:], name])
            if entry.tag == "file":
                raise conflict("file_ancestor")
            current = entry.path_display
        return f"{current}/{name}"

    def _renamed(self, display: str, autorename: bool, taken_by: str, *, is_file: bool) -> str:
        if not autorename:
            raise conflict(taken_by)
        for attempt in range(1, _MAX_AUTORENAME):
            candidate = paths.autorename(display, attempt, is_file=is_file)
            if self.ns.get(paths.lower(candidate)) is None:
                return candidate
        raise conflict(taken_by)

    def _ensure_parents(self, conn: sqlite3.Connection, display: str) -> None:
        parent = paths.parent_of(display)
        if parent and self.ns.get(paths.lower(parent)) is None:
            self._ensure_parents(conn, parent)
            self._make_folder(conn, parent)

    def _make_folder(self, conn: sqlite3.Connection, display: str) -> Entry:
        self.ns.disk_path(display).mkdir(exist_ok=True)
        entry = folder_entry(display)
        self.journal.put(conn, entry)
        return entry

    def _relocate(self, conn: sqlite3.Connection, source: Entry, target: str) -> Entry:
        os.replace(self.ns.disk_path(source.path_display), self.ns.disk_path(target))
        group = [source, *self.ns.descendants(source)]
        for old in group:
            self.journal.remove(conn, old)
        moved = []
        for old in group:
            display = target + old.path_display[len(source.path_display):]
            moved.append(replace(old, path_lower=paths.lower(display), path_display=display,
                                 parent_lower=paths.lower(paths.parent_of(display))))
            self.journal.put(conn, moved[-1])
        return moved[0]

    def _duplicate(self, conn: sqlite3.Connection, source: Entry, target: str) -> Entry:
        origin, destination = self.ns.disk_path(source.path_display), self.ns.disk_path(target)
        if source.tag == "folder":
            shutil.copytree(origin, destination)
        else:
            shutil.copyfile(origin, destination)
        now = now_text()
        copies = []
        for old in [source, *self.ns.descendants(source)]:
            display = target + old.path_display[len(source.path_display):]
            copies.append(replace(
                old, path_lower=paths.lower(display), path_display=display,
                parent_lower=paths.lower(paths.parent_of(display)), id=new_id(),
                rev=new_rev() if old.tag == "file" else None,
                server_modified=now if old.tag == "file" else None))
            self.journal.put(conn, copies[-1])
        return copies[0]

    def _rename_case(self, conn: sqlite3.Connection, source: Entry, target: str) -> Entry:
        """A case-only rename: same identity, new display; not journaled (Dropbox does not
        report case-only changes to list_folder/continue)."""
        os.replace(self.ns.disk_path(source.path_display), self.ns.disk_path(target))
        renamed = None
        for old in [source, *self.ns.descendants(source)]:
            display = target + old.path_display[len(source.path_display):]
            conn.execute("UPDATE entries SET path_display = ? WHERE path_lower = ?",
                         (display, old.path_lower))
            renamed = renamed or replace(old, path_display=display)
        assert renamed is not None
        return renamed
