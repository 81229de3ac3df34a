"""Shared machinery of the reliability suite: the invariant checker, the pipeline as real
processes, and a loopback TCP proxy that can cut a peer off.

Every scenario ends with :func:`check_invariants`, which asserts the issue's invariants on
the emulator's final listing (read through the SDK, as a user would see it):

1. every eligible file, at its final rev, has exactly one ``name.gz`` and GNU ``gzip -dc``
   of it equals the file's final bytes;
2. every file the service did not create is byte-identical (content hash) to what the
   scenario wrote, and nothing else exists (nothing deleted, nothing extra);
3. no ``.gz.gz``; no ``.gz`` for a folder or an excluded file;
4. the work queue is drained and its dead-letter queue holds exactly the poisoned bodies.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dropbox
import pytest
import requests
from dropbox.content_hash import DropboxContentHasher
from dropbox.files import FileMetadata, FolderMetadata

from dropgz.core.config import load_settings
from dropgz.queues import open_work_queue
from dropgz.queues.base import WorkQueue
from tests.fixtures.peers import free_port, gunzip_bytes
from tests.fixtures.peers import wait_for as _wait_for

# Scenario predicates list the whole account: poll them less often than the default.
wait_for = functools.partial(_wait_for, interval=0.2)

PROCESS_READY_SECONDS = 30.0
SETTLE_SECONDS = 120.0


def content_hash(data: bytes) -> str:
    hasher = DropboxContentHasher()
    hasher.update(data)
    return hasher.hexdigest()


# ---------------------------------------------------------------- the world model

_FLAKY = (requests.RequestException, dropbox.exceptions.InternalServerError,
          dropbox.exceptions.RateLimitError)


def retrying(call: Callable[[], Any], attempts: int = 20) -> Any:
    """The scenario's own Dropbox calls, retried while the emulator injects faults."""
    for attempt in range(attempts):
        try:
            return call()
        except _FLAKY:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


@dataclass
class World:
    """What a scenario wrote to Dropbox, so the checker knows what must be true at the end.

    ``files``: every user file's final bytes (by path as written). ``eligible``: paths
    that must get a .gz. ``folders``: folders the scenario made (no .gz for them).
    """

    dbx: dropbox.Dropbox
    files: dict[str, bytes] = field(default_factory=dict)
    eligible: set[str] = field(default_factory=set)
    folders: set[str] = field(default_factory=set)
    # path_lower → bytes of files deleted or moved away: their .gz may stay behind (dropgz
    # never deletes, and does not mirror deletions), but only as the gzip of those bytes
    gone: dict[str, bytes] = field(default_factory=dict)

    def put(self, path: str, data: bytes, *, eligible: bool = True) -> FileMetadata:
        md = retrying(lambda: self.dbx.files_upload(data, path,
                                                    mode=dropbox.files.WriteMode.overwrite))
        self.files[path] = data
        (self.eligible.add if eligible else self.eligible.discard)(path)
        return md

    def delete(self, path: str) -> None:
        retrying(lambda: self.dbx.files_delete_v2(path))
        if path in self.eligible:
            self.gone[path.lower()] = self.files[path]
        self.files.pop(path, None)
        self.eligible.discard(path)

    def mkdir(self, path: str) -> None:
        self.dbx.files_create_folder_v2(path)
        self.folders.add(path)

    def move_folder(self, src: str, dst: str) -> None:
        """Rename a folder; what was under it (files, their .gz) now lives under ``dst``."""
        retrying(lambda: self.dbx.files_move_v2(src, dst))
        prefix = src.lower() + "/"
        self.gone.update({p.lower(): d for p, d in self.files.items()
                          if p.lower().startswith(prefix) and p in self.eligible})

        def moved(path: str) -> str:
            return dst + path[len(src):] if path.lower().startswith(prefix) else path
        self.files = {moved(p): d for p, d in self.files.items()}
        self.eligible = {moved(p) for p in self.eligible}
        self.folders = {moved(p) for p in self.folders if p.lower() != src.lower()} | {dst}

    def expected_gz(self) -> dict[str, bytes]:
        """``name.gz`` (lower-cased) → the bytes it must decompress to."""
        return {(p + ".gz").lower(): self.files[p] for p in self.eligible}

    def missing_gz(self) -> list[str]:
        """Eligible paths whose .gz is not there yet or is not of the final bytes."""
        listing = list_all(self.dbx)[0]
        wanted = self.expected_gz()
        missing = []
        for gz, data in wanted.items():
            md = listing.get(gz)
            if md is None or not _gz_matches(self.dbx, md, data):
                missing.append(gz)
        return missing


_GZ_CACHE: dict[tuple[str, str], bytes] = {}


def _gz_matches(dbx: dropbox.Dropbox, md: FileMetadata, data: bytes) -> bool:
    key = (md.path_lower, md.rev)
    if key not in _GZ_CACHE:
        def read() -> bytes:
            _, response = dbx.files_download(md.path_lower, rev=md.rev)
            with response:
                return response.content
        _GZ_CACHE[key] = gunzip_bytes(retrying(read))
    return _GZ_CACHE[key] == data


def list_all(dbx: dropbox.Dropbox) -> tuple[dict[str, FileMetadata], set[str]]:
    """Files by ``path_lower`` and folder ``path_lower``s, the whole account."""
    return retrying(lambda: _list_all(dbx))


def _list_all(dbx: dropbox.Dropbox) -> tuple[dict[str, FileMetadata], set[str]]:
    files: dict[str, FileMetadata] = {}
    folders: set[str] = set()
    page = dbx.files_list_folder("", recursive=True)
    while True:
        for entry in page.entries:
            if isinstance(entry, FileMetadata):
                files[entry.path_lower] = entry
            elif isinstance(entry, FolderMetadata):
                folders.add(entry.path_lower)
        if not page.has_more:
            return files, folders
        page = dbx.files_list_folder_continue(page.cursor)


def check_invariants(world: World, queue: WorkQueue | None,
                     poisoned: Iterable[str] = ()) -> None:
    """Assert every invariant of the issue (see the module docstring)."""
    files, folders = list_all(world.dbx)
    wanted_gz = world.expected_gz()
    user = {p.lower(): d for p, d in world.files.items()}
    # 1. one .gz per eligible file, decompressing to its final bytes
    for gz, data in wanted_gz.items():
        assert gz in files, f"no {gz}"
        assert _gz_matches(world.dbx, files[gz], data), f"{gz} is not the gzip of the final rev"
    # 2. user files byte-identical; nothing else exists
    for path, data in user.items():
        assert path in files, f"user file {path} was deleted"
        assert files[path].content_hash == content_hash(data), f"user file {path} was modified"
    leftovers = {gz for gz in set(files) - set(user) - set(wanted_gz)
                 if gz.endswith(".gz") and gz[:-3] in world.gone}
    for gz in leftovers:
        assert _gz_matches(world.dbx, files[gz], world.gone[gz[:-3]]), f"{gz} is garbage"
    extra = set(files) - set(user) - set(wanted_gz) - leftovers
    assert not extra, f"files nobody expected: {sorted(extra)[:10]}"
    # 3. no .gz.gz, no .gz for folders or excluded files
    made = set(files) - set(user)
    assert not [p for p in made if p.endswith(".gz.gz")], "a .gz.gz was made"
    for folder in folders | {f.lower() for f in world.folders}:
        assert folder not in world.gone, f"{folder} was a file and is now a folder"
        assert folder + ".gz" not in files, f"a .gz for the folder {folder}"
    for path in set(user) - {p.lower() for p in world.eligible}:
        assert path + ".gz" not in made, f"a .gz for the ineligible {path}"
    # 4. the work queue drained; the dead-letter queue holds only what was poisoned
    if queue is not None:
        stats = queue.stats()
        assert (stats.visible, stats.in_flight) == (0, 0), f"queue not drained: {stats}"
        dead = sorted(d.body for d in queue.dead_letters(1000))
        assert dead == sorted(poisoned), f"dead letters {dead[:5]} != poisoned"


def invariant_counts(world: World, queue: WorkQueue) -> dict[str, int]:
    """What the checker sees, as counts: files with their .gz, the bytes of those files and
    of their .gz, and the dead letters (for comparing with /metrics)."""
    files, _ = list_all(world.dbx)
    wanted = world.expected_gz()
    return {"compressed": len(wanted), "bytes_in": sum(len(d) for d in wanted.values()),
            "bytes_out": sum(files[gz].size for gz in wanted),
            "dead": len(queue.dead_letters(1000))}


# ---------------------------------------------------------------- the pipeline


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("DROPGZ_")}


class Pipeline:
    """``dropgz web`` and ``dropgz worker`` processes wired to an emulator and a work queue.

    Each process logs to its own file under ``workdir``; :meth:`logs` returns them all
    (for the secret grep and for failure messages).
    """

    def __init__(self, emulator: Any, workdir: Path, web_port: int, **env: str) -> None:
        self.emulator = emulator
        self.workdir = workdir
        self.web_port = web_port
        self.env = clean_env()
        self.env.update({
            "DROPGZ_DROPBOX_TOKEN": emulator.token,
            "DROPGZ_DROPBOX_SECRET": emulator.app_secret,
            "DROPGZ_DROPBOX_API_BASE_URL": emulator.url,
            "DROPGZ_DROPBOX_ACCOUNT_ID": emulator.account_id,
            "DROPGZ_SERVICE_DATA_DIR": str(workdir / "data"),
            "DROPGZ_AWS_VISIBILITY_TIMEOUT": "10",
            "DROPGZ_AWS_MAX_RECEIVE_COUNT": "10",
            "DROPGZ_SERVICE_CONCURRENCY": "4",
        })
        self.env.update(env)
        self.web: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self._n = 0
        self._log_paths: dict[int, Path] = {}
        self._queue: WorkQueue | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def settings(self) -> Any:
        return load_settings(env=self.env)

    def queue(self) -> WorkQueue:
        """The work queue, opened in the test process (for stats and dead letters)."""
        if self._queue is None:
            self._queue = open_work_queue(self.settings())
        return self._queue

    def _spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self._n += 1
        path = self.workdir / f"{self._n:02d}-{args[0]}.log"
        with path.open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "dropgz", *args],
                                       env={**self.env, **(env or {})},
                                       stdout=log, stderr=log, cwd=self.workdir)
        self._log_paths[process.pid] = path
        return process

    def log_of(self, process: subprocess.Popen[bytes]) -> str:
        """What one process logged so far."""
        return self._log_paths[process.pid].read_text(errors="replace")

    def wait_worker_started(self, worker: subprocess.Popen[bytes]) -> None:
        """Until ``worker`` checked its credentials and polls the queue."""
        def started() -> bool:
            assert worker.poll() is None, self.log_of(worker)[-3000:]
            return "worker started" in self.log_of(worker)
        wait_for(started, PROCESS_READY_SECONDS, "worker started", diagnose=self.logs)

    def start_web(self, **env: str) -> subprocess.Popen[bytes]:
        """``dropgz web``, ready; ``env`` overrides this process's settings."""
        self.web = self._spawn("web", "--port", str(self.web_port), env=env)
        url = f"{self.base_url}/webhook?challenge=ready"

        def answers() -> bool:
            assert self.web is not None and self.web.poll() is None, self.logs()[-3000:]
            try:
                return requests.get(url, timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_for(answers, PROCESS_READY_SECONDS, "dropgz web ready", diagnose=self.logs)
        return self.web

    def start_worker(self, *extra: str, **env: str) -> subprocess.Popen[bytes]:
        """``dropgz worker`` (not waited for); ``env`` overrides this process's settings."""
        worker = self._spawn("worker", *extra, env=env)
        self.workers.append(worker)
        return worker

    def stop(self, process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM,
             timeout: float = 30) -> int | None:
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(10)

    def close(self) -> None:
        for worker in self.workers:
            self.stop(worker)
        self.stop(self.web)
        if self._queue is not None:
            self._queue.close()

    def logs(self) -> str:
        return "\n".join(f"==== {p.name}\n" + p.read_text(errors="replace")
                         for p in sorted(self.workdir.glob("*.log")))

    def settle(self, world: World, timeout: float = SETTLE_SECONDS) -> None:
        """Wait until every eligible file has the .gz of its final rev and the queue is empty."""
        queue = self.queue()

        def done() -> bool:
            for worker in self.workers:
                if worker.poll() not in (None, 0, -signal.SIGKILL):
                    pytest.fail(f"a worker died ({worker.returncode}):\n{self.logs()[-5000:]}")
            stats = queue.stats()
            return stats.visible == 0 and stats.in_flight == 0 and not world.missing_gz()
        wait_for(done, timeout, "every .gz made and the queue drained", interval=0.5,
                 diagnose=lambda: f"missing {world.missing_gz()[:10]}, queue {queue.stats()}\n"
                                  f"{self.logs()[-6000:]}")


def notify_body(*accounts: str) -> bytes:
    return json.dumps({"list_folder": {"accounts": list(accounts)},
                       "delta": {"users": [1]}}).encode()


# ---------------------------------------------------------------- a TCP proxy


class CutProxy:
    """A loopback TCP proxy to ``target`` that can be switched off and on.

    ``refuse()``: the listening port closes (new connections are refused) and every open
    connection is reset. ``blackhole()``: connections are accepted, then closed without an
    answer (a dropped connection). ``restore()``: proxy again on the same port.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = "pass"
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopped = False
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._listener = sock
        self._acceptor = threading.Thread(target=self._accept, args=(sock,), daemon=True)
        self._acceptor.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self.mode != "pass":
                self._reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                self._close(sock)

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):  # linger 0: close sends RST, like a dead peer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):  # wakes our own thread blocked in recv() on it
            sock.shutdown(socket.SHUT_RD)
        sock.close()

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _drop_all(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for sock in conns:
            self._reset(sock)

    def refuse(self) -> None:
        self.mode = "refuse"
        if self._listener is not None:
            # close() alone does not wake a thread blocked in accept() on Linux; that thread
            # would later accept on whatever socket reuses the fd number. shutdown() wakes it.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
            self._acceptor.join(timeout=5)
        self._drop_all()

    def blackhole(self) -> None:
        if self._listener is None:
            self._listen()
        self.mode = "drop"
        self._drop_all()

    def restore(self) -> None:
        self.mode = "pass"
        if self._listener is None and not self._stopped:
            self._listen()

    def close(self) -> None:
        self._stopped = True
        self.refuse()
