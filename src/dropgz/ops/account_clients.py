"""An SDK client acting for one account, for operator commands (``dropgz backfill``).

The seed's account uses ``[Dropbox] token``; a connected account its stored refresh token
(the SDK renews access tokens during a long run); where the state lives on App Engine
(``ndb``), a token from the web tier (``[Service] web_url`` + ``internal_key``).
"""

from __future__ import annotations

from dataclasses import replace

import dropbox

from dropgz.compression.internal_client import InternalClient
from dropgz.compression.tokens import AccountUnavailable, TokenSource
from dropgz.core.config import Settings
from dropgz.core.encryption import DecryptionFailed
from dropgz.core.errors import DropgzError
from dropgz.core.secret import Secret
from dropgz.dropbox_client import make_dropbox
from dropgz.dropbox_client.accounts import Accounts
from dropgz.state import NEEDS_RECONNECT, CredentialMissing, open_state_store


class UnknownAccount(DropgzError):
    """The account asked for is not served here (or cannot be acted for now)."""


def account_client(settings: Settings, account_id: str | None,
                   pool_size: int = 8) -> tuple[str, dropbox.Dropbox]:
    """``account_id`` (default: the seed's account) and an SDK client acting for it."""
    if account_id and settings.service.state == "ndb":
        return account_id, _client_from_web_tier(settings, account_id, pool_size)
    if account_id:
        refresh_token = _stored_grant(settings, account_id)
        if refresh_token is not None:
            return account_id, make_dropbox(
                replace(settings.dropbox, token=None, refresh_token=refresh_token),
                pool_size=pool_size)
    if account_id and not settings.dropbox.has_credentials():
        raise UnknownAccount(f"{account_id} is not connected (dropgz status lists the "
                             "connected accounts)")
    settings.require_dropbox_credentials()
    dbx = make_dropbox(settings.dropbox, pool_size=pool_size)
    owner = Accounts(settings.dropbox, lambda _: dbx).owner_id()
    if account_id and account_id != owner:
        raise UnknownAccount(f"{account_id} is not connected (dropgz status lists the "
                             "connected accounts)")
    return owner, dbx


def _stored_grant(settings: Settings, account_id: str) -> Secret | None:
    state = open_state_store(settings)
    try:
        record = state.get(account_id)
        if record is not None and record.status == NEEDS_RECONNECT:
            raise UnknownAccount(f"{account_id} needs reconnect: {record.status_reason}")
        return state.refresh_token(account_id) if record is not None else None
    except CredentialMissing:
        raise settings.error("Service", "encryption_key", "missing (needed to read "
                             "connected accounts' refresh tokens)") from None
    except DecryptionFailed:
        raise settings.error("Service", "encryption_key", "does not decrypt the stored "
                             "refresh tokens") from None
    finally:
        state.close()


def _client_from_web_tier(settings: Settings, account_id: str,
                          pool_size: int) -> dropbox.Dropbox:
    url = settings.require("Service", "web_url")
    source = TokenSource(InternalClient(url, settings.require("Service", "internal_key")))
    try:
        token = source.token(account_id)
    except AccountUnavailable as exc:
        raise UnknownAccount(f"{account_id}: {exc.reason}") from None
    return make_dropbox(replace(settings.dropbox, token=token.value, refresh_token=None),
                        pool_size=pool_size)
