"""What the delta tier remembers per account, and the per-account lease.

Per account: the list_folder cursor, up to when it covers changes, when watching began, and an
optional ``modified_since`` filter that is set while a from-scratch listing is being paged
through (first run without a stored cursor, or after ``reset``): only files modified since
then are new to us.

The lease serialises delta runs for one account: :meth:`StateStore.acquire_lease` is a
compare-and-set with expiry, and :meth:`StateStore.save_cursor` only succeeds for the
lease owner, so a run that lost its lease (it stalled past expiry) cannot move the cursor
under a newer run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime

from dropgz.core.errors import DropgzError


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


def utcnow() -> datetime:
    return datetime.now(UTC)


class StateStore(ABC):
    """Backends: ``sqlite`` (single host) and ``ndb`` (App Engine). Times are aware UTC."""

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

    def get_cursor(self, account: str) -> str | None:
        """The stored cursor, or None."""
        record = self.get(account)
        return record.cursor if record else None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
