"""`main.py`, the App Engine entry point, as gunicorn would load it (settings from env)."""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from tests.web.conftest import stub_tasks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def main_app(gae_testbed: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    for key, value in {"DROPGZ_SERVICE_PUSH_QUEUE": "gae", "DROPGZ_SERVICE_STATE": "ndb",
                       "DROPGZ_DROPBOX_SECRET": "gae-app-secret", "DROPGZ_DROPBOX_TOKEN": "t",
                       "DROPGZ_DROPBOX_ACCOUNT_ID": "dbid:owner",
                       "DROPGZ_SERVICE_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("main", None)
    module = importlib.import_module("main")
    yield module.app
    sys.modules.pop("main", None)


def test_entry_point_answers_the_challenge_and_queues_a_signed_notification(
        main_app: Any, gae_testbed: Any) -> None:
    client = Client(main_app)
    challenge = client.get("/webhook?challenge=<b>x</b>")
    assert challenge.status_code == 200
    assert challenge.get_data() == b"<b>x</b>"
    assert challenge.headers["X-Content-Type-Options"] == "nosniff"
    body = json.dumps({"list_folder": {"accounts": ["dbid:owner"]},
                       "delta": {"users": [1]}}).encode()
    signature = hmac.new(b"gae-app-secret", body, hashlib.sha256).hexdigest()
    posted = client.post("/webhook", data=body, headers={"X-Dropbox-Signature": signature,
                                                        "Content-Type": "application/json"})
    assert posted.status_code == 200
    [task] = stub_tasks(gae_testbed)
    assert task.url == "/tasks/delta"
    forged = client.post("/webhook", data=body, headers={"X-Dropbox-Signature": "0" * 64})
    assert forged.status_code == 403
    assert len(stub_tasks(gae_testbed)) == 1
