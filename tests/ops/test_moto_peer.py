"""The SQS peer the suite trusts: moto's delete, run by dropgz.ops.moto_peer, cannot lose a
message that is sent while another is deleted, nor undo a concurrent delete."""

from __future__ import annotations

import threading
from typing import Any

from moto.sqs.models import Queue, sqs_backends

from dropgz.ops.moto_peer import guard_delete_message


def test_a_send_and_a_delete_during_a_slow_delete_are_all_kept() -> None:
    # Given moto's SQS model with the guard, a queue with messages A, B and C received
    guard_delete_message(Queue)
    guard_delete_message(Queue)  # idempotent: one lock, not two wrappers
    backend = sqs_backends["123456789012"]["us-west-1"]
    backend.create_queue("dropgz-moto-peer-race")
    for body in ("A", "B", "C"):
        backend.send_message("dropgz-moto-peer-race", body)
    received = {m.body: m for m in backend.receive_message("dropgz-moto-peer-race", 10, 0, 30)}
    queue = backend.get_queue("dropgz-moto-peer-race")
    # and the delete of A paused in the middle of its scan of the message list
    scanning, go_on = threading.Event(), threading.Event()
    slow = next(m for m in queue._messages if m.body == "C")  # (receive hands out copies)
    real_check = slow.had_receipt_handle

    def paused_check(handle: str) -> Any:
        if handle == received["A"].receipt_handle and threading.current_thread().name == "A":
            scanning.set()
            go_on.wait(10)
        return real_check(handle)

    slow.had_receipt_handle = paused_check  # type: ignore[method-assign]
    deleting_a = threading.Thread(name="A", target=queue.delete_message,
                                  args=(received["A"].receipt_handle,))
    deleting_a.start()
    assert scanning.wait(10)
    # When B is deleted and D is sent meanwhile (in raw moto 5.2 both finish at once, and
    # A's delete then writes back its stale list: D lost, B back, ["B", "C"] left)
    others = [threading.Thread(target=queue.delete_message,
                               args=(received["B"].receipt_handle,)),
              threading.Thread(target=backend.send_message,
                               args=("dropgz-moto-peer-race", "D"))]
    for thread in others:
        thread.start()
    go_on.set()
    for thread in [deleting_a, *others]:
        thread.join(10)
        assert not thread.is_alive()
    # Then A and B are gone, and C and D are kept
    assert sorted(m.body for m in queue._messages) == ["C", "D"]
