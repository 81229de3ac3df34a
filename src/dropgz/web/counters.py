"""The web tier's own counters (webhooks by result, delta runs), durable and global.

The webhook has a p99 budget of 10 ms, so counting must not cost it a store write:
:meth:`Counters.count` adds to a dict in memory (a lock and an addition), and the counts
reach the report store (:meth:`~dropgz.state.reports.ReportStore.add_counts`, which every
instance adds to) in one write per :data:`FLUSH_SECONDS` at most, after a response is sent
(:meth:`flush_after`), before anything reads them (the dashboard, ``/metrics``) and when
``dropgz web`` stops. What a killed instance had not flushed yet (a few seconds of counts) is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from flask import Response

from dropgz.state.reports import ReportStore

log = logging.getLogger(__name__)

FLUSH_SECONDS = 2.0


class Counters:
    """In-memory counts, flushed into a :class:`ReportStore`."""

    def __init__(self, store: ReportStore, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.store = store
        self.flush_seconds = flush_seconds
        self._pending: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flushed_at = time.monotonic()

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._pending[name] += n

    def flush_after(self, response: Response) -> Response:
        """Have the flush run once ``response`` is sent, when one is due (cheap otherwise)."""
        if self._pending and time.monotonic() - self._flushed_at >= self.flush_seconds:
            response.call_on_close(self.flush)
        return response

    def flush(self) -> None:
        """Write the pending counts now (one store write); failures keep them pending."""
        with self._flush_lock:
            with self._lock:
                pending, self._pending = self._pending, Counter()
                self._flushed_at = time.monotonic()
            if not pending:
                return
            try:
                self.store.add_counts(pending)
            except Exception:  # the store is down: keep the counts for the next flush
                log.warning("could not save %d counter(s); will retry", len(pending),
                            exc_info=True)
                with self._lock:
                    self._pending.update(pending)
