"""Fault injection for the Dropbox routes: added latency and a fraction of failed requests.

A failed request is answered 429 (with ``Retry-After`` and a RateLimitError body), 500, or
its connection is dropped without an answer; the kind is drawn among the enabled ones. With a
seed the sequence of draws is reproducible (one generator, drawn under a lock in request
order).
"""

from __future__ import annotations

import random
import threading
import time

from dropgz.emulator.config import RuntimeSettings


class FaultInjector:
    """Reads its knobs from :class:`RuntimeSettings` on every request, so changes apply at once."""

    def __init__(self, settings: RuntimeSettings, seed: int | None) -> None:
        self._settings = settings
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def delay(self) -> None:
        latency_ms = self._settings.latency_ms
        if latency_ms > 0:
            time.sleep(latency_ms / 1000.0)

    def draw(self) -> str | None:
        """A fault kind (``"429"``, ``"500"``, ``"drop"``) for this request, or None."""
        rate = self._settings.fail_rate
        kinds = self._settings.fail_kinds
        forced = self._settings.take_forced_failure()
        if rate <= 0 and not forced:
            return None
        with self._lock:
            if not forced and self._random.random() >= rate:
                return None
            return self._random.choice(kinds)
