"""Work queues: the delta tier sends one message per file, the worker receives them.

One interface (:class:`~dropgz.queues.base.WorkQueue`), one file per backend:
``sqs.py`` (Amazon SQS, several hosts) and ``sqlite.py`` (one file, one host).
"""

from __future__ import annotations

from dropgz.core.config import Settings
from dropgz.queues.base import (
    DEFAULT_CLAIM_SECONDS,
    Consumer,
    DeadLetter,
    Message,
    QueueStats,
    WorkQueue,
)

__all__ = ["Consumer", "DeadLetter", "Message", "QueueStats", "WorkQueue", "open_work_queue"]

QUEUE_FILE = "queue.sqlite3"


def open_work_queue(settings: Settings) -> WorkQueue:
    """SQS when ``[AWS] queue`` is set, else the SQLite queue in the data folder."""
    if settings.aws.queue:
        from dropgz.queues.sqs import SQSWorkQueue  # imports boto3: only when used

        return SQSWorkQueue.from_settings(settings)
    from dropgz.queues.sqlite import SQLiteWorkQueue

    return SQLiteWorkQueue(settings.service.data_path / QUEUE_FILE,
                           visibility_timeout=(settings.aws.visibility_timeout
                                               or DEFAULT_CLAIM_SECONDS),
                           max_receive_count=settings.aws.max_receive_count)
