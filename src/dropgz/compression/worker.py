"""The compression tier: take work messages, compress each file, settle each message.

Delivery is at least once (SQS, and the SQLite queue likewise), so every step is
idempotent: :class:`~dropgz.compression.compress.FileCompressor` output is deterministic and refuses
superseded revisions. Each message is settled exactly once, in ``finally``:

- done (compressed or skipped for a stated reason) → ``ack`` (delete);
- failed, worth retrying → ``release`` with the policy's delay;
- failed for good, or too often → ``dead_letter`` with the reason.

A small file waiting for its account's batch commit gives its slot back
(:mod:`~dropgz.compression.parking`): up to ``concurrency × PARKED_PER_SLOT`` such files
wait while ``concurrency`` others download, compress and upload.

A message is claimed for a short time (the queue's ``visibility_timeout``, 30 s by
default) that a heartbeat renews every third of it for as long as its file is worked on,
however long that takes. A worker that dies stops renewing: its files are visible again
within one claim and another worker finishes them. Shutdown has two stages:
:meth:`Worker.request_stop` stops receiving and lets in-flight files finish;
:meth:`Worker.request_force_stop` abandons them (their messages come back when their
claim runs out).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

from dropgz.compression import parking
from dropgz.compression.compress import Outcome
from dropgz.compression.reporter import FileEvent
from dropgz.core import message as messages
from dropgz.core.errors import BadMessage, TransientError
from dropgz.core.logs import fields
from dropgz.core.message import WorkItem
from dropgz.core.retries import Decision, RetryPolicy
from dropgz.queues.base import MAX_VISIBILITY_TIMEOUT, Message, WorkQueue

log = logging.getLogger(__name__)



class Compressor(Protocol):
    """Compresses one file (:class:`~dropgz.compression.compress.FileCompressor`, or
    :class:`~dropgz.compression.tokens.BrokeredCompressor` with tokens from the web tier)."""

    def run(self, item: WorkItem, *, retry: bool = False) -> Outcome: ...


# Compressor for a message's account (None: the account is unknown here).
CompressorLookup = Callable[[str | None], Compressor | None]
# Pause before polling again after the work queue could not be reached.
RECEIVE_RETRY_SECONDS = 1.0
# A paused account's message is sent again this much later (its receive count starts over).
PAUSED_DEFER_SECONDS = 30.0
# Files that may wait for their batch commit without a slot, per slot (threads, no buffers:
# their bytes are already uploaded).
PARKED_PER_SLOT = 6


class AccountPaused(Exception):
    """The message's account is paused: its files wait (deferred, not failed)."""


@dataclass
class WorkReport:
    """What a :meth:`Worker.work` call did."""

    received: int = 0
    compressed: int = 0
    skipped: int = 0
    retried: int = 0
    dead_lettered: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def settled(self) -> int:
        return self.compressed + self.skipped + self.retried + self.dead_lettered


class Worker:
    """Runs compressions concurrently from one work queue."""

    def __init__(self, queue: WorkQueue, compressors: CompressorLookup, *,
                 concurrency: int = 8, policy: RetryPolicy | None = None,
                 visibility_timeout: float | None = None, poll_seconds: float = 5.0,
                 on_outcome: Callable[[Outcome], None] | None = None,
                 on_file: Callable[[FileEvent], None] | None = None,
                 paused: Callable[[str | None], bool] | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queue = queue
        self.compressors = compressors
        self.concurrency = concurrency
        self.policy = policy or RetryPolicy(max_receives=queue.max_receive_count)
        # The claim each heartbeat renews; the queue's own unless given.
        self.visibility_timeout = float(visibility_timeout or queue.visibility_timeout)
        self.poll_seconds = poll_seconds
        self.on_outcome = on_outcome  # e.g. the ledger behind `dropgz status`
        self.on_file = on_file  # every settled file, e.g. the reporter to the web tier
        self.paused = paused  # accounts whose files must wait
        self._stop = threading.Event()
        self._force = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: dict[str, Message] = {}
        self._received_at: dict[str, float] = {}  # handle -> monotonic time of the receive
        self._slots = threading.Semaphore(concurrency)
        self._parked: set[str] = set()  # handles of files waiting without a slot
        self.max_parked = concurrency * PARKED_PER_SLOT
        self._report = WorkReport()

    # ------------------------------------------------------------ control

    def request_stop(self) -> None:
        """Stage one: receive nothing more, finish the files in flight."""
        if not self._stop.is_set():
            log.info("stopping: finishing %d file(s) in flight, receiving no more "
                     "(signal again to exit at once)", len(self._in_flight))
        self._stop.set()

    def request_force_stop(self) -> None:
        """Stage two: abandon in-flight files now; their messages return after visibility."""
        log.warning("stopping now: %d file(s) abandoned; their messages come back when "
                    "their visibility timeout ends", len(self._in_flight))
        self._force.set()
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def in_flight(self) -> int:
        """Files being worked on now."""
        with self._lock:
            return len(self._in_flight)

    # ------------------------------------------------------------ the loop

    def work(self, *, burst: bool = False, max_jobs: int | None = None,
             idle_timeout: float | None = None) -> WorkReport:
        """Process messages until stopped.

        ``burst``: return once the queue has nothing visible and nothing is in flight.
        ``max_jobs``: return after receiving that many messages (and settling them).
        ``idle_timeout``: return after that many seconds without a message.
        """
        self._report = WorkReport()
        self._done.clear()
        heartbeat = threading.Thread(target=self._heartbeat, name="dropgz-heartbeat",
                                     daemon=True)
        heartbeat.start()
        pool = ThreadPoolExecutor(self.concurrency + self.max_parked,
                                  thread_name_prefix="dropgz-file")
        last_message = time.monotonic()
        try:
            while not self._stop.is_set():
                if max_jobs is not None and self._report.received >= max_jobs:
                    break
                free = self._wait_for_slots()
                if free == 0:
                    continue
                want = min(free, 10)
                if max_jobs is not None:
                    want = min(want, max_jobs - self._report.received)
                try:
                    batch = self.queue.receive(max_messages=want, wait_seconds=self.poll_seconds)
                except TransientError as exc:
                    # The queue is unreachable for now (e.g. an SQS outage): keep the loop
                    # alive and poll again; in-flight files settle (or come back) meanwhile.
                    self._return_slots(free)
                    log.warning("cannot receive from the work queue, will retry: %s", exc)
                    self._stop.wait(RECEIVE_RETRY_SECONDS)
                    continue
                self._return_slots(free - len(batch))
                if not batch:
                    idle = time.monotonic() - last_message
                    if burst and not self._in_flight:
                        break
                    if idle_timeout is not None and idle >= idle_timeout and not self._in_flight:
                        break
                    continue
                last_message = time.monotonic()
                for msg in batch:
                    if self._stop.is_set():
                        # Received after stop was asked: give it straight back.
                        self.queue.release(msg)
                        self._return_slots(1)
                        continue
                    with self._lock:
                        self._in_flight[msg.handle] = msg
                        self._received_at[msg.handle] = last_message
                        self._report.received += 1
                    pool.submit(self._process, msg)
        finally:
            pool.shutdown(wait=not self._force.is_set(), cancel_futures=self._force.is_set())
            self._done.set()
            heartbeat.join(timeout=5)
        return self._report

    def _wait_for_slots(self) -> int:
        """Block (briefly) for one free slot, then take all free slots; returns how many."""
        if not self._slots.acquire(timeout=0.5):
            return 0
        taken = 1
        while taken < self.concurrency and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _return_slots(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    # ------------------------------------------------------------ one message

    def _process(self, msg: Message) -> None:
        outcome: Outcome | None = None
        decision: Decision | None = None
        started = time.monotonic()
        try:
            with parking.slot(lambda: self._park(msg.handle)):
                outcome = self._handle(msg)
        except AccountPaused as exc:
            decision = Decision("defer", f"account {exc} is paused", PAUSED_DEFER_SECONDS)
        except Exception as exc:  # every failure is settled below, none escapes
            decision = self.policy.decide(exc, msg.receive_count)
        finally:
            self._settle(msg, outcome, decision, time.monotonic() - started)

    def _park(self, handle: str) -> None:
        """The file of ``handle`` waits for others: its slot goes to the next file."""
        with self._lock:
            if handle in self._parked or len(self._parked) >= self.max_parked:
                return
            self._parked.add(handle)
        self._return_slots(1)

    def _handle(self, msg: Message) -> Outcome:
        item = messages.parse(msg.body)
        if self.paused is not None and self.paused(item.account):
            raise AccountPaused(item.account)
        compressor = self.compressors(item.account)
        if compressor is None:
            raise BadMessage(f"unknown account {item.account!r}")
        return replace(compressor.run(item, retry=msg.receive_count > 1),
                       account=item.account)

    def _settle(self, msg: Message, outcome: Outcome | None, decision: Decision | None,
                seconds: float) -> None:
        try:
            if self._force.is_set():
                return  # abandoned: visibility timeout brings it back
            if outcome is not None:
                self.queue.ack(msg)
                self._record(outcome, seconds)
                self._tell(msg, outcome.status, seconds, outcome=outcome)
            elif decision is not None and decision.action == "defer":
                self.queue.defer(msg, decision.delay)
                log.info("deferred %s", fields(message=msg.id, reason=decision.reason))
            elif decision is not None and decision.action == "retry":
                self.queue.release(msg, delay=decision.delay)
                self._count("retried")
                self._tell(msg, "retried", seconds, decision.reason)
                log.warning("retry %s", fields(message=msg.id, attempt=msg.receive_count,
                                               delay=round(decision.delay, 1),
                                               reason=decision.reason))
            else:
                reason = decision.reason if decision else "no outcome"
                self.queue.dead_letter(msg, reason)
                self._count("dead_lettered")
                self._tell(msg, "failed", seconds, reason)
                log.error("dead-letter %s", fields(message=msg.id, attempt=msg.receive_count,
                                                   reason=reason))
        except Exception:
            # The queue itself failed (e.g. SQS unreachable): the message is not lost, it
            # becomes visible again when its visibility timeout ends.
            log.exception("could not settle message %s; it will be redelivered", msg.id)
        finally:
            with self._lock:
                self._in_flight.pop(msg.handle, None)
                self._received_at.pop(msg.handle, None)
                parked = msg.handle in self._parked
                self._parked.discard(msg.handle)
            if not parked:
                self._return_slots(1)

    def _tell(self, msg: Message, status: str, seconds: float, reason: str = "",
              outcome: Outcome | None = None) -> None:
        """Hand one settled file to ``on_file``; never fails the file."""
        if self.on_file is None:
            return
        try:
            if outcome is not None:
                event = FileEvent(outcome.account or "", outcome.path, outcome.status,
                                  outcome.bytes_in, outcome.bytes_out, seconds, outcome.reason)
            else:
                account, path = messages.describe(msg.body)
                event = FileEvent(account, path, status, seconds=seconds, reason=reason)
            self.on_file(event)
        except Exception:
            log.exception("could not report message %s", msg.id)

    def _record(self, outcome: Outcome, seconds: float) -> None:
        with self._lock:
            report = self._report
            report.outcomes.append(outcome)
            if outcome.status == "compressed":
                report.compressed += 1
                report.bytes_in += outcome.bytes_in
                report.bytes_out += outcome.bytes_out
            else:
                report.skipped += 1
        if self.on_outcome is not None:
            try:
                self.on_outcome(outcome)
            except Exception:  # bookkeeping must never fail a file that succeeded
                log.exception("could not record the outcome of %s", outcome.path)
        log.info("file %s", fields(account=outcome.account or "-", path=outcome.path,
                                   rev=outcome.rev or "-", outcome=outcome.status,
                                   reason=outcome.reason or "-",
                                   bytes_in=outcome.bytes_in, bytes_out=outcome.bytes_out,
                                   ratio=round(outcome.ratio, 3), seconds=round(seconds, 3)))

    def _count(self, what: str) -> None:
        with self._lock:
            setattr(self._report, what, getattr(self._report, what) + 1)

    # ------------------------------------------------------------ heartbeat

    def _heartbeat(self) -> None:
        """Keep files claimed while they are worked on: every third of the claim, push every
        in-flight message's visibility one claim out (two missed beats are survivable)."""
        every = max(self.visibility_timeout / 3, 0.5)
        while not self._done.wait(every):
            if self._force.is_set():
                return
            self._beat()

    def _beat(self) -> None:
        now = time.monotonic()
        with self._lock:
            held = [(msg, now - self._received_at.get(handle, now))
                    for handle, msg in self._in_flight.items()]
        # SQS refuses to keep a message in flight past 12 h after its receive.
        renew = [msg for msg, age in held
                 if age + self.visibility_timeout < MAX_VISIBILITY_TIMEOUT]
        for msg in {m.id for m, _ in held} - {m.id for m in renew}:
            log.warning("message %s has been in flight for 12 hours, the queue's limit: it "
                        "will be delivered again", msg)
        try:
            self.queue.extend_all(renew, self.visibility_timeout)
        except Exception as exc:  # a missed beat is retried at the next one
            log.warning("heartbeat for %d message(s) failed: %s", len(renew), exc)
