"""Benchmark 3: many small files when every Dropbox call costs a round trip.

The emulator adds ``latency_ms`` to every API call (``--latency-ms``), as a far-away
Dropbox would. With that much latency a worker is bound by calls, not by CPU: with
``concurrency`` files in flight and ``calls`` Dropbox calls per file, it cannot beat
``concurrency / (calls × latency)`` files per second. The figure is the measured rate
over that bound (target 0.8), and the calls per file themselves (target at most 2.1:
download, upload_session/start and a share of one finish_batch_v2), counted by the
emulator. Its write contention is on, as on Dropbox (bench/batching.py adds a second user
and counts the 429s). A round takes about four seconds, and single rounds on a shared
2-core machine move by ±10 %: the figure is the median of ``rounds`` rounds, each on new
files, with their range.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dropbox

from bench.common import (
    BenchResult,
    Emulator,
    KiB,
    find_tool,
    kind_bytes,
    route_calls,
    running_emulator,
    seed_small_files,
)
from dropgz.cli.worker import single_account
from dropgz.compression.worker import Worker
from dropgz.core.config import Settings, load_settings
from dropgz.core.message import WorkItem
from dropgz.queues import open_work_queue

NAME = "small_files"
TITLE = "3. Small files under latency: files/s vs concurrency / (calls per file × latency)"
PRESETS = {
    "tiny": {"files": 48, "file_bytes": 4 * KiB, "concurrency": 16, "latency_ms": 20,
             "rounds": 1},
    "full": {"files": 500, "file_bytes": 4 * KiB, "concurrency": 16, "latency_ms": 50,
             "rounds": 5},
}
RATE_TARGET = 0.8  # files/s over the latency bound (the issue)
CALLS_TARGET = 2.1  # Dropbox calls per file (issue 13)
FOLDER = "/bench/small"
WORK_SECONDS = 600.0


def _contents(count: int, size: int) -> list[bytes]:
    """``count`` different small text files: slices of logs, CSV and JSON."""
    kinds = ["log", "csv", "json"]
    sources = {kind: kind_bytes(kind, (count // len(kinds) + 1) * size) for kind in kinds}
    return [sources[kinds[i % 3]][(i // 3) * size:(i // 3 + 1) * size] for i in range(count)]


def run(size: str, workdir: Path, **overrides: object) -> BenchResult:
    params = {**PRESETS[size], **overrides}
    result = BenchResult(NAME, TITLE, size, params,
                         columns=["round", "files", "concurrency", "latency ms", "seconds",
                                  "files/s", "calls/file", "bound files/s", "files/s / bound"])
    count, concurrency = int(params["files"]), int(params["concurrency"])
    contents = _contents(count, int(params["file_bytes"]))
    with running_emulator(workdir, "--latency-ms", str(params["latency_ms"])) as emulator:
        settings = load_settings(env=emulator.env(
            workdir / "data", DROPGZ_SERVICE_CONCURRENCY=str(concurrency),
            DROPGZ_AWS_VISIBILITY_TIMEOUT=str(int(WORK_SECONDS))))
        for round_ in range(1, int(params["rounds"]) + 1):
            calls = _one_round(result, emulator, settings, contents, params, round_)
    bound_figures(result, calls, count)
    return result


def bound_figures(result: BenchResult, calls: dict[str, int], count: int) -> None:
    """The two figures of a bound benchmark from its rounds' rows (medians, with the range
    of the rate), and the last round's calls by route."""
    ratios = [row["files/s / bound"] for row in result.rows]
    result.figure("files/s / (concurrency / (calls per file × latency))",
                  statistics.median(ratios), RATE_TARGET,
                  note=f"median of {len(ratios)} rounds; {min(ratios):.3f}–{max(ratios):.3f}"
                  if len(ratios) > 1 else "")
    per_file = statistics.median(row["calls/file"] for row in result.rows)
    result.figure("Dropbox calls per file", per_file, CALLS_TARGET, op="<=", unit="calls")
    result.notes.append("calls by route (last round): " + ", ".join(
        f"{route} {n / count:.3f}/file" for route, n in sorted(calls.items())))


def _one_round(result: BenchResult, emulator: Emulator, settings: Settings,
               contents: list[bytes], params: dict[str, object], round_: int
               ) -> dict[str, int]:
    """Seed ``contents`` as new files, compress them all; add the round's row; its calls."""
    count, concurrency = len(contents), int(params["concurrency"])
    latency = float(params["latency_ms"]) / 1000  # type: ignore[arg-type]
    dbx = emulator.client(pool_size=concurrency)
    paths = [f"{FOLDER}/r{round_}/file-{i:05d}.txt" for i in range(count)]
    # Seeded as the worker writes: sessions in parallel, commits in batches (no 429).
    metadata = seed_small_files(dbx, list(zip(paths, contents, strict=True)), concurrency)
    queue = open_work_queue(settings)
    try:
        queue.send([WorkItem(path=md.path_display, account=emulator.account_id, id=md.id,
                             rev=md.rev, size=md.size, content_hash=md.content_hash
                             ).to_json() for md in metadata])
        worker = Worker(queue, single_account(settings), concurrency=concurrency,
                        poll_seconds=1, visibility_timeout=int(WORK_SECONDS))
        before = emulator.stats()
        started = time.perf_counter()
        report = worker.work(max_jobs=count)
        seconds = time.perf_counter() - started
        calls = route_calls(before, emulator.stats())
    finally:
        queue.close()
    result.check(f"round {round_}: every file compressed", report.compressed == count)
    gz = read_all(dbx, [p + ".gz" for p in paths], concurrency)
    result.check(f"round {round_}: gzip -dc of every .gz gives its file back",
                 gunzip_all(gz) == b"".join(contents))
    per_file = sum(calls.values()) / count
    rate = count / seconds
    bound = concurrency / (per_file * latency)
    result.rows.append({"round": round_, "files": count, "concurrency": concurrency,
                        "latency ms": latency * 1000, "seconds": seconds,
                        "files/s": rate, "calls/file": per_file, "bound files/s": bound,
                        "files/s / bound": rate / bound})
    return calls


def _read(dbx: dropbox.Dropbox, path: str) -> bytes:
    _, response = dbx.files_download(path)
    with response:
        return response.content


def read_all(dbx: dropbox.Dropbox, paths: list[str], concurrency: int) -> list[bytes]:
    """The bytes of every path, ``concurrency`` downloads at a time (reads take no lock)."""
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda path: _read(dbx, path), paths))


def gunzip_all(members: list[bytes]) -> bytes | None:
    """GNU gzip reads concatenated members as one stream: one process checks them all."""
    gzip_cmd = find_tool("gzip")
    if gzip_cmd is None:
        raise RuntimeError("GNU gzip is not installed (apt-get install -y gzip)")
    done = subprocess.run([gzip_cmd, "-dc"], input=b"".join(members), capture_output=True,
                          timeout=120, check=False)
    return done.stdout if done.returncode == 0 else None
