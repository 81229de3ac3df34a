"""App Engine push queues (``google.appengine.api.taskqueue``, bundled services).

Needs ``app_engine_apis: true`` in app.yaml and the WSGI app wrapped with
``google.appengine.api.wrap_wsgi_app()`` (main.py does both). Tests run it against the
SDK's testbed taskqueue stub.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from flask import Request

from dropgz.pushqueue.base import PushQueue, Task, encode_payload

# A batch add takes at most 100 tasks (taskqueue.MAX_TASKS_PER_ADD).
# https://cloud.google.com/appengine/docs/standard/python3/reference/services/bundled/google/appengine/api/taskqueue
MAX_TASKS_PER_ADD = 100
DEFAULT_QUEUE = "delta"  # defined in queue.yaml


def _taskqueue() -> Any:
    try:
        from google.appengine.api import taskqueue
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("the gae push queue needs App Engine's bundled services: "
                          "run `pip install dropgz[gae]`") from None
    return taskqueue


class GAEPushQueue(PushQueue):
    """Adds named tasks to an App Engine push queue; App Engine delivers them."""

    def __init__(self, queue_name: str = DEFAULT_QUEUE) -> None:
        self._taskqueue = _taskqueue()
        self.queue_name = queue_name

    def add(self, tasks: Sequence[Task]) -> list[bool]:
        tq = self._taskqueue
        results: dict[str, bool] = {}
        # One name twice in a batch is DuplicateTaskNameError: the second is simply coalesced.
        unique = list({t.name: t for t in tasks}.values())
        for start in range(0, len(unique), MAX_TASKS_PER_ADD):
            batch = [tq.Task(url=t.url, payload=encode_payload(t), name=t.name,
                             countdown=t.countdown,
                             headers={"Content-Type": "application/json"})
                     for t in unique[start:start + MAX_TASKS_PER_ADD]]
            # On these errors every other task of the batch was added; the named ones were
            # added before (queued, running or done): "already queued".
            with contextlib.suppress(tq.TaskAlreadyExistsError, tq.TombstonedTaskError):
                tq.Queue(self.queue_name).add(batch)
            for task in batch:
                results[task.name] = bool(task.was_enqueued)
        seen: set[str] = set()
        answer = []
        for t in tasks:
            answer.append(results[t.name] and t.name not in seen)
            seen.add(t.name)
        return answer

    def verify_origin(self, request: Request) -> bool:
        # App Engine strips X-AppEngine-* headers from requests that come from outside,
        # so their presence proves the push queue made the call.
        return bool(request.headers.get("X-AppEngine-QueueName"))

    def verify_cron(self, request: Request) -> bool:
        # Likewise stripped from outside requests:
        # https://cloud.google.com/appengine/docs/standard/scheduling-jobs-with-cron-yaml#securing_urls_for_cron
        return request.headers.get("X-Appengine-Cron") == "true"
