"""The work-queue backends under test, each opened the way the service opens it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from dropgz.core.config import Settings, load_settings
from dropgz.queues import Message, WorkQueue, open_work_queue

MakeQueue = Callable[..., WorkQueue]


@pytest.fixture(params=["sqlite", "sqs"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def base_settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if backend == "sqs":
        return request.getfixturevalue("sqs_settings")  # moto_server only when needed
    return load_settings(env={"DROPGZ_SERVICE_DATA_DIR": str(tmp_path / "data")})


@pytest.fixture
def make_queue(backend: str, base_settings: Settings) -> Iterator[MakeQueue]:
    """``make_queue(visibility_timeout=30, max_receive_count=5)`` -> an open WorkQueue.

    Every call opens the same queue (for SQS: the same queues, their redrive policy set
    to ``max_receive_count`` by ensure_queues, as `dropgz setup-aws` would).
    """
    opened: list[WorkQueue] = []

    def make(visibility_timeout: int = 30, max_receive_count: int = 5) -> WorkQueue:
        settings = replace(base_settings, aws=replace(
            base_settings.aws, visibility_timeout=visibility_timeout,
            max_receive_count=max_receive_count))
        if backend == "sqs":
            from dropgz.queues.sqs import ensure_queues

            ensure_queues(settings)
        queue = open_work_queue(settings)
        opened.append(queue)
        return queue

    yield make
    for queue in opened:
        queue.close()


@pytest.fixture
def queue(make_queue: MakeQueue) -> WorkQueue:
    return make_queue()


def drain(queue: WorkQueue, count: int, timeout: float = 10.0) -> list[Message]:
    """Receive until ``count`` messages arrived or ``timeout`` passed (SQS may split them)."""
    received: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(received) < count and time.monotonic() < deadline:
        received.extend(queue.receive(min(10, count - len(received)), wait_seconds=1))
    return received
