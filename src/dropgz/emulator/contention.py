"""Namespace write contention, as Dropbox has it.

Dropbox serializes the commits into one namespace (an account's files) behind a lock; a commit
that finds it taken is answered 429 ``too_many_write_operations`` with ``Retry-After``
(https://developers.dropbox.com/dbx-performance-guide, "Too Many Writes";
https://www.dropbox.com/developers/reference/data-ingress-guide). The remedy Dropbox gives is
to upload data in sessions and commit many files at once with
``upload_session/finish_batch_v2``, one batch at a time per account.

The model: a commit route (upload, upload_session/finish, finish_batch_v2, copy, move, delete,
create_folder) holds its account's :class:`NamespaceLock` from the start of its processing
until its answer is ready, and the emulator's injected latency is spent inside it (a commit
takes that long on the server). A commit arriving meanwhile is refused: the route gets the
429; a batch reports ``too_many_write_operations`` for each of its entries. The lock is let go
before the answer is sent, so a single client making one call at a time never meets it.
Uploading data (upload_session/start, append) takes no lock, as on Dropbox.

With ``write_contention`` off, commits wait for the lock instead (still one at a time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dropgz.emulator.config import RuntimeSettings
from dropgz.emulator.errors import EmulatorError

# Name prefix of a hold (see holds.py) taken while a commit holds its namespace lock: holding
# "commit:files/upload" stops uploads right inside the lock, so a test can make others meet it.
COMMIT_HOLD_PREFIX = "commit:"


class TooManyWriteOperations(EmulatorError):
    """429 with reason ``too_many_write_operations``: the namespace lock is taken."""


class NamespaceLock:
    """One account's commit lock. ``inside(route)`` runs once the lock is held (the hold
    hook, the injected latency); it raises to abort the commit."""

    def __init__(self, settings: RuntimeSettings, inside: Callable[[str], None]) -> None:
        self._settings = settings
        self._inside = inside
        self._lock = threading.Lock()

    @contextmanager
    def commit(self, route: str) -> Iterator[bool]:
        """Yields True holding the lock, or False (contention on) when another commit has
        it: the caller then reports too_many_write_operations."""
        if self._settings.write_contention:
            if not self._lock.acquire(blocking=False):
                yield False
                return
        else:
            self._lock.acquire()
        try:
            self._inside(route)
            yield True
        finally:
            self._lock.release()
