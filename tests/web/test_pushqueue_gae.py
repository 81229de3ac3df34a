"""App Engine push queue: tasks in the testbed stub, origin checks on /tasks/*."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dropgz.pushqueue.base import Task
from dropgz.pushqueue.gae import GAEPushQueue
from dropgz.web.app import create_app
from tests.web.conftest import stub_tasks, web_settings


def test_names_coalesce_including_tombstones(gae_testbed: Any) -> None:
    queue = GAEPushQueue()
    tasks = [Task("/tasks/delta", {"account": f"dbid:{i}"}, f"delta-{i}") for i in range(150)]
    assert queue.add(tasks) == [True] * 150  # two batches (at most 100 per add)
    again = [Task("/tasks/delta", {"account": "dbid:new"}, "delta-new"), tasks[0], tasks[149]]
    assert queue.add(again) == [True, False, False]
    assert queue.enqueue("/tasks/delta", {}, "delta-new") is False
    names = {t.name for t in stub_tasks(gae_testbed)}
    assert len(names) == 151


def test_countdown_sets_the_eta(gae_testbed: Any) -> None:
    GAEPushQueue().enqueue("/tasks/delta", {"account": "dbid:a"}, "delta-a", countdown=30)
    [task] = stub_tasks(gae_testbed)
    assert 25 < float(task.headers["X-AppEngine-TaskETA"]) - __import__("time").time() <= 30


@pytest.fixture
def client(gae_testbed: Any, tmp_path: Path) -> Any:
    settings = web_settings(tmp_path, DROPGZ_DROPBOX_ACCOUNT_ID="dbid:owner")
    app = create_app(settings, push_queue=GAEPushQueue())
    return app.test_client()


@pytest.mark.parametrize("path", ["/tasks/delta", "/tasks/reconcile"])
@pytest.mark.parametrize("headers", [
    {},
    {"X-Appengine-Cron": "true"},
    {"X-AppEngine-TaskName": "delta-x"},  # without the queue name
    {"X-Dropgz-Task-Signature": "0" * 64, "X-Dropgz-Task-Name": "x"},
])
def test_forged_task_is_403(client: Any, gae_testbed: Any, path: str,
                            headers: dict[str, str]) -> None:
    response = client.post(path, json={"account": "dbid:owner"}, headers=headers)
    assert response.status_code == 403
    assert stub_tasks(gae_testbed) == []


def test_cron_route_needs_the_cron_header(client: Any, gae_testbed: Any) -> None:
    assert client.get("/tasks/reconcile-cron").status_code == 403
    forged = client.get("/tasks/reconcile-cron", headers={"X-AppEngine-QueueName": "delta"})
    assert forged.status_code == 403
    assert stub_tasks(gae_testbed) == []


def test_bad_task_payload_is_400(client: Any) -> None:
    headers = {"X-AppEngine-QueueName": "delta"}
    for body in (b"nope", b"{}", b'{"account": 5}', b'{"account": "a", "notified_at": "x"}'):
        response = client.post("/tasks/delta", data=body, headers=headers,
                               content_type="application/json")
        assert response.status_code == 400, body


def test_unknown_account_is_acknowledged(client: Any) -> None:
    response = client.post("/tasks/delta", json={"account": "dbid:stranger"},
                           headers={"X-AppEngine-QueueName": "delta"})
    assert response.status_code == 200
    assert json.loads(response.data)["ignored"] == "unknown account"
