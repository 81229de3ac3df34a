"""Reports in Cloud Datastore through App Engine's bundled ``ndb``.

Counters are sharded: Datastore sustains about one write per second on one entity, and
every worker reports every few seconds, so each batch adds to one of :data:`SHARDS`
copies of each counter, chosen at random, and reads add the shards up. One
``DropgzCounter`` entity holds the counters of one (kind, key, shard): kind ``total``
(key ``all``), ``minute``, ``hour``, ``account`` or ``type``. File records and heartbeats
are entities of their own; trimming runs after each write, bounded by keys-only queries.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dropgz.state.ndb import ndb
from dropgz.state.reports import (
    RECENT_FILES,
    RETENTION,
    WORKER_FORGET,
    FileRecord,
    Heartbeat,
    Increments,
    Point,
    ReportStore,
    Sums,
    minute_of,
    utcnow,
)

SHARDS = 8
_SUMS = ("compressed", "skipped", "retried", "failed", "bytes_in", "bytes_out")


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC)


class DropgzCounter(ndb.Model):
    """Key name ``kind|key|shard``."""

    kind = ndb.StringProperty()
    name = ndb.StringProperty()
    number = ndb.IntegerProperty()  # the minute or hour, for range queries and trimming
    counts = ndb.JsonProperty()


class DropgzFileRecord(ndb.Model):
    account = ndb.StringProperty(indexed=False)
    path = ndb.TextProperty()
    outcome = ndb.StringProperty(indexed=False)
    at = ndb.DateTimeProperty()
    bytes_in = ndb.IntegerProperty(indexed=False)
    bytes_out = ndb.IntegerProperty(indexed=False)
    seconds = ndb.FloatProperty(indexed=False)
    reason = ndb.TextProperty()
    worker = ndb.StringProperty(indexed=False)


class DropgzWorker(ndb.Model):
    """Key name = the worker id."""

    host = ndb.StringProperty(indexed=False)
    pid = ndb.IntegerProperty(indexed=False)
    version = ndb.StringProperty(indexed=False)
    started_at = ndb.DateTimeProperty(indexed=False)
    concurrency = ndb.IntegerProperty(indexed=False)
    in_flight = ndb.IntegerProperty(indexed=False)
    seen_at = ndb.DateTimeProperty()
    reports_dropped = ndb.IntegerProperty(indexed=False)


def _key(kind: str, name: object, shard: int) -> Any:
    return ndb.Key(DropgzCounter, f"{kind}|{name}|{shard}")


def _sums(counts: dict[str, int]) -> Sums:
    return Sums(**{k: int(counts.get(k, 0)) for k in _SUMS})


class NdbReportStore(ReportStore):
    """Reports as Datastore entities (see the module docstring)."""

    def __repr__(self) -> str:
        return "NdbReportStore()"

    # ------------------------------------------------------------ writing

    def _apply(self, inc: Increments, records: list[FileRecord]) -> None:
        shard = random.randrange(SHARDS)
        updates: list[tuple[str, object, int | None, Counter[str]]] = []
        if inc.totals:
            updates.append(("total", "all", None, inc.totals))
        updates += [("minute", m, m, c) for m, c in inc.minutes.items()]
        updates += [("hour", h, h, c) for h, c in inc.hours.items()]
        updates += [("account", a, None, c) for a, c in inc.accounts.items()]
        updates += [("type", t, None, c) for t, c in inc.types.items()]
        for kind, name, number, counts in updates:
            self._add(kind, name, number, counts, shard)
        if records:
            ndb.put_multi([DropgzFileRecord(
                account=r.account, path=r.path, outcome=r.outcome, at=_naive(r.at),
                bytes_in=r.bytes_in, bytes_out=r.bytes_out, seconds=r.seconds,
                reason=r.reason, worker=r.worker) for r in records])
            self._trim()

    @staticmethod
    def _add(kind: str, name: object, number: int | None, counts: Counter[str],
             shard: int) -> None:
        key = _key(kind, name, shard)

        @ndb.transactional(retries=5)
        def add() -> None:
            entity = key.get() or DropgzCounter(key=key, kind=kind, name=str(name),
                                                number=number, counts={})
            merged = Counter(entity.counts or {})
            merged.update(counts)
            entity.counts = dict(merged)
            entity.put()

        add()

    @staticmethod
    def _trim() -> None:
        old = DropgzFileRecord.query().order(-DropgzFileRecord.at).fetch(
            500, offset=RECENT_FILES, keys_only=True)
        cutoff = minute_of(utcnow() - RETENTION)
        for kind, limit in (("minute", cutoff), ("hour", cutoff // 60)):
            old += DropgzCounter.query(DropgzCounter.kind == kind,
                                       DropgzCounter.number < limit).fetch(500, keys_only=True)
        if old:
            ndb.delete_multi(old)

    def heartbeat(self, beat: Heartbeat) -> None:
        DropgzWorker(id=beat.worker, host=beat.host, pid=beat.pid, version=beat.version,
                     started_at=_naive(beat.started_at), concurrency=beat.concurrency,
                     in_flight=beat.in_flight, seen_at=_naive(beat.seen_at),
                     reports_dropped=beat.reports_dropped).put()
        gone = DropgzWorker.query(DropgzWorker.seen_at < _naive(utcnow() - WORKER_FORGET)
                                  ).fetch(100, keys_only=True)
        if gone:
            ndb.delete_multi(gone)

    # ------------------------------------------------------------ reading

    @staticmethod
    def _merged(kind: str) -> dict[str, Counter[str]]:
        merged: dict[str, Counter[str]] = {}
        for entity in DropgzCounter.query(DropgzCounter.kind == kind):
            merged.setdefault(entity.name, Counter()).update(entity.counts or {})
        return merged

    def totals(self) -> dict[str, int]:
        return dict(self._merged("total").get("all", Counter()))

    def series(self, since: datetime, hourly: bool = False) -> list[Point]:
        kind, scale = ("hour", 3600) if hourly else ("minute", 60)
        start = int(since.timestamp() // scale)
        merged: dict[int, Counter[str]] = {}
        for entity in DropgzCounter.query(DropgzCounter.kind == kind,
                                          DropgzCounter.number >= start):
            merged.setdefault(entity.number, Counter()).update(entity.counts or {})
        return [Point(datetime.fromtimestamp(n * scale, UTC), _sums(c))
                for n, c in sorted(merged.items())]

    def recent_files(self, offset: int = 0, limit: int = 50) -> list[FileRecord]:
        rows = DropgzFileRecord.query().order(-DropgzFileRecord.at).fetch(limit, offset=offset)
        return [FileRecord(e.account, e.path, e.outcome, _aware(e.at), e.bytes_in,
                           e.bytes_out, e.seconds, e.reason or "", e.worker or "")
                for e in rows]

    def recent_count(self) -> int:
        return min(DropgzFileRecord.query().count(RECENT_FILES + 500), RECENT_FILES)

    def account_sums(self, accounts: Sequence[str]) -> dict[str, Sums]:
        keys = [_key("account", a, s) for a in accounts for s in range(SHARDS)]
        merged: dict[str, Counter[str]] = {}
        for entity in ndb.get_multi(keys):
            if entity is not None:
                merged.setdefault(entity.name, Counter()).update(entity.counts or {})
        return {a: _sums(c) for a, c in merged.items()}

    def type_sums(self) -> dict[str, Sums]:
        return {t: _sums(c) for t, c in self._merged("type").items()}

    def workers(self) -> list[Heartbeat]:
        rows = DropgzWorker.query().order(-DropgzWorker.seen_at).fetch(1000)
        return [Heartbeat(e.key.id(), e.host, e.pid, e.version, _aware(e.started_at),
                          e.concurrency, e.in_flight, _aware(e.seen_at), e.reports_dropped or 0)
                for e in rows]
