"""``POST /oauth2/token``: the authorization-code and refresh-token grants.

Follows https://www.dropbox.com/developers/documentation/http/documentation#oauth2-token:
client credentials in the form or as HTTP Basic (or, for a PKCE client, the ``client_id`` with
a ``code_verifier``); errors are 400 ``{"error": ..., "error_description": ...}`` with the codes
and wording Dropbox answers (``invalid_client``, ``invalid_grant`` "code doesn't exist or has
expired" / "redirect_uri mismatch" / "refresh token is invalid or revoked", ...).

Deliberate simplifications: a replayed code is refused but the tokens it already gave stay
valid (RFC 6749 only says SHOULD revoke them); scopes are recorded and reported, not enforced.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from dropgz.emulator.accounts import Profile
from dropgz.emulator.auth import Tokens
from dropgz.emulator.errors import EmulatorError
from dropgz.emulator.oauth_codes import AuthCodes


class OAuthError(EmulatorError):
    """A token-endpoint failure: 400 with an RFC 6749 error code."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class TokenEndpoint:
    """Answers ``POST /oauth2/token`` for the one emulated app."""

    def __init__(self, tokens: Tokens, codes: AuthCodes, profiles: dict[str, Profile], *,
                 app_key: str, app_secret: str) -> None:
        self.tokens = tokens
        self.codes = codes
        self.profiles = profiles
        self._app_key = app_key
        self._app_secret = app_secret

    def answer(self, form: dict[str, str], basic: str | None) -> dict[str, Any]:
        """The JSON answer; raises OAuthError for a 400."""
        grant_type = form.get("grant_type")
        if grant_type not in ("refresh_token", "authorization_code"):
            raise OAuthError("unsupported_grant_type",
                             f"grant_type {grant_type!r} is not supported by the emulator")
        has_secret = self._authenticate_client(form, basic)
        if grant_type == "refresh_token":
            return self._refresh(form)
        return self._exchange_code(form, has_secret)

    def _authenticate_client(self, form: dict[str, str], basic: str | None) -> bool:
        """Checks the client; True when it proved itself with the app secret (else it is a
        PKCE client, which Dropbox lets refresh and exchange codes with its key alone)."""
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if basic:
            client_id, client_secret = _basic_credentials(basic)
        if not client_id:
            raise OAuthError("invalid_request", "No auth function available for given request")
        if not _same(client_id, self._app_key):
            raise OAuthError("invalid_client", "Invalid client_id or client_secret")
        if client_secret is not None and not _same(client_secret, self._app_secret):
            raise OAuthError("invalid_client", "Invalid client_id or client_secret")
        return client_secret is not None

    def _refresh(self, form: dict[str, str]) -> dict[str, Any]:
        grant = self.tokens.grant_for_refresh(form.get("refresh_token"))
        if grant is None:
            raise OAuthError("invalid_grant", "refresh token is invalid or revoked")
        return {"access_token": self.tokens.mint(grant), "token_type": "bearer",
                "expires_in": self.tokens.ttl}

    def _exchange_code(self, form: dict[str, str], has_secret: bool) -> dict[str, Any]:
        if not form.get("code"):
            raise OAuthError("invalid_request", "Missing parameter: code")
        code = self.codes.redeem(form["code"])
        if code is None:
            raise OAuthError("invalid_grant", "code doesn't exist or has expired")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri mismatch")
        if code.code_challenge is not None:
            if not code.verifier_matches(form.get("code_verifier")):
                raise OAuthError("invalid_grant", "invalid code verifier")
        elif not has_secret:
            raise OAuthError("invalid_request", "No auth function available for given request")
        grant, refresh_token = self.tokens.new_grant(code.account_id, code.scope,
                                                     offline=code.offline)
        profile = self.profiles[code.account_id]
        answer: dict[str, Any] = {
            "access_token": self.tokens.mint(grant), "token_type": "bearer",
            "expires_in": self.tokens.ttl, "scope": code.scope,
            "uid": str(profile.uid), "account_id": profile.account_id,
        }
        if refresh_token is not None:
            answer["refresh_token"] = refresh_token
        return answer


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError("invalid_client", "unsupported Authorization scheme")
    try:
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "malformed Basic credentials") from None
    return client_id, secret
