"""Benchmark 2: the worker's memory does not grow with the file it compresses.

For each size, a fresh ``dropgz worker`` process (the real command, its own process so
its memory is its own) starts on an empty queue; once it logs that it is running and
has settled, its resident set is the *idle* RSS. Then one work message for a file of
that size is queued; when the message is settled and the ``.gz`` is in Dropbox, the
kernel's high-water mark (``VmHWM`` in ``/proc/<pid>/status``) is the *peak*.
Peak − idle is what compressing the file cost. Targets: at most 32 MiB for the largest
file, and the same within ±10 % for every size.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.common import (
    BenchResult,
    Emulator,
    KiB,
    MiB,
    download_to,
    gunzip_sha256,
    mixed_chunks,
    proc_status_kib,
    running_emulator,
    sha256_of,
    upload_chunks,
    wait_until,
)
from dropgz.core.config import load_settings
from dropgz.core.message import WorkItem
from dropgz.ops.processes import spawn, stop
from dropgz.queues import open_work_queue

NAME = "memory"
TITLE = "2. Memory: worker peak RSS minus idle RSS, by file size"
PRESETS = {
    # Above 16 MiB, so both go through the streaming path (compress.SINGLE_UPLOAD_MAX_SOURCE).
    "tiny": {"sizes": "17MiB,34MiB", "compressor": "gzip", "level": 1, "worker_env": ""},
    "full": {"sizes": "256MiB,1GiB", "compressor": "gzip", "level": 6, "worker_env": ""},
}
MAX_GROWTH_MIB = 32.0  # peak - idle for the largest file (the issue)
SAME_WITHIN = 0.10  # every size within ±10 % of the largest (the issue)
START_SECONDS = 60.0
SETTLE_SECONDS = 1.0  # after "worker started": let the first poll and imports finish
WORK_SECONDS = 900.0
SAMPLE_SECONDS = 0.05


def _sizes(text: str) -> list[int]:
    from dropgz.core.config import parse_size

    return [parse_size(part) for part in str(text).split(",") if part.strip()]


def _label(size: int) -> str:
    return f"{size / (1 << 30):g} GiB" if size >= 1 << 30 else f"{size / MiB:g} MiB"


def run(size: str, workdir: Path, **overrides: object) -> BenchResult:
    params = {**PRESETS[size], **overrides}
    result = BenchResult(NAME, TITLE, size, params,
                         columns=["file", "idle RSS MiB", "peak RSS MiB", "peak − idle MiB",
                                  "sampled max − idle MiB", "seconds"])
    sizes = sorted(_sizes(str(params["sizes"])))
    growth: dict[int, float] = {}
    with running_emulator(workdir) as emulator:
        dbx = emulator.client()
        for file_bytes in sizes:
            path = f"/bench/memory/mixed-{file_bytes}.log"
            md = upload_chunks(dbx, path, mixed_chunks(file_bytes))
            row = _measure(emulator, workdir / f"worker-{file_bytes}", md, params, result)
            growth[file_bytes] = row["peak − idle MiB"]
            result.rows.append({"file": _label(file_bytes), **row})
            local = workdir / "out.gz"
            download_to(dbx, path + ".gz", local)
            result.check(f"{_label(file_bytes)}: gzip -dc of the .gz gives the input back",
                         gunzip_sha256(local) == sha256_of(mixed_chunks(file_bytes)))
            local.unlink()
            dbx.files_delete_v2(path)  # free the emulator's disk before the next size
    largest = sizes[-1]
    result.figure(f"peak − idle RSS, {_label(largest)} file", growth[largest], MAX_GROWTH_MIB,
                  op="<=", unit="MiB")
    for file_bytes in sizes[:-1]:
        result.figure(f"growth {_label(largest)} / growth {_label(file_bytes)}",
                      growth[largest] / growth[file_bytes] if growth[file_bytes] else 0.0,
                      SAME_WITHIN, op="±")
    return result


def _measure(emulator: Emulator, data_dir: Path, md, params: dict, result: BenchResult) -> dict:
    """Run one worker process on one file; its idle, peak and sampled RSS in MiB."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = emulator.env(data_dir, DROPGZ_COMPRESSION_COMPRESSOR=str(params["compressor"]),
                       DROPGZ_COMPRESSION_LEVEL=str(params["level"]),
                       DROPGZ_SERVICE_CONCURRENCY="1",
                       DROPGZ_AWS_VISIBILITY_TIMEOUT=str(int(WORK_SECONDS)))
    settings = load_settings(env=env)
    # Extra variables for the worker only, e.g. "MALLOC_ARENA_MAX=2;PYTHONMALLOC=malloc".
    extra = dict(item.split("=", 1) for item in str(params["worker_env"]).split(";") if "=" in item)
    queue = open_work_queue(settings)
    log_path = data_dir / "worker.log"
    proc = spawn([sys.executable, "-m", "dropgz", "worker", "--log-level", "INFO"], log_path,
                 env={**_base_env(), **env, **extra})
    try:
        wait_until(lambda: _started(proc, log_path), START_SECONDS, "dropgz worker start")
        time.sleep(SETTLE_SECONDS)
        idle = proc_status_kib(proc.pid, "VmRSS")
        started = time.perf_counter()
        queue.send([WorkItem(path=md.path_display, account=emulator.account_id, id=md.id,
                             rev=md.rev, size=md.size).to_json()])
        sampled = idle
        deadline = time.monotonic() + WORK_SECONDS
        while not _settled(queue):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not finish {md.path_display}: "
                                   f"{log_path.read_text(errors='replace')[-2000:]}")
            sampled = max(sampled, proc_status_kib(proc.pid, "VmRSS"))
            time.sleep(SAMPLE_SECONDS)
        seconds = time.perf_counter() - started
        peak = proc_status_kib(proc.pid, "VmHWM")
    finally:
        code = stop(proc)
        queue.close()
    result.check(f"{md.size} bytes: worker compressed the file",
                 "outcome=compressed" in log_path.read_text(errors="replace"))
    result.check(f"{md.size} bytes: worker exited cleanly on SIGTERM", code == 0)
    return {"idle RSS MiB": idle * KiB / MiB, "peak RSS MiB": peak * KiB / MiB,
            "peak − idle MiB": (peak - idle) * KiB / MiB,
            "sampled max − idle MiB": (sampled - idle) * KiB / MiB, "seconds": seconds}


def _base_env() -> dict[str, str]:
    import os

    # The worker must not pick up a settings.cfg or DROPGZ_* from the caller's shell.
    return {k: v for k, v in os.environ.items()
            if not k.startswith("DROPGZ_") and k != "PYTHONSTARTUP"}


def _started(proc: subprocess.Popen[bytes], log_path: Path) -> bool:
    if proc.poll() is not None:
        raise RuntimeError(f"dropgz worker exited with {proc.returncode}: "
                           f"{log_path.read_text(errors='replace')[-2000:]}")
    return log_path.exists() and "worker started" in log_path.read_text(errors="replace")


def _settled(queue) -> bool:
    stats = queue.stats()
    return stats.visible == 0 and stats.in_flight == 0
