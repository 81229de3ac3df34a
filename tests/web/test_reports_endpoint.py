"""The web tier's side of worker reports: ``/internal/report`` and ``/internal/heartbeat``
(signed with the internal key), and the web tier's own counters (webhooks, delta runs)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from dropgz.core.internal_auth import sign
from dropgz.core.secret import Secret
from dropgz.pushqueue.gae import GAEPushQueue
from dropgz.web.app import create_app
from tests.web.conftest import sign_body, web_settings

KEY = "internal-key-for-report-tests-0123456789"


@pytest.fixture
def app(gae_testbed: Any, tmp_path: Path) -> Any:
    settings = web_settings(tmp_path, DROPGZ_SERVICE_INTERNAL_KEY=KEY)
    return create_app(settings, push_queue=GAEPushQueue(), bucket_seconds=60)


def signed_post(client: Any, path: str, payload: Any, key: str = KEY) -> Any:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **sign(Secret(key), "POST", path, body)}
    return client.post(path, data=body, headers=headers)


def file(outcome: str = "compressed", **kw: Any) -> dict[str, Any]:
    base = {"account": "dbid:a", "path": "/docs/a.txt", "outcome": outcome, "at": time.time(),
            "bytes_in": 1000, "bytes_out": 300, "seconds": 0.1, "reason": ""}
    return {**base, **kw}


def test_a_signed_report_is_counted(app: Any) -> None:
    client = app.test_client()
    answer = signed_post(client, "/internal/report", {"worker": "h:1:2", "files": [
        file(), file("skipped", bytes_in=0, bytes_out=0, reason="content is already gzip"),
        file("failed", bytes_in=0, bytes_out=0, reason="bad message")]})
    assert answer.status_code == 200 and answer.json == {"accepted": 3}
    totals = app.extensions["dropgz"].reports.totals()
    assert (totals["files:compressed"], totals["files:skipped"], totals["files:failed"]) == \
        (1, 1, 1)
    assert totals["bytes_in"] == 1000 and totals["skipped:content is gzip"] == 1
    [latest, *_] = app.extensions["dropgz"].reports.recent_files()
    assert latest.worker == "h:1:2" and latest.outcome == "failed"


def test_unsigned_or_wrongly_signed_calls_are_refused(app: Any) -> None:
    client = app.test_client()
    assert client.post("/internal/report", json={"worker": "x", "files": [file()]}
                       ).status_code == 403
    assert signed_post(client, "/internal/heartbeat", {}, key="another-key-entirely-000"
                       ).status_code == 403
    assert app.extensions["dropgz"].reports.totals() == {}


@pytest.mark.parametrize("payload, problem", [
    ([], "JSON object"),
    ({"worker": "w", "files": "x"}, "'files'"),
    ({"worker": "w", "files": [file("exploded")]}, "'outcome'"),
    ({"worker": "w", "files": [file(bytes_in=-5)]}, "'bytes_in'"),
    ({"worker": "w", "files": [file(path=7)]}, "'path'"),
    ({"worker": "w", "files": [file(at=1e20)]}, "out of range"),
])
def test_malformed_reports_are_a_400_naming_the_problem(app: Any, payload: Any,
                                                        problem: str) -> None:
    answer = signed_post(app.test_client(), "/internal/report", payload)
    assert answer.status_code == 400 and problem in answer.json["error"]


def test_heartbeat_is_kept_and_answers_paused_accounts(app: Any) -> None:
    beat = {"worker": "host-a:7:100", "host": "host-a", "pid": 7, "version": "0.1.0",
            "started_at": time.time() - 60, "concurrency": 8, "in_flight": 3,
            "reports_dropped": 2}
    answer = signed_post(app.test_client(), "/internal/heartbeat", beat)
    assert answer.status_code == 200 and answer.json == {"paused": []}
    [worker] = app.extensions["dropgz"].reports.workers()
    assert (worker.host, worker.pid, worker.in_flight, worker.reports_dropped) == \
        ("host-a", 7, 3, 2)
    assert not worker.stale()


def test_webhooks_are_counted_by_result(app: Any) -> None:
    client = app.test_client()
    body = json.dumps({"list_folder": {"accounts": ["dbid:a"]}}).encode()
    for _ in range(3):
        client.post("/webhook", data=body, headers={"X-Dropbox-Signature": sign_body(body)})
    client.post("/webhook", data=body, headers={"X-Dropbox-Signature": "0" * 64})
    client.post("/webhook", data=b"[]", headers={"X-Dropbox-Signature": sign_body(b"[]")})
    svc = app.extensions["dropgz"]
    svc.counters.flush()
    totals = svc.reports.totals()
    assert (totals["webhooks:accepted"], totals["webhooks:bad_signature"],
            totals["webhooks:malformed"]) == (3, 1, 1)
