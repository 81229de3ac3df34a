"""A file that waits on something shared and slow gives its worker slot back meanwhile.

A small file's ``.gz`` is committed in its account's next batch (:mod:`.batch`): its own
work (download, compress, upload the bytes) is over, and it only waits for a call that it
shares with many other files. Holding a worker slot through that wait would leave the
worker's concurrency idle for a whole round trip per file. So the worker binds, for the
file a thread works on, a function that returns the file's slot (:func:`slot`), and the
code about to wait calls :func:`park`. Outside a worker nothing is bound: waiting just waits.

The worker bounds how many files may be parked at once (its thread pool has room for
them); a file that cannot park keeps its slot and waits all the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_give_back: ContextVar[Callable[[], None] | None] = ContextVar("dropgz_give_back_slot",
                                                                default=None)


@contextmanager
def slot(give_back: Callable[[], None]) -> Iterator[None]:
    """For the ``with`` block (one file's processing), :func:`park` calls ``give_back``."""
    token = _give_back.set(give_back)
    try:
        yield
    finally:
        _give_back.reset(token)


def park() -> None:
    """The current file is about to wait for others: let the worker take another file.

    Calling it again, or with no worker around, does nothing (``give_back`` must be
    idempotent)."""
    give_back = _give_back.get()
    if give_back is not None:
        give_back()
