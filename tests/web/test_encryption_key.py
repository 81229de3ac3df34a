"""A missing or wrong ``[Service] encryption_key`` stops the web tier at start, in one line."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from dropgz.core.errors import ConfigError
from dropgz.core.secret import Secret
from dropgz.state import open_state_store
from dropgz.web.app import create_app
from tests.web.conftest import ENCRYPTION_KEY, web_settings

REFRESH = "refresh-token-plaintext-0123456789"


def store_one_account(tmp_path: Path) -> None:
    settings = web_settings(tmp_path, DROPGZ_SERVICE_ENCRYPTION_KEY=ENCRYPTION_KEY)
    open_state_store(settings).connect_account(
        "dbid:u1", refresh_token=Secret(REFRESH), email=None, display_name=None,
        watch_start=datetime.now(UTC), cursor="c")


def test_the_right_key_starts(tmp_path: Path) -> None:
    store_one_account(tmp_path)
    create_app(web_settings(tmp_path, DROPGZ_SERVICE_ENCRYPTION_KEY=ENCRYPTION_KEY))


@pytest.mark.parametrize(("key", "problem"), [
    (None, "missing (the state store holds connected accounts' refresh tokens)"),
    (Fernet.generate_key().decode(), "does not decrypt the stored refresh tokens"),
], ids=["missing", "wrong"])
def test_a_missing_or_wrong_key_is_a_config_error(tmp_path: Path, key: str | None,
                                                  problem: str) -> None:
    store_one_account(tmp_path)
    env = {"DROPGZ_SERVICE_ENCRYPTION_KEY": key} if key else {}
    with pytest.raises(ConfigError, match=r"\[Service\] encryption_key: ") as caught:
        create_app(web_settings(tmp_path, **env))
    assert problem in str(caught.value)


def test_connecting_needs_a_key_and_an_app_key(tmp_path: Path) -> None:
    redirect = {"DROPGZ_DROPBOX_REDIRECT_URI": "http://127.0.0.1:9/connect/callback"}
    with pytest.raises(ConfigError, match=r"\[Dropbox\] app_key: missing"):
        create_app(web_settings(tmp_path, **redirect))
    with pytest.raises(ConfigError, match=r"\[Service\] encryption_key: missing \(required"):
        create_app(web_settings(tmp_path, DROPGZ_DROPBOX_APP_KEY="appkey", **redirect))


def test_dropgz_web_exits_2_with_one_line(tmp_path: Path) -> None:
    store_one_account(tmp_path)
    wrong = Fernet.generate_key().decode()
    env = {"DROPGZ_DROPBOX_TOKEN": "t", "DROPGZ_DROPBOX_SECRET": "s",
           "DROPGZ_SERVICE_DATA_DIR": str(tmp_path / "data"),
           "DROPGZ_SERVICE_ENCRYPTION_KEY": wrong, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "dropgz", "web", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[-1]] and "encryption_key: does not decrypt" in lines[-1], lines
    assert wrong not in done.stderr and REFRESH not in done.stderr


def test_on_app_engine_a_wrong_key_is_logged_at_the_first_request(
        tmp_path: Path, gae_testbed: Any, caplog: pytest.LogCaptureFixture) -> None:
    from dropgz.core.encryption import TokenCipher
    from dropgz.pushqueue.gae import GAEPushQueue
    from dropgz.state.ndb import NdbStateStore

    NdbStateStore(TokenCipher(Secret(ENCRYPTION_KEY))).connect_account(
        "dbid:u1", refresh_token=Secret(REFRESH), email=None, display_name=None,
        watch_start=datetime.now(UTC), cursor="c")
    wrong = Fernet.generate_key().decode()
    settings = web_settings(tmp_path, DROPGZ_SERVICE_STATE="ndb", DROPGZ_SERVICE_PUSH_QUEUE="gae",
                            DROPGZ_SERVICE_ENCRYPTION_KEY=wrong)
    app = create_app(settings, push_queue=GAEPushQueue(),
                     state=NdbStateStore(TokenCipher(Secret(wrong))))  # no request yet: starts
    client = app.test_client()
    assert client.get("/healthz").status_code == 200
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "[Service] encryption_key: does not decrypt" in errors[0]
    client.get("/healthz")
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 1  # once
    assert wrong not in caplog.text and REFRESH not in caplog.text
