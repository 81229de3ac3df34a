"""The local push queue: durable, signed, retried deliveries over real HTTP."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, Response, request

from dropgz.core.errors import ConfigError
from dropgz.core.secret import Secret
from dropgz.pushqueue.base import Task, delta_task
from dropgz.pushqueue.local import (
    NAME_HEADER,
    RETRY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    LocalPushQueue,
    load_task_secret,
    sign,
)
from dropgz.web.app import create_app
from tests.fixtures.peers import wait_for
from tests.web.conftest import serve, web_settings

SECRET = Secret("task-secret-for-tests")


class Receiver:
    """A stand-in delta endpoint: checks the signature like the app, answers from a script."""

    def __init__(self, queue: LocalPushQueue, answers: list[tuple[int, dict[str, str]]]) -> None:
        self.queue = queue
        self.answers = list(answers)
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.app = Flask("receiver")
        self.app.add_url_rule("/tasks/delta", view_func=self.view, methods=["POST"])

    def view(self) -> Response:
        with self.lock:
            self.calls.append({"at": time.monotonic(), "ok": self.queue.verify_origin(request),
                               "payload": request.get_json(),
                               "retry": request.headers.get(RETRY_HEADER)})
            status, headers = self.answers.pop(0) if self.answers else (200, {})
        return Response("", status=status, headers=headers)


def test_task_is_delivered_signed(tmp_path: Path) -> None:
    queue = LocalPushQueue(tmp_path / "pq.sqlite3", SECRET, reconcile_seconds=None)
    receiver = Receiver(queue, [])
    with serve(receiver.app) as url:
        queue.start(url)
        try:
            assert queue.enqueue("/tasks/delta", {"account": "dbid:a"}, "delta-a-1")
            wait_for(lambda: receiver.calls)
        finally:
            queue.close()
    [call] = receiver.calls
    assert call["ok"] is True
    assert call["payload"] == {"account": "dbid:a"}
    assert call["retry"] == "0"
    assert wait_for(lambda: queue.pending() == [], timeout=5)


def test_non_2xx_is_retried_with_backoff_and_retry_after(tmp_path: Path) -> None:
    queue = LocalPushQueue(tmp_path / "pq.sqlite3", SECRET, reconcile_seconds=None)
    receiver = Receiver(queue, [(500, {}), (429, {"Retry-After": "2"}), (409, {})])
    with serve(receiver.app) as url:
        queue.start(url)
        try:
            queue.enqueue("/tasks/delta", {"account": "dbid:a"}, "delta-a-1")
            wait_for(lambda: len(receiver.calls) == 4, timeout=20)
        finally:
            queue.close()
    at = [c["at"] for c in receiver.calls]
    assert [c["retry"] for c in receiver.calls] == ["0", "1", "2", "3"]
    assert at[1] - at[0] >= 0.9  # first backoff: 1 s
    assert at[2] - at[1] >= 1.9  # Retry-After: 2 beats the 2 s backoff... at least 2 s
    assert at[3] - at[2] >= 3.9  # third backoff: 4 s
    assert queue.pending() == []


def test_tasks_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "pq.sqlite3"
    first = LocalPushQueue(path, SECRET, reconcile_seconds=None)
    assert first.enqueue("/tasks/delta", {"account": "dbid:a"}, "delta-a-1")
    assert first.enqueue("/tasks/delta", {"account": "dbid:b"}, "delta-b-1", countdown=0.5)
    first.close()  # never started: the process "died" before delivering

    second = LocalPushQueue(path, SECRET, reconcile_seconds=None)
    receiver = Receiver(second, [])
    with serve(receiver.app) as url:
        second.start(url)
        try:
            wait_for(lambda: len(receiver.calls) == 2)
        finally:
            second.close()
    assert sorted(c["payload"]["account"] for c in receiver.calls) == ["dbid:a", "dbid:b"]
    assert all(c["ok"] for c in receiver.calls)


def test_same_name_coalesces_even_after_delivery(tmp_path: Path) -> None:
    queue = LocalPushQueue(tmp_path / "pq.sqlite3", SECRET, reconcile_seconds=None)
    task = delta_task("dbid:a", now=1000.0)
    again = delta_task("dbid:a", now=1001.5)
    later = delta_task("dbid:a", now=1002.0)
    assert task.name == again.name != later.name
    assert queue.add([task, again, later]) == [True, False, True]
    receiver = Receiver(queue, [])
    with serve(receiver.app) as url:
        queue.start(url)
        try:
            wait_for(lambda: len(receiver.calls) == 2)
        finally:
            queue.close()
    assert queue.add([Task(task.url, task.payload, task.name)]) == [False]


def test_task_name_waits_for_the_end_of_its_bucket() -> None:
    task = delta_task("dbid:a", now=1000.5, bucket_seconds=2)
    assert task.countdown == pytest.approx(1.5)
    assert task.name.endswith("-500")


def test_task_secret_is_made_once_and_private(tmp_path: Path) -> None:
    first = load_task_secret(tmp_path / "data")
    second = load_task_secret(tmp_path / "data")
    assert first == second and len(first.reveal()) == 64
    mode = stat.S_IMODE(os.stat(tmp_path / "data" / "task_secret").st_mode)
    assert mode == 0o600
    assert load_task_secret(tmp_path / "data", Secret("configured")) == Secret("configured")
    assert "configured" not in repr(LocalPushQueue(tmp_path / "q.sqlite3", Secret("configured")))


def test_empty_task_secret_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "task_secret").write_text("\n")
    with pytest.raises(ConfigError, match="empty task secret file"):
        load_task_secret(tmp_path / "data")


def signed_headers(secret: Secret, path: str, body: bytes, *, name: str = "delta-x-1",
                   stamp: str | None = None) -> dict[str, str]:
    stamp = stamp or f"{time.time():.3f}"
    return {"Content-Type": "application/json", NAME_HEADER: name, TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(secret, "POST", path, name, stamp, body)}


@pytest.mark.parametrize("path", ["/tasks/delta", "/tasks/reconcile"])
def test_forged_tasks_are_403_over_http(tmp_path: Path, path: str) -> None:
    settings = web_settings(tmp_path, DROPGZ_SERVICE_TASK_SECRET="the-real-task-secret",
                            DROPGZ_DROPBOX_ACCOUNT_ID="dbid:owner")
    queue = LocalPushQueue.from_settings(settings, reconcile_seconds=None)
    app = create_app(settings, push_queue=queue)
    body = json.dumps({"account": "dbid:someone-else"}).encode()
    other = json.dumps({"account": "dbid:other"}).encode()
    real = Secret("the-real-task-secret")
    forged = [
        {"Content-Type": "application/json"},
        {"Content-Type": "application/json", "X-AppEngine-QueueName": "delta"},
        {"Content-Type": "application/json", "X-Appengine-Cron": "true"},
        signed_headers(Secret("a-guessed-secret"), path, body),
        signed_headers(real, path, other),  # valid for another body
        signed_headers(real, "/tasks/other", body),  # valid for another path
        signed_headers(real, path, body, stamp=f"{time.time() - 3600:.3f}"),  # too old
    ]
    with serve(app) as url:
        for headers in forged:
            response = requests.post(url + path, data=body, headers=headers, timeout=10)
            assert response.status_code == 403, headers
        cron = requests.get(url + "/tasks/reconcile-cron",
                            headers={"X-Appengine-Cron": "true"}, timeout=10)
        assert cron.status_code == 403  # no App Engine cron in local mode
        # The genuine article: an unknown account is acknowledged without Dropbox.
        if path == "/tasks/delta":
            ok = requests.post(url + path, data=body, headers=signed_headers(real, path, body),
                               timeout=10)
            assert ok.status_code == 200
            assert ok.json()["ignored"] == "unknown account"
    assert queue.pending() == []
