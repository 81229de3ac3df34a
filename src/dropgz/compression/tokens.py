"""Where a worker gets its Dropbox credentials when the web tier brokers them.

With ``[Service] web_url`` set, a worker holds no Dropbox credential of its own: for each
message it asks the web tier for a short-lived access token of the message's account
(``POST /internal/token``, signed with ``[Service] internal_key``), caches it until shortly
before it expires, and compresses with an SDK client made from it. A message for account A
is only ever processed with A's token: clients are built and cached per account. The web tier
is asked again at least every :data:`RECHECK_SECONDS`, so an account disconnected meanwhile
stops being served even when its token still works.

When the web tier answers that the account is disconnected or needs reconnecting, the file
is settled as skipped with that reason (acked, logged, counted), never retried or
dead-lettered. When Dropbox refuses a token mid-file (401), the web tier is told
(``rejected``): it mints anew, or finds the grant gone and marks the account
``needs_reconnect``, in which case the file is skipped with that reason too; otherwise the
file is retried with the new token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

import dropbox
import requests
from dropbox.exceptions import AuthError

from dropgz.compression.batch import Committers
from dropgz.compression.compress import FileCompressor, Outcome
from dropgz.compression.internal_client import InternalCallRefused, InternalClient
from dropgz.core.config import CompressionSettings, DropboxSettings
from dropgz.core.errors import DropgzError, TransientError
from dropgz.core.logs import fields
from dropgz.core.message import WorkItem
from dropgz.core.secret import Secret
from dropgz.dropbox_client import make_dropbox
from dropgz.dropbox_client.transport import make_session

log = logging.getLogger(__name__)

TOKEN_PATH = "/internal/token"  # noqa: S105 - a path
# Stop using a token this long before it expires (or a quarter of its lifetime, if shorter):
# a file started just before expiry must not fail half-way.
EXPIRY_MARGIN_SECONDS = 5 * 60
# Ask the web tier again after this long even when the token is still valid: a disconnected
# account's queued files stop being compressed within this time, even if Dropbox could not
# be told to revoke the token. (One small call per account per minute.)
RECHECK_SECONDS = 60.0
# Accounts whose client a worker keeps (least recently used beyond this are rebuilt on use).
MAX_CACHED_COMPRESSORS = 1024
# The web tier's answers that mean "do not process this account's files".
UNAVAILABLE = {404: "account disconnected", 409: "needs reconnect"}


class AccountUnavailable(DropgzError):
    """The account is disconnected or needs reconnecting: its files are skipped."""

    def __init__(self, account: str | None, reason: str) -> None:
        super().__init__(f"{account or 'configured account'}: {reason}")
        self.account = account
        self.reason = reason


@dataclass(frozen=True)
class Token:
    value: Secret
    expires_at: float
    issued_at: float

    def usable(self, now: float) -> bool:
        lifetime = max(self.expires_at - self.issued_at, 0.0)
        return (now < self.expires_at - min(EXPIRY_MARGIN_SECONDS, lifetime / 4)
                and now < self.issued_at + RECHECK_SECONDS)


class TokenSource:
    """Access tokens per account from the web tier, cached; thread-safe."""

    def __init__(self, client: InternalClient, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._clock = clock
        self._tokens: dict[str | None, Token] = {}
        self._locks: dict[str | None, threading.Lock] = {}
        self._guard = threading.Lock()
        self.fetched = 0  # tokens asked for (cache misses), for tests and benchmarks

    def __repr__(self) -> str:
        return f"TokenSource({self._client!r})"

    def token(self, account: str | None, *, rejected: bool = False) -> Token:
        """A usable token for ``account`` (None: the web tier's configured account).

        Raises :class:`AccountUnavailable` (skip the file), TransientError (retry later)
        or InternalCallRefused (a bug or a bad key: dead-letter)."""
        with self._guard:
            lock = self._locks.setdefault(account, threading.Lock())
        with lock:
            cached = self._tokens.get(account)
            if cached is not None and not rejected and cached.usable(self._clock()):
                return cached
            self._tokens.pop(account, None)
            token = self._fetch(account, rejected)
            self._tokens[account] = token
            return token

    def _fetch(self, account: str | None, rejected: bool) -> Token:
        now = self._clock()
        payload: dict[str, object] = {"account": account}
        if rejected:
            payload["rejected"] = True
        try:
            answer = self._client.post(TOKEN_PATH, payload)
        except InternalCallRefused as exc:
            if exc.status in UNAVAILABLE:
                raise AccountUnavailable(account, UNAVAILABLE[exc.status]) from None
            raise
        self.fetched += 1
        value, expires_at = answer.get("access_token"), answer.get("expires_at")
        if not isinstance(value, str) or not value or not isinstance(expires_at, int | float):
            raise TransientError(f"web tier answered {TOKEN_PATH} without a token")
        return Token(Secret(value), float(expires_at), now)

    def forget(self, account: str | None) -> None:
        with self._guard:
            self._tokens.pop(account, None)


class BrokeredCompressors:
    """The worker's compressor lookup when tokens come from the web tier.

    ``lookup(account)`` returns a :class:`BrokeredCompressor` for the account; clients are
    made per (account, token) and share one connection pool.
    """

    def __init__(self, source: TokenSource, dropbox_settings: DropboxSettings,
                 rules: CompressionSettings, *, pool_size: int = 12) -> None:
        self.source = source
        self._settings = replace(dropbox_settings, token=None, refresh_token=None)
        self._rules = rules
        self._session: requests.Session = make_session(dropbox_settings.api_base_url,
                                                       dropbox_settings.ca_bundle, pool_size)
        self._compressors: OrderedDict[str | None, tuple[Token, FileCompressor]] = OrderedDict()
        self._committers = Committers()  # one batch committer per account, whatever its token
        self._guard = threading.Lock()

    def __call__(self, account: str | None) -> BrokeredCompressor:
        return BrokeredCompressor(self, account)

    def compressor(self, account: str | None, *, rejected: bool = False) -> FileCompressor:
        """The account's compressor with a usable token (a new one after ``rejected``)."""
        token = self.source.token(account, rejected=rejected)
        with self._guard:
            cached = self._compressors.get(account)
            if cached is not None and cached[0] is token:
                self._compressors.move_to_end(account)
                return cached[1]
        client: dropbox.Dropbox = make_dropbox(replace(self._settings, token=token.value),
                                               session=self._session)
        compressor = FileCompressor(client, self._rules, self._committers.for_account(account))
        with self._guard:
            self._compressors[account] = (token, compressor)
            while len(self._compressors) > MAX_CACHED_COMPRESSORS:
                self._compressors.popitem(last=False)
        return compressor


class BrokeredCompressor:
    """Compresses one message's file with its account's token; see the module docstring."""

    def __init__(self, owner: BrokeredCompressors, account: str | None) -> None:
        self._owner = owner
        self._account = account

    def run(self, item: WorkItem, *, retry: bool = False) -> Outcome:
        try:
            compressor = self._owner.compressor(self._account)
            try:
                return compressor.run(item, retry=retry)
            except AuthError as exc:
                log.info("Dropbox refused the token, asking for a new one: %s",
                         fields(account=self._account or "-", error=str(exc.error)))
                self._owner.compressor(self._account, rejected=True)
                raise TransientError("Dropbox refused the access token; retrying with a "
                                     "new one") from None
        except AccountUnavailable as exc:
            log.info("not compressing: %s", fields(account=self._account or "-",
                                                   path=item.path, reason=exc.reason))
            return Outcome("skipped", item.path, exc.reason, item.rev)
