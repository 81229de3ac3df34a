"""Fault scenarios: the whole pipeline (emulator → ``dropgz web`` → work queue →
``dropgz worker``) as real processes over loopback, with faults injected; every scenario
ends with the invariant checker."""

from __future__ import annotations

import gzip
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from dropgz.emulator.webhooks import signature
from dropgz.web.webhook import SIGNATURE_HEADER
from tests.compression.conftest import text_bytes
from tests.fixtures.emulator import start_emulator
from tests.fixtures.moto import moto_env
from tests.fixtures.peers import free_port
from tests.reliability.conftest import SOAK
from tests.reliability.harness import (
    CutProxy,
    Pipeline,
    World,
    check_invariants,
    notify_body,
    wait_for,
)


def sample(n: int, size: int = 20_000) -> tuple[str, bytes]:
    folder = ["", "/docs", "/logs/2026", "/Mixed Case/Sub Dir", "/ünïcode"][n % 5]
    return f"{folder}/file {n:03d}.txt", text_bytes(size + 997 * n, seed=n)


def seed_world(world: World, n_files: int, size: int = 20_000) -> dict[str, bytes]:
    """``n_files`` eligible files plus the files that must never get a .gz."""
    files = dict(sample(n, size) for n in range(n_files))
    for path, data in files.items():
        world.put(path, data)
    world.put("/notes.skip", b"excluded by pattern\n", eligible=False)
    world.put("/archive.tgz.gz", gzip.compress(b"a user's archive", mtime=0), eligible=False)
    return files


def start(pipe: Pipeline, world: World, *, workers: int = 1) -> None:
    """A file that exists before watching starts (never compressed), then web + workers."""
    world.put("/before-start.txt", b"existed before the service\n" * 20, eligible=False)
    pipe.start_web()
    for _ in range(workers):
        pipe.start_worker()


@pytest.fixture(autouse=True)
def exclude_skip(pipeline: tuple[Any, Pipeline]) -> None:
    pipeline[1].env["DROPGZ_COMPRESSION_EXCLUDE"] = "*.skip"


def test_flaky_dropbox_whole_pipeline(pipeline: tuple[Any, Pipeline], world: World) -> None:
    """Emulator fail-rate 0.1 (429/500/drop) + 30 ms latency, whole pipeline"""
    emulator, pipe = pipeline
    start(pipe, world, workers=2)
    emulator.configure(fail_rate=0.1, latency_ms=30, retry_after=1)
    seed_world(world, 40 if not SOAK else 400)
    pipe.settle(world, timeout=150)
    stats = emulator.stats()
    emulator.configure(fail_rate=0.0, latency_ms=0)
    assert sum(stats["faults"].values()) >= 5, stats["faults"]
    check_invariants(world, pipe.queue())


def _route_total(emulator: Any, route: str) -> int:
    return emulator.stats()["routes"].get(route, {}).get("total", 0)


def test_worker_sigkilled_repeatedly(pipeline: tuple[Any, Pipeline], world: World) -> None:
    """Worker SIGKILLed at random moments (4 times) and restarted"""
    emulator, pipe = pipeline
    pipe.env["DROPGZ_AWS_VISIBILITY_TIMEOUT"] = "3"  # killed claims come back quickly
    pipe.start_web()
    emulator.configure(latency_ms=60)  # keep several files in flight at every kill
    seed_world(world, 30)
    rng = random.Random(20261124)
    kills = 0
    for _ in range(4 if not SOAK else 12):
        worker = pipe.start_worker()
        wait_for(lambda: _route_total(emulator, "files/download") > 0, 30, "downloads begin")
        time.sleep(rng.uniform(0.5, 2.5))
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
            kills += 1
    assert kills >= 3
    emulator.configure(latency_ms=0)
    pipe.start_worker()
    pipe.settle(world, timeout=120)
    check_invariants(world, pipe.queue())


def _pending_tasks(pipe: Pipeline) -> list[dict[str, Any]]:
    from dropgz.pushqueue.local import LocalPushQueue
    return [t for t in LocalPushQueue(pipe.workdir / "data" / "pushqueue.sqlite3",
                                      secret=None).pending()  # type: ignore[arg-type]
            if t["url"] == "/tasks/delta"]


def test_web_killed_in_the_middle_of_a_delta_run(pipeline: tuple[Any, Pipeline],
                                                 world: World) -> None:
    """Web process SIGKILLed in the middle of a delta run, then restarted"""
    emulator, pipe = pipeline
    pipe.start_web()
    pipe.start_worker()
    with emulator.holding("files/list_folder/continue"):
        seed_world(world, 12, size=2_000)
        # a delta run in progress: its task claimed by the dispatcher, its listing in flight
        emulator.wait_held("files/list_folder/continue", timeout=60)
        wait_for(lambda: [t for t in _pending_tasks(pipe) if t["attempts"] > 0], 30,
                 "the delta task claimed")
        pipe.web.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        pipe.web.wait(10)  # type: ignore[union-attr]
    claimed = [t for t in _pending_tasks(pipe) if t["attempts"] > 0]
    pipe.start_web()
    pipe.settle(world, timeout=120)
    check_invariants(world, pipe.queue())
    assert claimed, "the kill did not catch a delta task in flight"


def test_push_queue_restarted_with_tasks_pending(pipeline: tuple[Any, Pipeline],
                                                 world: World) -> None:
    """Local push queue stopped with delta tasks pending; restarted, it delivers them"""
    from dropgz.pushqueue.base import delta_task
    from dropgz.pushqueue.local import LocalPushQueue, load_task_secret

    emulator, pipe = pipeline
    pipe.start_web()
    pipe.start_worker()
    assert pipe.stop(pipe.web) == 0
    emulator.configure(webhook_url="")  # Dropbox's notifications stop reaching us
    seed_world(world, 10, size=3_000)
    # the notification that arrived just before the stop: its task is still pending
    queue = LocalPushQueue(pipe.workdir / "data" / "pushqueue.sqlite3",
                           load_task_secret(pipe.workdir / "data"))
    # (in a later coalescing bucket than the reconcile run the web made at its start)
    task = delta_task(emulator.account_id, now=time.time() + 60)
    assert queue.add([task]) == [True]
    assert task.name in [t["name"] for t in _pending_tasks(pipe)]
    pipe.start_web()
    pipe.settle(world, timeout=60)
    wait_for(lambda: not _pending_tasks(pipe), 30, "every pending task delivered",
             diagnose=lambda: str(_pending_tasks(pipe)))
    check_invariants(world, pipe.queue())


def _post_notification(url: str, secret: str, body: bytes) -> int:
    return requests.post(url, data=body, timeout=10,
                         headers={SIGNATURE_HEADER: signature(secret, body)}).status_code


def test_duplicate_late_and_out_of_order_webhooks(pipeline: tuple[Any, Pipeline],
                                                  world: World) -> None:
    """50 notifications for one account in a second, then late and out-of-order replays"""
    emulator, pipe = pipeline
    start(pipe, world)
    seed_world(world, 10, size=3_000)
    url, secret = f"{pipe.base_url}/webhook", emulator.app_secret
    body = notify_body(emulator.account_id)
    other = notify_body("dbid:AAnotOurs000000000000000000000000000", emulator.account_id)
    started = time.monotonic()
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda b=b: statuses.append(
        _post_notification(url, secret, b))) for b in [body] * 45 + [other] * 5]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert time.monotonic() - started < 5
    assert statuses == [200] * 50
    pipe.settle(world, timeout=60)
    check_invariants(world, pipe.queue())
    # (a small .gz goes up in upload_session/start, a large one also appends)
    uploads = _route_total(emulator, "files/upload_session/start")
    runs = pipe.logs().count("delta run done")
    # late and out-of-order: old notifications replayed after the work is done
    for replay in [other, body, body, other, body]:
        assert _post_notification(url, secret, replay) == 200
        time.sleep(0.3)
    # the replays' delta runs have happened (not merely had time to)
    wait_for(lambda: pipe.logs().count("delta run done") > runs and not _pending_tasks(pipe),
             30, "the replays' delta runs done", diagnose=lambda: str(_pending_tasks(pipe)))
    pipe.settle(world, timeout=30)
    check_invariants(world, pipe.queue())
    assert _route_total(emulator, "files/upload_session/start") == uploads, \
        "a replay made new uploads"


def test_sqs_unreachable_for_ten_seconds(pipeline: tuple[Any, Pipeline], world: World,
                                         moto_server: str) -> None:
    """SQS unreachable 10 s (refused 5 s, then dropped 5 s) behind a proxy, then back"""
    from dropgz.core.config import load_settings
    from dropgz.queues.sqs import ensure_queues

    _, pipe = pipeline
    host, port = moto_server.rsplit("//", 1)[1].split(":")
    proxy = CutProxy(host, int(port))
    try:
        env = moto_env(moto_server, pipe.workdir)
        ensure_queues(load_settings(env={**pipe.env, **env}))
        env["DROPGZ_AWS_ENDPOINT_URL"] = proxy.url
        pipe.env.update(env)
        start(pipe, world)
        first = seed_world(world, 5, size=3_000)
        pipe.settle(world, timeout=60)
        proxy.refuse()
        for n in range(5, 10):  # changes while SQS is away
            world.put(*sample(n, 3_000))
        time.sleep(5)
        proxy.blackhole()
        for n in range(10, 15):
            world.put(*sample(n, 3_000))
        time.sleep(5)
        proxy.restore()
        assert first
        pipe.settle(world, timeout=90)
        check_invariants(world, pipe.queue())
        assert pipe.web.poll() is None and all(w.poll() is None for w in pipe.workers), \
            pipe.logs()[-4000:]
        assert "cannot reach SQS" in pipe.logs(), "the outage was not felt"
    finally:
        proxy.close()


def test_files_change_while_being_compressed(pipeline: tuple[Any, Pipeline],
                                             world: World) -> None:
    """A file modified, one deleted and a folder renamed while being compressed"""
    emulator, pipe = pipeline
    start(pipe, world)
    world.mkdir("/moving")
    for name in ("edited.txt", "deleted.txt"):
        world.put(f"/race/{name}", text_bytes(50_000, seed=len(name)))
    # the worker has downloaded and compressed all three; their uploads are held
    with emulator.holding("files/upload_session/start"):
        world.put("/moving/inside.txt", text_bytes(40_000, seed=7))
        emulator.wait_held("files/upload_session/start", 3, timeout=60)
        world.put("/race/edited.txt", text_bytes(60_000, seed=99))
        world.delete("/race/deleted.txt")
        world.move_folder("/moving", "/moved")
    pipe.settle(world, timeout=60)
    check_invariants(world, pipe.queue())


def test_rate_limit_storm_no_hot_loop(pipeline: tuple[Any, Pipeline], world: World) -> None:
    """429 storm for 6 s: Retry-After honoured, Dropbox calls counted, no hot loop"""
    emulator, pipe = pipeline
    world.put("/before-start.txt", b"existed before the service\n", eligible=False)
    pipe.start_web()
    files = seed_world(world, 6, size=5_000)
    wait_for(lambda: pipe.queue().stats().visible == len(files), 30, "work messages queued")
    emulator.configure(fail_rate=1.0, fail_kinds=["429"], retry_after=2)
    worker = pipe.start_worker()  # concurrency 4
    pipe.wait_worker_started(worker)  # counted from here, however long the start took
    emulator.reset_stats()
    time.sleep(6)  # the storm's length
    limited = emulator.stats()["statuses"].get("429", 0)
    emulator.configure(fail_rate=0.0)
    pipe.settle(world, timeout=60)
    check_invariants(world, pipe.queue())
    # 4 callers, each waiting Retry-After (2 s) between tries: about 4 × (6 / 2 + 1) calls
    assert 4 <= limited <= 24, f"{limited} calls during the storm"


@pytest.mark.soak
def test_soak_everything_at_once(pipeline: tuple[Any, Pipeline], world: World) -> None:
    """Soak: 300 files, fail-rate 0.1, two workers killed and restarted for 3 minutes"""
    emulator, pipe = pipeline
    pipe.env["DROPGZ_AWS_VISIBILITY_TIMEOUT"] = "5"
    pipe.env["DROPGZ_AWS_MAX_RECEIVE_COUNT"] = "30"
    start(pipe, world, workers=2)
    emulator.configure(fail_rate=0.1, latency_ms=20)
    seed_world(world, 300)
    rng = random.Random(7)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(2, 10))
        victim = rng.choice([w for w in pipe.workers if w.poll() is None])
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        pipe.start_worker()
        if not world.missing_gz():
            break
    emulator.configure(fail_rate=0.0, latency_ms=0)
    pipe.settle(world, timeout=300)
    check_invariants(world, pipe.queue())


def test_pipeline_logs_hold_no_secret(tmp_path: Path, moto_server: str) -> None:
    """Secrets (token, app secret, AWS keys, task secret) never in logs or answers"""
    port = free_port()
    with start_emulator(tmp_path / "emulator",
                        webhook_url=f"http://127.0.0.1:{port}/webhook") as emulator:
        pipe = Pipeline(emulator, tmp_path, port, DROPGZ_COMPRESSION_EXCLUDE="*.skip",
                        DROPGZ_SERVICE_TASK_SECRET="task-secret-value-9f8e7d6c")
        pipe.env.update(moto_env(moto_server, tmp_path))
        from dropgz.core.config import load_settings
        from dropgz.queues.sqs import ensure_queues
        ensure_queues(load_settings(env=pipe.env))
        world = World(emulator.client())
        try:
            start(pipe, world)
            emulator.configure(fail_rate=0.2, fail_kinds=["500", "drop"])
            seed_world(world, 6, size=3_000)
            answers = [requests.post(f"{pipe.base_url}/webhook", data=b"{}", timeout=5),
                       requests.post(f"{pipe.base_url}/tasks/delta", json={}, timeout=5),
                       requests.get(f"{pipe.base_url}/nope", timeout=5)]
            pipe.settle(world, timeout=90)
            emulator.configure(fail_rate=0.0)
            check_invariants(world, pipe.queue())
            assert pipe.stop(pipe.web) == 0
            captured = pipe.logs() + "".join(a.text for a in answers)
            captured += repr(pipe.settings()) + str(pipe.settings())
            secrets = {"token": emulator.token, "app secret": emulator.app_secret,
                       "AWS secret key": pipe.env["DROPGZ_AWS_AWS_SECRET_ACCESS_KEY"],
                       "task secret": "task-secret-value-9f8e7d6c"}
            assert "INFO" in captured and "delta run done" in captured
            for name, value in secrets.items():
                assert value not in captured, f"the {name} leaked"
        finally:
            pipe.close()


def test_worker_survives_sqs_outage_without_client_retries(emulator: Any, moto_server: str,
                                                           tmp_path: Path) -> None:
    """Worker loop keeps running when SQS calls fail outright (no botocore retries), 10 s"""
    from dropgz.cli.worker import single_account
    from dropgz.compression.worker import Worker
    from dropgz.core.config import load_settings
    from dropgz.queues.sqs import SQSWorkQueue, ensure_queues, make_client
    from tests.compression.conftest import emulator_env

    host, port = moto_server.rsplit("//", 1)[1].split(":")
    proxy = CutProxy(host, int(port))
    env = {**emulator_env(emulator, tmp_path), **moto_env(moto_server, tmp_path)}
    ensure_queues(load_settings(env=env))
    settings = load_settings(env={**env, "DROPGZ_AWS_ENDPOINT_URL": proxy.url})
    queue = SQSWorkQueue.from_settings(settings, client=make_client(settings, max_attempts=1))
    direct = SQSWorkQueue.from_settings(load_settings(env=env))
    world = World(emulator.client())
    worker = Worker(queue, single_account(settings), concurrency=2, poll_seconds=1,
                    visibility_timeout=settings.aws.visibility_timeout)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            worker.work()
        except BaseException as exc:  # the scenario's finding: the loop must not end
            failures.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    try:
        thread.start()
        proxy.refuse()
        for n in range(4):
            md = world.put(*sample(n, 3_000))
            direct.send([f'{{"path": "{md.path_display}", "rev": "{md.rev}"}}'])
        time.sleep(10)
        proxy.restore()
        wait_for(lambda: not world.missing_gz() or failures, 60, "files compressed after SQS")
        assert not failures, f"the worker loop died: {failures[0]!r}"
        wait_for(lambda: direct.stats().in_flight == 0, 30, "messages acked")
        check_invariants(world, direct)
    finally:
        worker.request_stop()
        proxy.restore()
        thread.join(30)
        proxy.close()
        queue.close()
        direct.close()
