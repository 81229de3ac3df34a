"""Access tokens: the fixed one from ``--token`` and short-lived ones minted by /oauth2/token.

Minted tokens are stored as SHA-256 digests with their expiry in the root's state, so they
stay valid across a restart on the same root and the state file never holds a usable token.
The token endpoint follows https://www.dropbox.com/developers/documentation/http/documentation#oauth2-token
for ``grant_type=refresh_token``: client credentials in the form or as HTTP Basic, errors as
400 ``{"error": ..., "error_description": ...}`` (``invalid_client``, ``invalid_grant``...).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from typing import Any

from dropgz.emulator.errors import EmulatorError, Unauthorized
from dropgz.emulator.state import StateDB


class OAuthError(EmulatorError):
    """A token-endpoint failure: 400 with an RFC 6749 error code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class Tokens:
    """Checks bearer tokens and answers the refresh-token grant."""

    def __init__(self, db: StateDB, *, token: str, app_key: str, app_secret: str,
                 refresh_token: str, ttl: int) -> None:
        self.db = db
        self._token = token
        self._app_key = app_key
        self._app_secret = app_secret
        self._refresh_token = refresh_token
        self.ttl = ttl
        self._lock = threading.Lock()
        self._minted: dict[str, float] = {
            row["token_sha256"]: row["expires_at"]
            for row in db.query("SELECT token_sha256, expires_at FROM tokens "
                                "WHERE expires_at > ?", (time.time() - 86400,))}

    def check(self, authorization: str | None) -> None:
        """Raises Unauthorized (401) unless ``authorization`` is ``Bearer <valid token>``."""
        if not authorization:
            raise Unauthorized("invalid_access_token",
                               'missing HTTP header "Authorization" (Bearer token)')
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("invalid_access_token", "expected 'Authorization: Bearer <token>'")
        if _same(token, self._token):
            return
        with self._lock:
            expires_at = self._minted.get(_digest(token))
        if expires_at is None:
            raise Unauthorized("invalid_access_token", "invalid access token")
        if time.time() >= expires_at:
            raise Unauthorized("expired_access_token", "access token has expired")

    def refresh(self, form: dict[str, str], basic: str | None) -> dict[str, Any]:
        """The JSON answer to ``POST /oauth2/token`` (refresh-token grant)."""
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if basic:
            client_id, client_secret = self._basic_credentials(basic)
        grant_type = form.get("grant_type")
        if grant_type != "refresh_token":
            raise OAuthError("unsupported_grant_type",
                             f"grant_type {grant_type!r} is not supported by the emulator")
        if not client_id:
            raise OAuthError("invalid_request", "No auth function available for given request")
        if not _same(client_id, self._app_key):
            raise OAuthError("invalid_client", "Invalid client_id or client_secret")
        # Without a secret this is a PKCE client, which Dropbox lets refresh with its key alone.
        if client_secret is not None and not _same(client_secret, self._app_secret):
            raise OAuthError("invalid_client", "Invalid client_id or client_secret")
        if not _same(form.get("refresh_token"), self._refresh_token):
            raise OAuthError("invalid_grant", "refresh token is invalid or revoked")
        token = "sl.emu-" + secrets.token_urlsafe(32)
        expires_at = time.time() + self.ttl
        with self._lock:
            self._minted[_digest(token)] = expires_at
        self.db.execute("INSERT OR REPLACE INTO tokens (token_sha256, expires_at) VALUES (?, ?)",
                        (_digest(token), expires_at))
        return {"access_token": token, "token_type": "bearer", "expires_in": self.ttl}

    @staticmethod
    def _basic_credentials(header: str) -> tuple[str | None, str | None]:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise OAuthError("invalid_client", "unsupported Authorization scheme")
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials") from None
        return client_id, secret
