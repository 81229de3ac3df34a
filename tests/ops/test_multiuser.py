"""Several users on one ``dropgz serve`` with SQS (moto_server) and the multi-user emulator.

Three users keep files with identical names; users 1 and 2 connect (through the real OAuth
flow), user 3 never does. Each connected user gets their own .gz, user 3 none. Then user 2
removes the app in their Dropbox settings (``/_emulator/unlink``) while a delta run for them
is in flight: the account is marked "needs reconnect", nothing is retried or dead-lettered,
``dropgz status`` and ``dropgz check`` show it, and connecting again resumes it (the file
changed meanwhile gets its .gz). ``dropgz backfill --account`` compresses what user 1 had
before connecting.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dropbox
import requests

from dropgz.core.config import load_settings
from dropgz.pushqueue.local import LocalPushQueue
from dropgz.queues import open_work_queue
from dropgz.queues.sqs import ensure_queues
from dropgz.state import open_state_store
from tests.fixtures.moto import moto_env
from tests.fixtures.multiuser import Site, start_service
from tests.fixtures.peers import gunzip_bytes, wait_for

SHARED = "/Shared Name/report.txt"


def exists(dbx: dropbox.Dropbox, path: str) -> bool:
    try:
        dbx.files_get_metadata(path)
    except dropbox.exceptions.ApiError:
        return False
    return True


def gz_text(dbx: dropbox.Dropbox, path: str) -> bytes:
    _, response = dbx.files_download(path + ".gz")
    with response:
        return gunzip_bytes(response.content)


def dropgz(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dropgz", *args], env=site.env,
                          capture_output=True, text=True, timeout=120, check=False)


def delta_tasks_pending(site: Site) -> list[dict[str, Any]]:
    queue = LocalPushQueue(Path(site.env["DROPGZ_SERVICE_DATA_DIR"]) / "pushqueue.sqlite3",
                           secret=None)  # type: ignore[arg-type]  (reading only)
    return [t for t in queue.pending() if t["url"] == "/tasks/delta"]


def settled(site: Site) -> bool:
    """No delta task waiting and nothing in the work queue (visible or in flight)."""
    queue = open_work_queue(load_settings(env=site.env))
    try:
        stats = queue.stats()
    finally:
        queue.close()
    return not delta_tasks_pending(site) and stats.visible == stats.in_flight == 0


def notify(site: Site, account: str) -> None:
    """A signed notification naming ``account``, as Dropbox sends it."""
    body = json.dumps({"list_folder": {"accounts": [account]}}).encode()
    signature = hmac.new(site.emulator.app_secret.encode(), body, hashlib.sha256).hexdigest()
    answer = requests.post(site.url + "/webhook", data=body, timeout=10,
                           headers={"X-Dropbox-Signature": signature})
    assert answer.status_code == 200


def test_users_are_served_apart_revoked_and_resumed(tmp_path: Path, moto_server: str) -> None:
    sqs = moto_env(moto_server, tmp_path)
    ensure_queues(load_settings(env=sqs))
    with start_service(tmp_path, accounts=3, workers=2, extra_env=sqs) as site:
        users = {n: site.client(n) for n in (1, 2, 3)}
        ids = {n: site.account_id(n) for n in (1, 2, 3)}
        users[1].files_upload(b"user 1 had this before connecting\n" * 50, "/old/notes.txt")

        # Users 1 and 2 connect; user 3 never does.
        for n in (1, 2):
            answer = site.connect(n)
            assert answer.status_code == 200, answer.text

        # Identically named files in all three accounts, each with its own content.
        data = {n: f"report of user {n}\n".encode() * (300 + n) for n in (3, 1, 2)}
        for n, content in data.items():
            users[n].files_upload(content, SHARED)
        for n in (1, 2):
            wait_for(lambda n=n: exists(users[n], SHARED + ".gz"), 60, f"user {n}'s .gz",
                     diagnose=site.log)
            assert gz_text(users[n], SHARED) == data[n]
        wait_for(lambda: settled(site), 60, "pipeline settled", diagnose=site.log)
        assert not exists(users[3], SHARED + ".gz")
        state = open_state_store(load_settings(env=site.env))
        assert state.get(ids[3]) is None

        # User 2 removes the app while a delta run for them waits on Dropbox.
        site.emulator.hold("files/list_folder/continue")
        users[2].files_upload(b"changed while the app was removed\n" * 40, "/during.txt")
        site.emulator.wait_held("files/list_folder/continue")
        site.emulator.unlink(ids[2])
        site.emulator.release("files/list_folder/continue")
        wait_for(lambda: state.get(ids[2]).status == "needs_reconnect", 60,
                 "user 2 marked needs reconnect", diagnose=site.log)
        notify(site, ids[2])  # more notifications: answered, not retried
        wait_for(lambda: settled(site), 60, "pipeline settled", diagnose=site.log)
        dead = open_work_queue(load_settings(env=site.env))
        try:
            assert dead.stats().dead == 0
        finally:
            dead.close()
        status = dropgz(site, "status")
        assert status.returncode == 0, status.stderr
        assert "needs reconnect" in status.stdout and ids[2] in status.stdout, status.stdout
        check = dropgz(site, "check")
        assert "needs reconnect" in check.stdout, check.stdout
        assert "Encryption key" in check.stdout and "users connect at" in check.stdout

        # Connecting again resumes it: the file changed meanwhile gets its .gz.
        users[2] = site.client(2)
        assert site.connect(2).status_code == 200
        assert state.get(ids[2]).status == "watching"
        fresh = site.emulator.client(2, oauth2_access_token=None,
                                     oauth2_refresh_token=state.refresh_token(ids[2]).reveal(),
                                     app_key=site.emulator.app_key,
                                     app_secret=site.emulator.app_secret)
        wait_for(lambda: exists(fresh, "/during.txt.gz"), 60, "during.txt.gz after reconnect",
                 diagnose=site.log)

        # Backfill: what user 1 had before connecting, through the queue and the workers.
        backfill = dropgz(site, "backfill", "--account", ids[1])
        assert backfill.returncode == 0, backfill.stderr
        wait_for(lambda: exists(users[1], "/old/notes.txt.gz"), 60, "backfilled .gz",
                 diagnose=site.log)
        unknown = dropgz(site, "backfill", "--account", ids[3])
        assert unknown.returncode == 2 and "is not connected" in unknown.stderr
        assert not exists(users[3], SHARED + ".gz")

    log = site.log()
    for secret in (site.emulator.app_secret, site.env["DROPGZ_SERVICE_ENCRYPTION_KEY"],
                   *(a.refresh_token for a in site.emulator.accounts)):
        assert secret not in log
    assert os.path.exists(tmp_path / "serve.log")
