"""Benchmark 1: one large file through the worker, end to end, against the bare compressor.

The worker takes one work message from the SQLite queue, streams the file down from the
emulator over loopback, gzips it and uploads ``name.gz`` through an upload session; its
wall time runs from ``Worker.work`` to the settled message. The bare compressor is the
same backend and level fed the same bytes in the same 1 MiB blocks, with nothing else.
Both take the best of ``repeats``. Target: the worker at 0.85 of the bare compressor's MB/s.

Both produce the same bytes (same name and MTIME in the header, same blocks), so the
check is strict: Dropbox's content hash of the uploaded ``.gz`` must equal the bare
output's, and GNU ``gzip -dc`` of the downloaded ``.gz`` must give the input back.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from dropbox.content_hash import DropboxContentHasher
from dropbox.exceptions import ApiError

from bench.common import (
    BenchResult,
    MiB,
    download_to,
    gunzip_sha256,
    mb_per_s,
    mixed_chunks,
    running_emulator,
    sha256_of,
    upload_chunks,
)
from bench.compressors import compress_with
from dropgz.cli.worker import single_account
from dropgz.compression.gzstream import CHUNK_SIZE, unix_mtime
from dropgz.compression.worker import Worker
from dropgz.core.config import load_settings
from dropgz.core.message import WorkItem
from dropgz.queues import open_work_queue

NAME = "throughput"
TITLE = "1. Large-file throughput: worker end to end vs the bare compressor"
PRESETS = {
    "tiny": {"file_bytes": 4 * MiB, "compressors": "gzip,isal", "level": 6, "repeats": 1},
    "full": {"file_bytes": 256 * MiB, "compressors": "gzip,isal", "level": 6, "repeats": 2},
}
TARGET = 0.85  # worker MB/s / bare compressor MB/s (the issue)
PATH = "/bench/throughput/mixed-data.log"
WORK_SECONDS = 900  # a file this size that takes longer is stuck, not slow


def content_hash(data: bytes) -> str:
    hasher = DropboxContentHasher()
    hasher.update(data)
    return hasher.hexdigest()


def run(size: str, workdir: Path, **overrides: object) -> BenchResult:
    params = {**PRESETS[size], **overrides}
    result = BenchResult(NAME, TITLE, size, params,
                         columns=["compressor", "level", "bare MB/s", "worker MB/s",
                                  "worker / bare", "output ratio", "worker s"])
    file_bytes, level = int(params["file_bytes"]), int(params["level"])
    repeats = int(params["repeats"])
    names = [n.strip() for n in str(params["compressors"]).split(",") if n.strip()]
    input_sha = sha256_of(mixed_chunks(file_bytes))
    with running_emulator(workdir) as emulator:
        dbx = emulator.client()
        md = upload_chunks(dbx, PATH, mixed_chunks(file_bytes))
        result.check("source uploaded whole", md.size == file_bytes)
        for compressor in names:
            bare_seconds, bare_out = _bare(compressor, level, file_bytes, md, repeats)
            worker_seconds, outcome = _through_worker(emulator, workdir / compressor, md,
                                                      compressor, level, repeats)
            bare_speed = mb_per_s(file_bytes, bare_seconds)
            worker_speed = mb_per_s(file_bytes, worker_seconds)
            result.rows.append({
                "compressor": compressor, "level": level, "bare MB/s": bare_speed,
                "worker MB/s": worker_speed, "worker / bare": worker_speed / bare_speed,
                "output ratio": len(bare_out) / file_bytes, "worker s": worker_seconds})
            result.figure(f"{compressor}: worker MB/s / bare MB/s", worker_speed / bare_speed,
                          TARGET)
            result.check(f"{compressor}: worker compressed the file",
                         outcome is not None and outcome.status == "compressed")
            gz_md = dbx.files_get_metadata(PATH + ".gz")
            result.check(f"{compressor}: uploaded .gz is byte-identical to the bare output",
                         gz_md.content_hash == content_hash(bare_out))
            local = workdir / f"{compressor}.gz"
            download_to(dbx, PATH + ".gz", local)
            result.check(f"{compressor}: gzip -dc of the .gz gives the input back",
                         gunzip_sha256(local) == input_sha)
            local.unlink()
    return result


def _bare(compressor: str, level: int, file_bytes: int, md: object, repeats: int
          ) -> tuple[float, bytes]:
    """Best seconds of the bare compressor on the file's bytes, and its output."""
    best, output = float("inf"), b""
    for _ in range(repeats):
        blocks = list(mixed_chunks(file_bytes, chunk=CHUNK_SIZE))  # made before the clock
        output, seconds = compress_with(compressor, level, blocks, name=md.name.encode(),
                                        mtime=unix_mtime(md.client_modified))
        best = min(best, seconds)
    return best, output


def _through_worker(emulator, data_dir: Path, md, compressor: str, level: int,
                    repeats: int) -> tuple[float, object]:
    """Best wall seconds of a worker compressing the file, and the last outcome."""
    settings = load_settings(env=emulator.env(
        data_dir, DROPGZ_COMPRESSION_COMPRESSOR=compressor,
        DROPGZ_COMPRESSION_LEVEL=str(level)))
    queue = open_work_queue(settings)
    item = WorkItem(path=md.path_display, account=emulator.account_id, id=md.id, rev=md.rev,
                    size=md.size, content_hash=md.content_hash)
    dbx = emulator.client()
    best, outcome = float("inf"), None
    try:
        for _ in range(repeats):
            _remove(dbx, PATH + ".gz")  # each run writes a new .gz, as for a new file
            queue.send([item.to_json()])
            worker = Worker(queue, single_account(settings), concurrency=1, poll_seconds=1,
                            visibility_timeout=WORK_SECONDS)
            started = time.perf_counter()
            report = worker.work(max_jobs=1)
            best = min(best, time.perf_counter() - started)
            outcome = report.outcomes[0] if report.outcomes else None
    finally:
        queue.close()
    return best, outcome


def _remove(dbx, path: str) -> None:
    with contextlib.suppress(ApiError):  # not there yet
        dbx.files_delete_v2(path)
