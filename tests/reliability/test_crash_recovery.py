"""Crash recovery with default settings: a worker SIGKILLed with files in flight, and the
time until another worker has finished them (the figure in RELIABILITY.md).

The kill is made deterministic, not timed: the emulator holds every ``files/download``
request unanswered, so the doomed worker's files are provably in flight (received from the
queue, download requested, nothing written) at the moment of the SIGKILL.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from dropgz.queues.base import DEFAULT_CLAIM_SECONDS, QueueStats
from tests.compression.conftest import text_bytes
from tests.fixtures.moto import moto_env
from tests.reliability.harness import Pipeline, World, check_invariants, wait_for

# The promise (issue 13): another worker finishes a killed worker's files within a minute.
RECOVERY_PROMISE_SECONDS = 60
FILES = 3


@pytest.mark.parametrize("backend", ["sqlite", "sqs"])
def test_sigkilled_worker_files_are_finished_by_another_within_a_minute(
        pipeline: tuple[Any, Pipeline], world: World, backend: str,
        request: pytest.FixtureRequest, record_property: Any) -> None:
    """Worker SIGKILLed with files in flight, default claim: another finishes them < 60 s"""
    emulator, pipe = pipeline
    del pipe.env["DROPGZ_AWS_VISIBILITY_TIMEOUT"]  # default settings throughout
    if backend == "sqs":
        from dropgz.queues.sqs import ensure_queues

        pipe.env.update(moto_env(request.getfixturevalue("moto_server"), pipe.workdir))
        ensure_queues(pipe.settings())  # what `dropgz setup-aws` makes, with defaults
    assert pipe.settings().aws.visibility_timeout is None
    with emulator.holding("files/download"):
        # Given a worker whose downloads hang unanswered
        world.put("/before-start.txt", b"existed before the service\n", eligible=False)
        pipe.start_web()
        doomed = pipe.start_worker()
        for n in range(FILES):
            world.put(f"/crash/file {n}.txt", text_bytes(5_000 + n, seed=n))
        # and holding all the files: received from the queue, each download requested
        emulator.wait_held("files/download", FILES, timeout=60)
        queue = pipe.queue()
        assert queue.stats() == QueueStats(visible=0, in_flight=FILES, dead=0)
        # and another worker, already polling
        rescuer = pipe.start_worker()
        pipe.wait_worker_started(rescuer)
        # When the first worker is SIGKILLed
        doomed.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        doomed.wait(10)
    # Then the other worker has made every .gz within a minute
    wait_for(lambda: not world.missing_gz(), RECOVERY_PROMISE_SECONDS,
             "the killed worker's files finished by another worker",
             diagnose=lambda: f"{queue.stats()}\n{pipe.logs()[-4000:]}")
    recovery = time.monotonic() - killed_at
    record_property("recovery_seconds", round(recovery, 1))
    print(f"\n[{backend}] SIGKILL to the last .gz: {recovery:.1f} s "
          f"(claim {DEFAULT_CLAIM_SECONDS} s)")
    pipe.settle(world, timeout=30)
    check_invariants(world, queue)
    assert f"claim={DEFAULT_CLAIM_SECONDS}s" in pipe.log_of(rescuer)
