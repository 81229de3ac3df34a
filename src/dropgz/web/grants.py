"""What connecting and disconnecting a Dropbox account do, apart from the pages.

:func:`store_grant` runs after Dropbox handed over a grant: it reads the user's profile,
starts watching from now (the latest cursor, as :func:`dropgz.web.delta.init_account` does
for the seed's account) and stores the refresh token encrypted. Connecting an account that is
already known (for instance after "needs reconnect") keeps its cursor: it resumes where it
stopped, and a delta run is queued to catch up.

:func:`disconnect` revokes the grant at Dropbox (``auth/token/revoke`` disables the refresh
token and every access token minted from it) and forgets the account. Files already queued
for it are then skipped by workers with the reason "account disconnected".
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

import dropbox
import requests
from dropbox.exceptions import AuthError

from dropgz.core.config import DropboxSettings
from dropgz.core.errors import DropgzError
from dropgz.core.logs import fields
from dropgz.core.retries import describe
from dropgz.core.secret import Secret
from dropgz.dropbox_client import make_dropbox
from dropgz.dropbox_client.oauth import InvalidGrant, refresh_access_token, revoke
from dropgz.pushqueue.base import delta_task
from dropgz.state.base import NEEDS_RECONNECT, utcnow
from dropgz.web.delta import dropbox_errors
from dropgz.web.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Connected:
    """An account just connected: ``new`` (watching from now) or reconnected (resumed)."""

    account: str
    email: str | None
    display_name: str | None
    new: bool


def store_grant(svc: Services, account: str, access_token: Secret,
                refresh_token: Secret) -> Connected:
    """Record the grant Dropbox gave for ``account``. Raises TransientError / RateLimited
    when Dropbox cannot be reached (nothing is stored then)."""
    d = svc.settings.dropbox
    client = make_dropbox(DropboxSettings(token=access_token, api_base_url=d.api_base_url,
                                          ca_bundle=d.ca_bundle),
                          session=svc.credentials.session, max_retries_on_rate_limit=1)
    with dropbox_errors():
        me = client.users_get_current_account()
        if me.account_id != account:
            raise DropgzError("Dropbox's token answered for another account")
        record = svc.state.get(account)
        watch_start, cursor = utcnow(), None
        if record is None or not (record.cursor or record.watch_start):
            cursor = client.files_list_folder_get_latest_cursor(
                "", recursive=True, limit=svc.page_limit).cursor
    replaced = _stored_grant(svc, account)
    new = svc.state.connect_account(account, refresh_token=refresh_token, email=me.email,
                                    display_name=me.name.display_name,
                                    watch_start=watch_start, cursor=cursor)
    svc.credentials.forget(account)
    if replaced is not None and not hmac.compare_digest(replaced.reveal().encode(),
                                                         refresh_token.reveal().encode()):
        _revoke_grant(svc, account, replaced)  # one live grant per account
    if not new:  # resumed: catch up on what changed while it was not served
        svc.push_queue.add([delta_task(account, bucket_seconds=svc.bucket_seconds)])
    log.info("account connected: %s", fields(account=account, new=new))
    return Connected(account, me.email, me.name.display_name, new)


def disconnect(svc: Services, account: str) -> bool:
    """Revoke the account's grant at Dropbox and forget the account. True when Dropbox
    confirmed (or the grant was already gone); False when Dropbox could not be reached (the
    account is forgotten anyway; the user can remove the app in their Dropbox settings)."""
    revoked = _revoke(svc, account)
    svc.state.forget_account(account)
    svc.credentials.forget(account)
    log.info("account disconnected: %s", fields(account=account, revoked=revoked))
    return revoked


def _stored_grant(svc: Services, account: str) -> Secret | None:
    try:
        return svc.state.refresh_token(account)
    except DropgzError:  # unreadable (wrong key): it is replaced anyway
        return None


def _revoke(svc: Services, account: str) -> bool:
    record = svc.state.get(account)
    if record is None or not record.has_credential:
        return True
    if record.status == NEEDS_RECONNECT:
        return True  # Dropbox already refuses this grant: nothing left to revoke
    grant = _stored_grant(svc, account)
    return True if grant is None else _revoke_grant(svc, account, grant)


def _revoke_grant(svc: Services, account: str, refresh_token: Secret) -> bool:
    """``auth/token/revoke`` with an access token of that grant (which ends the grant)."""
    try:
        token = refresh_access_token(svc.settings.dropbox, refresh_token,
                                     svc.credentials.session)
        revoke(svc.settings.dropbox, token.value, svc.credentials.session)
    except (InvalidGrant, AuthError):
        return True  # Dropbox already refuses this grant: nothing left to revoke
    except (DropgzError, dropbox.exceptions.DropboxException, requests.RequestException) as exc:
        log.warning("could not revoke at Dropbox: %s", fields(account=account,
                                                              error=describe(exc)))
        return False
    return True
