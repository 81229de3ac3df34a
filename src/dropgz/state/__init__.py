"""Where the web tier keeps accounts, cursors and leases: ``sqlite`` (single host) or ``ndb``."""

from __future__ import annotations

from dropgz.core.config import Settings
from dropgz.core.encryption import TokenCipher
from dropgz.state.base import (
    ACCOUNT_STATUSES,
    NEEDS_RECONNECT,
    PAUSED,
    WATCHING,
    AccountState,
    CredentialMissing,
    LeaseLost,
    StateStore,
)

__all__ = ["ACCOUNT_STATUSES", "NEEDS_RECONNECT", "PAUSED", "WATCHING", "AccountState",
           "CredentialMissing", "LeaseLost", "StateStore", "open_state_store"]


def open_state_store(settings: Settings) -> StateStore:
    """The configured backend (imported only when chosen), encrypting refresh tokens with
    ``[Service] encryption_key`` when it is set."""
    key = settings.service.encryption_key
    cipher = TokenCipher(key) if key else None
    if settings.service.state == "ndb":
        from dropgz.state.ndb import NdbStateStore
        return NdbStateStore(cipher)
    from dropgz.state.sqlite import SqliteStateStore
    return SqliteStateStore(settings.service.data_path / "state.sqlite3", cipher)
