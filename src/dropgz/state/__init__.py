"""Where the delta tier keeps cursors and leases: ``sqlite`` (single host) or ``ndb``."""

from __future__ import annotations

from dropgz.core.config import Settings
from dropgz.state.base import AccountState, LeaseLost, StateStore

__all__ = ["AccountState", "LeaseLost", "StateStore", "open_state_store"]


def open_state_store(settings: Settings) -> StateStore:
    """The configured backend; imported only when chosen."""
    if settings.service.state == "ndb":
        from dropgz.state.ndb import NdbStateStore
        return NdbStateStore()
    from dropgz.state.sqlite import SqliteStateStore
    return SqliteStateStore(settings.service.data_path / "state.sqlite3")
