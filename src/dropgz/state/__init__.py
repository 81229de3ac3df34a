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
from dropgz.state.reports import ReportStore

__all__ = ["ACCOUNT_STATUSES", "NEEDS_RECONNECT", "PAUSED", "WATCHING", "AccountState",
           "CredentialMissing", "LeaseLost", "ReportStore", "StateStore", "open_report_store",
           "open_state_store"]


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


def open_report_store(settings: Settings) -> ReportStore:
    """Where worker reports are kept, beside the state (:mod:`dropgz.state.reports`)."""
    if settings.service.state == "ndb":
        from dropgz.state.reports_ndb import NdbReportStore
        return NdbReportStore()
    from dropgz.state.reports_sqlite import SqliteReportStore
    return SqliteReportStore(settings.service.data_path / "reports.sqlite3")
