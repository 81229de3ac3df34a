"""Benchmark 10: small files with tokens from the web tier against the seed's own token.

Two workers compress the same kind of small files under the same emulator latency, in the
same run, taking turns in ABBA order (``rounds`` each, fresh files every round):

- *seed token*: the worker holds ``[Dropbox] token`` itself (the seed's deployment);
- *brokered*: the worker holds no Dropbox credential; it asks the web tier
  (``POST /internal/token`` on :mod:`bench.webhook_server`, signed) for the account's
  short-lived token, minted from the grant stored when the user connected through
  ``/connect``, and caches it.

Figure: brokered files/s over seed-token files/s (target at least 0.95): the broker costs a
worker one small call per account per minute, not one per file.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.fernet import Fernet

from bench.common import BenchResult, KiB, route_calls, running_emulator
from bench.many_accounts import connect_settings_env
from bench.small_files import _contents, _read, gunzip_all
from bench.webhook import start_server
from dropgz.cli.worker import single_account
from dropgz.compression.internal_client import InternalClient
from dropgz.compression.tokens import BrokeredCompressors, TokenSource
from dropgz.compression.worker import CompressorLookup, Worker
from dropgz.core.config import Settings, load_settings
from dropgz.core.message import WorkItem
from dropgz.core.secret import Secret
from dropgz.ops.connect_driver import connect_over_http
from dropgz.ops.peers import free_port
from dropgz.ops.processes import stop
from dropgz.queues import open_work_queue

NAME = "brokered_tokens"
TITLE = "10. Small files: tokens from the web tier vs the seed's own token, same run"
PRESETS = {
    "tiny": {"files": 48, "file_bytes": 4 * KiB, "concurrency": 16, "latency_ms": 20,
             "rounds": 1},
    "full": {"files": 600, "file_bytes": 4 * KiB, "concurrency": 16, "latency_ms": 50,
             "rounds": 4},
}
RATIO_TARGET = 0.95  # the issue
INTERNAL_KEY = "bench-internal-key-0123456789abcdef"
WORK_SECONDS = 600.0


def run(size: str, workdir: Path, **overrides: object) -> BenchResult:
    params = {**PRESETS[size], **overrides}
    result = BenchResult(NAME, TITLE, size, params,
                         columns=["worker", "round", "files", "seconds", "files/s",
                                  "token calls", "Dropbox calls/file"])
    count, concurrency = int(params["files"]), int(params["concurrency"])
    contents = _contents(count, int(params["file_bytes"]))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_emulator(workdir, "--latency-ms", str(params["latency_ms"]),
                          "--no-write-contention",
                          "--redirect-uri", f"{url}/connect/callback") as emulator:
        env = {**connect_settings_env(emulator, url, workdir / "web-data",
                               Fernet.generate_key().decode()),
               "DROPGZ_SERVICE_INTERNAL_KEY": INTERNAL_KEY, "BENCH_PORT": str(port),
               "BENCH_DELIVER": "0"}  # no webhooks here: the workers are fed directly
        proc, _ = start_server(env, workdir, "web")
        try:
            connected = connect_over_http(url, emulator.account_id).status_code
            result.check("the user connected through /connect", connected == 200)
            seed = _settings(emulator, workdir / "seed", concurrency)
            brokered = _settings(emulator, workdir / "brokered", concurrency,
                                 DROPGZ_DROPBOX_TOKEN="", DROPGZ_DROPBOX_SECRET="",
                                 DROPGZ_SERVICE_WEB_URL=url,
                                 DROPGZ_SERVICE_INTERNAL_KEY=INTERNAL_KEY)
            source = TokenSource(InternalClient(url, Secret(INTERNAL_KEY)))
            lookups: dict[str, tuple[Settings, CompressorLookup]] = {
                "seed token": (seed, single_account(seed)),
                "brokered": (brokered, BrokeredCompressors(
                    source, brokered.dropbox, brokered.compression, pool_size=concurrency + 4)),
            }
            dbx = emulator.client(pool_size=concurrency)
            rates: dict[str, list[float]] = {name: [] for name in lookups}
            for round_ in range(int(params["rounds"])):
                # ABBA order (seed, brokered, brokered, seed, ...): drift on a shared
                # machine and warm-up weigh on both alike.
                order = list(lookups.items())
                for name, (settings, lookup) in order if round_ % 2 == 0 else order[::-1]:
                    folder = f"/bench/{name.replace(' ', '-')}/{round_}"
                    rate = _one_round(result, emulator, dbx, settings, lookup, folder,
                                      contents, concurrency, name, round_ + 1,
                                      source if name == "brokered" else None)
                    rates[name].append(rate)
        finally:
            stop(proc)
    result.check("the brokered worker held no Dropbox credential nor the app secret",
                 not brokered.dropbox.has_credentials() and not brokered.dropbox.secret)
    seed_rate = sum(rates["seed token"]) / len(rates["seed token"])
    brokered_rate = sum(rates["brokered"]) / len(rates["brokered"])
    result.figure("brokered files/s / seed-token files/s", brokered_rate / seed_rate,
                  RATIO_TARGET, note=f"{params['rounds']} round(s) each, "
                                     f"{params['latency_ms']} ms latency")
    return result


def _settings(emulator, data_dir: Path, concurrency: int, **extra: str) -> Settings:
    return load_settings(env=emulator.env(
        data_dir, DROPGZ_SERVICE_CONCURRENCY=str(concurrency),
        DROPGZ_AWS_VISIBILITY_TIMEOUT=str(int(WORK_SECONDS)), **extra))


def _one_round(result: BenchResult, emulator, dbx, settings: Settings,
               lookup: CompressorLookup, folder: str, contents: list[bytes],
               concurrency: int, name: str, round_: int,
               source: TokenSource | None) -> float:
    count = len(contents)
    paths = [f"{folder}/file-{i:05d}.txt" for i in range(count)]
    with ThreadPoolExecutor(concurrency) as pool:
        metadata = list(pool.map(lambda p, d: dbx.files_upload(d, p), paths, contents))
    queue = open_work_queue(settings)
    try:
        queue.purge()
        queue.send([WorkItem(path=md.path_display, account=emulator.account_id, id=md.id,
                             rev=md.rev, size=md.size, content_hash=md.content_hash).to_json()
                    for md in metadata])
        worker = Worker(queue, lookup, concurrency=concurrency, poll_seconds=1,
                        visibility_timeout=int(WORK_SECONDS))
        fetched = source.fetched if source else 0
        before = emulator.stats()
        started = time.perf_counter()
        report = worker.work(max_jobs=count)
        seconds = time.perf_counter() - started
        calls = route_calls(before, emulator.stats())
    finally:
        queue.close()
    result.check(f"{name} round {round_}: every file compressed", report.compressed == count)
    with ThreadPoolExecutor(concurrency) as pool:
        gz = list(pool.map(lambda p: _read(dbx, p + ".gz"), paths))
    result.check(f"{name} round {round_}: gzip -dc gives every file back",
                 gunzip_all(gz) == b"".join(contents))
    token_calls = (source.fetched - fetched) if source else 0
    result.rows.append({"worker": name, "round": round_, "files": count, "seconds": seconds,
                        "files/s": count / seconds, "token calls": token_calls,
                        "Dropbox calls/file": sum(calls.values()) / count})
    return count / seconds
