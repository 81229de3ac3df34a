"""What the web tier remembers per account: cursor, lease, who connected it, its status.

Per account: the list_folder cursor, up to when it covers changes, when watching began, and an
optional ``modified_since`` filter that is set while a from-scratch listing is being paged
through (first run without a stored cursor, or after ``reset``): only files modified since
then are new to us.

The lease serialises delta runs for one account: :meth:`StateStore.acquire_lease` is a
compare-and-set with expiry, and :meth:`StateStore.save_cursor` only succeeds for the
lease owner, so a run that lost its lease (it stalled past expiry) cannot move the cursor
under a newer run.

Accounts connected through ``/connect`` also carry the user's email and display name, when
they connected, a status (:data:`ACCOUNT_STATUSES`) with a reason, and their refresh token,
encrypted by the store's :class:`~dropgz.core.encryption.TokenCipher` before a backend sees
it: backends keep only ciphertext. The account served by the seed's ``[Dropbox] token`` has
a record without a credential or ``connected_at``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime

from dropgz.core.encryption import TokenCipher
from dropgz.core.errors import DropgzError
from dropgz.core.secret import Secret

WATCHING = "watching"
NEEDS_RECONNECT = "needs_reconnect"
PAUSED = "paused"
# watching: changes are compressed. needs_reconnect: Dropbox refused the account's
# credentials (revoked, app unlinked): nothing is done until the user connects again.
# paused: an operator paused it.
ACCOUNT_STATUSES = (WATCHING, NEEDS_RECONNECT, PAUSED)
# Longest status reason kept (it is shown on pages and in `dropgz status`).
MAX_REASON_CHARS = 500
# Largest page list_accounts returns.
MAX_PAGE_SIZE = 1000


class LeaseLost(DropgzError):
    """The caller no longer holds the account's lease: another run owns it now."""


@dataclass(frozen=True)
class AccountState:
    """One account's record."""

    account: str
    cursor: str | None = None
    # Every change made before this time is covered by ``cursor``: after a ``reset``, files
    # modified since then (less a margin) are listed again.
    synced_at: datetime | None = None
    modified_since: datetime | None = None  # filter while a from-scratch listing is paged
    watch_start: datetime | None = None
    lease_owner: str | None = None
    lease_expires: datetime | None = None
    email: str | None = None
    display_name: str | None = None
    connected_at: datetime | None = None  # None: not connected through /connect
    status: str = WATCHING
    status_reason: str = ""
    status_since: datetime | None = None
    has_credential: bool = False  # a refresh token is stored (encrypted)

    @property
    def last_sync(self) -> datetime | None:
        """Up to when its changes were read (the cursor's sync time)."""
        return self.synced_at


def utcnow() -> datetime:
    return datetime.now(UTC)


class CredentialMissing(DropgzError):
    """A refresh token was to be stored or read, but no encryption key is configured."""


class StateStore(ABC):
    """Backends: ``sqlite`` (single host) and ``ndb`` (App Engine). Times are aware UTC.

    ``cipher`` encrypts refresh tokens; without one, the store works for everything but
    connected accounts' credentials (:class:`CredentialMissing`).
    """

    cipher: TokenCipher | None = None

    @abstractmethod
    def get(self, account: str) -> AccountState | None:
        """The account's record, or None when it was never seen."""

    @abstractmethod
    def add_account(self, account: str, *, watch_start: datetime,
                    cursor: str | None = None) -> bool:
        """Record a new account (watching from ``watch_start``, optionally at ``cursor``).
        False, and nothing changed, when it is already known."""

    @abstractmethod
    def accounts(self) -> list[str]:
        """Every known account id, sorted."""

    @abstractmethod
    def acquire_lease(self, account: str, owner: str, seconds: float) -> bool:
        """Take or extend the account's lease for ``seconds``. False when someone else holds
        an unexpired lease. Creates the record if needed (without a watch start)."""

    @abstractmethod
    def release_lease(self, account: str, owner: str) -> None:
        """Give the lease back if ``owner`` holds it."""

    @abstractmethod
    def save_cursor(self, account: str, cursor: str, *, lease_owner: str,
                    synced_at: datetime | None, modified_since: datetime | None = None) -> None:
        """Store the cursor; raises :class:`LeaseLost` unless ``lease_owner`` holds the lease."""

    # ------------------------------------------------------------ connected accounts

    def connect_account(self, account: str, *, refresh_token: Secret, email: str | None,
                        display_name: str | None, watch_start: datetime,
                        cursor: str | None) -> bool:
        """Store a user's grant: profile, encrypted refresh token, status watching.

        A new account starts watching at ``watch_start`` from ``cursor``; a known one
        (reconnecting) keeps its cursor, so it resumes where it stopped, and stays paused if
        an operator paused it. True when new.
        """
        blob = self._cipher().encrypt(account, refresh_token)
        return self._save_grant(account, blob, email=email, display_name=display_name,
                               watch_start=watch_start, cursor=cursor, now=utcnow())

    def refresh_token(self, account: str) -> Secret | None:
        """The account's refresh token, or None when none is stored.
        Raises :class:`~dropgz.core.encryption.DecryptionFailed` on a wrong key."""
        blob = self.raw_credential(account)
        return None if blob is None else self._cipher().decrypt(account, blob)

    def set_account_status(self, account: str, status: str, reason: str = "") -> bool:
        """Set the status (one of :data:`ACCOUNT_STATUSES`) and why; False when unknown."""
        if status not in ACCOUNT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ACCOUNT_STATUSES)}, "
                             f"got {status!r}")
        return self._set_status(account, status, reason[:MAX_REASON_CHARS], utcnow())

    def check_cipher(self) -> None:
        """Decrypt one stored credential, if any: raises DecryptionFailed (wrong key) or
        CredentialMissing (no key) at start rather than at the first token request."""
        found = self._any_credential()
        if found is not None:
            self._cipher().decrypt(*found)

    def _cipher(self) -> TokenCipher:
        if self.cipher is None:
            raise CredentialMissing("no encryption key configured for refresh tokens")
        return self.cipher

    @abstractmethod
    def _save_grant(self, account: str, blob: str, *, email: str | None,
                    display_name: str | None, watch_start: datetime, cursor: str | None,
                    now: datetime) -> bool:
        """Backend primitive of :meth:`connect_account` (``blob`` is ciphertext)."""

    @abstractmethod
    def raw_credential(self, account: str) -> str | None:
        """The refresh token as stored at rest (ciphertext), or None."""

    @abstractmethod
    def _any_credential(self) -> tuple[str, str] | None:
        """Some (account, ciphertext) pair, or None when no credential is stored."""

    @abstractmethod
    def _set_status(self, account: str, status: str, reason: str, now: datetime) -> bool:
        """Backend primitive of :meth:`set_account_status`."""

    @abstractmethod
    def forget_account(self, account: str) -> bool:
        """Delete everything about the account (cursor, credential, profile); False when
        it was not known."""

    @abstractmethod
    def list_accounts(self, *, after: str | None = None, offset: int = 0, limit: int = 100,
                      status: str | None = None) -> list[AccountState]:
        """Up to ``limit`` (≤ :data:`MAX_PAGE_SIZE`) records sorted by account id, those
        after the id ``after`` (keyset paging) else from ``offset``; only ``status`` ones
        when given."""

    @abstractmethod
    def count_accounts(self, status: str | None = None) -> int:
        """How many accounts are known (with ``status``, when given)."""

    @staticmethod
    def _check_page(offset: int, limit: int, status: str | None) -> None:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be 1..{MAX_PAGE_SIZE}, got {limit}")
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        if status is not None and status not in ACCOUNT_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ACCOUNT_STATUSES)}")

    def get_cursor(self, account: str) -> str | None:
        """The stored cursor, or None."""
        record = self.get(account)
        return record.cursor if record else None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
