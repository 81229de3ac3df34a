"""The operator's actions on a queue, for every backend (SQLite, SQS on moto_server):
redrive (retry) dead letters one by one or all, delete them, and defer a message without
spending one of its deliveries."""

from __future__ import annotations

import pytest

from dropgz.queues import QueueStats, WorkQueue
from tests.fixtures.peers import wait_for
from tests.queues.conftest import MakeQueue, drain


def bury(queue: WorkQueue, *bodies: str) -> dict[str, str]:
    """Send ``bodies`` and dead-letter each with a reason; returns body -> dead-letter id."""
    queue.send(list(bodies))
    for message in drain(queue, len(bodies)):
        queue.dead_letter(message, f"gave up on {message.body}")
    letters = queue.dead_letters()
    assert sorted(d.body for d in letters) == sorted(bodies)
    assert all(d.id for d in letters) and len({d.id for d in letters}) == len(bodies)
    return {d.body: d.id for d in letters}


def test_redrive_one_sends_it_back_as_a_fresh_message(queue: WorkQueue) -> None:
    # Given three dead letters
    ids = bury(queue, "a", "b", "c")
    # When one is retried
    assert queue.redrive([ids["b"]]) == 1
    # Then it is in the queue again, first delivery, and the other two stay dead
    [message] = drain(queue, 1)
    assert (message.body, message.receive_count) == ("b", 1)
    assert sorted(d.body for d in queue.dead_letters()) == ["a", "c"]
    queue.ack(message)
    wait_for(lambda: queue.stats() == QueueStats(visible=0, in_flight=0, dead=2),
             what="two dead letters left, nothing else")


def test_redrive_all(queue: WorkQueue) -> None:
    bury(queue, "a", "b", "c")
    assert queue.redrive() == 3
    assert sorted(m.body for m in drain(queue, 3)) == ["a", "b", "c"]
    assert queue.dead_letters() == []


def test_delete_one_then_all(queue: WorkQueue) -> None:
    ids = bury(queue, "a", "b", "c")
    assert queue.delete_dead([ids["a"], "no-such-id"]) == 1
    assert sorted(d.body for d in queue.dead_letters()) == ["b", "c"]
    assert queue.delete_dead() == 2
    assert queue.dead_letters() == []
    assert queue.receive(wait_seconds=0) == []  # deleted, not sent back


def test_unknown_ids_change_nothing(queue: WorkQueue) -> None:
    bury(queue, "a")
    assert queue.redrive(["nope"]) == 0
    assert [d.body for d in queue.dead_letters()] == ["a"]
    with pytest.raises(ValueError, match="sequence"):
        queue.redrive("a")


def test_defer_does_not_spend_a_delivery(make_queue: MakeQueue) -> None:
    # Given a queue that dead-letters after two receives, and a message received twice
    queue = make_queue(max_receive_count=2)
    queue.send(["waiting"])
    for _ in range(2):
        [message] = drain(queue, 1)
        queue.defer(message, 1)
    # When it is deferred each time, it comes back after the delay as a first delivery
    [message] = drain(queue, 1, timeout=15)
    assert (message.body, message.receive_count) == ("waiting", 1)
    assert queue.stats().dead == 0
    with pytest.raises(ValueError, match="at most 900"):
        queue.defer(message, 901)
