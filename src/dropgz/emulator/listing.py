"""files/list_folder, list_folder/continue and list_folder/get_latest_cursor.

A cursor is an opaque, signed position: the folder and flags of the original list_folder, the
journal position it has seen, and (while the first listing is still being paged) the last
path listed. It is signed with a key kept in the root's state, so a cursor survives a restart
on the same root, while a garbled or foreign cursor, or one older than the retained journal,
gets ``reset`` as Dropbox answers.

Listing pages go in ``path_lower`` order (a folder before its contents); continue pages go in
journal order, one entry per changed path carrying its latest state (FileMetadata,
FolderMetadata or DeletedMetadata).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, replace

from dropbox import files

from dropgz.emulator import paths
from dropgz.emulator.entry import Entry
from dropgz.emulator.errors import ApiFailure, RouteError, not_folder
from dropgz.emulator.namespace import Namespace

# ListFolderArg.limit is 1..2000; Dropbox does not document its default page size, the
# emulator uses the maximum. https://www.dropbox.com/developers/documentation/http/documentation#files-list_folder
MAX_LIMIT = 2000
_CURSOR_VERSION = 1
_MAC_BYTES = 16


@dataclass(frozen=True)
class Cursor:
    prefix: str            # path_lower of the listed folder, "" for the root
    recursive: bool
    include_deleted: bool
    limit: int
    seq: int               # journal position already reported
    after: str | None      # last path_lower of the initial listing; None once it is done


class CursorCodec:
    """Turns cursors into signed opaque strings and back."""

    def __init__(self, key: bytes, instance: str) -> None:
        self._key = key
        self._instance = instance

    def encode(self, cursor: Cursor) -> str:
        payload = json.dumps([_CURSOR_VERSION, self._instance, cursor.prefix, cursor.recursive,
                              cursor.include_deleted, cursor.limit, cursor.seq, cursor.after],
                             separators=(",", ":")).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")

    def decode(self, text: str) -> Cursor:
        """The cursor, or RouteError(reset) for anything not made by this root."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
            expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
            if not hmac.compare_digest(mac, expected):
                raise ValueError("bad signature")
            version, instance, *fields = json.loads(payload)
            if version != _CURSOR_VERSION or instance != self._instance:
                raise ValueError("foreign cursor")
            return Cursor(*fields)
        except (ValueError, TypeError):
            raise RouteError(files.ListFolderContinueError.reset) from None


class Lister:
    """Answers the three list_folder routes from a :class:`Namespace`."""

    def __init__(self, namespace: Namespace, codec: CursorCodec) -> None:
        self.namespace = namespace
        self.codec = codec

    def list_folder(self, arg: files.ListFolderArg) -> files.ListFolderResult:
        cursor = self._start(arg, files.ListFolderError)
        return self._page(replace(cursor, after=""))

    def latest_cursor(self, arg: files.ListFolderArg) -> files.ListFolderGetLatestCursorResult:
        cursor = self._start(arg, files.ListFolderError)
        return files.ListFolderGetLatestCursorResult(cursor=self.codec.encode(cursor))

    def continue_(self, text: str) -> files.ListFolderResult:
        cursor = self.codec.decode(text)
        if cursor.prefix and self.namespace.get(cursor.prefix) is None:
            raise RouteError(files.ListFolderContinueError.path(files.LookupError.not_found))
        return self._page(cursor)

    def _start(self, arg: files.ListFolderArg, error_type: type) -> Cursor:
        try:
            display = self.namespace.resolve(arg.path, allow_root=True)
            if display:
                entry = self.namespace.lookup(display)
                if entry.tag != "folder":
                    raise not_folder()
        except ApiFailure as failure:
            raise RouteError(error_type.path(failure.error)) from None
        return Cursor(paths.lower(display), arg.recursive, arg.include_deleted,
                      arg.limit or MAX_LIMIT, self.namespace.journal.latest_seq(), None)

    def _page(self, cursor: Cursor) -> files.ListFolderResult:
        if cursor.after is not None:
            return self._listing_page(cursor)
        journal = self.namespace.journal
        with journal.db.lock:  # the floor, the head and the rows from one moment
            if cursor.seq < journal.floor():
                raise RouteError(files.ListFolderContinueError.reset)
            upto = journal.latest_seq()
            rows = journal.changes(cursor.prefix, cursor.recursive, cursor.seq, upto,
                              cursor.limit + 1)
        has_more = len(rows) > cursor.limit
        rows = rows[:cursor.limit]
        seq = rows[-1][0] if has_more else upto
        return self._result([entry for _, entry in rows], replace(cursor, seq=seq), has_more)

    def _listing_page(self, cursor: Cursor) -> files.ListFolderResult:
        if cursor.seq < self.namespace.journal.floor():
            raise RouteError(files.ListFolderContinueError.reset)
        rows = self.namespace.journal.listing_rows(cursor.prefix, cursor.recursive,
                                                   cursor.after or "", cursor.include_deleted,
                                                   cursor.limit + 1)
        has_more = len(rows) > cursor.limit
        rows = rows[:cursor.limit]
        # Once the listing is done the cursor continues from the journal position taken when
        # it started: changes made while paging are reported (perhaps twice, never lost).
        after = rows[-1].path_lower if has_more else None
        return self._result(rows, replace(cursor, after=after), has_more)

    def _result(self, rows: list[Entry], cursor: Cursor, has_more: bool) -> files.ListFolderResult:
        return files.ListFolderResult(entries=[row.to_metadata() for row in rows],
                                      cursor=self.codec.encode(cursor), has_more=has_more)
