"""State store in Cloud Datastore through App Engine's bundled ``ndb``.

This is ``google.appengine.ext.ndb`` from appengine-python-standard (not the separate
``google.cloud.ndb``): it works inside the wrapped WSGI app on App Engine and against the
testbed datastore stub in tests. One entity per account, keyed by the account id; the
lease and cursor updates are single-entity transactions, so they are compare-and-set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dropgz.state.base import AccountState, LeaseLost, StateStore, utcnow


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


def _state(entity: DropgzAccount) -> AccountState:
    return AccountState(
        account=entity.key.id(),
        cursor=entity.cursor,
        synced_at=_aware(entity.synced_at),
        modified_since=_aware(entity.modified_since),
        watch_start=_aware(entity.watch_start),
        lease_owner=entity.lease_owner,
        lease_expires=_aware(entity.lease_expires),
    )


class NdbStateStore(StateStore):
    """Accounts as ``DropgzAccount`` entities."""

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
