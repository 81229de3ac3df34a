"""One account's files and folders: metadata in SQLite, bytes mirrored under the root.

Modules of the namespace, by job:

- :mod:`~dropgz.emulator.entry`: the :class:`Entry` row and its SDK metadata;
- :mod:`~dropgz.emulator.journal`: the ``entries`` table and the change journal cursors
  point into;
- this module: :class:`Namespace`, lookups (paths, ids, revisions) and reading a file;
- :mod:`~dropgz.emulator.writes`: commits, folders, deletes and moves;
- :mod:`~dropgz.emulator.reconcile`: adopting changes made on disk while stopped.

Bytes are staged in the hidden state folder and renamed into place inside the transaction
that records them, so a reader never sees half a file and an open download keeps reading the
version it started with.
"""

# SQL here is assembled from module constants; every value is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from dropgz.emulator import paths
from dropgz.emulator.entry import COLUMN_LIST, Entry
from dropgz.emulator.errors import malformed_lookup, not_file, not_found
from dropgz.emulator.journal import Journal
from dropgz.emulator.state import StateDB


class Namespace:
    """The file tree of one emulated account: where it lives and how to look things up."""

    def __init__(self, db: StateDB, root: Path, state_dir: Path, *,
                 journal_limit: int) -> None:
        self.db = db
        self.root = root
        self.trash = state_dir / "trash"
        self.trash.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(db, journal_limit=journal_limit)

    def get(self, path_lower: str) -> Entry | None:
        return self._get_by("path_lower", path_lower)

    def _get_by(self, column: str, value: str) -> Entry | None:
        rows = self.db.query(f"SELECT {COLUMN_LIST} FROM entries WHERE {column} = ?", (value,))
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
        last = self.journal.last_state(paths.lower(self.resolve(path)))
        return last if last is not None and last.tag == "deleted" else None

    def descendants(self, entry: Entry) -> list[Entry]:
        """Everything under a folder, parents first; ``[]`` for a file."""
        if entry.tag != "folder":
            return []
        prefix = entry.path_lower + "/"
        rows = self.db.query(f"SELECT {COLUMN_LIST} FROM entries WHERE path_lower >= ? "
                             "AND path_lower < ? ORDER BY path_lower",
                             (prefix, entry.path_lower + "0"))
        return [Entry.from_row(row) for row in rows]

    def disk_path(self, path_display: str) -> Path:
        return paths.disk_path(self.root, path_display)

    def open_file(self, path: str, rev: str | None = None) -> tuple[Entry, BinaryIO]:
        """The file entry and an open reader of exactly that version's bytes."""
        with self.db.lock:  # no rename may slip between the lookup and the open
            entry = self.lookup(path)
            if entry.tag != "file":
                raise not_file()
            if rev is not None and rev != entry.rev:
                raise not_found()  # older revisions are not kept
            return entry, open(self.disk_path(entry.path_display), "rb")
