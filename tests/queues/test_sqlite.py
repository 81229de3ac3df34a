"""SQLite work queue: what only a file shared by processes can get wrong."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from dropgz.core.config import load_settings
from dropgz.core.errors import DropgzError
from dropgz.queues import Message, QueueStats, open_work_queue
from dropgz.queues.sqlite import SQLiteWorkQueue
from tests.queues.conftest import drain

# spawn, not fork: a child must never inherit the parent's open SQLite connection.
SPAWN = multiprocessing.get_context("spawn")


def _drain_in_process(path: str, ready: object, results: object) -> None:
    """Child: receive and ack until the queue stays empty; report (pid, bodies)."""
    queue = SQLiteWorkQueue(path, visibility_timeout=30)
    ready.wait()  # type: ignore[attr-defined]
    seen = []
    with queue.consumer(prefetch=5, wait_seconds=0.3) as consumer:
        idle = 0
        while idle < 3:
            message = next(consumer)
            if message is None:
                idle += 1
                continue
            idle = 0
            time.sleep(0.002)  # a little work, so both processes get a share
            seen.append(message.body)
            queue.ack(message)
    queue.close()
    results.put((os.getpid(), seen))  # type: ignore[attr-defined]


def _hold_and_hang(path: str, results: object) -> None:
    """Child: receive five messages, report their ids, then hang until killed."""
    queue = SQLiteWorkQueue(path, visibility_timeout=3)
    held = []
    while len(held) < 5:
        held.extend(queue.receive(5 - len(held), wait_seconds=1))
    results.put([m.id for m in held])  # type: ignore[attr-defined]
    time.sleep(120)


def test_two_processes_drain_one_queue_nothing_lost_nothing_doubled(tmp_path: Path) -> None:
    # Given 301 messages in one file (not a multiple of prefetch: the last batches are short)
    path = tmp_path / "queue.sqlite3"
    sent = [f'{{"path": "/f{i}"}}' for i in range(301)]
    with SQLiteWorkQueue(path) as queue:
        queue.send(sent)
    # When two processes drain it at the same time
    ready, results = SPAWN.Barrier(3), SPAWN.Queue()
    workers = [SPAWN.Process(target=_drain_in_process, args=(str(path), ready, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    ready.wait(timeout=60)
    reports = dict(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    # Then every message was processed exactly once, by one of them
    processed = [body for bodies in reports.values() for body in bodies]
    assert len(processed) == 301
    assert sorted(processed) == sorted(sent)
    assert all(reports.values()), f"one process got nothing: {[len(b) for b in reports.values()]}"
    with SQLiteWorkQueue(path) as queue:
        assert queue.stats() == QueueStats(visible=0, in_flight=0, dead=0)


def test_killed_consumer_loses_nothing(tmp_path: Path) -> None:
    # Given a consumer process holding five un-acked messages (visibility timeout 3 s)
    path = tmp_path / "queue.sqlite3"
    queue = SQLiteWorkQueue(path, visibility_timeout=3)
    queue.send([f"m{i}" for i in range(5)])
    results = SPAWN.Queue()
    child = SPAWN.Process(target=_hold_and_hang, args=(str(path), results))
    child.start()
    held = results.get(timeout=60)
    assert queue.receive(wait_seconds=0) == []  # all five are in flight
    # When it is killed outright
    os.kill(child.pid, signal.SIGKILL)
    child.join(timeout=10)
    assert child.exitcode == -signal.SIGKILL
    # Then all five come back once their visibility timeout expires, counted twice
    back = drain(queue, 5, timeout=10)
    assert sorted(m.id for m in back) == sorted(held)
    assert {m.receive_count for m in back} == {2}
    queue.close()


def test_messages_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    with SQLiteWorkQueue(path) as queue:
        queue.send(["persisted", "in flight"])
        [held] = queue.receive(1, wait_seconds=0)
    with SQLiteWorkQueue(path) as queue:
        assert queue.stats() == QueueStats(visible=1, in_flight=1, dead=0)
        [other] = {"persisted", "in flight"} - {held.body}
        assert [m.body for m in queue.receive(wait_seconds=0)] == [other]


def test_open_work_queue_without_sqs_uses_the_data_folder(tmp_path: Path) -> None:
    settings = load_settings(env={"DROPGZ_SERVICE_DATA_DIR": str(tmp_path / "deep" / "data"),
                                  "DROPGZ_AWS_VISIBILITY_TIMEOUT": "7",
                                  "DROPGZ_AWS_MAX_RECEIVE_COUNT": "3"})
    with open_work_queue(settings) as queue:
        assert isinstance(queue, SQLiteWorkQueue)
        assert queue.path == tmp_path / "deep" / "data" / "queue.sqlite3"
        assert (queue.visibility_timeout, queue.max_receive_count) == (7, 3)
        assert queue.path.is_file()


def test_constructor_checks_limits(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="visibility_timeout must be at least 1"):
        SQLiteWorkQueue(tmp_path / "q", visibility_timeout=0)
    with pytest.raises(ValueError, match="visibility_timeout must be at most 43200"):
        SQLiteWorkQueue(tmp_path / "q", visibility_timeout=43201)
    with pytest.raises(ValueError, match="max_receive_count must be at most 1000"):
        SQLiteWorkQueue(tmp_path / "q", max_receive_count=1001)


def test_unusable_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DropgzError, match=r"cannot open the work queue .*a-file/queue\.sqlite3"):
        SQLiteWorkQueue(blocker / "queue.sqlite3")
    not_sqlite = tmp_path / "garbage.sqlite3"
    not_sqlite.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DropgzError, match=r"garbage\.sqlite3"):
        SQLiteWorkQueue(not_sqlite)


def test_acks_at_once_are_settled_each_on_its_own_receipt(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    # Given 30 received messages, one of them since received again (its first receipt stale)
    queue = SQLiteWorkQueue(tmp_path / "q.sqlite3", visibility_timeout=30)
    queue.send([f"m{i}" for i in range(30)])
    received = drain(queue, 30)
    stale = received[0]
    queue.release(stale)
    [again] = queue.receive(1, wait_seconds=1)
    assert again.id == stale.id and again.handle != stale.handle
    # When 30 threads ack at the same moment (one transaction takes them together)
    start = threading.Barrier(30)

    def ack(message: Message) -> None:
        start.wait(timeout=10)
        queue.ack(message)

    threads = [threading.Thread(target=ack, args=(m,)) for m in received]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # Then the 29 held receipts deleted their messages; the stale one deleted nothing and
    # said so, and the message stays with its new holder
    assert queue.stats() == QueueStats(visible=0, in_flight=1, dead=0)
    assert [r.getMessage() for r in caplog.records if "could not ack" in r.getMessage()] \
        == [f"could not ack message {stale.id}: no longer held by this receipt (visibility "
            "timeout expired?)"]
    queue.ack(again)
    assert queue.stats() == QueueStats(visible=0, in_flight=0, dead=0)
