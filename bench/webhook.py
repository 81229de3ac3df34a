"""Benchmark 4: signed webhook POSTs on the production server, against a bare Flask route.

One server process (:mod:`bench.webhook_server`: waitress as ``dropgz web`` runs it) serves
both dropgz's ``POST /webhook`` (signature check, JSON, one delta task into the local
push queue, a log line) and ``POST /bare/webhook`` (an empty Flask view). A keep-alive
client with ``concurrency`` connections sends the same signed notification to each in
alternating rounds; POSTs per second and latency percentiles come from the client.
Targets: dropgz at 0.8 of the bare route's rate, and its p99 under 10 ms.

Checks: every answer is 200, a wrong signature gets 403, and the tasks the webhook
queued reach the delta tier (the emulator sees its ``list_folder`` calls).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import (
    BenchResult,
    Emulator,
    percentile,
    route_calls,
    running_emulator,
    wait_until,
)
from dropgz.ops.processes import ProcessFailed, spawn, stop
from dropgz.pushqueue.base import DEFAULT_BUCKET_SECONDS

NAME = "webhook"
TITLE = "4. Webhook: signed POSTs/s and latency, dropgz vs a bare Flask route, same server"
PRESETS = {
    "tiny": {"requests": 200, "concurrency": 4, "rounds": 1},
    "full": {"requests": 5000, "concurrency": 4, "rounds": 3},
}
RATE_TARGET = 0.8  # dropgz POSTs/s over the bare route's (the issue)
P99_TARGET_MS = 10.0  # the issue: "p99 < 10 ms here"
WARMUP = 50
READY_SECONDS = 30.0
IO_TIMEOUT = 30.0
DELIVERY_SECONDS = 30.0


def signed_request(path: str, host: str, body: bytes, secret: str, *,
                   signature: str | None = None) -> bytes:
    """The raw HTTP/1.1 request Dropbox would send (keep-alive)."""
    if signature is None:
        signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"User-Agent: DropboxWebhooks/1.0\r\nX-Dropbox-Signature: {signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


class Connection:
    """One keep-alive connection; ``send`` returns the status. Small on purpose: the
    client must cost little next to the server it measures."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=IO_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def send(self, request: bytes) -> int:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            self.buffer = rest
            self._fill()
            rest = self.buffer
        self.buffer = rest[length:]
        return status

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


@dataclass
class Load:
    """What one round against one route measured."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


def drive(url: str, request: bytes, total: int, concurrency: int) -> Load:
    """Send ``request`` ``total`` times over ``concurrency`` connections, as fast as answered."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    connections = [Connection(host, port) for _ in range(concurrency)]
    load = Load()
    lock = threading.Lock()
    share = [total // concurrency + (1 if i < total % concurrency else 0)
             for i in range(concurrency)]

    def client(conn: Connection, count: int) -> None:
        latencies, statuses = [], {}
        for _ in range(count):
            started = time.perf_counter()
            status = conn.send(request)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
        with lock:
            load.latencies += latencies
            for status, n in statuses.items():
                load.statuses[status] = load.statuses.get(status, 0) + n

    threads = [threading.Thread(target=client, args=(conn, n))
               for conn, n in zip(connections, share, strict=True)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(IO_TIMEOUT * max(1, total // concurrency))
    load.seconds = time.perf_counter() - started
    for conn in connections:
        conn.close()
    return load


def start_server(env: dict[str, str], workdir: Path,
                 name: str = "web") -> tuple[subprocess.Popen[bytes], str]:
    """``bench.webhook_server`` with ``env`` (``DROPGZ_*`` settings and ``BENCH_*`` knobs)."""
    env = {**_clean_env(), **env}
    log_path = workdir / f"{name}.log"
    proc = spawn([sys.executable, "-m", "bench.webhook_server"], log_path, env=env,
                 stdout=subprocess.PIPE)
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + READY_SECONDS
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        chunk = proc.stdout.readline()
        if not chunk:
            break
        line += chunk
    if not line:
        stop(proc)
        raise ProcessFailed(f"web server did not start: "
                            f"{log_path.read_text(errors='replace')[-2000:]}")
    return proc, json.loads(line)["url"]


def _deltas(emulator: Emulator) -> int:
    """Delta runs so far: each continues the account's cursor once (an empty account)."""
    return route_calls({}, emulator.stats()).get("files/list_folder/continue", 0)


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("DROPGZ_")}


def run(size: str, workdir: Path, **overrides: object) -> BenchResult:
    params = {**PRESETS[size], **overrides}
    result = BenchResult(NAME, TITLE, size, params,
                         columns=["route", "requests", "POSTs/s", "p50 ms", "p90 ms", "p99 ms",
                                  "max ms"])
    total, concurrency = int(params["requests"]), int(params["concurrency"])
    with running_emulator(workdir) as emulator:
        proc, url = start_server(emulator.env(workdir / "data"), workdir)
        try:
            deltas = _deltas(emulator)
            host = urlsplit(url).netloc
            body = json.dumps({"list_folder": {"accounts": [emulator.account_id]},
                               "delta": {"users": [12345]}}).encode()
            requests = {
                "dropgz /webhook": signed_request("/webhook", host, body, emulator.app_secret),
                "bare Flask route": signed_request("/bare/webhook", host, body,
                                                   emulator.app_secret),
            }
            loads = {name: Load() for name in requests}
            for request in requests.values():
                drive(url, request, WARMUP, concurrency)
            for _ in range(int(params["rounds"])):
                for name, request in requests.items():
                    one = drive(url, request, total, concurrency)
                    loads[name].seconds += one.seconds
                    loads[name].latencies += one.latencies
                    for status, n in one.statuses.items():
                        loads[name].statuses[status] = loads[name].statuses.get(status, 0) + n
            forged = drive(url, signed_request("/webhook", host, body, emulator.app_secret,
                                               signature="0" * 64), 1, 1)
            result.check("a wrong signature is refused with 403", forged.statuses == {403: 1})
            # A notification in a fresh coalescing bucket must lead to one more delta run.
            time.sleep(DEFAULT_BUCKET_SECONDS)
            drive(url, requests["dropgz /webhook"], 1, 1)
            wait_until(lambda: _deltas(emulator) > deltas, DELIVERY_SECONDS,
                       "delta run after a webhook")
            result.check("a webhook leads to a delta run (list_folder/continue)", True)
        finally:
            code = stop(proc)
    result.check("web server stopped cleanly on SIGTERM", code == 0)
    rates = {}
    for name, load in loads.items():
        count = len(load.latencies)
        result.check(f"{name}: every answer was 200", load.statuses == {200: count} and count)
        rates[name] = count / load.seconds
        ms = [s * 1000 for s in load.latencies]
        result.rows.append({"route": name, "requests": count, "POSTs/s": rates[name],
                            "p50 ms": percentile(ms, 50), "p90 ms": percentile(ms, 90),
                            "p99 ms": percentile(ms, 99), "max ms": max(ms)})
    result.figure("dropgz POSTs/s / bare route POSTs/s",
                  rates["dropgz /webhook"] / rates["bare Flask route"], RATE_TARGET)
    result.figure("dropgz p99 latency", result.rows[0]["p99 ms"], P99_TARGET_MS, op="<=",
                  unit="ms", note=f"{concurrency} connections")
    return result
