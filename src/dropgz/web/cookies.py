"""Signed cookies of the user pages: the OAuth state and the browser's connected accounts.

Values are signed with itsdangerous (HMAC-SHA1 over a timestamped payload, compared in
constant time) under a key derived from the app secret, one salt per use, so a value made
for one purpose is refused for another and a tampered or expired one is refused. They are
signed, not encrypted: nothing secret goes in them (a random CSRF token, account ids).

Every cookie is HttpOnly and SameSite=Lax (sent on the top-level redirect back from Dropbox,
not on cross-site POSTs), and Secure when the service's redirect URI is https.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from flask import Request, Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from dropgz.core.config import Settings

STATE_COOKIE = "dropgz_connect"
ACCOUNTS_COOKIE = "dropgz_accounts"
# The user has this long between "Connect" and "Allow" (Dropbox's codes live 10 minutes).
STATE_MAX_AGE = 15 * 60
# A browser stays allowed to see (and disconnect) the accounts it connected this long.
ACCOUNTS_MAX_AGE = 30 * 24 * 3600
# A disconnect form is valid this long after its page was shown.
FORM_MAX_AGE = 2 * 3600
# Accounts remembered per browser (the cookie stays far below 4 KiB).
MAX_ACCOUNTS_PER_BROWSER = 20


class CookieRefused(Exception):
    """A cookie or form token that is missing, forged, or expired (``expired`` says which)."""

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass
class Browser:
    """What a browser's accounts cookie says: a random session id and its accounts."""

    sid: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    accounts: list[str] = field(default_factory=list)


class CookieJar:
    """Makes and reads dropgz's signed cookies; one per app."""

    def __init__(self, settings: Settings) -> None:
        secret = settings.require("Dropbox", "secret").reveal().encode()
        key = hmac.new(secret, b"dropgz user-page cookies v1", hashlib.sha256).hexdigest()
        self._serializers = {purpose: URLSafeTimedSerializer(key, salt=f"dropgz.{purpose}")
                             for purpose in ("state", "accounts", "form")}
        redirect = settings.dropbox.redirect_uri or ""
        self.secure = redirect.startswith("https://")

    def __repr__(self) -> str:
        return f"CookieJar(secure={self.secure})"

    def _dumps(self, purpose: str, value: Any) -> str:
        return self._serializers[purpose].dumps(value)

    def _loads(self, purpose: str, raw: str | None, max_age: int) -> Any:
        if not raw:
            raise CookieRefused("missing")
        try:
            return self._serializers[purpose].loads(raw, max_age=max_age)
        except SignatureExpired:
            raise CookieRefused("expired", expired=True) from None
        except BadSignature:
            raise CookieRefused("not signed by this service") from None

    def _set(self, response: Response, name: str, value: str, max_age: int, path: str) -> None:
        response.set_cookie(name, value, max_age=max_age, path=path, secure=self.secure,
                            httponly=True, samesite="Lax")

    # ------------------------------------------------------------ OAuth state

    def set_state(self, response: Response, csrf_token: str) -> None:
        self._set(response, STATE_COOKIE, self._dumps("state", {"csrf": csrf_token}),
                  STATE_MAX_AGE, "/connect")

    def state(self, request: Request) -> str:
        """The CSRF token kept when the flow started; CookieRefused otherwise."""
        value = self._loads("state", request.cookies.get(STATE_COOKIE), STATE_MAX_AGE)
        if not isinstance(value, dict) or not isinstance(value.get("csrf"), str):
            raise CookieRefused("malformed")
        return value["csrf"]

    def clear_state(self, response: Response) -> None:
        response.delete_cookie(STATE_COOKIE, path="/connect", secure=self.secure,
                               httponly=True, samesite="Lax")

    # ------------------------------------------------------------ this browser's accounts

    def browser(self, request: Request) -> Browser:
        """The browser's session (a fresh empty one when it has none or a bad one)."""
        try:
            value = self._loads("accounts", request.cookies.get(ACCOUNTS_COOKIE),
                                ACCOUNTS_MAX_AGE)
        except CookieRefused:
            return Browser()
        sid, accounts = (value.get("sid"), value.get("accounts")) if isinstance(value, dict) \
            else (None, None)
        if not isinstance(sid, str) or not isinstance(accounts, list):
            return Browser()
        return Browser(sid, [a for a in accounts if isinstance(a, str)])

    def set_browser(self, response: Response, browser: Browser) -> None:
        accounts = list(dict.fromkeys(browser.accounts))[-MAX_ACCOUNTS_PER_BROWSER:]
        self._set(response, ACCOUNTS_COOKIE,
                  self._dumps("accounts", {"sid": browser.sid, "accounts": accounts}),
                  ACCOUNTS_MAX_AGE, "/")

    # ------------------------------------------------------------ form tokens

    def form_token(self, browser: Browser, action: str) -> str:
        """The CSRF token of a form doing ``action`` in this browser's session."""
        return self._dumps("form", {"sid": browser.sid, "action": action})

    def check_form_token(self, browser: Browser, action: str, token: str | None) -> None:
        value = self._loads("form", token, FORM_MAX_AGE)
        if not isinstance(value, dict) or not (
                hmac.compare_digest(str(value.get("sid", "")), browser.sid)
                and value.get("action") == action):
            raise CookieRefused("made for another session or action")
