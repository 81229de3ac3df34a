"""One contract for every state store (sqlite, ndb): cursors, accounts, the lease, and
connected accounts (profile, status, encrypted refresh token, paging)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet

from dropgz.core.encryption import DecryptionFailed, TokenCipher
from dropgz.core.secret import Secret
from dropgz.state.base import CredentialMissing, LeaseLost, StateStore
from tests.web.conftest import ENCRYPTION_KEY

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


# ---------------------------------------------------------------- connected accounts

REFRESH = "emu-refresh-TOKEN-that-must-never-be-stored-in-clear"


def connect(store: StateStore, account: str = "dbid:u1", token: str = REFRESH,
            cursor: str | None = "c0") -> bool:
    return store.connect_account(account, refresh_token=Secret(token), email=f"{account}@x.test",
                                 display_name=f"User {account}", watch_start=T0, cursor=cursor)


def test_connect_stores_profile_status_and_an_encrypted_refresh_token(
        state_store: StateStore) -> None:
    assert connect(state_store) is True
    record = state_store.get("dbid:u1")
    assert (record.email, record.display_name) == ("dbid:u1@x.test", "User dbid:u1")
    assert record.status == "watching" and record.status_reason == ""
    assert record.connected_at is not None and record.connected_at.tzinfo is not None
    assert (record.watch_start, record.cursor) == (T0, "c0")
    assert record.has_credential
    at_rest = state_store.raw_credential("dbid:u1")
    assert at_rest and REFRESH not in at_rest and "dbid:u1" not in at_rest
    assert state_store.refresh_token("dbid:u1") == Secret(REFRESH)
    assert REFRESH not in repr(record)


def test_reconnect_resumes_at_the_old_cursor_with_the_new_token(state_store: StateStore) -> None:
    connect(state_store)
    state_store.set_account_status("dbid:u1", "needs_reconnect", "Dropbox refused the token")
    assert connect(state_store, token="second-grant", cursor="newer") is False
    record = state_store.get("dbid:u1")
    assert record.cursor == "c0" and record.watch_start == T0
    assert (record.status, record.status_reason) == ("watching", "")
    assert state_store.refresh_token("dbid:u1") == Secret("second-grant")


def test_reconnecting_keeps_an_operators_pause(state_store: StateStore) -> None:
    connect(state_store)
    state_store.set_account_status("dbid:u1", "paused", "operator")
    connect(state_store, token="second-grant")
    record = state_store.get("dbid:u1")
    assert (record.status, record.status_reason) == ("paused", "operator")
    assert state_store.refresh_token("dbid:u1") == Secret("second-grant")


def test_the_seed_account_has_no_credential(state_store: StateStore) -> None:
    state_store.add_account("dbid:seed", watch_start=T0, cursor="c")
    record = state_store.get("dbid:seed")
    assert not record.has_credential and record.connected_at is None
    assert record.status == "watching"
    assert state_store.refresh_token("dbid:seed") is None
    state_store.check_cipher()  # nothing to decrypt: fine


def test_status_changes_and_unknown_accounts(state_store: StateStore) -> None:
    connect(state_store)
    assert state_store.set_account_status("dbid:u1", "paused", "operator") is True
    record = state_store.get("dbid:u1")
    assert (record.status, record.status_reason) == ("paused", "operator")
    assert record.status_since is not None
    assert state_store.set_account_status("dbid:nobody", "paused") is False
    with pytest.raises(ValueError, match="status must be one of"):
        state_store.set_account_status("dbid:u1", "sleeping")


def test_forget_removes_everything(state_store: StateStore) -> None:
    connect(state_store)
    assert state_store.forget_account("dbid:u1") is True
    assert state_store.get("dbid:u1") is None
    assert state_store.raw_credential("dbid:u1") is None
    assert state_store.forget_account("dbid:u1") is False
    assert state_store.count_accounts() == 0


def test_wrong_or_missing_key_is_refused(state_store: StateStore) -> None:
    connect(state_store)
    state_store.cipher = TokenCipher(Secret(Fernet.generate_key().decode()))
    with pytest.raises(DecryptionFailed):
        state_store.refresh_token("dbid:u1")
    with pytest.raises(DecryptionFailed):
        state_store.check_cipher()
    state_store.cipher = None
    with pytest.raises(CredentialMissing):
        state_store.check_cipher()
    with pytest.raises(CredentialMissing):
        connect(state_store, "dbid:u2")
    assert state_store.get("dbid:u2") is None


def test_rotated_keys_still_decrypt(state_store: StateStore) -> None:
    connect(state_store)
    state_store.cipher = TokenCipher(Secret(f"{Fernet.generate_key().decode()},{ENCRYPTION_KEY}"))
    assert state_store.refresh_token("dbid:u1") == Secret(REFRESH)
    state_store.check_cipher()


def test_accounts_are_paged_in_id_order_and_counted(state_store: StateStore) -> None:
    ids = [f"dbid:u{n:03d}" for n in range(25)]
    for account in reversed(ids):
        connect(state_store, account)
    for account in ids[:5]:
        state_store.set_account_status(account, "needs_reconnect", "revoked")
    assert state_store.count_accounts() == 25
    assert state_store.count_accounts("needs_reconnect") == 5
    assert state_store.count_accounts("paused") == 0
    first = state_store.list_accounts(limit=10)
    assert [r.account for r in first] == ids[:10]
    assert [r.account for r in state_store.list_accounts(offset=20, limit=10)] == ids[20:]
    after = state_store.list_accounts(after=first[-1].account, limit=10)
    assert [r.account for r in after] == ids[10:20]
    broken = state_store.list_accounts(status="needs_reconnect", limit=3)
    assert [r.account for r in broken] == ids[:3]
    assert all(r.status_reason == "revoked" for r in broken)
    assert state_store.list_accounts(status="watching", after=ids[23]) == [
        state_store.get(ids[24])]
    with pytest.raises(ValueError, match="limit"):
        state_store.list_accounts(limit=0)
