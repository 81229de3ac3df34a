"""State store in Cloud Datastore through App Engine's bundled ``ndb``.

This is ``google.appengine.ext.ndb`` from appengine-python-standard (not the separate
``google.cloud.ndb``): it works inside the wrapped WSGI app on App Engine and against the
testbed datastore stub in tests. One entity per account, keyed by the account id; the
lease and cursor updates are single-entity transactions, so they are compare-and-set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dropgz.core.encryption import TokenCipher
from dropgz.state.base import PAUSED, WATCHING, AccountState, LeaseLost, StateStore, utcnow


def _ndb() -> Any:
    try:
        from google.appengine.ext import ndb
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("the ndb state store needs App Engine's bundled services: "
                          "run `pip install dropgz[gae]`") from None
    return ndb


ndb = _ndb()


def _naive(value: datetime | None) -> datetime | None:
    # ndb DateTimeProperty stores naive UTC.
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


class DropgzAccount(ndb.Model):
    """Datastore kind ``DropgzAccount``; key name = the Dropbox account id."""

    cursor = ndb.TextProperty()  # cursors can exceed the 1500-byte indexed limit
    synced_at = ndb.DateTimeProperty(indexed=False)
    modified_since = ndb.DateTimeProperty(indexed=False)
    watch_start = ndb.DateTimeProperty(indexed=False)
    lease_owner = ndb.StringProperty(indexed=False)
    lease_expires = ndb.DateTimeProperty(indexed=False)
    email = ndb.StringProperty(indexed=False)
    display_name = ndb.StringProperty(indexed=False)
    connected_at = ndb.DateTimeProperty(indexed=False)
    # Indexed: list_accounts(status=...) and count_accounts(status) filter on it.
    status = ndb.StringProperty(default=WATCHING)
    status_reason = ndb.TextProperty(default="")
    status_since = ndb.DateTimeProperty(indexed=False)
    credential = ndb.TextProperty()  # the refresh token's ciphertext (TokenCipher)


def _state(entity: DropgzAccount) -> AccountState:
    return AccountState(
        account=entity.key.id(),
        cursor=entity.cursor,
        synced_at=_aware(entity.synced_at),
        modified_since=_aware(entity.modified_since),
        watch_start=_aware(entity.watch_start),
        lease_owner=entity.lease_owner,
        lease_expires=_aware(entity.lease_expires),
        email=entity.email,
        display_name=entity.display_name,
        connected_at=_aware(entity.connected_at),
        status=entity.status or WATCHING,
        status_reason=entity.status_reason or "",
        status_since=_aware(entity.status_since),
        has_credential=entity.credential is not None,
    )


class NdbStateStore(StateStore):
    """Accounts as ``DropgzAccount`` entities."""

    def __init__(self, cipher: TokenCipher | None = None) -> None:
        self.cipher = cipher

    def __repr__(self) -> str:
        return "NdbStateStore()"

    @staticmethod
    def _key(account: str) -> Any:
        return ndb.Key(DropgzAccount, account)

    def get(self, account: str) -> AccountState | None:
        entity = self._key(account).get(use_cache=False, use_memcache=False)
        return _state(entity) if entity else None

    def add_account(self, account: str, *, watch_start: datetime,
                    cursor: str | None = None) -> bool:
        key = self._key(account)

        @ndb.transactional(retries=5)
        def add() -> bool:
            entity = key.get() or DropgzAccount(key=key)
            if entity.watch_start is not None or entity.cursor is not None:
                return False
            entity.watch_start = _naive(watch_start)
            if cursor:
                entity.cursor, entity.synced_at = cursor, _naive(utcnow())
            entity.put()
            return True

        return add()

    def accounts(self) -> list[str]:
        return sorted(k.id() for k in DropgzAccount.query().iter(keys_only=True))

    def acquire_lease(self, account: str, owner: str, seconds: float) -> bool:
        key = self._key(account)

        @ndb.transactional(retries=5)
        def acquire() -> bool:
            now = utcnow()
            entity = key.get() or DropgzAccount(key=key)
            if (entity.lease_owner not in (None, owner)
                    and _aware(entity.lease_expires) > now):
                return False
            entity.lease_owner = owner
            entity.lease_expires = _naive(now + timedelta(seconds=seconds))
            entity.put()
            return True

        return acquire()

    def release_lease(self, account: str, owner: str) -> None:
        key = self._key(account)

        @ndb.transactional(retries=5)
        def release() -> None:
            entity = key.get()
            if entity is not None and entity.lease_owner == owner:
                entity.lease_owner = entity.lease_expires = None
                entity.put()

        release()

    def save_cursor(self, account: str, cursor: str, *, lease_owner: str,
                    synced_at: datetime | None, modified_since: datetime | None = None) -> None:
        key = self._key(account)

        @ndb.transactional(retries=5)
        def save() -> None:
            entity = key.get()
            if entity is None or entity.lease_owner != lease_owner:
                raise LeaseLost(f"lease on {account} is not held by this run")
            entity.cursor = cursor
            entity.synced_at = _naive(synced_at)
            entity.modified_since = _naive(modified_since)
            entity.put()

        save()

    # ------------------------------------------------------------ connected accounts

    def _save_grant(self, account: str, blob: str, *, email: str | None,
                    display_name: str | None, watch_start: datetime, cursor: str | None,
                    now: datetime) -> bool:
        key = self._key(account)

        @ndb.transactional(retries=5)
        def save() -> bool:
            entity = key.get() or DropgzAccount(key=key)
            new = entity.watch_start is None and entity.cursor is None
            if new:
                entity.watch_start = _naive(watch_start)
                if cursor:
                    entity.cursor, entity.synced_at = cursor, _naive(now)
            entity.email, entity.display_name = email, display_name
            entity.connected_at, entity.credential = _naive(now), blob
            if entity.status != PAUSED:  # a new grant ends "needs reconnect"; a pause stays
                entity.status, entity.status_reason = WATCHING, ""
                entity.status_since = _naive(now)
            entity.put()
            return new

        return save()

    def raw_credential(self, account: str) -> str | None:
        entity = self._key(account).get(use_cache=False, use_memcache=False)
        return entity.credential if entity else None

    def _any_credential(self) -> tuple[str, str] | None:
        # credential is not indexed: look at connected accounts (connected_at is set with it)
        # a page at a time; the seed's account has none.
        for entity in DropgzAccount.query().iter(batch_size=100):
            if entity.credential is not None:
                return entity.key.id(), entity.credential
        return None

    def _set_status(self, account: str, status: str, reason: str, now: datetime) -> bool:
        key = self._key(account)

        @ndb.transactional(retries=5)
        def update() -> bool:
            entity = key.get()
            if entity is None:
                return False
            if entity.status != status or entity.status_since is None:
                entity.status_since = _naive(now)
            entity.status, entity.status_reason = status, reason
            entity.put()
            return True

        return update()

    def forget_account(self, account: str) -> bool:
        key = self._key(account)

        @ndb.transactional(retries=5)
        def forget() -> bool:
            if key.get() is None:
                return False
            key.delete()
            return True

        return forget()

    def list_accounts(self, *, after: str | None = None, offset: int = 0, limit: int = 100,
                      status: str | None = None) -> list[AccountState]:
        self._check_page(offset, limit, status)
        query = DropgzAccount.query()
        if status is not None:
            query = query.filter(DropgzAccount.status == status)
        if after is not None:
            query = query.filter(DropgzAccount.key > self._key(after))
            offset = 0
        query = query.order(DropgzAccount.key)
        return [_state(e) for e in query.fetch(limit, offset=offset)]

    def count_accounts(self, status: str | None = None) -> int:
        query = DropgzAccount.query()
        if status is not None:
            query = query.filter(DropgzAccount.status == status)
        return query.count()
