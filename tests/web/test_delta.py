"""Delta tier against real peers: the Dropbox emulator (changes made through the SDK) and
moto_server (the SQS queue the messages land in). Tasks are App Engine stub tasks replayed
against the app, or direct push-queue deliveries carrying App Engine's header."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import dropbox
import pytest
import requests

from dropgz.core.config import Settings, load_settings
from dropgz.pushqueue.gae import GAEPushQueue
from dropgz.state.sqlite import SqliteStateStore
from dropgz.web import delta
from dropgz.web.app import create_app
from dropgz.web.delta import init_account
from tests.fixtures.moto import moto_env
from tests.fixtures.peers import wait_for
from tests.web.conftest import APP_SECRET, replay, serve, sign_body, stub_tasks

QUEUE_HEADERS = {"X-AppEngine-QueueName": "delta", "X-AppEngine-TaskName": "manual"}


class Pipeline:
    """The app wired to the emulator and a fresh SQS queue on moto_server."""

    def __init__(self, emulator: Any, moto_server: str, tmp_path: Path, bed: Any,
                 state: Any = None, page_limit: int = 2000, **app_kwargs: Any) -> None:
        from dropgz.queues.sqs import ensure_queues

        env = moto_env(moto_server, tmp_path,
                       DROPGZ_DROPBOX_TOKEN=emulator.token,
                       DROPGZ_DROPBOX_SECRET=APP_SECRET,
                       DROPGZ_DROPBOX_API_BASE_URL=emulator.url,
                       DROPGZ_COMPRESSION_EXCLUDE="*.jpg")
        if getattr(emulator, "ca_bundle", None):
            env["DROPGZ_DROPBOX_CA_BUNDLE"] = str(emulator.ca_bundle)
        self.settings: Settings = load_settings(env=env)
        ensure_queues(self.settings)
        self.emulator = emulator
        self.bed = bed
        self.dbx: dropbox.Dropbox = emulator.client()
        self.state = state or SqliteStateStore(tmp_path / "state.sqlite3")
        self.app = create_app(self.settings, push_queue=GAEPushQueue(), state=self.state,
                              page_limit=page_limit, bucket_seconds=0.05, **app_kwargs)
        self.client = self.app.test_client()
        self.account = self.dbx.users_get_current_account().account_id
        sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-west-1",
                           aws_access_key_id="AKIAMOTOTESTING",
                           aws_secret_access_key="moto-fake-secret-key-do-not-log")
        self.sqs = sqs
        self.queue_url = sqs.get_queue_url(QueueName=self.settings.aws.queue)["QueueUrl"]

    def put(self, path: str, data: bytes = b"hello world\n" * 10) -> Any:
        return self.dbx.files_upload(data, path, mode=dropbox.files.WriteMode.overwrite)

    def start_watching(self) -> str:
        return init_account(self.settings, self.state, self.dbx, page_limit=2000)

    def notify(self) -> Any:
        body = json.dumps({"list_folder": {"accounts": [self.account]}}).encode()
        return self.client.post("/webhook", data=body,
                                headers={"X-Dropbox-Signature": sign_body(body)})

    def run_tasks(self) -> list[Any]:
        """Replay every task the stub holds (as App Engine would), then drop them."""
        from google.appengine.ext import testbed

        stub = self.bed.get_stub(testbed.TASKQUEUE_SERVICE_NAME)
        answers = []
        for task in stub_tasks(self.bed):
            answers.append(replay(self.client, task))
            stub.DeleteTask("delta", task.name)
        return answers

    def deliver(self) -> Any:
        return self.client.post("/tasks/delta", json={"account": self.account},
                                headers=QUEUE_HEADERS)

    def messages(self) -> list[dict[str, Any]]:
        """Every message now in the SQS queue (received with a long visibility timeout)."""
        found: list[dict[str, Any]] = []
        empty = 0
        while empty < 2:
            got = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                           VisibilityTimeout=600, WaitTimeSeconds=0)
            batch = got.get("Messages", [])
            empty = 0 if batch else empty + 1
            found.extend(json.loads(m["Body"]) for m in batch)
        return found

    def sent_paths(self) -> list[str]:
        return sorted(m["path"] for m in self.messages())


@pytest.fixture
def pipeline(emulator: Any, moto_server: str, tmp_path: Path, gae_testbed: Any) -> Pipeline:
    return Pipeline(emulator, moto_server, tmp_path, gae_testbed)


def test_first_webhook_after_start_is_compressed(pipeline: Pipeline) -> None:
    # Given a file that was there before the service started watching
    pipeline.put("/before.txt")
    assert pipeline.start_watching() == pipeline.account
    # When a file is added and Dropbox notifies
    meta = pipeline.put("/Docs/After.txt", b"x" * 1000)
    assert pipeline.notify().status_code == 200
    answers = pipeline.run_tasks()
    # Then exactly the new file is in SQS, with what the worker needs
    assert [a.status_code for a in answers] == [200]
    [message] = pipeline.messages()
    assert message == {"path": "/Docs/After.txt", "account": pipeline.account, "id": meta.id,
                       "rev": meta.rev, "size": 1000, "content_hash": meta.content_hash}
    # And a second notification with nothing new sends nothing
    pipeline.notify()
    time.sleep(0.06)  # next coalescing bucket
    pipeline.notify()
    assert all(a.status_code == 200 for a in pipeline.run_tasks())
    assert pipeline.messages() == []


def test_first_run_without_cursor_uses_the_watch_start(pipeline: Pipeline) -> None:
    # Given an account recorded (App Engine: by the first cron) without a cursor
    pipeline.put("/old.txt")
    time.sleep(1.1)  # server_modified has whole seconds
    pipeline.state.add_account(pipeline.account, watch_start=datetime.now(UTC))
    pipeline.put("/new.txt")
    # When the first delta task runs, it lists from scratch
    response = pipeline.deliver()
    assert response.status_code == 200 and response.json["mode"] == "first"
    # Then only the file changed since the watch start is sent, and the cursor is stored
    assert pipeline.sent_paths() == ["/new.txt"]
    assert pipeline.state.get_cursor(pipeline.account)
    pipeline.put("/later.txt")
    assert pipeline.deliver().json["mode"] == "continue"
    assert pipeline.sent_paths() == ["/later.txt"]


def test_account_never_seen_is_recorded_by_its_first_task(pipeline: Pipeline) -> None:
    pipeline.put("/dropped.txt")
    response = pipeline.deliver()
    assert response.status_code == 200
    # Within FIRST_NOTICE_LOOKBACK of the notification: compressed.
    assert pipeline.sent_paths() == ["/dropped.txt"]
    record = pipeline.state.get(pipeline.account)
    assert record.watch_start is not None and record.cursor


def test_listing_over_many_pages(emulator: Any, moto_server: str, tmp_path: Path,
                                 gae_testbed: Any) -> None:
    pipeline = Pipeline(emulator, moto_server, tmp_path, gae_testbed, page_limit=3)
    init_account(pipeline.settings, pipeline.state, pipeline.dbx, page_limit=3)
    expected = sorted(f"/dir{i % 4}/file{i:02d}.txt" for i in range(23))
    for path in expected:
        pipeline.put(path)
    response = pipeline.deliver()
    assert response.status_code == 200
    assert response.json["pages"] >= 8  # 23 files and 4 folders, 3 entries a page
    assert pipeline.sent_paths() == expected


def test_reset_lists_again_from_scratch(pipeline: Pipeline,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # No lookback, so the test can tell "since the last sync" from "everything".
    monkeypatch.setattr(delta, "RESET_LOOKBACK", timedelta(0))
    pipeline.put("/old.txt")
    time.sleep(1.1)  # server_modified has whole seconds
    pipeline.start_watching()
    pipeline.put("/new.txt")
    # Given Dropbox dropped the history our cursor points into
    pipeline.emulator.compact_journal()
    # When the delta runs, list_folder/continue answers reset
    response = pipeline.deliver()
    # Then it starts over from list_folder and sends what changed since the last sync only
    assert response.status_code == 200 and response.json["mode"] == "reset"
    assert pipeline.sent_paths() == ["/new.txt"]
    pipeline.put("/after-reset.txt")
    assert pipeline.deliver().json["mode"] == "continue"
    assert pipeline.sent_paths() == ["/after-reset.txt"]


def test_garbled_cursor_is_a_reset_too(pipeline: Pipeline) -> None:
    pipeline.start_watching()
    owner = "test"
    assert pipeline.state.acquire_lease(pipeline.account, owner, 60)
    pipeline.state.save_cursor(pipeline.account, "AAAA-not-a-valid-cursor", lease_owner=owner,
                               synced_at=datetime.now(UTC))
    pipeline.state.release_lease(pipeline.account, owner)
    pipeline.put("/new.txt")
    response = pipeline.deliver()
    assert response.status_code == 200 and response.json["mode"] == "reset"
    assert pipeline.sent_paths() == ["/new.txt"]


def test_deletions_folders_and_ineligible_files_send_nothing(pipeline: Pipeline) -> None:
    pipeline.put("/gone.txt")
    pipeline.start_watching()
    pipeline.dbx.files_create_folder_v2("/New Folder")
    pipeline.dbx.files_delete_v2("/gone.txt")
    pipeline.put("/New Folder/archive.txt.gz")  # already gzip: the worker's own output
    pipeline.put("/New Folder/photo.jpg")  # excluded by [Compression] exclude
    pipeline.put("/New Folder/notes.md")
    response = pipeline.deliver()
    assert response.status_code == 200
    assert pipeline.sent_paths() == ["/New Folder/notes.md"]


class DiesAfterSending(SqliteStateStore):
    """The process 'dies' after the messages went out and before the cursor is saved."""

    deaths = 1

    def save_cursor(self, *args: Any, **kwargs: Any) -> None:
        if self.deaths:
            self.deaths -= 1
            raise RuntimeError("killed between send and cursor save")
        super().save_cursor(*args, **kwargs)


def test_death_between_send_and_cursor_save_loses_nothing(
        emulator: Any, moto_server: str, tmp_path: Path, gae_testbed: Any) -> None:
    state = DiesAfterSending(tmp_path / "state.sqlite3")
    pipeline = Pipeline(emulator, moto_server, tmp_path, gae_testbed, state=state)
    pipeline.start_watching()
    cursor_before = state.get_cursor(pipeline.account)
    pipeline.put("/a.txt")
    pipeline.put("/b.txt")
    pipeline.app.testing = False  # an unhandled error is a 500, as in production
    assert pipeline.deliver().status_code == 500
    assert state.get_cursor(pipeline.account) == cursor_before  # not moved
    # The push queue delivers again: the same files are sent again (duplicates are fine)
    assert pipeline.deliver().status_code == 200
    sent = Counter(pipeline.sent_paths())
    assert sent == Counter({"/a.txt": 2, "/b.txt": 2})
    assert state.get_cursor(pipeline.account) != cursor_before


def test_concurrent_deliveries_for_one_account(pipeline: Pipeline) -> None:
    pipeline.start_watching()
    expected = sorted(f"/c/{i:02d}.txt" for i in range(12))
    for path in expected:
        pipeline.put(path)
    answers: list[requests.Response] = []
    lock = threading.Lock()
    emulator = pipeline.emulator
    with serve(pipeline.app) as url:
        def deliver() -> None:
            response = requests.post(url + "/tasks/delta", json={"account": pipeline.account},
                                     headers=QUEUE_HEADERS, timeout=60)
            with lock:
                answers.append(response)

        threads = [threading.Thread(target=deliver) for _ in range(4)]
        # One run is listing (its call held by the emulator) while the other three arrive
        with emulator.holding("files/list_folder/continue"):
            for t in threads:
                t.start()
            emulator.wait_held("files/list_folder/continue", 1)
            wait_for(lambda: len(answers) == 3, 30, "the three overlapping deliveries answered")
            late = pipeline.put("/c/during-the-run.txt")  # a change while the run is listing
        for t in threads:
            t.join(60)
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 409, 409, 409]
        assert all(a.headers["Retry-After"] for a in answers if a.status_code == 409)
        # The push queue retries the refused ones once the lease is free
        retry = requests.post(url + "/tasks/delta", json={"account": pipeline.account},
                              headers=QUEUE_HEADERS, timeout=60)
        assert retry.status_code == 200
    sent = Counter(pipeline.sent_paths())
    assert set(sent) == {*expected, late.path_display}
    assert max(sent.values()) == 1, sent


def test_rate_limit_answers_429_with_retry_after(pipeline: Pipeline) -> None:
    pipeline.start_watching()
    cursor = pipeline.state.get_cursor(pipeline.account)
    pipeline.put("/a.txt")
    pipeline.emulator.configure(fail_next=1, fail_kinds="429", retry_after=7)
    response = pipeline.deliver()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert pipeline.state.get_cursor(pipeline.account) == cursor
    assert pipeline.messages() == []
    # The lease was given back: the retry goes through
    assert pipeline.deliver().status_code == 200
    assert pipeline.sent_paths() == ["/a.txt"]


def test_reconcile_queues_every_known_account(pipeline: Pipeline) -> None:
    # A fresh deployment: reconcile records the configured account and queues it
    response = pipeline.client.get("/tasks/reconcile-cron",
                                   headers={"X-Appengine-Cron": "true"})
    assert response.status_code == 200
    assert pipeline.state.get(pipeline.account).cursor  # watching from now
    pipeline.state.add_account("dbid:another-known-account", watch_start=datetime.now(UTC))
    time.sleep(0.06)
    response = pipeline.client.post("/tasks/reconcile", headers=QUEUE_HEADERS)
    assert response.status_code == 200
    accounts = Counter(json.loads(t.payload)["account"] for t in stub_tasks(pipeline.bed))
    assert accounts == Counter({pipeline.account: 2, "dbid:another-known-account": 1})
    # A lost webhook is healed: the replayed tasks pick up the change
    pipeline.put("/missed.txt")
    answers = pipeline.run_tasks()
    assert all(a.status_code == 200 for a in answers)
    assert pipeline.sent_paths() == ["/missed.txt"]


def test_ndb_state_replay(emulator: Any, moto_server: str, tmp_path: Path,
                          gae_testbed: Any) -> None:
    from dropgz.state.ndb import NdbStateStore

    pipeline = Pipeline(emulator, moto_server, tmp_path, gae_testbed, state=NdbStateStore())
    pipeline.start_watching()
    name = f"/ndb-{uuid.uuid4().hex[:6]}.txt"
    pipeline.put(name)
    assert pipeline.notify().status_code == 200
    assert [a.status_code for a in pipeline.run_tasks()] == [200]
    assert pipeline.sent_paths() == [name]
