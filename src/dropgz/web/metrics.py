"""``GET /metrics``: Prometheus text format, global across every worker and web instance.

A custom prometheus_client collector reads the report store's all-time totals (what the
workers reported, and the web tier's own webhook and delta-run counters), the work queue's
depth and the workers' heartbeats at each scrape, so every instance answers the same
numbers. Only a request with ``Authorization: Bearer <[Service] metrics_token>`` is
answered; without a configured token, none is.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterator

from flask import Blueprint, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from dropgz.core.logs import fields
from dropgz.state.reports import OUTCOMES, SECONDS_BUCKETS
from dropgz.web.services import Services, services

log = logging.getLogger(__name__)

bp = Blueprint("metrics", __name__)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "replace")).digest()


def bearer_ok(expected: str, header: str) -> bool:
    """True when ``header`` is ``Bearer <expected>`` (compared as hashes, in constant time)."""
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(_digest(given.strip()),
                                                              _digest(expected))


def _labelled(name: str, doc: str, label: str, totals: dict[str, int], prefix: str,
              always: tuple[str, ...] = ()) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    values = {key[len(prefix):]: n for key, n in totals.items() if key.startswith(prefix)}
    for value in sorted(set(always) | set(values)):
        family.add_metric([value], values.get(value, 0))
    return family


class ReportCollector:
    """Builds every dropgz metric from the stores at scrape time."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        totals = self.svc.reports.totals()
        yield _labelled("dropgz_files", "Files the workers settled, by outcome.", "outcome",
                        totals, "files:", OUTCOMES)
        yield _labelled("dropgz_files_skipped", "Files skipped, by kind of reason.", "reason",
                        totals, "skipped:")
        yield CounterMetricFamily("dropgz_bytes_in", "Bytes read from the files compressed.",
                                  value=totals.get("bytes_in", 0))
        yield CounterMetricFamily("dropgz_bytes_out", "Bytes of the .gz files written.",
                                  value=totals.get("bytes_out", 0))
        yield self._histogram(totals)
        yield _labelled("dropgz_webhooks", "Webhook notifications received, by result.",
                        "result", totals, "webhooks:", ("accepted",))
        yield _labelled("dropgz_delta_runs", "Delta runs of the delta tier, by result.",
                        "result", totals, "delta_runs:", ("done",))
        yield from self._queue()
        yield from self._workers()

    @staticmethod
    def _histogram(totals: dict[str, int]) -> HistogramMetricFamily:
        buckets, running = [], 0
        for bound in SECONDS_BUCKETS:
            running += totals.get(f"seconds_le:{bound}", 0)
            buckets.append((str(bound), running))
        buckets.append(("+Inf", running + totals.get("seconds_le:+Inf", 0)))
        return HistogramMetricFamily(
            "dropgz_compress_seconds", "Seconds to compress one file, download to upload.",
            buckets=buckets, sum_value=totals.get("seconds_sum_ms", 0) / 1000)

    def _queue(self) -> Iterator[Metric]:
        try:
            stats = self.svc.work_queue().stats()
        except Exception as exc:  # the scrape still shows everything else
            log.warning("metrics: work queue unreachable: %s", fields(error=str(exc)))
            return
        family = GaugeMetricFamily("dropgz_queue_messages", "Work-queue messages by state.",
                                   labels=["state"])
        for state, value in (("visible", stats.visible), ("in_flight", stats.in_flight),
                             ("dead", stats.dead)):
            family.add_metric([state], value)
        yield family

    def _workers(self) -> Iterator[Metric]:
        beats = self.svc.reports.workers()
        workers = GaugeMetricFamily("dropgz_workers", "Worker processes by heartbeat state.",
                                    labels=["state"])
        live = [b for b in beats if not b.stale()]
        workers.add_metric(["live"], len(live))
        workers.add_metric(["stale"], len(beats) - len(live))
        yield workers
        yield GaugeMetricFamily("dropgz_files_in_flight", "Files live workers are working on.",
                                value=sum(b.in_flight for b in live))


@bp.get("/metrics")
def metrics() -> Response:
    svc = services()
    token = svc.settings.service.metrics_token
    if not token or not bearer_ok(token.reveal(), request.headers.get("Authorization", "")):
        log.warning("metrics refused: %s", fields(remote=request.remote_addr))
        response = Response("metrics need Authorization: Bearer <[Service] metrics_token>\n",
                            status=401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = 'Bearer realm="dropgz"'
        return response
    svc.counters.flush()  # this instance's own counts, before reading the store
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(svc))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
