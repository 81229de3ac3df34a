"""Benchmark 5: the delta tier on a big account, from list_folder to messages in SQS.

An emulated account holds ``files`` files. The delta tier's :func:`dropgz.web.delta.run_delta`
(as ``POST /tasks/delta`` runs it) first lists the account with no cursor, sending one
work message per file to an SQS queue on ``moto_server``; then ``changes`` files are
overwritten and one more run continues from the saved cursor. For each run: files per
second, and calls per 1,000 files to Dropbox (counted by the emulator) and to SQS
(counted by a botocore event hook on the queue's client), against the floor: one
``list_folder`` call per page of 2,000 entries and one ``SendMessageBatch`` per 10 messages.

Consumers drain the queue while the delta runs, as workers would. That is also what keeps
moto usable: moto 5.2's ``SendMessage`` recomputes every queue attribute, including
counts that scan all stored messages, for each message sent, so sending into a queue
holding 100,000 messages slows down quadratically (measured: 15 ms per batch of 10 into
an empty queue, 400 ms at 3,000 messages). The drained messages are the check: every
file's work message must arrive, and no other.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    BenchResult,
    moto_env,
    route_calls,
    running_emulator,
    running_moto,
    wait_until,
)
from dropgz.core.config import load_settings
from dropgz.core.errors import BadMessage
from dropgz.core.message import parse
from dropgz.dropbox_client.accounts import default_dropbox_factory
from dropgz.queues.base import MAX_BATCH
from dropgz.queues.sqs import SQSWorkQueue, ensure_queues, make_client
from dropgz.state import open_state_store
from dropgz.web.delta import MAX_PAGE_LIMIT, run_delta

NAME = "delta"
TITLE = "5. Delta: list_folder pages to SQS messages (moto_server)"
PRESETS = {
    "tiny": {"files": 3000, "changes": 600, "page_limit": MAX_PAGE_LIMIT, "setup_threads": 16},
    "full": {"files": 100_000, "changes": 10_000, "page_limit": MAX_PAGE_LIMIT,
             "setup_threads": 16},
}
FILES_PER_FOLDER = 1000
CALLS_TOLERANCE = 1.10  # this benchmark's own bar: within 10 % of the floor
DRAIN_THREADS = 3  # receive + delete is two calls per ten messages: outpace the sender
DRAIN_SECONDS = 600.0


class Drain:
    """Consumers that receive and delete messages on their own SQS client, noting each
    message's path, until stopped."""

    def __init__(self, settings: Any, queue_url: str, threads: int = DRAIN_THREADS) -> None:
        self.client = make_client(settings)
        self.queue_url = queue_url
        self.paths: Counter[str] = Counter()
        self.bad = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Drain:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        self.client.close()

    @property
    def received(self) -> int:
        with self._lock:
            return sum(self.paths.values())

    @property
    def distinct(self) -> int:
        with self._lock:
            return len(self.paths)

    def _run(self) -> None:
        while not self._stop.is_set():
            answer = self.client.receive_message(QueueUrl=self.queue_url,
                                                 MaxNumberOfMessages=MAX_BATCH,
                                                 WaitTimeSeconds=1)
            messages = answer.get("Messages", [])
            if not messages:
                continue
            paths, bad = [], 0
            for message in messages:
                try:
                    paths.append(parse(message["Body"]).path)
                except BadMessage:
                    bad += 1
            self.client.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages)])
            with self._lock:
                self.paths.update(paths)
                self.bad += bad


class CallCounter:
    """Counts a boto3 client's API calls by operation (``before-call`` fires once per call,
    retries included as separate sends are not: botocore retries below this event)."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[str] = Counter()
        client.meta.events.register("before-call.sqs.*", self._count)

    def _count(self, model: Any, **kwargs: Any) -> None:
        self.calls[model.name] += 1

    def snapshot(self) -> Counter[str]:
        return Counter(self.calls)


def _path(i: int) -> str:
    return f"/bench/delta/folder-{i // FILES_PER_FOLDER:04d}/file-{i:06d}.txt"


def _upload_all(dbx, indices: range | list[int], version: int, threads: int) -> None:
    def one(i: int) -> None:
        dbx.files_upload(f"file {i} version {version}\n".encode(), _path(i),
                         mode=dropbox_overwrite())

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, indices))


def dropbox_overwrite():
    from dropbox.files import WriteMode

    return WriteMode.overwrite


def run(size: str, workdir: Path, **overrides: object) -> BenchResult:
    params = {**PRESETS[size], **overrides}
    result = BenchResult(NAME, TITLE, size, params,
                         columns=["run", "files", "messages", "seconds", "files/s",
                                  "Dropbox calls", "Dropbox /1k files", "Dropbox floor /1k",
                                  "SQS calls", "SQS /1k files", "SQS floor /1k"])
    total, changes = int(params["files"]), int(params["changes"])
    page_limit, threads = int(params["page_limit"]), int(params["setup_threads"])
    # Write contention off: the listing is measured; the setup only seeds files, in parallel.
    with running_moto(workdir) as moto_url, \
            running_emulator(workdir, "--no-write-contention") as emulator:
        env = {**emulator.env(workdir / "data"),
               **moto_env(moto_url, f"bench-delta-{uuid.uuid4().hex[:8]}")}
        settings = load_settings(env=env)
        ensure_queues(settings)
        client = make_client(settings)
        counter = CallCounter(client)
        queue = SQSWorkQueue.from_settings(settings, client=client)
        state = open_state_store(settings)
        dbx = default_dropbox_factory(settings.dropbox)  # the delta tier's own client
        setup_dbx = emulator.client(pool_size=threads)
        try:
            listed_from = datetime.now(UTC)
            setup = time.perf_counter()
            _upload_all(setup_dbx, range(total), 1, threads)
            result.notes.append(f"setup: {total:,} files uploaded in "
                                f"{time.perf_counter() - setup:.0f} s (not measured)")
            first = _measure(result, "first listing", emulator, counter, queue, settings,
                             {_path(i) for i in range(total)},
                             lambda: run_delta(emulator.account_id, dbx, state=state,
                                               work_queue=queue, rules=settings.compression,
                                               notified_at=listed_from, page_limit=page_limit))
            result.check("first listing: mode is 'first'", first.mode == "first")
            changed = list(range(0, total, max(1, total // changes)))[:changes]
            _upload_all(setup_dbx, changed, 2, threads)
            again = _measure(result, f"continue after {changes:,} changes", emulator, counter,
                             queue, settings, {_path(i) for i in changed},
                             lambda: run_delta(emulator.account_id, dbx, state=state,
                                               work_queue=queue, rules=settings.compression,
                                               page_limit=page_limit))
            result.check("second run continues the saved cursor", again.mode == "continue")
        finally:
            queue.close()
    return result


def _measure(result: BenchResult, label: str, emulator, counter: CallCounter,
             queue: SQSWorkQueue, settings: Any, expected: set[str], delta) -> Any:
    """Run one delta while the queue is drained; add its row and figures."""
    count = len(expected)
    dropbox_before, sqs_before = emulator.stats(), counter.snapshot()
    with Drain(settings, queue.queue_url) as drain:
        started = time.perf_counter()
        outcome = delta()
        seconds = time.perf_counter() - started
        dropbox_calls = sum(route_calls(dropbox_before, emulator.stats()).values())
        sqs_calls = sum((counter.snapshot() - sqs_before).values())
        wait_until(lambda: drain.distinct >= count, DRAIN_SECONDS,
                   f"{label}: {count:,} messages drained", interval=0.5)
    result.check(f"{label}: one message per file sent",
                 outcome.sent == count and outcome.files == count)
    result.check(f"{label}: every file's message arrived, and nothing else",
                 set(drain.paths) == expected and not drain.bad)
    if drain.received > count:
        # Standard queues deliver at least once; moto's receive is not atomic across threads.
        result.notes.append(f"{label}: {drain.received - count} message(s) received twice")
    per_k = 1000 / count
    dropbox_floor = math.ceil(count / MAX_PAGE_LIMIT)
    sqs_floor = math.ceil(count / MAX_BATCH)
    rate = count / seconds
    result.rows.append({
        "run": label, "files": outcome.files, "messages": outcome.sent, "seconds": seconds,
        "files/s": rate, "Dropbox calls": dropbox_calls,
        "Dropbox /1k files": dropbox_calls * per_k, "Dropbox floor /1k": dropbox_floor * per_k,
        "SQS calls": sqs_calls, "SQS /1k files": sqs_calls * per_k,
        "SQS floor /1k": sqs_floor * per_k})
    result.figure(f"{label}: files/s", rate, unit="files/s")
    result.figure(f"{label}: Dropbox calls / floor", dropbox_calls / dropbox_floor,
                  CALLS_TOLERANCE, op="<=")
    result.figure(f"{label}: SQS calls / floor", sqs_calls / sqs_floor, CALLS_TOLERANCE, op="<=")
    return outcome


