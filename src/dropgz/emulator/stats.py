"""Request counters behind ``GET /_emulator/stats``: tests count calls and statuses with them
(e.g. to prove the client waited out a 429 before retrying), benchmarks calls per file and
429s per file (``routes``, ``statuses``, and ``contention`` for namespace write contention)."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any


class RequestStats:
    """Counts requests per route, per status and per (route, status)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._total = 0
            self._statuses: Counter[str] = Counter()
            self._routes: defaultdict[str, Counter[str]] = defaultdict(Counter)
            self._faults: Counter[str] = Counter()
            self._contention: Counter[str] = Counter()

    def record(self, route: str, status: int | str, *, fault: str | None = None) -> None:
        """``status`` is the HTTP status, or ``"drop"`` for a dropped connection."""
        key = str(status)
        with self._lock:
            self._total += 1
            self._statuses[key] += 1
            self._routes[route][key] += 1
            if fault:
                self._faults[fault] += 1

    def count_contention(self, kind: str, count: int = 1) -> None:
        """Namespace write contention met: ``rejected_calls`` (answered 429) or
        ``failed_batch_entries`` (finish_batch_v2 entries reported too_many_write_operations)."""
        with self._lock:
            self._contention[kind] += count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": self._total,
                "statuses": dict(self._statuses),
                "routes": {route: {"total": sum(counts.values()), "statuses": dict(counts)}
                           for route, counts in self._routes.items()},
                "faults": dict(self._faults),
                "contention": {"rejected_calls": self._contention["rejected_calls"],
                               "failed_batch_entries": self._contention["failed_batch_entries"]},
            }
