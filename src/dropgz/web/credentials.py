"""Whose Dropbox the web tier acts for, and with which short-lived token.

Two kinds of accounts are served side by side:

- the seed's account, the owner of ``[Dropbox] token`` / ``refresh_token`` in the settings
  (:class:`~dropgz.dropbox_client.accounts.Accounts`), with no connect step;
- accounts connected at ``/connect``, whose refresh tokens the state store keeps encrypted.
  A stored grant wins over the seed's settings for the same account.

:class:`AccountCredentials` mints access tokens from refresh tokens (one refresh per account
at a time, cached until shortly before expiry), hands them to the delta tier as SDK clients
and to workers through ``/internal/token`` (:mod:`dropgz.web.internal`). When Dropbox refuses
a grant (``invalid_grant``: revoked, or the app unlinked) the account is marked
``needs_reconnect`` and :class:`NeedsReconnect` is raised until the user connects again.
Refresh tokens and the app secret never leave this tier.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

import dropbox
import requests
from dropbox.exceptions import AuthError

from dropgz.core.config import Settings
from dropgz.core.errors import DropgzError
from dropgz.core.logs import fields
from dropgz.core.secret import Secret
from dropgz.dropbox_client import make_dropbox
from dropgz.dropbox_client.accounts import Accounts, DropboxFactory
from dropgz.dropbox_client.oauth import AccessToken, InvalidGrant, refresh_access_token
from dropgz.dropbox_client.transport import make_session
from dropgz.state.base import NEEDS_RECONNECT, AccountState, StateStore

log = logging.getLogger(__name__)

# A token is handed out only with this long left (or a quarter of its lifetime): the worker
# that gets it caches it and must have time to use it.
HAND_OUT_MARGIN_SECONDS = 15 * 60
# The seed's plain access token has no known expiry: workers ask again after this long.
SEED_TOKEN_SECONDS = 15 * 60
# Tokens and clients kept in memory; beyond this the least recently used are dropped (a
# dropped one is simply minted again).
MAX_CACHED_ACCOUNTS = 10_000
MAX_CACHED_CLIENTS = 256
LOCK_STRIPES = 64
REVOKED_REASON = "access revoked or app removed in Dropbox: connect again at /connect"
SEED_REFUSED_REASON = "Dropbox refused [Dropbox] {key}: fix the settings, restart the web tier"


class AccountDisconnected(DropgzError):
    """Not an account served here: never connected, or disconnected since."""


class NeedsReconnect(DropgzError):
    """Dropbox refused the account's credentials; nothing is done until it reconnects."""

    def __init__(self, account: str, reason: str) -> None:
        super().__init__(f"{account} needs reconnect: {reason}")
        self.account = account
        self.reason = reason


class AccountCredentials:
    """Tokens and SDK clients per account; thread-safe, one per web process."""

    def __init__(self, settings: Settings, state: StateStore, seed: Accounts | None,
                 dropbox_factory: DropboxFactory | None = None,
                 session: requests.Session | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._state = state
        self._seed = seed
        self._session = session or make_session(settings.dropbox.api_base_url,
                                                settings.dropbox.ca_bundle, pool_size=16)
        self._factory = dropbox_factory or self._shared_session_client
        self._clock = clock
        self._tokens: OrderedDict[str, AccessToken] = OrderedDict()
        self._clients: OrderedDict[str, tuple[AccessToken, dropbox.Dropbox]] = OrderedDict()
        self._guard = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]

    def __repr__(self) -> str:
        return f"AccountCredentials(seed={self._seed!r}, cached={len(self._tokens)})"

    @property
    def session(self) -> requests.Session:
        """The requests session every Dropbox call of this tier shares."""
        return self._session

    # ------------------------------------------------------------ who

    def seed_id(self) -> str | None:
        """The seed's account id (None without seed credentials); may ask Dropbox once."""
        return self._seed.owner_id() if self._seed is not None else None

    def seed_client(self) -> dropbox.Dropbox | None:
        return self._seed.client() if self._seed is not None else None

    def _record(self, account: str) -> AccountState | None:
        record = self._state.get(account)
        if record is not None and record.status == NEEDS_RECONNECT:
            raise NeedsReconnect(account, record.status_reason or "Dropbox refused access")
        return record

    # ------------------------------------------------------------ tokens

    def access_token(self, account: str | None, *, rejected: bool = False) -> AccessToken:
        """A token for ``account`` (None: the seed's). ``rejected``: Dropbox refused the last
        one handed out, so mint anew (and find out whether the grant is gone).

        Raises :class:`AccountDisconnected`, :class:`NeedsReconnect`,
        :class:`~dropgz.core.errors.TransientError` (Dropbox unreachable), or
        :class:`~dropgz.dropbox_client.oauth.ClientRefused` (the app's own key or secret).
        """
        account = account or self.seed_id()
        if not account:
            raise AccountDisconnected("no account named and no [Dropbox] token configured")
        record = self._record(account)
        if record is not None and record.has_credential:
            return self._minted(account, lambda: self._state.refresh_token(account), rejected,
                                REVOKED_REASON)
        if self._seed is not None and account == self.seed_id():
            return self._seed_token(account, rejected)
        raise AccountDisconnected(f"{account} is not connected")

    def _seed_token(self, account: str, rejected: bool) -> AccessToken:
        d = self._settings.dropbox
        if d.refresh_token and d.app_key:
            return self._minted(account, lambda: d.refresh_token, rejected,
                                SEED_REFUSED_REASON.format(key="refresh_token"))
        assert d.token is not None  # Accounts exists only with credentials
        if rejected:
            try:
                self._seed.client().users_get_current_account()  # type: ignore[union-attr]
            except AuthError:
                self.mark_needs_reconnect(account, SEED_REFUSED_REASON.format(key="token"))
                raise NeedsReconnect(account, SEED_REFUSED_REASON.format(key="token")) from None
        now = self._clock()
        return AccessToken(d.token, now + SEED_TOKEN_SECONDS, now)

    def _minted(self, account: str, load: Callable[[], Secret | None], rejected: bool,
                refused_reason: str) -> AccessToken:
        with self._stripe(account):
            with self._guard:
                cached = self._tokens.get(account)
            if (cached is not None and not rejected
                    and cached.usable(HAND_OUT_MARGIN_SECONDS, self._clock())):
                return cached
            refresh_token = load()
            if refresh_token is None:
                raise AccountDisconnected(f"{account} is not connected")
            try:
                token = refresh_access_token(self._settings.dropbox, refresh_token,
                                             self._session)
            except InvalidGrant:
                self.forget(account)
                self.mark_needs_reconnect(account, refused_reason)
                raise NeedsReconnect(account, refused_reason) from None
            with self._guard:
                self._tokens[account] = token
                self._tokens.move_to_end(account)
                while len(self._tokens) > MAX_CACHED_ACCOUNTS:
                    self._tokens.popitem(last=False)
            return token

    def _stripe(self, account: str) -> threading.Lock:
        digest = hashlib.blake2b(account.encode(), digest_size=2).digest()
        return self._stripes[int.from_bytes(digest, "big") % LOCK_STRIPES]

    # ------------------------------------------------------------ clients

    def client_for(self, account: str) -> dropbox.Dropbox | None:
        """An SDK client acting for ``account`` (the delta tier's), or None when the account
        is not served here. Raises :class:`NeedsReconnect` for a refused account."""
        record = self._record(account)
        if record is not None and record.has_credential:
            token = self.access_token(account)
            with self._guard:
                cached = self._clients.get(account)
                if cached is not None and cached[0] is token:
                    self._clients.move_to_end(account)
                    return cached[1]
            client = self._factory(replace(self._settings.dropbox, token=token.value,
                                           refresh_token=None, account_id=account))
            with self._guard:
                self._clients[account] = (token, client)
                while len(self._clients) > MAX_CACHED_CLIENTS:
                    self._clients.popitem(last=False)
            return client
        if self._seed is not None:
            return self._seed.client_for(account)
        return None

    def _shared_session_client(self, settings: object) -> dropbox.Dropbox:
        # The delta tier hands a 429 back to its push queue: no SDK sleeping.
        return make_dropbox(settings, max_retries_on_rate_limit=0,  # type: ignore[arg-type]
                            session=self._session)

    def rejected(self, account: str) -> None:
        """Dropbox answered 401 for ``account``: mint anew. Raises :class:`NeedsReconnect`
        when the grant itself is gone (then the account is marked so)."""
        self.forget(account)
        self.access_token(account, rejected=True)

    # ------------------------------------------------------------ status

    def mark_needs_reconnect(self, account: str, reason: str) -> None:
        if self._state.set_account_status(account, NEEDS_RECONNECT, reason):
            log.warning("account needs reconnect: %s", fields(account=account, reason=reason))

    def forget(self, account: str) -> None:
        """Drop what is cached for ``account`` (after a disconnect or a refusal)."""
        with self._guard:
            self._tokens.pop(account, None)
            self._clients.pop(account, None)
