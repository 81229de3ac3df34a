"""The client factory builds the official SDK client from settings and reaches the emulator
through public mechanisms only (a requests Session with a redirecting adapter, a CA bundle)."""

from __future__ import annotations

import pytest
import requests
from dropbox.exceptions import AuthError, BadInputError

from dropgz.core.config import load_settings
from dropgz.core.errors import ConfigError
from dropgz.dropbox_client import make_dropbox
from dropgz.dropbox_client.transport import RedirectAdapter


def settings_for(emulator, **extra: str):
    env = {"DROPGZ_DROPBOX_API_BASE_URL": emulator.url}
    if emulator.ca_bundle:
        env["DROPGZ_DROPBOX_CA_BUNDLE"] = emulator.ca_bundle
    env.update(extra)
    return load_settings(env=env).dropbox


def test_access_token_over_http(emulator) -> None:
    dbx = make_dropbox(settings_for(emulator, DROPGZ_DROPBOX_TOKEN=emulator.token))
    assert dbx.users_get_current_account().account_id == emulator.account_id
    dbx.files_upload(b"hello", "/hello.txt")
    _, response = dbx.files_download("/hello.txt")
    assert response.content == b"hello"


def test_access_token_over_https_with_ca_bundle(emulator_tls) -> None:
    assert emulator_tls.url.startswith("https://")
    dbx = make_dropbox(settings_for(emulator_tls, DROPGZ_DROPBOX_TOKEN=emulator_tls.token))
    assert dbx.users_get_current_account().account_id == emulator_tls.account_id


def test_https_without_the_ca_bundle_is_refused(emulator_tls) -> None:
    settings = load_settings(env={"DROPGZ_DROPBOX_API_BASE_URL": emulator_tls.url,
                                  "DROPGZ_DROPBOX_TOKEN": emulator_tls.token}).dropbox
    dbx = make_dropbox(settings, max_retries_on_error=0)
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        dbx.users_get_current_account()


def test_refresh_token_renews_access_automatically(emulator) -> None:
    settings = settings_for(emulator, DROPGZ_DROPBOX_APP_KEY=emulator.app_key,
                            DROPGZ_DROPBOX_SECRET=emulator.app_secret,
                            DROPGZ_DROPBOX_REFRESH_TOKEN=emulator.refresh_token)
    assert settings.token is None
    dbx = make_dropbox(settings)
    emulator.reset_stats()
    assert dbx.users_get_current_account().account_id == emulator.account_id
    assert emulator.stats()["routes"]["oauth2/token"]["statuses"] == {"200": 1}


def test_refresh_with_a_wrong_app_secret_fails_clearly(emulator) -> None:
    settings = settings_for(emulator, DROPGZ_DROPBOX_APP_KEY=emulator.app_key,
                            DROPGZ_DROPBOX_SECRET="wrong-secret",
                            DROPGZ_DROPBOX_REFRESH_TOKEN=emulator.refresh_token)
    with pytest.raises((BadInputError, AuthError)) as caught:
        make_dropbox(settings).users_get_current_account()
    assert "invalid_client" in str(caught.value)
    assert "wrong-secret" not in str(caught.value)


def test_bad_token_is_an_auth_error(emulator) -> None:
    dbx = make_dropbox(settings_for(emulator, DROPGZ_DROPBOX_TOKEN="nope"))
    with pytest.raises(AuthError):
        dbx.users_get_current_account()


def test_no_credentials_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="token"):
        make_dropbox(load_settings(env={}).dropbox)


def test_redirect_adapter_rejects_a_non_http_base() -> None:
    with pytest.raises(ValueError, match="base_url"):
        RedirectAdapter("ftp://example")
