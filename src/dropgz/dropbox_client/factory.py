"""Build the official SDK's ``dropbox.Dropbox`` client from settings."""

from __future__ import annotations

import dropbox
import requests

from dropgz import __version__
from dropgz.core.config import DropboxSettings
from dropgz.core.errors import ConfigError
from dropgz.dropbox_client.transport import make_session

USER_AGENT = f"dropgz/{__version__}"
# Seconds the SDK waits on one HTTP call. Large transfers are chunked, so this bounds a chunk.
DEFAULT_TIMEOUT = 100.0


def make_dropbox(settings: DropboxSettings, *, pool_size: int = 8,
                 max_retries_on_error: int = 4,
                 max_retries_on_rate_limit: int | None = 4,
                 timeout: float = DEFAULT_TIMEOUT,
                 session: requests.Session | None = None) -> dropbox.Dropbox:
    """A client for the configured account: an access token, or a refresh token + app key.

    With a refresh token the SDK renews the short-lived access token by itself. The
    SDK retries 5xx ``max_retries_on_error`` times and 429 ``max_retries_on_rate_limit``
    times (sleeping ``Retry-After``); pass 0 where the caller has a better place to wait,
    e.g. the delta tier hands a 429 back to its push queue. ``session`` shares one
    connection pool among many clients (one per account); by default each has its own.
    """
    if session is None:
        session = make_session(settings.api_base_url, settings.ca_bundle, pool_size)
    common = dict(session=session, user_agent=USER_AGENT, timeout=timeout,
                  max_retries_on_error=max_retries_on_error,
                  max_retries_on_rate_limit=max_retries_on_rate_limit)
    if settings.refresh_token and settings.app_key:
        return dropbox.Dropbox(
            oauth2_refresh_token=settings.refresh_token.reveal(),
            app_key=settings.app_key,
            app_secret=settings.secret.reveal() if settings.secret else None,
            oauth2_access_token=settings.token.reveal() if settings.token else None,
            **common,
        )
    if settings.token:
        return dropbox.Dropbox(oauth2_access_token=settings.token.reveal(), **common)
    raise ConfigError("[Dropbox] token: missing (or set refresh_token and app_key)")
