"""Delivery under stress: the worker as a real process (SIGTERM drain), 429 storms, faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from dropgz.core.retries import RetryPolicy
from tests.compression.conftest import Rig, emulator_env, text_bytes
from tests.fixtures.peers import gunzip_bytes, wait_for


def test_sigterm_finishes_in_flight_files_and_loses_nothing(emulator, make_rig,
                                                            tmp_path: Path) -> None:
    # Given six files and a worker doing two at a time
    rig: Rig = make_rig(emulator)
    files = {f"/slow/file-{n}.txt": text_bytes(30_000, seed=n) for n in range(6)}
    rig.enqueue(*(rig.item(rig.upload(p, d)) for p, d in files.items()))
    log_path = tmp_path / "worker.log"
    env = {**os.environ, **emulator_env(emulator, tmp_path)}
    with emulator.holding("files/download"):
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "dropgz", "worker", "--concurrency", "2"],
                env=env, stdout=log, stderr=log, cwd=tmp_path)
        # When SIGTERM arrives while two files are in flight (their downloads held)
        emulator.wait_held("files/download", 2, timeout=30)
        worker.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping: finishing 2 file(s)" in log_path.read_text(), 30,
                 "the worker heard the SIGTERM", diagnose=log_path.read_text)
    code = worker.wait(timeout=60)
    log = log_path.read_text()
    # Then it exits 0 saying it drained, the in-flight files have their .gz, and every
    # other message is still in the queue: nothing lost
    assert code == 0, log
    done = [p for p in files if rig.exists(p + ".gz")]
    assert len(done) == 2, log
    for path in done:
        assert gunzip_bytes(rig.read(path + ".gz")) == files[path]
    stats = rig.queue.stats()
    assert stats.in_flight == 0
    assert stats.visible + len(done) == len(files), (stats, done)
    # and a new worker finishes the rest
    rig.worker().work(burst=True)
    for path, data in files.items():
        rig.assert_gz_of(path, data)


def test_second_signal_exits_at_once_and_messages_come_back(emulator, make_rig,
                                                            tmp_path: Path) -> None:
    rig: Rig = make_rig(emulator, DROPGZ_AWS_VISIBILITY_TIMEOUT="2")
    rig.enqueue(rig.item(rig.upload("/stuck.txt", text_bytes(10_000))))
    env = {**os.environ, **emulator_env(emulator, tmp_path, DROPGZ_AWS_VISIBILITY_TIMEOUT="2")}
    log_path = tmp_path / "worker.log"
    with emulator.holding("files/download"):
        with log_path.open("wb") as log:
            worker = subprocess.Popen([sys.executable, "-m", "dropgz", "worker"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=log, cwd=tmp_path)
        emulator.wait_held("files/download", 1, timeout=30)
        worker.send_signal(signal.SIGTERM)
        # (two signals sent at once may arrive as one: the second follows the first's effect)
        wait_for(lambda: "stopping: finishing" in log_path.read_text(), 30,
                 "the first SIGTERM heard", diagnose=log_path.read_text)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=10) != 0
    assert "stopping now" in log_path.read_text()
    # the abandoned message comes back once its claim runs out
    wait_for(lambda: rig.queue.stats().visible == 1, 15, "the abandoned message back")
    report = rig.worker().work(burst=True)
    assert report.compressed == 1
    rig.assert_gz_of("/stuck.txt", text_bytes(10_000))


def test_retry_after_is_honoured_no_hot_loop(emulator, rig: Rig) -> None:
    # Given every Dropbox call answered 429 with Retry-After: 1 for three seconds
    data = text_bytes(5_000)
    rig.enqueue(rig.item(rig.upload("/limited.txt", data)))
    emulator.reset_stats()
    emulator.configure(fail_rate=1.0, fail_kinds=["429"], retry_after=1)
    started = time.monotonic()
    lift = threading.Timer(3.0, lambda: emulator.configure(fail_rate=0.0))
    lift.start()
    try:
        report = rig.worker(concurrency=1).work(burst=True)
    finally:
        lift.cancel()
        emulator.configure(fail_rate=0.0)
    # Then the storm cost a handful of calls, not a hot loop, and the file got its .gz
    limited = emulator.stats()["statuses"].get("429", 0)
    elapsed = time.monotonic() - started
    assert 1 <= limited <= 6, emulator.stats()
    assert elapsed >= 2.5
    rig.assert_gz_of("/limited.txt", data)
    assert report.compressed == 1 and report.retried == 0


def test_flaky_dropbox_still_gives_every_gz(emulator, make_rig) -> None:
    # 20% of calls fail (429, 500 or a dropped connection): retries and resumes heal it all
    rig: Rig = make_rig(emulator, DROPGZ_AWS_MAX_RECEIVE_COUNT="20")
    files = {f"/flaky/f{n}.log": text_bytes(200_000 + n * 1000, seed=n) for n in range(8)}
    items = [rig.item(rig.upload(p, d)) for p, d in files.items()]
    # (and the first two calls fail whatever the draw: with two calls per file and a shared
    # batch commit, twenty-odd calls could all pass by chance)
    emulator.configure(fail_rate=0.2, retry_after=1, fail_next=2)
    rig.enqueue(*items)
    worker = rig.worker(concurrency=4,
                        policy=RetryPolicy(max_receives=20, base_delay=0.2, max_delay=2.0))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        worker.work(burst=True)
        stats = rig.queue.stats()
        if stats.visible == 0 and stats.in_flight == 0:
            break
        time.sleep(0.5)
    emulator.configure(fail_rate=0.0)
    assert emulator.stats()["faults"], "no fault was injected"
    for path, data in files.items():
        rig.assert_gz_of(path, data)
    assert rig.queue.stats().dead == 0



def test_heartbeat_keeps_a_slow_file_claimed_past_its_claim(emulator, make_rig) -> None:
    # Given a 2 s claim, and a file whose download hangs for more than two claims
    rig: Rig = make_rig(emulator, DROPGZ_AWS_VISIBILITY_TIMEOUT="2")
    data = text_bytes(10_000)
    rig.enqueue(rig.item(rig.upload("/slow.txt", data)))
    emulator.reset_stats()
    first, second = rig.worker(concurrency=1), rig.worker(concurrency=1)
    reports: dict[str, object] = {}
    working = threading.Thread(target=lambda: reports.update(first=first.work(max_jobs=1)))
    polling = threading.Thread(target=lambda: reports.update(second=second.work()))
    with emulator.holding("files/download"):
        working.start()
        emulator.wait_held("files/download", 1, timeout=15)
        # When a second worker keeps polling the same queue all that time
        polling.start()
        time.sleep(5)  # two and a half claims pass, the download provably still in flight
    working.join(60)
    second.request_stop()
    polling.join(30)
    # Then the heartbeat kept it claimed: only the first worker ever received or downloaded it
    assert not working.is_alive() and not polling.is_alive()
    assert reports["first"].compressed == 1  # type: ignore[attr-defined]
    assert reports["second"].received == 0  # type: ignore[attr-defined]
    assert emulator.stats()["routes"]["files/download"]["total"] == 1
    rig.assert_gz_of("/slow.txt", data)
    assert rig.queue.stats().in_flight == 0
