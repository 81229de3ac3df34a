"""``/metrics``: Prometheus text that prometheus_client's own parser reads, built from the
report store and the work queue; answered to the bearer of the metrics token only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dropgz.pushqueue.gae import GAEPushQueue
from dropgz.queues.sqlite import SQLiteWorkQueue
from dropgz.state.reports import FileRecord, utcnow
from dropgz.web.app import create_app
from tests.web.conftest import web_settings

TOKEN = "metrics-token-for-tests-0123456789abcdef"


@pytest.fixture
def app(gae_testbed: Any, tmp_path: Path) -> Any:
    settings = web_settings(tmp_path, DROPGZ_SERVICE_METRICS_TOKEN=TOKEN)
    queue = SQLiteWorkQueue(tmp_path / "queue.sqlite3")
    return create_app(settings, push_queue=GAEPushQueue(), work_queue=queue)


def scrape(client: Any) -> dict[str, dict[tuple, float]]:
    """``{sample name: {labels as a sorted tuple: value}}`` as Prometheus would read it."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.data
    assert response.content_type.startswith("text/plain")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return samples


def test_metrics_count_what_workers_reported(app: Any) -> None:
    svc = app.extensions["dropgz"]
    now = utcnow()
    svc.reports.add_files([
        FileRecord("dbid:a", "/a.txt", "compressed", now, 1000, 200, 0.03),
        FileRecord("dbid:a", "/b.txt", "compressed", now, 3000, 500, 4.0),
        FileRecord("dbid:a", "/c.gz", "skipped", now, reason="already .gz"),
        FileRecord("dbid:a", "/d", "failed", now, reason="bad message"),
    ])
    svc.counters.count("webhooks:accepted", 4)  # not flushed yet: the scrape flushes
    svc.counters.count("delta_runs:done", 2)
    svc.work_queue().send(['{"path": "/x"}', '{"path": "/y"}'])

    m = scrape(app.test_client())

    assert m["dropgz_files_total"][(("outcome", "compressed"),)] == 2
    assert m["dropgz_files_total"][(("outcome", "skipped"),)] == 1
    assert m["dropgz_files_total"][(("outcome", "failed"),)] == 1
    assert m["dropgz_files_total"][(("outcome", "retried"),)] == 0
    assert m["dropgz_files_skipped_total"][(("reason", "already .gz"),)] == 1
    assert m["dropgz_bytes_in_total"][()] == 4000 and m["dropgz_bytes_out_total"][()] == 700
    buckets = m["dropgz_compress_seconds_bucket"]
    assert buckets[(("le", "0.05"),)] == 1 and buckets[(("le", "5.0"),)] == 2
    assert buckets[(("le", "+Inf"),)] == 2 and m["dropgz_compress_seconds_count"][()] == 2
    assert m["dropgz_compress_seconds_sum"][()] == pytest.approx(4.03)
    assert m["dropgz_webhooks_total"][(("result", "accepted"),)] == 4
    assert m["dropgz_delta_runs_total"][(("result", "done"),)] == 2
    assert m["dropgz_queue_messages"][(("state", "visible"),)] == 2
    assert m["dropgz_queue_messages"][(("state", "dead"),)] == 0


def test_workers_are_live_or_stale(app: Any) -> None:
    from datetime import timedelta

    from dropgz.state.reports import Heartbeat

    svc = app.extensions["dropgz"]
    now = utcnow()
    for worker, seen, busy in (("a", now, 3), ("b", now - timedelta(minutes=5), 9)):
        svc.reports.heartbeat(Heartbeat(worker, "h", 1, "0", now, 8, busy, seen))
    m = scrape(app.test_client())
    assert m["dropgz_workers"] == {(("state", "live"),): 1, (("state", "stale"),): 1}
    assert m["dropgz_files_in_flight"][()] == 3


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer",
                                    f"Bearer {TOKEN}x"])
def test_metrics_refuse_anyone_without_the_token(app: Any, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = app.test_client().get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"dropgz_files" not in response.data


def test_without_a_configured_token_metrics_are_closed(gae_testbed: Any, tmp_path: Path) -> None:
    app = create_app(web_settings(tmp_path), push_queue=GAEPushQueue())
    assert app.test_client().get("/metrics", headers={"Authorization": "Bearer "}
                                 ).status_code == 401
