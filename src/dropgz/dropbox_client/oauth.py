"""Dropbox OAuth 2 for a web app: the code flow, refreshing access tokens, revoking a grant.

The code flow is the SDK's own :class:`dropbox.oauth.DropboxOAuth2Flow` (offline access, so
Dropbox returns a refresh token; a confidential client authenticated with the app secret).
Its token request goes through the same requests session as every API call
(:func:`dropgz.dropbox_client.transport.make_session`), so ``[Dropbox] api_base_url`` points
it at the emulator; the browser-facing authorize URL is rewritten to that base likewise.

Refreshing is the ``refresh_token`` grant of ``POST /oauth2/token``
(https://developers.dropbox.com/oauth-guide): ``{"access_token", "expires_in", ...}``, or 400
``{"error": "invalid_grant"}`` once the user revoked the grant or unlinked the app, which
:class:`InvalidGrant` reports; ``invalid_client`` (wrong app key or secret) is the
operator's problem, :class:`ClientRefused`.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dropbox
import requests
from dropbox.oauth import DropboxOAuth2Flow

from dropgz.core.config import DropboxSettings
from dropgz.core.errors import DropgzError, TransientError
from dropgz.core.secret import Secret
from dropgz.dropbox_client.factory import USER_AGENT

TOKEN_URL = "https://api.dropboxapi.com/oauth2/token"  # noqa: S105 - a URL
# The scopes dropgz uses (developers.dropbox.com/oauth-guide, "Scopes"): list and read files,
# write the .gz, and read the account's name and email for the account page.
SCOPES = ["account_info.read", "files.metadata.read", "files.content.read",
          "files.content.write"]
# Token endpoint calls are small; a slow one is retried by the caller.
TOKEN_TIMEOUT = 20.0
# Dropbox says access tokens last about four hours; when an answer has no expires_in, assume
# much less so the token is asked for again soon.
DEFAULT_EXPIRES_IN = 3600


class InvalidGrant(DropgzError):
    """Dropbox refused the refresh token: the user revoked access or unlinked the app."""


class ClientRefused(DropgzError):
    """Dropbox refused the app's own credentials (``[Dropbox] app_key`` / ``secret``)."""


@dataclass(frozen=True)
class AccessToken:
    """A short-lived access token and when it stops working (seconds since the epoch)."""

    value: Secret
    expires_at: float
    issued_at: float

    def usable(self, margin: float, now: float | None = None) -> bool:
        """True while more than ``margin`` seconds (at most a quarter of its lifetime) are
        left: the caller must have time to use it."""
        now = time.time() if now is None else now
        lifetime = max(self.expires_at - self.issued_at, 0.0)
        return now < self.expires_at - min(margin, lifetime / 4)


def refresh_access_token(settings: DropboxSettings, refresh_token: Secret,
                         session: requests.Session) -> AccessToken:
    """A new access token from ``refresh_token`` (grant ``refresh_token``)."""
    if not settings.app_key:
        raise ClientRefused("[Dropbox] app_key is not set: refresh tokens cannot be used")
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token.reveal(),
            "client_id": settings.app_key}
    if settings.secret:
        form["client_secret"] = settings.secret.reveal()
    now = time.time()
    try:
        response = session.post(TOKEN_URL, data=form, timeout=TOKEN_TIMEOUT,
                                headers={"User-Agent": USER_AGENT})
    except requests.RequestException as exc:
        raise TransientError(f"Dropbox token endpoint unreachable: {type(exc).__name__}") from None
    answer = _json(response)
    if response.status_code == 200 and isinstance(answer.get("access_token"), str):
        expires_in = answer.get("expires_in")
        if not isinstance(expires_in, int | float) or isinstance(expires_in, bool):
            expires_in = DEFAULT_EXPIRES_IN
        return AccessToken(Secret(answer["access_token"]), now + float(expires_in), now)
    error = answer.get("error")
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(f"Dropbox token endpoint answered {response.status_code}")
    if error == "invalid_grant":
        raise InvalidGrant(str(answer.get("error_description") or "refresh token refused"))
    if error == "invalid_client" or response.status_code == 401:
        raise ClientRefused("Dropbox refused [Dropbox] app_key/secret (invalid_client)")
    raise DropgzError(f"Dropbox token endpoint answered {response.status_code} "
                      f"{str(error or '')[:100]}")


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def revoke(settings: DropboxSettings, access_token: Secret,
           session: requests.Session) -> None:
    """``auth/token/revoke``: disables the token, its refresh token and every token minted
    from it (the whole grant)."""
    client = dropbox.Dropbox(oauth2_access_token=access_token.reveal(), session=session,
                             user_agent=USER_AGENT, timeout=TOKEN_TIMEOUT,
                             max_retries_on_error=1, max_retries_on_rate_limit=1)
    client.auth_token_revoke()


def connect_flow(settings: DropboxSettings, session_store: MutableMapping[str, str],
                 csrf_key: str, session: requests.Session) -> DropboxOAuth2Flow:
    """The SDK's web flow for ``[Dropbox] redirect_uri``, offline access, dropgz's scopes.

    ``session_store`` is where the flow keeps its CSRF token (the caller keeps it in a
    signed cookie). Token requests go through ``session`` (to the emulator when
    ``api_base_url`` is set).
    """
    if not (settings.app_key and settings.secret and settings.redirect_uri):
        raise ClientRefused("connecting needs [Dropbox] app_key, secret and redirect_uri")
    flow = DropboxOAuth2Flow(settings.app_key, settings.redirect_uri, session_store, csrf_key,
                             consumer_secret=settings.secret.reveal(),
                             token_access_type="offline", scope=SCOPES,  # noqa: S106
                             timeout=TOKEN_TIMEOUT)
    flow.requests_session = session
    return flow


def authorize_url(settings: DropboxSettings, flow: DropboxOAuth2Flow,
                  url_state: str | None = None) -> str:
    """Where to send the user's browser: Dropbox's authorize page (the emulator's when
    ``api_base_url`` is set)."""
    url = flow.start(url_state)
    if not settings.api_base_url:
        return url
    base, parts = urlsplit(settings.api_base_url), urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path,
                       parts.query, ""))
