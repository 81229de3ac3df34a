"""The worker reports to the web tier: file outcomes in batches and a heartbeat, over real
HTTP to the real endpoint; a web tier that is down never slows or stops compression."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import waitress
from waitress import wasyncore

from dropgz.compression import worker as worker_module
from dropgz.compression.internal_client import InternalClient
from dropgz.compression.reporter import FileEvent, Reporter
from dropgz.core.secret import Secret
from dropgz.state.reports_sqlite import SqliteReportStore
from dropgz.web.app import create_app
from tests.compression.conftest import Rig, text_bytes
from tests.fixtures.peers import free_port, wait_for
from tests.fixtures.servers import serve
from tests.web.conftest import web_settings

KEY = "internal-key-for-reporter-tests-000000"


def web_app(tmp_path: Path) -> tuple[Any, SqliteReportStore]:
    store = SqliteReportStore(tmp_path / "reports.sqlite3")
    settings = web_settings(tmp_path, DROPGZ_SERVICE_INTERNAL_KEY=KEY)
    return create_app(settings, report_store=store), store


def test_a_worker_reports_each_file_and_beats(rig: Rig, tmp_path: Path) -> None:
    # Given a web tier and a worker reporting to it
    app, store = web_app(tmp_path)
    files = {f"/r/file-{n}.txt": text_bytes(5000 + n, seed=n) for n in range(5)}
    for path, data in files.items():
        rig.enqueue(rig.item(rig.upload(path, data)))
    rig.enqueue('{"path": "relative"}')  # never valid: dead-lettered, reported as failed
    with serve(app) as url:
        reporter = Reporter(InternalClient(url, Secret(KEY)), concurrency=4,
                            flush_seconds=0.2)
        worker = rig.worker(on_file=reporter.record, paused=reporter.paused)
        reporter.in_flight = lambda: worker.in_flight
        reporter.start()
        # When the worker compresses them
        report = worker.work(burst=True)
        reporter.close()
    # Then the web tier counted every file, with its bytes, and kept a heartbeat
    assert report.compressed == 5 and report.dead_lettered == 1
    totals = store.totals()
    assert totals["files:compressed"] == 5 and totals["files:failed"] == 1
    assert totals["bytes_in"] == report.bytes_in == sum(len(d) for d in files.values())
    assert totals["bytes_out"] == report.bytes_out
    assert {r.path for r in store.recent_files() if r.outcome == "compressed"} == set(files)
    [beat] = store.workers()
    assert beat.concurrency == 4 and beat.worker == reporter.worker_id
    assert reporter.dropped == 0 and reporter.sent == 6


def test_a_web_tier_that_is_down_costs_nothing_and_drops_counted(tmp_path: Path) -> None:
    # Given a reporter whose web tier is not there, with room for 100 records
    dead = InternalClient(f"http://127.0.0.1:{free_port()}", Secret(KEY), timeout=1)
    reporter = Reporter(dead, concurrency=1, flush_seconds=0.05, max_buffer=100).start()
    # When the worker records far more than that (record() never touches the network:
    # bench/reporting.py measures what it costs)
    for n in range(5000):
        reporter.record(FileEvent("dbid:a", f"/f{n}", "compressed", 10, 5, 0.01))
    # Then what did not fit was dropped, and counted
    wait_for(lambda: reporter.dropped >= 4900, what="drops counted")
    assert reporter.pending <= 100 and reporter.sent == 0
    reporter.close(timeout=2)


def test_reports_wait_while_the_web_tier_is_down_then_arrive(tmp_path: Path) -> None:
    app, store = web_app(tmp_path)
    port = free_port()
    reporter = Reporter(InternalClient(f"http://127.0.0.1:{port}", Secret(KEY), timeout=1),
                        concurrency=1, flush_seconds=0.05)
    for n in range(3):
        reporter.record(FileEvent("dbid:a", f"/f{n}", "compressed", 10, 5, 0.01))
    reporter.tick()  # the web tier is down: nothing sent, nothing lost
    assert (reporter.sent, reporter.pending, reporter.dropped) == (0, 3, 0)
    # When the web tier comes up on that port
    server = waitress.create_server(app, host="127.0.0.1", port=port, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        # Then the next round delivers them
        reporter.tick()
        assert (reporter.sent, reporter.pending) == (3, 0)
        assert store.totals()["files:compressed"] == 3
    finally:
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(10)
        server.task_dispatcher.shutdown()
    reporter.close(timeout=1)



def test_a_paused_accounts_files_wait_without_spending_deliveries(
        rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "PAUSED_DEFER_SECONDS", 1.0)
    # Given a queued file of an account the web tier says is paused
    data = text_bytes(3000)
    rig.enqueue(replace(rig.item(rig.upload("/wait/file.txt", data)),
                        account=rig.emulator.account_id))
    paused = {rig.emulator.account_id}
    worker = rig.worker(paused=lambda account: account in paused)
    # When a worker sees it, it is deferred: not compressed, not failed, not dead
    report = worker.work(max_jobs=1)
    assert (report.compressed, report.retried, report.dead_lettered) == (0, 0, 0)
    assert not rig.exists("/wait/file.txt.gz")
    assert rig.queue.stats().dead == 0
    # And once resumed, its next delivery (a first one again) compresses it
    paused.clear()
    report = worker.work(max_jobs=1)
    assert report.compressed == 1
    assert report.outcomes[0].path == "/wait/file.txt"
    rig.assert_gz_of("/wait/file.txt", data)
