"""Bearer tokens, /oauth2/token and token expiry, as the SDK sees them."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from dropbox.exceptions import AuthError, BadInputError

from tests.fixtures.emulator import EmulatorProcess, start_emulator


def test_bad_or_missing_token_is_401(server: EmulatorProcess) -> None:
    with pytest.raises(AuthError) as caught:
        server.client(oauth2_access_token="sl.not-a-token").users_get_current_account()
    assert caught.value.error.is_invalid_access_token()

    response = requests.post(f"{server.url}/2/files/list_folder", json={"path": ""},
                             verify=server.ca_bundle or True, timeout=10)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"][".tag"] == "invalid_access_token"


def test_refresh_token_grant_mints_a_working_token(server: EmulatorProcess) -> None:
    server.reset_stats()
    dbx = server.refreshing_client()
    assert dbx.users_get_current_account().account_id == server.account_id
    assert dbx._oauth2_access_token and dbx._oauth2_access_token != server.token
    assert server.route_statuses("oauth2/token") == {"200": 1}


def test_wrong_secret_or_client_is_refused(server: EmulatorProcess) -> None:
    with pytest.raises(BadInputError) as secret:
        server.refreshing_client(app_secret="wrong-secret").users_get_current_account()
    assert "invalid_client" in secret.value.message
    with pytest.raises(BadInputError) as client:
        server.refreshing_client(app_key="unknownclient").users_get_current_account()
    assert "invalid_client" in client.value.message
    # The SDK maps invalid_grant to an AuthError (invalid_access_token).
    with pytest.raises(AuthError):
        server.refreshing_client(oauth2_refresh_token="stale").users_get_current_account()
    assert server.route_statuses("oauth2/token").get("400", 0) >= 3


def test_token_endpoint_answers_like_dropbox(http_server: EmulatorProcess) -> None:
    form = {"grant_type": "refresh_token", "refresh_token": http_server.refresh_token,
            "client_id": http_server.app_key, "client_secret": http_server.app_secret}
    good = requests.post(f"{http_server.url}/oauth2/token", data=form, timeout=10)
    assert good.status_code == 200
    body = good.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 14400
    assert body["access_token"].startswith("sl.")
    bad = requests.post(f"{http_server.url}/oauth2/token",
                        data={**form, "client_secret": "nope"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_client"
    grant = requests.post(f"{http_server.url}/oauth2/token",
                          data={**form, "refresh_token": "nope"}, timeout=10)
    assert grant.status_code == 400 and grant.json()["error"] == "invalid_grant"


def test_minted_tokens_expire_and_the_sdk_refreshes(tmp_path: Path) -> None:
    with start_emulator(tmp_path, token_ttl=1) as emulator:
        minted = requests.post(f"{emulator.url}/oauth2/token", timeout=10, data={
            "grant_type": "refresh_token", "refresh_token": emulator.refresh_token,
            "client_id": emulator.app_key, "client_secret": emulator.app_secret,
        }).json()["access_token"]
        assert emulator.client(oauth2_access_token=minted).users_get_current_account()
        time.sleep(1.2)

        with pytest.raises(AuthError) as caught:
            emulator.client(oauth2_access_token=minted).users_get_current_account()
        assert caught.value.error.is_expired_access_token()

        # A client that believes its token is still fresh gets the 401, refreshes, retries.
        emulator.reset_stats()
        dbx = emulator.refreshing_client(
            oauth2_access_token=minted,
            oauth2_access_token_expiration=datetime.utcnow() + timedelta(hours=1))
        assert dbx.users_get_current_account().account_id == emulator.account_id
        assert emulator.route_statuses("users/get_current_account") == {"401": 1, "200": 1}
        assert emulator.route_statuses("oauth2/token") == {"200": 1}
