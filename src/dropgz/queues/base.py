"""The work queue between the delta tier and the compression tier: one small interface.

A :class:`WorkQueue` holds work messages (JSON text, see :mod:`dropgz.core.message`) with
SQS's delivery model, whatever the backend:

* at least once: a received message is hidden for the visibility timeout, then comes back
  unless it was acknowledged (deleted) in time; consumers must be idempotent;
* every receive counts; a message received more than ``max_receive_count`` times goes to
  the dead-letter queue instead of being delivered again;
* a consumer may give a message back (``release``), keep it longer (``extend``, a
  heartbeat), put it off without spending a delivery (``defer``) or give up on it
  (``dead_letter``, with a reason);
* an operator may send dead letters back to the queue (``redrive``) or delete them
  (``delete_dead``), all of them or some by id (the dashboard's retry / delete).

Claims are short and renewed: ``visibility_timeout`` (:data:`DEFAULT_CLAIM_SECONDS` unless
configured) is both how long a receive hides a message and how far each heartbeat of the
worker pushes it out, every third of it. A worker that dies stops renewing, so its files
are visible again — and taken by another worker — within one claim, whatever their size.

Backends (``sqs.py``, ``sqlite.py``) write the primitives (the ``_``-methods); argument
checks and the :class:`Consumer` iterator live here once.
"""

from __future__ import annotations

import collections
import logging
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType

log = logging.getLogger(__name__)

# Service limits. The SQLite backend keeps SQS's, so code tested on one runs on the other.
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ReceiveMessage.html
MAX_BATCH = 10  # MaxNumberOfMessages, and entries per SendMessageBatch
MAX_WAIT_TIME_SECONDS = 20  # WaitTimeSeconds (long polling)
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html
# (a message may stay in flight at most 12 h after its receive, however often it is extended)
MAX_VISIBILITY_TIMEOUT = 12 * 60 * 60
# The claim a worker holds on a message it works on, renewed by its heartbeat. 30 s is also
# SQS's default VisibilityTimeout: a SIGKILLed worker's files come back within 30 s and
# another worker finishes them well inside a minute, at one ChangeMessageVisibility per 10
# in-flight messages every 10 s.
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html
DEFAULT_CLAIM_SECONDS = 30
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/quotas-messages.html
# 256 KiB is the limit every existing queue accepts (1 MiB was announced in 2026); it is
# also the total of one SendMessageBatch.
MAX_BODY_BYTES = 256 * 1024
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html
# (maxReceiveCount 1..1000)
MAX_RECEIVE_COUNT = 1000
# A dead-letter reason is kept whole up to this; longer ones are cut (SQS counts message
# attributes in the message size).
MAX_REASON_CHARS = 4096
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html
# (DelaySeconds 0..900)
MAX_DELAY_SECONDS = 900
# Characters SQS accepts in a body (the XML character range); others are refused by the
# service, so both backends refuse them up front.
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessage.html
_INVALID_BODY_CHARS = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Message:
    """One received message."""

    id: str  # stable message id
    body: str
    receive_count: int  # 1 on first delivery
    handle: str  # receipt handle (opaque; changes per receive)


@dataclass(frozen=True)
class QueueStats:
    """Approximate depth of the queue (SQS counts are estimates)."""

    visible: int  # waiting to be received
    in_flight: int  # received and not yet acknowledged, or released with a delay
    dead: int  # in the dead-letter queue


@dataclass(frozen=True)
class DeadLetter:
    """A message in the dead-letter queue. ``reason`` is None when the queue moved it
    there by itself (too many receives on SQS)."""

    body: str
    reason: str | None
    # Its id in the dead-letter queue, for redrive() and delete_dead(); not part of equality.
    id: str = field(default="", compare=False)


def check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise ``ValueError`` naming ``name`` and the bound when ``value`` is not in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    if value > high:
        raise ValueError(f"{name} must be at most {high}, got {value}")


def check_body(body: str) -> int:
    """Validate one message body; returns its size in UTF-8 bytes."""
    if not isinstance(body, str):
        raise ValueError(f"a message body must be str, got {type(body).__name__}")
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("a message body must be valid Unicode (it has a lone surrogate)") from None
    if size == 0:
        raise ValueError("a message body must not be empty")
    if size > MAX_BODY_BYTES:
        raise ValueError(f"a message body is {size} bytes, over MAX_BODY_BYTES={MAX_BODY_BYTES}")
    bad = _INVALID_BODY_CHARS.search(body)
    if bad:
        raise ValueError(f"a message body contains the character U+{ord(bad.group()):04X}, "
                         "which SQS refuses")
    return size


class WorkQueue(ABC):
    """A queue of work messages with visibility timeouts and a dead-letter queue.

    Thread-safe: the worker acknowledges and extends from several threads. A
    :class:`Consumer` is not: give each thread its own.
    """

    max_receive_count: int  # after this many receives a message is dead-lettered
    visibility_timeout: int  # seconds a received message stays hidden

    def __init__(self, visibility_timeout: int, max_receive_count: int) -> None:
        check_range("visibility_timeout", visibility_timeout, 1, MAX_VISIBILITY_TIMEOUT)
        check_range("max_receive_count", max_receive_count, 1, MAX_RECEIVE_COUNT)
        self.visibility_timeout = int(visibility_timeout)
        self.max_receive_count = int(max_receive_count)

    # ------------------------------------------------------------ the interface

    def send(self, bodies: Sequence[str]) -> None:
        """Enqueue all ``bodies``. Raises ``TransientError`` if some could not be sent;
        others may have been, so a retry can duplicate (delivery is at least once anyway)."""
        if isinstance(bodies, str):
            raise ValueError("send() takes a sequence of bodies, not one str")
        bodies = list(bodies)
        for body in bodies:
            check_body(body)
        if bodies:
            self._send(bodies)

    def receive(self, max_messages: int = MAX_BATCH,
                wait_seconds: float = MAX_WAIT_TIME_SECONDS) -> list[Message]:
        """Up to ``max_messages`` messages, waiting up to ``wait_seconds`` for the first."""
        check_range("max_messages", max_messages, 1, MAX_BATCH)
        check_range("wait_seconds", wait_seconds, 0, MAX_WAIT_TIME_SECONDS)
        return self._receive(int(max_messages), float(wait_seconds))

    def ack(self, message: Message) -> None:
        """Done: delete the message. A message received since by someone else is left alone."""
        self._ack(message)

    def release(self, message: Message, delay: float = 0) -> None:
        """Give the message back: visible again after ``delay`` seconds."""
        check_range("delay", delay, 0, MAX_VISIBILITY_TIMEOUT)
        self._change_visibility(message, float(delay))

    def extend(self, message: Message, seconds: float) -> None:
        """Heartbeat: keep the message hidden for ``seconds`` from now."""
        check_range("seconds", seconds, 1, MAX_VISIBILITY_TIMEOUT)
        self._change_visibility(message, float(seconds))

    def extend_all(self, messages: Sequence[Message], seconds: float) -> None:
        """Heartbeat for many: keep each message hidden for ``seconds`` from now.

        A message no longer held is logged and skipped, like :meth:`extend` does; the
        others are still extended. Raises ``TransientError`` when the queue is unreachable.
        """
        check_range("seconds", seconds, 1, MAX_VISIBILITY_TIMEOUT)
        messages = list(messages)
        if messages:
            self._extend_all(messages, float(seconds))

    def dead_letter(self, message: Message, reason: str) -> None:
        """Give up: move the message to the dead-letter queue with ``reason``."""
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("dead_letter() needs a non-empty reason")
        # Reasons quote error texts, which may hold anything; SQS refuses some characters.
        reason = _INVALID_BODY_CHARS.sub("\ufffd", reason.encode("utf-8", "replace").decode())
        self._dead_letter(message, reason[:MAX_REASON_CHARS])

    def defer(self, message: Message, delay: float) -> None:
        """Put the message off for ``delay`` seconds without spending one of its deliveries:
        a fresh copy (receive count 0) becomes visible after ``delay``, then this one is
        acked. For work that must wait (a paused account), not for failures."""
        check_range("delay", delay, 0, MAX_DELAY_SECONDS)
        self._send_later([message.body], float(delay))
        self._ack(message)

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Peek at up to ``limit`` dead letters without removing them."""
        check_range("limit", limit, 1, 10_000)
        return self._dead_letters(int(limit))

    def redrive(self, ids: Sequence[str] | None = None) -> int:
        """Send dead letters back to the queue (fresh deliveries): those with ``ids``, or
        every one when None. Returns how many went back; unknown ids are ignored."""
        if isinstance(ids, str):
            raise ValueError("redrive() takes a sequence of ids, not one str")
        return self._move_dead(None if ids is None else set(ids), requeue=True)

    def delete_dead(self, ids: Sequence[str] | None = None) -> int:
        """Delete dead letters: those with ``ids``, or every one when None. Returns how many."""
        if isinstance(ids, str):
            raise ValueError("delete_dead() takes a sequence of ids, not one str")
        return self._move_dead(None if ids is None else set(ids), requeue=False)

    def consumer(self, prefetch: int = MAX_BATCH, wait_seconds: float = 1.0) -> Consumer:
        """An iterator of messages; yields None after each ``wait_seconds`` without one."""
        return Consumer(self, prefetch, wait_seconds)

    @abstractmethod
    def stats(self) -> QueueStats:
        """How many messages are visible, in flight and dead."""

    @abstractmethod
    def purge(self) -> None:
        """Drop every message, waiting, in flight and dead (tests and operators)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections. The queue is unusable afterwards."""

    def __enter__(self) -> WorkQueue:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------ backend primitives

    @abstractmethod
    def _send(self, bodies: list[str]) -> None:
        """Store already validated, non-empty ``bodies``."""

    @abstractmethod
    def _receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        """Receive, counting the receive and dead-lettering what has been received too often."""

    @abstractmethod
    def _ack(self, message: Message) -> None: ...

    @abstractmethod
    def _change_visibility(self, message: Message, seconds: float) -> None:
        """Hide the message for ``seconds`` from now (0: visible now). A message no longer
        held (``handle`` stale) is logged and left alone."""

    def _extend_all(self, messages: list[Message], seconds: float) -> None:
        """One call per message; backends with a batch call override this."""
        for message in messages:
            self._change_visibility(message, seconds)

    @abstractmethod
    def _dead_letter(self, message: Message, reason: str) -> None: ...

    @abstractmethod
    def _dead_letters(self, limit: int) -> list[DeadLetter]: ...

    @abstractmethod
    def _send_later(self, bodies: list[str], delay: float) -> None:
        """Store ``bodies`` as new messages, visible after ``delay`` seconds."""

    @abstractmethod
    def _move_dead(self, ids: set[str] | None, requeue: bool) -> int:
        """Take dead letters (``ids``, or all) out; send them to the queue if ``requeue``."""


class Consumer(Iterator["Message | None"]):
    """Iterates over a queue's messages, receiving ``prefetch`` at a time.

    ``next()`` returns a :class:`Message`, or None when ``wait_seconds`` passed without
    one, so the caller's loop can check for shutdown between polls. Prefetched messages
    are already invisible and their visibility timeout is running: keep ``prefetch``
    near the number of messages the caller can work on at once. :meth:`close` gives the
    prefetched, never-returned ones back at once.
    """

    def __init__(self, queue: WorkQueue, prefetch: int = MAX_BATCH,
                 wait_seconds: float = 1.0) -> None:
        check_range("prefetch", prefetch, 1, MAX_BATCH)
        check_range("wait_seconds", wait_seconds, 0, MAX_WAIT_TIME_SECONDS)
        self._queue = queue
        self._prefetch = int(prefetch)
        self._wait_seconds = float(wait_seconds)
        self._buffer: collections.deque[Message] = collections.deque()
        self._closed = False

    def __iter__(self) -> Consumer:
        return self

    def __next__(self) -> Message | None:
        if self._closed:
            raise StopIteration
        if not self._buffer:
            self._buffer.extend(self._queue.receive(self._prefetch, self._wait_seconds))
        return self._buffer.popleft() if self._buffer else None

    def close(self) -> None:
        """Stop; release prefetched messages nobody has seen yet."""
        self._closed = True
        while self._buffer:
            message = self._buffer.popleft()
            try:
                self._queue.release(message)
            except Exception:
                # They come back after their visibility timeout anyway; closing must not fail.
                log.warning("could not release prefetched message %s", message.id, exc_info=True)

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
