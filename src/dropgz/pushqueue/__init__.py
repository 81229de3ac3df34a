"""Push queues: how the monitoring tier hands work to the delta tier.

One file per backend: ``gae`` (App Engine task queues) and ``local`` (SQLite + a delivery
thread, for single-host mode). :func:`open_push_queue` picks one from ``[Service] push_queue``.
"""

from __future__ import annotations

from dropgz.core.config import Settings
from dropgz.pushqueue.base import PushQueue, Task, coalesced_name, delta_task

__all__ = ["PushQueue", "Task", "coalesced_name", "delta_task", "open_push_queue"]


def open_push_queue(settings: Settings) -> PushQueue:
    """The configured backend; imported only when chosen."""
    if settings.service.push_queue == "gae":
        from dropgz.pushqueue.gae import GAEPushQueue
        return GAEPushQueue()
    from dropgz.pushqueue.local import LocalPushQueue
    return LocalPushQueue.from_settings(settings)
