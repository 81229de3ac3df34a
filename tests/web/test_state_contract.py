"""One contract for every state store (sqlite, ndb): cursors, accounts and the lease."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from dropgz.state.base import LeaseLost, StateStore

T0 = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)


def test_unknown_account_has_no_record(state_store: StateStore) -> None:
    assert state_store.get("dbid:nobody") is None
    assert state_store.get_cursor("dbid:nobody") is None
    assert state_store.accounts() == []


def test_add_account_records_watch_start_and_cursor_once(state_store: StateStore) -> None:
    assert state_store.add_account("dbid:a", watch_start=T0, cursor="c0") is True
    assert state_store.add_account("dbid:a", watch_start=T0 + timedelta(days=1),
                                   cursor="other") is False
    record = state_store.get("dbid:a")
    assert record is not None
    assert record.watch_start == T0
    assert record.cursor == "c0"
    assert record.synced_at is not None
    assert state_store.accounts() == ["dbid:a"]


def test_add_account_without_cursor(state_store: StateStore) -> None:
    assert state_store.add_account("dbid:b", watch_start=T0)
    assert state_store.add_account("dbid:a", watch_start=T0)
    assert state_store.get_cursor("dbid:b") is None
    assert state_store.accounts() == ["dbid:a", "dbid:b"]


def test_lease_excludes_others_until_released(state_store: StateStore) -> None:
    assert state_store.acquire_lease("dbid:a", "run-1", 60)
    assert not state_store.acquire_lease("dbid:a", "run-2", 60)
    assert state_store.acquire_lease("dbid:a", "run-1", 60)  # the owner extends it
    state_store.release_lease("dbid:a", "run-2")  # not the owner: no effect
    assert not state_store.acquire_lease("dbid:a", "run-2", 60)
    state_store.release_lease("dbid:a", "run-1")
    assert state_store.acquire_lease("dbid:a", "run-2", 60)


def test_lease_expires(state_store: StateStore) -> None:
    assert state_store.acquire_lease("dbid:a", "run-1", 0.2)
    assert not state_store.acquire_lease("dbid:a", "run-2", 60)
    time.sleep(0.3)
    assert state_store.acquire_lease("dbid:a", "run-2", 60)


def test_lease_on_a_new_account_does_not_make_it_watched(state_store: StateStore) -> None:
    assert state_store.acquire_lease("dbid:a", "run-1", 60)
    record = state_store.get("dbid:a")
    assert record is not None and record.watch_start is None and record.cursor is None
    assert state_store.add_account("dbid:a", watch_start=T0) is True
    assert state_store.get("dbid:a").lease_owner == "run-1"


def test_save_cursor_needs_the_lease(state_store: StateStore) -> None:
    state_store.add_account("dbid:a", watch_start=T0, cursor="c0")
    with pytest.raises(LeaseLost):
        state_store.save_cursor("dbid:a", "c1", lease_owner="run-1", synced_at=T0)
    assert state_store.get_cursor("dbid:a") == "c0"

    assert state_store.acquire_lease("dbid:a", "run-1", 0.2)
    since = T0 - timedelta(hours=1)
    state_store.save_cursor("dbid:a", "c1", lease_owner="run-1", synced_at=T0,
                            modified_since=since)
    record = state_store.get("dbid:a")
    assert (record.cursor, record.synced_at, record.modified_since) == ("c1", T0, since)

    time.sleep(0.3)  # run-1 stalls past its lease; run-2 takes over
    assert state_store.acquire_lease("dbid:a", "run-2", 60)
    with pytest.raises(LeaseLost):
        state_store.save_cursor("dbid:a", "stale", lease_owner="run-1", synced_at=T0)
    state_store.save_cursor("dbid:a", "c2", lease_owner="run-2", synced_at=T0)
    record = state_store.get("dbid:a")
    assert record.cursor == "c2" and record.modified_since is None


def test_times_are_aware_utc(state_store: StateStore) -> None:
    local = datetime(2026, 11, 24, 12, 0, tzinfo=UTC).astimezone()
    state_store.add_account("dbid:a", watch_start=local)
    assert state_store.get("dbid:a").watch_start == local
    assert state_store.get("dbid:a").watch_start.tzinfo is not None
