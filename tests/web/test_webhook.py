"""Monitoring tier: GET challenge, POST signature check, one delta task per account."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from dropgz.pushqueue.base import DIRECT_ACCOUNTS
from dropgz.pushqueue.gae import GAEPushQueue
from dropgz.pushqueue.local import LocalPushQueue
from dropgz.state.sqlite import SqliteStateStore
from dropgz.web.app import MAX_REQUEST_BYTES, create_app
from tests.web.conftest import replay, sign_body, stub_tasks, web_settings


class UntouchableState(SqliteStateStore):
    """A state store that fails the test if the webhook path touches it."""

    def __getattribute__(self, name: str) -> Any:
        # (create_app checks the encryption key once at start: not the webhook path)
        if not name.startswith("_") and name not in ("path", "cipher", "check_cipher"):
            pytest.fail(f"the webhook touched the state store ({name})")
        return super().__getattribute__(name)


def no_dropbox(settings: Any) -> Any:
    pytest.fail("the webhook built a Dropbox client")


def never_opened() -> Any:
    pytest.fail("the webhook opened the work queue")


@pytest.fixture
def gae_app(gae_testbed: Any, tmp_path: Path) -> Any:
    settings = web_settings(tmp_path)
    state = UntouchableState(tmp_path / "state.sqlite3")
    app = create_app(settings, push_queue=GAEPushQueue(), state=state,
                     dropbox_factory=no_dropbox, bucket_seconds=60)
    app.extensions["dropgz"].open_work_queue = never_opened
    return app


def notification(*accounts: str) -> bytes:
    return json.dumps({"list_folder": {"accounts": list(accounts)},
                       "delta": {"users": [12345]}}).encode()


def post(client: Any, body: bytes, signature: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Dropbox-Signature"] = signature
    return client.post("/webhook", data=body, headers=headers)


def test_challenge_is_echoed_as_plain_text(gae_app: Any) -> None:
    response = gae_app.test_client().get("/webhook?challenge=<b>Xy1%2B</b>")
    assert response.status_code == 200
    assert response.get_data() == b"<b>Xy1+</b>"
    assert response.mimetype == "text/plain"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("query", ["", "?challenge=", "?other=1"])
def test_missing_challenge_is_400(gae_app: Any, query: str) -> None:
    response = gae_app.test_client().get("/webhook" + query)
    assert response.status_code == 400
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_good_signature_queues_one_delta_task(gae_app: Any, gae_testbed: Any) -> None:
    body = notification("dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc")
    response = post(gae_app.test_client(), body, sign_body(body))
    assert response.status_code == 200
    [task] = stub_tasks(gae_testbed)
    assert task.url == "/tasks/delta"
    assert json.loads(task.payload)["account"] == "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"
    assert task.name.startswith("delta-dbid_AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc-")


def test_uppercase_hex_signature_is_accepted(gae_app: Any, gae_testbed: Any) -> None:
    body = notification("dbid:a")
    assert post(gae_app.test_client(), body, sign_body(body).upper()).status_code == 200
    assert len(stub_tasks(gae_testbed)) == 1


@pytest.mark.parametrize("signature", [
    None,
    "",
    "0" * 64,
    sign_body(b'{"list_folder": {"accounts": ["dbid:other"]}}'),  # valid for another body
    sign_body(notification("dbid:a"), secret="not-the-app-secret"),
    "\u00e9" * 64,
])
def test_bad_signature_is_403_and_queues_nothing(gae_app: Any, gae_testbed: Any,
                                                  signature: str | None) -> None:
    response = post(gae_app.test_client(), notification("dbid:a"), signature)
    assert response.status_code == 403
    assert stub_tasks(gae_testbed) == []


@pytest.mark.parametrize("body", [
    b"not json",
    b"\xff\xfe",
    b"[]",
    b'{"delta": {"users": [1]}}',
    b'{"list_folder": {"accounts": "dbid:a"}}',
    b'{"list_folder": {"accounts": [1, 2]}}',
    b'{"list_folder": {"accounts": [""]}}',
    b'{"list_folder": []}',
])
def test_malformed_notification_is_400(gae_app: Any, gae_testbed: Any, body: bytes) -> None:
    response = post(gae_app.test_client(), body, sign_body(body))
    assert response.status_code == 400
    assert stub_tasks(gae_testbed) == []


def test_oversized_body_is_413(gae_app: Any, gae_testbed: Any) -> None:
    body = notification("dbid:" + "a" * MAX_REQUEST_BYTES)
    response = post(gae_app.test_client(), body, sign_body(body))
    assert response.status_code == 413
    assert stub_tasks(gae_testbed) == []


def test_empty_account_list_is_fine(gae_app: Any, gae_testbed: Any) -> None:
    body = notification()
    assert post(gae_app.test_client(), body, sign_body(body)).status_code == 200
    assert stub_tasks(gae_testbed) == []


def test_burst_for_one_account_coalesces(gae_app: Any, gae_testbed: Any) -> None:
    client = gae_app.test_client()
    for _ in range(5):
        body = notification("dbid:a", "dbid:b", "dbid:a")
        assert post(client, body, sign_body(body)).status_code == 200
    tasks = stub_tasks(gae_testbed)
    assert sorted(json.loads(t.payload)["account"] for t in tasks) == ["dbid:a", "dbid:b"]


def test_thousand_accounts_in_one_notification(gae_app: Any, gae_testbed: Any) -> None:
    # Given a notification naming 1,000 accounts
    accounts = [f"dbid:account-{i:04d}" for i in range(1000)]
    body = notification(*accounts)
    started = time.monotonic()
    response = post(gae_app.test_client(), body, sign_body(body))
    elapsed = time.monotonic() - started
    # Then the webhook queued one fan-out task naming them all, quickly
    assert response.status_code == 200
    assert elapsed < 5.0, f"webhook took {elapsed:.2f}s for 1000 accounts"
    [fanout] = stub_tasks(gae_testbed)
    assert fanout.url == "/tasks/fanout"
    assert json.loads(fanout.payload)["accounts"] == accounts
    # And delivered, it queues one delta task per account
    from google.appengine.ext import testbed

    gae_testbed.get_stub(testbed.TASKQUEUE_SERVICE_NAME).DeleteTask("delta", fanout.name)
    answer = replay(gae_app.test_client(), fanout)
    assert answer.status_code == 200 and answer.json == {"accounts": 1000, "queued": 1000}
    tasks = stub_tasks(gae_testbed)
    assert {t.url for t in tasks} == {"/tasks/delta"}
    assert sorted(json.loads(t.payload)["account"] for t in tasks) == accounts
    assert len({t.name for t in tasks}) == 1000


def test_a_few_accounts_get_their_delta_tasks_directly(gae_app: Any, gae_testbed: Any) -> None:
    accounts = [f"dbid:account-{i}" for i in range(DIRECT_ACCOUNTS)]
    body = notification(*accounts)
    assert post(gae_app.test_client(), body, sign_body(body)).status_code == 200
    tasks = stub_tasks(gae_testbed)
    assert {t.url for t in tasks} == {"/tasks/delta"} and len(tasks) == DIRECT_ACCOUNTS


def test_thousand_accounts_local_push_queue(tmp_path: Path) -> None:
    settings = web_settings(tmp_path)
    queue = LocalPushQueue.from_settings(settings)  # not started: tasks only stored
    app = create_app(settings, push_queue=queue, dropbox_factory=no_dropbox,
                     state=UntouchableState(tmp_path / "state.sqlite3"), bucket_seconds=60)
    accounts = [f"dbid:account-{i:04d}" for i in range(1000)]
    body = notification(*accounts)
    started = time.monotonic()
    response = post(app.test_client(), body, sign_body(body))
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert [t["url"] for t in queue.pending()] == ["/tasks/fanout"]
    assert elapsed < 2.0, f"webhook took {elapsed:.2f}s for 1000 accounts"
    # The same notification again (Dropbox retries, or a replay): coalesced.
    assert post(app.test_client(), body, sign_body(body)).status_code == 200
    assert len(queue.pending()) == 1


def test_app_needs_the_webhook_secret(tmp_path: Path) -> None:
    from dropgz.core.errors import ConfigError

    settings = web_settings(tmp_path, DROPGZ_DROPBOX_SECRET="")
    with pytest.raises(ConfigError, match=r"\[Dropbox\] secret"):
        create_app(settings, push_queue=GAEPushQueue.__new__(GAEPushQueue))
