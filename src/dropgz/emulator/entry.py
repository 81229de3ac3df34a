"""One file or folder of a namespace as stored in SQLite (:class:`Entry`), and the small
helpers every namespace module shares: column lists, ids, revisions, timestamps, and the SQL
condition selecting a folder's contents."""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from dropbox import files

from dropgz.emulator import paths

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
COLUMNS = ("path_lower", "parent_lower", "path_display", "tag", "id", "rev", "size",
           "content_hash", "client_modified", "server_modified")
COLUMN_LIST = ", ".join(COLUMNS)
PLACEHOLDERS = ", ".join("?" for _ in COLUMNS)


def now_text() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def timestamp(text: str | None) -> datetime | None:
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
                client_modified=timestamp(self.client_modified),
                server_modified=timestamp(self.server_modified),
                is_downloadable=True, **common)
        if self.tag == "folder":
            return files.FolderMetadata(id=self.id, **common)
        return files.DeletedMetadata(**common)


def folder_entry(display: str) -> Entry:
    """A new folder at ``display``."""
    return Entry(paths.lower(display), paths.lower(paths.parent_of(display)), display,
                 "folder", new_id())


def scope(prefix: str, recursive: bool, column: str = "path_lower") -> tuple[str, tuple]:
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
