"""Benchmark 7: what reporting to the web tier costs the worker.

The same worker, the same number of small files under the same emulator latency, with and
without a :class:`~dropgz.compression.reporter.Reporter` sending every outcome and a
heartbeat to a real ``dropgz web`` process (its own process, as in production). Rounds
alternate (without, with, with, without...) so a drift of the machine hits both alike.
The figure is files/s with reporting over files/s without (target ≥ 0.98: at most 2 %).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import BenchResult, KiB, kind_bytes, running_emulator
from dropgz.cli.worker import single_account
from dropgz.compression.internal_client import InternalClient
from dropgz.compression.reporter import Reporter
from dropgz.compression.worker import Worker
from dropgz.core.config import load_settings
from dropgz.core.message import WorkItem
from dropgz.core.secret import Secret
from dropgz.ops.peers import free_port
from dropgz.ops.processes import spawn, stop, wait_http
from dropgz.queues import open_work_queue
from dropgz.state.reports_sqlite import SqliteReportStore

NAME = "reporting"
TITLE = "7. Reporting to the web tier: worker files/s with reports vs without"
PRESETS = {
    "tiny": {"files": 40, "file_bytes": 2 * KiB, "concurrency": 16, "latency_ms": 10,
             "rounds": 2},
    "full": {"files": 400, "file_bytes": 4 * KiB, "concurrency": 16, "latency_ms": 20,
             "rounds": 4},
}
TARGET = 0.98  # at most 2 % slower (the issue)
WORK_SECONDS = 600


def run(size: str, workdir: Path, **overrides: object) -> BenchResult:
    params = {**PRESETS[size], **overrides}
    result = BenchResult(NAME, TITLE, size, params,
                         columns=["round", "reporting", "files", "seconds", "files/s"])
    count, concurrency = int(params["files"]), int(params["concurrency"])
    data = kind_bytes("log", int(params["file_bytes"]))
    key = secrets.token_urlsafe(32)
    port = free_port()
    web_data = workdir / "web-data"
    # Write contention off, as in small_files: the setup uploads in parallel, and what is
    # compared is the worker with and without reports, not its 429 backoffs.
    with running_emulator(workdir, "--latency-ms", str(params["latency_ms"]),
                          "--no-write-contention") as emulator:
        env = emulator.env(workdir / "data", DROPGZ_SERVICE_CONCURRENCY=str(concurrency),
                           DROPGZ_SERVICE_INTERNAL_KEY=key,
                           DROPGZ_AWS_VISIBILITY_TIMEOUT=str(WORK_SECONDS))
        # The web tier keeps its own data folder: the delta runs it starts for the seed's
        # account would otherwise queue these same files a second time into the worker's
        # queue (duplicates, which the worker rightly counts as skips, not compressions).
        web = spawn([sys.executable, "-m", "dropgz", "web", "--port", str(port),
                     "--log-level", "WARNING"], workdir / "web.log",
                    env={**os.environ, **env, "DROPGZ_SERVICE_DATA_DIR": str(web_data)})
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", web, workdir / "web.log")
            settings = load_settings(env=env)
            dbx = emulator.client(pool_size=concurrency)
            times = {False: 0.0, True: 0.0}
            sent = 0
            order = [False, True, True, False] * int(params["rounds"])
            for n, reporting in enumerate(order[:2 * int(params["rounds"])]):
                paths = [f"/bench/report/r{n}/f{i:05d}.log" for i in range(count)]
                with ThreadPoolExecutor(concurrency) as pool:
                    metadata = list(pool.map(lambda p: dbx.files_upload(data, p), paths))
                queue = open_work_queue(settings)
                queue.send([WorkItem(path=md.path_display, account=emulator.account_id,
                                     id=md.id, rev=md.rev, size=md.size).to_json()
                            for md in metadata])
                reporter = Reporter(InternalClient(f"http://127.0.0.1:{port}", Secret(key)),
                                    concurrency=concurrency) if reporting else None
                worker = Worker(queue, single_account(settings), concurrency=concurrency,
                                poll_seconds=1, visibility_timeout=WORK_SECONDS,
                                on_file=reporter.record if reporter else None,
                                paused=reporter.paused if reporter else None)
                if reporter:
                    reporter.start()
                started = time.perf_counter()
                report = worker.work(max_jobs=count)
                seconds = time.perf_counter() - started
                if reporter:
                    reporter.close()
                    sent += reporter.sent
                queue.close()
                result.check("every file compressed", report.compressed == count)
                times[reporting] += seconds
                result.rows.append({"round": n + 1, "reporting": "yes" if reporting else "no",
                                    "files": count, "seconds": seconds,
                                    "files/s": count / seconds})
        finally:
            stop(web)
    rounds = len(result.rows) // 2
    store = SqliteReportStore(web_data / "reports.sqlite3")
    reported = store.totals().get("files:compressed", 0)
    result.check("the web tier counted every reported file", reported == sent == count * rounds)
    without = count * rounds / times[False]
    with_reports = count * rounds / times[True]
    result.figure("files/s with reporting / without", with_reports / without, TARGET,
                  note=f"{with_reports:.1f} vs {without:.1f} files/s")
    return result
