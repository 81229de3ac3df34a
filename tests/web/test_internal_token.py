"""``POST /internal/token``: workers' short-lived Dropbox tokens, minted by the web tier.

Against the real emulator (its token endpoint and API), with the web app served for real
and called through the workers' own signed client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from dropgz.compression.internal_client import InternalCallRefused, InternalClient
from dropgz.core.config import Settings, load_settings
from dropgz.core.errors import TransientError
from dropgz.core.secret import Secret
from dropgz.web.app import create_app
from tests.fixtures.servers import serve
from tests.web.conftest import ENCRYPTION_KEY
from tests.web.test_delta import QUEUE_HEADERS

INTERNAL_KEY = "internal-key-for-tests-0123456789abcdef"


def settings_for(emulator: Any, tmp_path: Path, *, seed: str = "token",
                 **extra: str) -> Settings:
    env = {"DROPGZ_DROPBOX_SECRET": emulator.app_secret,
           "DROPGZ_DROPBOX_APP_KEY": emulator.app_key,
           "DROPGZ_DROPBOX_API_BASE_URL": emulator.url,
           "DROPGZ_SERVICE_DATA_DIR": str(tmp_path / "data"),
           "DROPGZ_SERVICE_INTERNAL_KEY": INTERNAL_KEY,
           "DROPGZ_SERVICE_ENCRYPTION_KEY": ENCRYPTION_KEY}
    if seed == "token":
        env["DROPGZ_DROPBOX_TOKEN"] = emulator.token
    elif seed == "refresh":
        env["DROPGZ_DROPBOX_REFRESH_TOKEN"] = emulator.refresh_token
    else:  # no seed account: users connect
        env["DROPGZ_DROPBOX_REDIRECT_URI"] = "http://127.0.0.1:9/connect/callback"
    env.update(extra)
    return load_settings(env=env)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Any]:
    """``web(settings)`` → (signed client, Services) for an app served on loopback."""
    stack: list[Any] = []

    def start(settings: Settings) -> tuple[InternalClient, Any]:
        app = create_app(settings)
        cm = serve(app)
        url = cm.__enter__()
        stack.append(cm)
        return InternalClient(url, Secret(INTERNAL_KEY)), app.extensions["dropgz"]

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


def connect(svc: Any, account: str, refresh_token: str) -> None:
    svc.state.connect_account(account, refresh_token=Secret(refresh_token), email="u@x.test",
                              display_name="U", watch_start=datetime.now(UTC), cursor=None)


def works(emulator: Any, token: str) -> str:
    return emulator.client(oauth2_access_token=token).users_get_current_account().account_id


def token_calls(emulator: Any) -> dict[str, int]:
    return emulator.route_statuses("oauth2/token")


def test_the_seed_refresh_token_is_minted_once_and_cached(emulator: Any, tmp_path: Path,
                                                          web: Any) -> None:
    client, _ = web(settings_for(emulator, tmp_path, seed="refresh"))
    first = client.post("/internal/token", {"account": None})
    emulator.reset_stats()
    second = client.post("/internal/token", {"account": emulator.account_id})
    third = client.post("/internal/token", {"account": None})
    assert token_calls(emulator) == {}  # minted once, then cached
    assert first["account"] == second["account"] == third["account"] == emulator.account_id
    assert first["access_token"] == second["access_token"] == third["access_token"]
    assert first["access_token"] != emulator.refresh_token
    assert first["expires_at"] > datetime.now(UTC).timestamp() + 3600
    assert works(emulator, first["access_token"]) == emulator.account_id


def test_the_seed_plain_token_is_handed_out(emulator: Any, tmp_path: Path, web: Any) -> None:
    client, _ = web(settings_for(emulator, tmp_path))
    answer = client.post("/internal/token", {"account": None})
    assert answer["access_token"] == emulator.token
    assert answer["account"] == emulator.account_id


def test_a_connected_account_gets_tokens_from_its_stored_grant(emulator: Any, tmp_path: Path,
                                                               web: Any) -> None:
    client, svc = web(settings_for(emulator, tmp_path, seed="none"))
    connect(svc, emulator.account_id, emulator.refresh_token)
    answer = client.post("/internal/token", {"account": emulator.account_id})
    assert works(emulator, answer["access_token"]) == emulator.account_id
    # rejected: minted anew even though the cached one is still fresh
    again = client.post("/internal/token", {"account": emulator.account_id, "rejected": True})
    assert again["access_token"] != answer["access_token"]


def test_unknown_accounts_are_disconnected(emulator: Any, tmp_path: Path, web: Any) -> None:
    client, _ = web(settings_for(emulator, tmp_path, seed="none"))
    for account in ("dbid:AAnobodyHere", None):
        with pytest.raises(InternalCallRefused) as refused:
            client.post("/internal/token", {"account": account})
        assert (refused.value.status, refused.value.reason) == (404, "account disconnected")


def test_a_refused_grant_marks_the_account_needs_reconnect(emulator: Any, tmp_path: Path,
                                                           web: Any, caplog: Any) -> None:
    client, svc = web(settings_for(emulator, tmp_path, seed="none"))
    connect(svc, emulator.account_id, "emu-refresh-revoked-long-ago")
    emulator.reset_stats()
    caplog.set_level(logging.INFO)
    for _ in range(2):
        with pytest.raises(InternalCallRefused) as refused:
            client.post("/internal/token", {"account": emulator.account_id})
        assert (refused.value.status, refused.value.reason) == (409, "needs reconnect")
    assert token_calls(emulator) == {"400": 1}  # the second answer came from the store
    record = svc.state.get(emulator.account_id)
    assert record.status == "needs_reconnect"
    assert "connect again" in record.status_reason
    assert "emu-refresh-revoked-long-ago" not in caplog.text


def test_calls_must_be_signed(emulator: Any, tmp_path: Path, web: Any) -> None:
    client, _ = web(settings_for(emulator, tmp_path))
    plain = requests.post(client.base_url + "/internal/token", json={"account": None},
                          timeout=10)
    assert plain.status_code == 403
    assert "access_token" not in plain.text
    wrong = InternalClient(client.base_url, Secret("another-key-0123456789"))
    with pytest.raises(InternalCallRefused, match="bad signature"):
        wrong.post("/internal/token", {"account": None})


def test_malformed_requests_are_400(emulator: Any, tmp_path: Path, web: Any) -> None:
    client, _ = web(settings_for(emulator, tmp_path))
    for body in ({"account": 7}, {"account": "x" * 300}, {"account": None, "rejected": "y"}):
        with pytest.raises(InternalCallRefused) as refused:
            client.post("/internal/token", body)
        assert refused.value.status == 400


def test_operator_and_network_failures(emulator: Any, tmp_path: Path, web: Any,
                                       caplog: Any) -> None:
    caplog.set_level(logging.INFO)
    client, svc = web(settings_for(emulator, tmp_path, seed="none",
                                   DROPGZ_DROPBOX_SECRET="wrong-app-secret"))
    connect(svc, emulator.account_id, emulator.refresh_token)
    with pytest.raises(TransientError, match="500"):
        client.post("/internal/token", {"account": emulator.account_id})
    assert svc.state.get(emulator.account_id).status == "watching"  # not the user's fault
    assert "invalid_client" in caplog.text
    emulator.stop()
    client2, svc2 = web(settings_for(emulator, tmp_path / "2", seed="none"))
    connect(svc2, emulator.account_id, emulator.refresh_token)
    with pytest.raises(TransientError, match="503"):
        client2.post("/internal/token", {"account": emulator.account_id})
    assert svc2.state.get(emulator.account_id).status == "watching"
    assert emulator.refresh_token not in caplog.text and "wrong-app-secret" not in caplog.text


def test_delta_tasks_for_refused_accounts_stop_retrying(emulator: Any, tmp_path: Path,
                                                       gae_testbed: Any) -> None:
    from dropgz.pushqueue.gae import GAEPushQueue

    settings = settings_for(emulator, tmp_path, seed="none")
    app = create_app(settings, push_queue=GAEPushQueue())
    svc = app.extensions["dropgz"]
    connect(svc, emulator.account_id, "emu-refresh-revoked")
    client = app.test_client()

    def deliver(account: str) -> Any:
        return client.post("/tasks/delta", json={"account": account}, headers=QUEUE_HEADERS)

    first = deliver(emulator.account_id)  # minting fails: invalid_grant
    assert first.status_code == 200, first.json
    assert first.json["ignored"] == "needs reconnect"
    assert svc.state.get(emulator.account_id).status == "needs_reconnect"
    emulator.reset_stats()
    again = deliver(emulator.account_id)
    assert (again.status_code, again.json["ignored"]) == (200, "needs reconnect")
    assert emulator.stats()["routes"] == {}  # decided from the store alone
    unknown = deliver("dbid:AAnobodyHere")
    assert (unknown.status_code, unknown.json["ignored"]) == (200, "unknown account")

    # Reconnecting (a new grant) resumes it: the delta runs again.
    connect(svc, emulator.account_id, emulator.refresh_token)
    resumed = deliver(emulator.account_id)
    assert resumed.status_code == 200 and resumed.json["mode"] == "first", resumed.json
