"""``moto_server`` with one race of its SQS model closed: what :func:`.peers.start_moto` runs.

moto 5's ``Queue.delete_message`` rebuilds the queue's message list without the lock that
``SendMessage`` appends under. Its server is threaded, so a message sent while another is
deleted can vanish, and of two concurrent deletes one can be undone (the message comes back
after its visibility timeout). Seen in ``dropgz serve`` on a loaded machine: one file's
message lost, another's delivered twice. Real SQS loses nothing; the peer the suite trusts
must not either. This runs moto's own server (same arguments as ``moto_server``) after
taking that lock around ``delete_message``; ``tests/queues/test_sqs.py`` sends while acking
from many threads and checks that every message arrives.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any


def guard_delete_message(queue_class: Any) -> None:
    """Make ``queue_class.delete_message`` hold the queue's ``_messages_lock``."""
    unguarded: Callable[..., None] = queue_class.delete_message
    if getattr(unguarded, "dropgz_guarded", False):
        return

    @functools.wraps(unguarded)
    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            unguarded(self, receipt_handle)

    delete_message.dropgz_guarded = True  # type: ignore[attr-defined]
    queue_class.delete_message = delete_message


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main
    from moto.sqs.models import Queue

    guard_delete_message(Queue)
    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
