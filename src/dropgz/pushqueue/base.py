"""What a push queue is: named, deduplicated HTTP tasks delivered to this app.

A push queue carries work from the monitoring tier (``/webhook``) and from the reconcile
cron to the delta tier (``/tasks/*``). Both backends share the same naming rule, so a burst
of notifications for one account coalesces into one delta run per short time bucket:

``delta-<sanitised account>-<hash>-<bucket>``; the task is scheduled at the *end* of its
bucket, so every notification that joined the bucket arrived before the task starts. A
change whose notification arrives while that task is already running falls in the next
bucket and gets a task of its own. The delta handler serialises runs per account with a
lease and answers non-2xx when the account is busy, so the next bucket's task waits for
the running one instead of being dropped.

A notification naming many accounts (more than :data:`DIRECT_ACCOUNTS`) is queued as one
*fan-out* task per :data:`MAX_FANOUT_ACCOUNTS` accounts, which the delta tier turns into the
accounts' delta tasks: the webhook writes one row however many accounts a notification
names, and repeats of the same notification coalesce like delta tasks do.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Request

# Task names: ^[a-zA-Z0-9_-]{1,500}$
# https://cloud.google.com/appengine/docs/standard/python3/reference/services/bundled/google/appengine/api/taskqueue/Task
MAX_TASK_NAME_CHARS = 500
# Push task payloads are at most 100 KiB (google.appengine.api.taskqueue.MAX_PUSH_TASK_SIZE_BYTES).
MAX_TASK_PAYLOAD_BYTES = 100 * 1024
# Seconds per coalescing bucket. Dropbox sends several notifications for one burst of
# changes within about a second; two seconds folds them together without delaying work.
DEFAULT_BUCKET_SECONDS = 2.0
DELTA_URL = "/tasks/delta"
RECONCILE_URL = "/tasks/reconcile"
FANOUT_URL = "/tasks/fanout"
# A notification naming more accounts than this is queued as fan-out tasks (one row, not one
# per account: the webhook stays fast with a hundred accounts), each naming up to
# MAX_FANOUT_ACCOUNTS (~45 KB of ids, under MAX_TASK_PAYLOAD_BYTES).
DIRECT_ACCOUNTS = 10
MAX_FANOUT_ACCOUNTS = 1000
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")
_NAME = re.compile(rf"[a-zA-Z0-9_-]{{1,{MAX_TASK_NAME_CHARS}}}")


@dataclass(frozen=True)
class Task:
    """One task to add: POST ``payload`` (JSON) to ``url`` after ``countdown`` seconds."""

    url: str
    payload: dict[str, Any]
    name: str
    countdown: float = 0.0


@dataclass(frozen=True)
class CoalescedName:
    """A task name and how long to wait for its bucket to close."""

    name: str
    countdown: float = field(default=0.0)


@functools.lru_cache(maxsize=65536)  # the same accounts notify again and again
def sanitise(text: str, max_chars: int = 100) -> str:
    """``text`` reduced to task-name characters, plus a short hash so distinct texts
    (``dbid:a`` and ``dbid_a``) never share a name."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{_UNSAFE.sub('_', text)[:max_chars]}-{digest}"


def coalesced_name(kind: str, key: str, *, now: float | None = None,
                   bucket_seconds: float = DEFAULT_BUCKET_SECONDS) -> CoalescedName:
    """The task name shared by every ``kind`` task for ``key`` in the current time bucket,
    and the countdown that starts it when the bucket closes."""
    if bucket_seconds <= 0:
        raise ValueError(f"bucket_seconds must be > 0, got {bucket_seconds}")
    now = time.time() if now is None else now
    bucket = int(now // bucket_seconds)
    end = (bucket + 1) * bucket_seconds
    return CoalescedName(f"{kind}-{sanitise(key)}-{bucket}", max(0.0, end - now))


def delta_task(account: str, *, now: float | None = None,
               bucket_seconds: float = DEFAULT_BUCKET_SECONDS) -> Task:
    """The task asking the delta tier to catch up ``account``."""
    now = time.time() if now is None else now
    named = coalesced_name("delta", account, now=now, bucket_seconds=bucket_seconds)
    return Task(DELTA_URL, {"account": account, "notified_at": now}, named.name, named.countdown)


def delta_tasks(accounts: Sequence[str], *, now: float | None = None,
                bucket_seconds: float = DEFAULT_BUCKET_SECONDS,
                notified_at: float | None = None) -> list[Task]:
    """:func:`delta_task` for each of ``accounts``, all in the same bucket (one notification
    naming a hundred accounts pays for the bucket arithmetic once, not a hundred times).
    ``notified_at``: when the notification arrived, if earlier than ``now`` (a fan-out)."""
    now = time.time() if now is None else now
    first = coalesced_name("delta", "", now=now, bucket_seconds=bucket_seconds)
    bucket, countdown = first.name.rsplit("-", 1)[1], first.countdown
    arrived = now if notified_at is None else notified_at
    return [Task(DELTA_URL, {"account": account, "notified_at": arrived},
                 f"delta-{sanitise(account)}-{bucket}", countdown) for account in accounts]


def notification_tasks(accounts: Sequence[str], *, now: float | None = None,
                       bucket_seconds: float = DEFAULT_BUCKET_SECONDS) -> list[Task]:
    """What the webhook queues for a notification naming ``accounts``: a delta task each
    when they are few (:data:`DIRECT_ACCOUNTS`), else fan-out tasks that queue those delta
    tasks from the delta tier. A repeat of the same notification in the bucket coalesces."""
    if len(accounts) <= DIRECT_ACCOUNTS:
        return delta_tasks(accounts, now=now, bucket_seconds=bucket_seconds)
    now = time.time() if now is None else now
    tasks = []
    for first in range(0, len(accounts), MAX_FANOUT_ACCOUNTS):
        chunk = list(accounts[first:first + MAX_FANOUT_ACCOUNTS])
        key = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:32]
        named = coalesced_name("fanout", key, now=now, bucket_seconds=bucket_seconds)
        tasks.append(Task(FANOUT_URL, {"accounts": chunk, "notified_at": now}, named.name))
    return tasks


class PushQueue(ABC):
    """A backend. Subclasses write :meth:`add` and :meth:`verify_origin`."""

    @abstractmethod
    def add(self, tasks: Sequence[Task]) -> list[bool]:
        """Add ``tasks``; one bool per task, False when a task of that name already exists
        (queued, running or recently done): the work is already queued, not an error."""

    @abstractmethod
    def verify_origin(self, request: Request) -> bool:
        """True when ``request`` was delivered by this push queue (else the app answers 403)."""

    def verify_cron(self, request: Request) -> bool:
        """True when ``request`` comes from this deployment's cron service."""
        return False

    def enqueue(self, url: str, payload: dict[str, Any], name: str,
                countdown: float = 0) -> bool:
        """Add one task; False means a task of that name is already queued."""
        return self.add([Task(url, payload, name, countdown)])[0]

    def start(self, base_url: str) -> None:  # noqa: B027 - optional hook
        """Begin delivering to ``base_url`` (backends that deliver by themselves)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop delivering; tasks not yet delivered stay queued."""


def encode_payload(task: Task) -> bytes:
    """``task``'s JSON body, after checking the push-queue limits (ValueError names the bound)."""
    if not _NAME.fullmatch(task.name):
        raise ValueError(f"task name must match [a-zA-Z0-9_-]{{1,{MAX_TASK_NAME_CHARS}}}: "
                         f"{task.name[:80]!r}")
    if task.countdown < 0:
        raise ValueError(f"countdown must be >= 0, got {task.countdown}")
    body = json.dumps(task.payload, separators=(",", ":")).encode()
    if len(body) > MAX_TASK_PAYLOAD_BYTES:
        raise ValueError(f"task payload is {len(body)} bytes, over {MAX_TASK_PAYLOAD_BYTES}")
    return body
