"""Start dropgz's own processes (the emulator, serve) and wait until they answer."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import requests

READY_TIMEOUT = 30.0


class ProcessFailed(RuntimeError):
    """A child process died or did not become ready; the message carries its stderr tail."""


def _tail(path: Path | None, lines: int = 15) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def spawn(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None,
          stdout: int | IO[Any] | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """Start ``argv`` with stderr appended to ``log_path``."""
    log = log_path.open("ab")
    try:
        return subprocess.Popen(list(argv), stdout=stdout, stderr=log, stdin=subprocess.DEVNULL,
                                env=env if env is not None else dict(os.environ))
    finally:
        log.close()


def start_emulator(root: Path, log_path: Path, *args: str, timeout: float = READY_TIMEOUT,
                   ) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """``python -m dropgz.emulator --port 0 --root ROOT ARGS``; returns it and its ready line."""
    argv = [sys.executable, "-m", "dropgz.emulator", "--port", "0", "--root", str(root), *args]
    proc = spawn(argv, log_path, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ProcessFailed(f"emulator exited with {proc.returncode}:\n{_tail(log_path)}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            buffer += chunk
            if b"\n" in buffer:
                line = buffer.split(b"\n", 1)[0]
                info = json.loads(line)
                if info.get("event") == "ready":
                    return proc, info
    proc.kill()
    raise ProcessFailed(f"emulator not ready after {timeout:.0f}s:\n{_tail(log_path)}")


def wait_http(url: str, proc: subprocess.Popen[bytes] | None = None,
              log_path: Path | None = None, timeout: float = READY_TIMEOUT) -> None:
    """Poll ``url`` until it answers 200 (or ``proc`` dies / time runs out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ProcessFailed(f"process exited with {proc.returncode}:\n{_tail(log_path)}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise ProcessFailed(f"{url} did not answer in {timeout:.0f}s:\n{_tail(log_path)}")


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM, wait, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
