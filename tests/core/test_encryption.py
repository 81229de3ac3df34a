"""Refresh tokens at rest: Fernet ciphertext bound to its account; settings name bad keys."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from dropgz.core.config import load_settings
from dropgz.core.encryption import DecryptionFailed, TokenCipher
from dropgz.core.errors import ConfigError
from dropgz.core.secret import Secret

# A fixed key, so test ids are the same in every process (pytest-xdist compares them).
KEY = "Y0F4DZLP082fpDHrpJAdg7ZL_mWA0IFLaGayljVe_UU="


def test_round_trip_and_no_plaintext() -> None:
    cipher = TokenCipher(Secret(KEY))
    blob = cipher.encrypt("dbid:a", Secret("refresh-123"))
    assert "refresh-123" not in blob and "dbid:a" not in blob
    assert cipher.decrypt("dbid:a", blob) == Secret("refresh-123")
    assert KEY not in repr(cipher)


def test_a_ciphertext_copied_to_another_account_does_not_open() -> None:
    cipher = TokenCipher(Secret(KEY))
    blob = cipher.encrypt("dbid:a", Secret("refresh-123"))
    with pytest.raises(DecryptionFailed, match="another account"):
        cipher.decrypt("dbid:b", blob)


def test_wrong_key_and_rotation() -> None:
    old, new = TokenCipher(Secret(KEY)), Fernet.generate_key().decode()
    blob = old.encrypt("dbid:a", Secret("r"))
    with pytest.raises(DecryptionFailed, match="encryption key"):
        TokenCipher(Secret(new)).decrypt("dbid:a", blob)
    both = TokenCipher(Secret(f"{new},{KEY}"))
    rotated = both.rotate(blob)
    assert TokenCipher(Secret(new)).decrypt("dbid:a", rotated) == Secret("r")
    with pytest.raises(DecryptionFailed):
        both.decrypt("dbid:a", "not-a-fernet-token")


@pytest.mark.parametrize("value", ["short", "x" * 44, KEY + ",oops"])
def test_settings_refuse_a_malformed_key_without_showing_it(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env={"DROPGZ_SERVICE_ENCRYPTION_KEY": value})
    message = str(caught.value)
    assert "[Service] encryption_key: not a Fernet key" in message
    assert "Fernet.generate_key()" in message
    assert value not in message and "\n" not in message


def test_settings_accept_keys_and_keep_them_secret() -> None:
    settings = load_settings(env={"DROPGZ_SERVICE_ENCRYPTION_KEY": f" {KEY} , {KEY} "})
    assert settings.service.encryption_key.reveal() == f"{KEY},{KEY}"
    assert KEY not in repr(settings)
    assert f"{KEY},{KEY}" in settings.secrets()


def test_redirect_uri_must_end_with_the_callback_path() -> None:
    ok = load_settings(env={"DROPGZ_DROPBOX_REDIRECT_URI": "https://gz.example/connect/callback"})
    assert ok.dropbox.redirect_uri == "https://gz.example/connect/callback"
    with pytest.raises(ConfigError, match=r"\[Dropbox\] redirect_uri: must end with "
                                          r"/connect/callback"):
        load_settings(env={"DROPGZ_DROPBOX_REDIRECT_URI": "https://gz.example/oauth"})
