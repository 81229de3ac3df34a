"""The account's files and folders: metadata in SQLite, bytes mirrored under the root.

Every change (add, overwrite, delete, folder create, move) is one transaction that updates
``entries`` and appends the new state of each touched path to ``journal``; cursors are
positions in that journal (see :mod:`dropgz.emulator.listing`). Bytes are staged in the hidden
state folder and renamed into place inside the transaction, so a reader never sees half a file
and an open download keeps reading the version it started with.
"""

# SQL here is assembled from module constants (column lists, scope fragments); every value is
# a bound parameter, so the f-strings cannot inject anything.
# ruff: noqa: S608

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from dropbox import files

from dropgz.emulator import paths
from dropgz.emulator.errors import (
    ApiFailure,
    BadRequest,
    LookupFailure,
    RouteError,
    as_write_failure,
    conflict,
    malformed_lookup,
    not_file,
    not_found,
)
from dropgz.emulator.hashing import hash_file
from dropgz.emulator.state import StateDB

log = logging.getLogger("dropgz.emulator.namespace")

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
COLUMNS = ("path_lower", "parent_lower", "path_display", "tag", "id", "rev", "size",
           "content_hash", "client_modified", "server_modified")
_COLUMN_LIST = ", ".join(COLUMNS)
_PLACEHOLDERS = ", ".join("?" for _ in COLUMNS)
# How often (in journal rows) the journal is trimmed to ``journal_limit``.
_TRIM_EVERY = 256
# Dropbox tries this many autorename suffixes before giving up.
_MAX_AUTORENAME = 10_000


def now_text() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def _timestamp(text: str | None) -> datetime | None:
    # The SDK's Timestamp validator wants naive datetimes in UTC.
    return datetime.strptime(text, TIME_FORMAT) if text else None


def new_id() -> str:
    return "id:" + secrets.token_urlsafe(16)


def new_rev() -> str:
    """A fresh revision: hex, at least 9 characters (files.Rev_validator)."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Entry:
    """One row of ``entries`` or ``journal`` (tag ``deleted`` only in the journal)."""

    path_lower: str
    parent_lower: str
    path_display: str
    tag: str
    id: str | None = None
    rev: str | None = None
    size: int | None = None
    content_hash: str | None = None
    client_modified: str | None = None
    server_modified: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Entry:
        return cls(*(row[name] for name in COLUMNS))

    @property
    def name(self) -> str:
        return paths.name_of(self.path_display)

    def to_metadata(self) -> files.Metadata:
        """The SDK object Dropbox would answer for this entry."""
        common = dict(name=self.name, path_lower=self.path_lower,
                      path_display=self.path_display)
        if self.tag == "file":
            return files.FileMetadata(
                id=self.id, rev=self.rev, size=self.size, content_hash=self.content_hash,
                client_modified=_timestamp(self.client_modified),
                server_modified=_timestamp(self.server_modified),
                is_downloadable=True, **common)
        if self.tag == "folder":
            return files.FolderMetadata(id=self.id, **common)
        return files.DeletedMetadata(**common)


def _scope(prefix: str, recursive: bool, column: str = "path_lower") -> tuple[str, tuple]:
    """SQL condition for paths listed under folder ``prefix`` (lower case, "" = root).

    A recursive listing of a non-root folder includes the folder itself, as Dropbox's does.
    ``'0'`` is the character after ``'/'``, so the range holds exactly the descendants.
    """
    if not recursive:
        return "parent_lower = ?", (prefix,)
    if prefix == "":
        return "1", ()
    return (f"({column} = ? OR ({column} >= ? AND {column} < ?))",
            (prefix, prefix + "/", prefix + "0"))


class Namespace:
    """The file tree of the one emulated account."""

    def __init__(self, db: StateDB, root: Path, state_dir: Path, *, journal_limit: int,
                 on_change: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.root = root
        self.trash = state_dir / "trash"
        self.trash.mkdir(parents=True, exist_ok=True)
        self.journal_limit = journal_limit
        self._on_change = on_change

    # ----------------------------------------------------------------- lookups

    def get(self, path_lower: str) -> Entry | None:
        rows = self.db.query(f"SELECT {_COLUMN_LIST} FROM entries WHERE path_lower = ?",
                             (path_lower,))
        return Entry.from_row(rows[0]) if rows else None

    def _get_by(self, column: str, value: str) -> Entry | None:
        rows = self.db.query(f"SELECT {_COLUMN_LIST} FROM entries WHERE {column} = ?", (value,))
        return Entry.from_row(rows[0]) if rows else None

    def resolve(self, path: str, *, allow_root: bool = False) -> str:
        """A validated display path (``""`` = root) for any API path form.

        ``id:...`` (optionally followed by ``/relative/path``) and ``rev:...`` are resolved
        through the namespace; ``ns:`` roots are not emulated.
        """
        if path.startswith("id:"):
            file_id, slash, rest = path.partition("/")
            entry = self._get_by("id", file_id)
            if entry is None:
                raise not_found()
            return paths.validate(entry.path_display + slash + rest)
        if path.startswith("rev:"):
            entry = self._get_by("rev", path[4:])
            if entry is None:
                raise not_found()
            return entry.path_display
        if path.startswith("ns:"):
            raise malformed_lookup("ns: paths are not supported by the emulator")
        return paths.validate(path, allow_root=allow_root)

    def lookup(self, path: str) -> Entry:
        entry = self.get(paths.lower(self.resolve(path)))
        if entry is None:
            raise not_found()
        return entry

    def last_deleted(self, path: str) -> Entry | None:
        """The journal's deletion row when ``path`` was deleted (get_metadata include_deleted)."""
        rows = self.db.query(f"SELECT {_COLUMN_LIST} FROM journal WHERE path_lower = ? "
                             "ORDER BY seq DESC LIMIT 1", (paths.lower(self.resolve(path)),))
        if rows and rows[0]["tag"] == "deleted":
            return Entry.from_row(rows[0])
        return None

    def open_file(self, path: str, rev: str | None = None) -> tuple[Entry, BinaryIO]:
        """The file entry and an open reader of exactly that version's bytes."""
        with self.db.lock:  # no rename may slip between the lookup and the open
            entry = self.lookup(path)
            if entry.tag != "file":
                raise not_file()
            if rev is not None and rev != entry.rev:
                raise not_found()  # older revisions are not kept
            return entry, open(paths.disk_path(self.root, entry.path_display), "rb")

    # ------------------------------------------------------------------ writes

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
            existing = self.get(paths.lower(display))
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
            os.replace(staged, paths.disk_path(self.root, display))
            now = now_text()
            entry = Entry(paths.lower(display), paths.lower(paths.parent_of(display)), display,
                          "file", existing.id if existing else new_id(), new_rev(), size,
                          content_hash, client_text or now, now)
            self._put(conn, entry)
        self._on_change()
        return entry

    def create_folder(self, path: str, *, autorename: bool) -> Entry:
        with self.db.transaction() as conn:
            display = self._write_target(path)
            existing = self.get(paths.lower(display))
            if existing is not None:
                display = self._renamed(display, autorename, existing.tag, is_file=False)
            self._ensure_parents(conn, display)
            entry = self._make_folder(conn, display)
        self._on_change()
        return entry

    def delete(self, path: str, *, parent_rev: str | None = None) -> Entry:
        """Deletes a file or a folder with everything under it; returns what was deleted."""
        with self.db.transaction() as conn:
            entry = self.lookup(path)
            if parent_rev is not None and (entry.tag != "file" or entry.rev != parent_rev):
                raise conflict("file")
            moved = self._to_trash(entry)
            for gone in [entry, *self._descendants(entry)]:
                self._remove(conn, gone)
        if moved.is_dir():
            shutil.rmtree(moved, ignore_errors=True)
        else:
            moved.unlink(missing_ok=True)
        self._on_change()
        return entry

    def move(self, from_path: str, to_path: str, *, autorename: bool) -> Entry:
        """files/move_v2. Raises RouteError(RelocationError) itself: only move uses it."""
        with self.db.transaction() as conn:
            try:
                source = self.lookup(from_path)
            except ApiFailure as failure:
                raise RouteError(files.RelocationError.from_lookup(failure.error)) from None
            try:
                target = self._write_target(to_path)
                target_lower = paths.lower(target)
                if target_lower == source.path_lower:
                    if target == source.path_display:
                        raise conflict(source.tag)
                    return self._rename_case(conn, source, target)
                if target_lower.startswith(source.path_lower + "/"):
                    raise RouteError(files.RelocationError.cant_move_folder_into_itself)
                existing = self.get(target_lower)
                if existing is not None:
                    target = self._renamed(target, autorename, existing.tag,
                                           is_file=source.tag == "file")
            except ApiFailure as failure:
                raise RouteError(files.RelocationError.to(as_write_failure(failure).error)) \
                    from None
            self._ensure_parents(conn, target)
            moved = self._relocate(conn, source, target)
        self._on_change()
        return moved

    def reconcile(self) -> int:
        """Adopts changes made directly under the root while the emulator was not running
        (files dropped in to seed an account, files removed); returns how many paths changed.

        A file counts as changed when its size differs or it was modified after the entry's
        server_modified. Symlinks, names Dropbox would refuse and case-only duplicates are
        skipped with a warning.
        """
        seen: set[str] = set()
        changed = 0
        with self.db.transaction() as conn:
            for display, full, is_dir in self._walk_disk():
                low = paths.lower(display)
                if low in seen:
                    log.warning("skipping %s: differs from another name only by case", full)
                    continue
                seen.add(low)
                entry = self.get(low)
                if is_dir and (entry is None or entry.tag != "folder"):
                    self._put(conn, Entry(low, paths.lower(paths.parent_of(display)), display,
                                          "folder", new_id()))
                    changed += 1
                elif not is_dir and self._disk_file_changed(entry, full):
                    stat = full.stat()
                    modified = datetime.fromtimestamp(stat.st_mtime, UTC).strftime(TIME_FORMAT)
                    self._put(conn, Entry(
                        low, paths.lower(paths.parent_of(display)), display, "file",
                        entry.id if entry and entry.tag == "file" else new_id(), new_rev(),
                        stat.st_size, hash_file(str(full)), modified, now_text()))
                    changed += 1
            gone = self.db.query(f"SELECT {_COLUMN_LIST} FROM entries ORDER BY path_lower")
            for row in gone:
                if row["path_lower"] not in seen:
                    self._remove(conn, Entry.from_row(row))
                    changed += 1
        if changed:
            self._on_change()
        return changed

    def _walk_disk(self) -> Iterator[tuple[str, Path, bool]]:
        """(display path, disk path, is a folder) for everything under the root, parents
        first, leaving out the state folder."""
        for directory, dirnames, filenames in os.walk(self.root):
            base = Path(directory)
            prefix = "" if base == self.root else "/" + base.relative_to(self.root).as_posix()
            keep = []
            for name in sorted(dirnames) + sorted(filenames):
                full = base / name
                display = f"{prefix}/{name}"
                try:
                    paths.validate(display)
                except (ApiFailure, BadRequest):
                    if not (base == self.root and name == paths.STATE_DIR_NAME):
                        log.warning("skipping %s: not a valid Dropbox path", full)
                    continue
                if full.is_symlink():
                    log.warning("skipping %s: symlinks are not followed", full)
                    continue
                if name in dirnames:
                    keep.append(name)
                yield display, full, name in dirnames
            dirnames[:] = keep

    @staticmethod
    def _disk_file_changed(entry: Entry | None, full: Path) -> bool:
        if entry is None or entry.tag != "file":
            return True
        stat = full.stat()
        recorded = _timestamp(entry.server_modified)
        written = recorded.replace(tzinfo=UTC).timestamp() if recorded else 0
        return stat.st_size != entry.size or stat.st_mtime > written + 1

    # ----------------------------------------------------------------- journal

    def latest_seq(self) -> int:
        rows = self.db.query("SELECT seq FROM sqlite_sequence WHERE name = 'journal'")
        return rows[0]["seq"] if rows else 0

    def journal_floor(self) -> int:
        """Highest journal position dropped; a cursor older than this cannot be served."""
        return int(self.db.get_meta("journal_floor") or 0)

    def compact_journal(self) -> int:
        """Drops the whole journal (admin route); every earlier cursor then gets ``reset``."""
        with self.db.transaction() as conn:
            latest = self.latest_seq()
            self._trim(conn, latest)
        return latest

    def listing_rows(self, prefix: str, recursive: bool, after: str, include_deleted: bool,
                     limit: int) -> list[Entry]:
        """Current entries (and deleted paths if asked) under ``prefix`` after key ``after``,
        in ``path_lower`` order, so a folder always comes before its contents."""
        scope, params = _scope(prefix, recursive)
        sql = (f"SELECT {_COLUMN_LIST} FROM entries WHERE {scope} AND path_lower > ?")
        args: tuple = (*params, after)
        if include_deleted:
            jscope, jparams = _scope(prefix, recursive)
            sql += (f" UNION ALL SELECT {', '.join('j.' + c for c in COLUMNS)} FROM journal j "
                    f"JOIN (SELECT MAX(seq) AS last FROM journal WHERE {jscope} "
                    "AND path_lower > ? GROUP BY path_lower) g ON j.seq = g.last "
                    "WHERE j.tag = 'deleted'")
            args += (*jparams, after)
        rows = self.db.query(f"SELECT * FROM ({sql}) ORDER BY path_lower LIMIT ?",
                             (*args, limit))
        return [Entry.from_row(row) for row in rows]

    def changes(self, prefix: str, recursive: bool, since: int, upto: int,
                limit: int) -> list[tuple[int, Entry]]:
        """Latest state of each path under ``prefix`` changed in ``(since, upto]``, ordered by
        the position of that latest change."""
        scope, params = _scope(prefix, recursive)
        rows = self.db.query(
            f"SELECT j.seq AS seq, {', '.join('j.' + c for c in COLUMNS)} FROM journal j "
            f"JOIN (SELECT MAX(seq) AS last FROM journal WHERE seq > ? AND seq <= ? AND {scope} "
            "GROUP BY path_lower) g ON j.seq = g.last ORDER BY j.seq LIMIT ?",
            (since, upto, *params, limit))
        return [(row["seq"], Entry.from_row(row)) for row in rows]

    # ---------------------------------------------------------------- internals

    def _write_target(self, path: str) -> str:
        """The display path a write lands on: existing ancestors keep their casing, the last
        component is the caller's.

        Raises WriteFailure for a malformed path or a file where a folder is needed.
        """
        try:
            display = self.resolve(path)
        except LookupFailure as failure:
            raise as_write_failure(failure) from None
        *ancestors, name = display[1:].split("/")
        current = ""
        for index, part in enumerate(ancestors):
            entry = self.get(paths.lower(f"{current}/{part}"))
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
            if self.get(paths.lower(candidate)) is None:
                return candidate
        raise conflict(taken_by)

    def _ensure_parents(self, conn: sqlite3.Connection, display: str) -> None:
        parent = paths.parent_of(display)
        if parent and self.get(paths.lower(parent)) is None:
            self._ensure_parents(conn, parent)
            self._make_folder(conn, parent)

    def _make_folder(self, conn: sqlite3.Connection, display: str) -> Entry:
        paths.disk_path(self.root, display).mkdir(exist_ok=True)
        entry = Entry(paths.lower(display), paths.lower(paths.parent_of(display)), display,
                      "folder", new_id())
        self._put(conn, entry)
        return entry

    def _descendants(self, entry: Entry) -> list[Entry]:
        if entry.tag != "folder":
            return []
        prefix = entry.path_lower + "/"
        rows = self.db.query(f"SELECT {_COLUMN_LIST} FROM entries WHERE path_lower >= ? "
                             "AND path_lower < ? ORDER BY path_lower",
                             (prefix, entry.path_lower + "0"))
        return [Entry.from_row(row) for row in rows]

    def _to_trash(self, entry: Entry) -> Path:
        moved = self.trash / secrets.token_hex(8)
        os.replace(paths.disk_path(self.root, entry.path_display), moved)
        return moved

    def _relocate(self, conn: sqlite3.Connection, source: Entry, target: str) -> Entry:
        os.replace(paths.disk_path(self.root, source.path_display),
                   paths.disk_path(self.root, target))
        group = [source, *self._descendants(source)]
        for old in group:
            self._remove(conn, old)
        moved = []
        for old in group:
            display = target + old.path_display[len(source.path_display):]
            moved.append(replace(old, path_lower=paths.lower(display), path_display=display,
                                 parent_lower=paths.lower(paths.parent_of(display))))
            self._put(conn, moved[-1])
        return moved[0]

    def _rename_case(self, conn: sqlite3.Connection, source: Entry, target: str) -> Entry:
        """A case-only rename: same identity, new display; not journaled (Dropbox does not
        report case-only changes to list_folder/continue)."""
        os.replace(paths.disk_path(self.root, source.path_display),
                   paths.disk_path(self.root, target))
        renamed = None
        for old in [source, *self._descendants(source)]:
            display = target + old.path_display[len(source.path_display):]
            conn.execute("UPDATE entries SET path_display = ? WHERE path_lower = ?",
                         (display, old.path_lower))
            renamed = renamed or replace(old, path_display=display)
        assert renamed is not None
        return renamed

    def _put(self, conn: sqlite3.Connection, entry: Entry) -> None:
        conn.execute(f"INSERT OR REPLACE INTO entries ({_COLUMN_LIST}) VALUES ({_PLACEHOLDERS})",
                     astuple(entry))
        self._journal(conn, entry)

    def _remove(self, conn: sqlite3.Connection, entry: Entry) -> None:
        conn.execute("DELETE FROM entries WHERE path_lower = ?", (entry.path_lower,))
        self._journal(conn, Entry(entry.path_lower, entry.parent_lower, entry.path_display,
                                  "deleted"))

    def _journal(self, conn: sqlite3.Connection, entry: Entry) -> None:
        seq = conn.execute(f"INSERT INTO journal ({_COLUMN_LIST}) VALUES ({_PLACEHOLDERS})",
                           astuple(entry)).lastrowid
        if seq and seq % _TRIM_EVERY == 0 and seq - self.journal_limit > self.journal_floor():
            self._trim(conn, seq - self.journal_limit)

    def _trim(self, conn: sqlite3.Connection, floor: int) -> None:
        conn.execute("DELETE FROM journal WHERE seq <= ?", (floor,))
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('journal_floor', ?)",
                     (str(floor),))
