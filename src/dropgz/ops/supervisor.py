"""A small process supervisor for single-host mode (``dropgz serve``).

Starts each child command, restarts one that dies (with backoff, so a child that cannot
start does not spin), and on SIGTERM/SIGINT passes the signal on and waits for the
children to drain: workers finish their in-flight files, the web server its requests.
A second signal kills the children at once.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger(__name__)

RESTART_BACKOFF_MAX = 30.0
DRAIN_SECONDS = 600.0  # a large file may take minutes to finish; systemd waits as long


@dataclass
class Child:
    name: str
    argv: Sequence[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0
    backoff: float = field(default=1.0)


class Supervisor:
    """Keeps ``children`` (name → argv) running until asked to stop."""

    def __init__(self, children: Mapping[str, Sequence[str]],
                 env: Mapping[str, str] | None = None,
                 drain_seconds: float = DRAIN_SECONDS) -> None:
        self.children = [Child(name, list(argv)) for name, argv in children.items()]
        self.env = dict(os.environ if env is None else env)
        self.drain_seconds = drain_seconds
        self._stopping = False
        self._force = False

    def request_stop(self, signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        if self._stopping:
            self._force = True
            log.warning("second signal: killing children now")
        else:
            log.info("stopping: children finish in-flight work (signal again to kill them)")
        self._stopping = True

    def run(self) -> int:
        """Supervise until stopped; returns 0 after a clean drain, 1 if children were killed."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        for child in self.children:
            self._start(child)
        while not self._stopping:
            for child in self.children:
                self._check(child)
            time.sleep(0.2)
        return self._drain()

    def _start(self, child: Child) -> None:
        # Children ignore SIGINT from the terminal's process group: the supervisor decides.
        child.process = subprocess.Popen(child.argv, env=self.env, start_new_session=True)
        child.started_at = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.process.pid)

    def _check(self, child: Child) -> None:
        process = child.process
        now = time.monotonic()
        if process is None:
            if now >= child.next_start:
                self._start(child)
            return
        code = process.poll()
        if code is None:
            if now - child.started_at > 60:
                child.backoff = 1.0  # ran for a while: a later crash restarts quickly
            return
        child.restarts += 1
        child.process = None
        child.next_start = now + child.backoff
        log.error("%s exited with %d; restarting in %.0fs (restart %d)",
                  child.name, code, child.backoff, child.restarts)
        child.backoff = min(child.backoff * 2, RESTART_BACKOFF_MAX)

    def _drain(self) -> int:
        running = [c for c in self.children if c.process and c.process.poll() is None]
        for child in running:
            child.process.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + self.drain_seconds
        while running and time.monotonic() < deadline and not self._force:
            running = [c for c in running if c.process.poll() is None]  # type: ignore[union-attr]
            time.sleep(0.1)
        for child in running:
            log.warning("killing %s (pid %d)", child.name, child.process.pid)  # type: ignore[union-attr]
            child.process.kill()  # type: ignore[union-attr]
            child.process.wait()  # type: ignore[union-attr]
        log.info("stopped")
        return 1 if running else 0
