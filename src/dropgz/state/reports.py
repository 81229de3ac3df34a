"""What the workers reported, kept by the web tier: the numbers behind the dashboard,
``/metrics`` and ``dropgz status``, global across every worker.

Workers send per-file outcomes in batches and a heartbeat (:mod:`dropgz.web.reports`); the
web tier counts its own webhooks and delta runs. A :class:`ReportStore` keeps, bounded:

* all-time **totals**: named counters (``files:compressed``, ``bytes_in``, ``skipped:<kind>``,
  ``seconds_le:<bound>``, ``webhooks:<result>``, ``delta_runs:<result>``...). They only
  grow, as Prometheus counters must;
* **rollups** per minute and per hour (files by outcome, bytes in and out), kept
  :data:`RETENTION` (30 days): the charts;
* per **account** and per **file type** totals (files, bytes in and out);
* the last :data:`RECENT_FILES` file records;
* each worker's latest heartbeat (forgotten after :data:`WORKER_FORGET`).

Backends (``reports_sqlite.py``, ``reports_ndb.py``) write primitives only: the base turns
a batch of records into one :class:`Increments` (so a batch costs a few writes, not one
per file) and does every argument check once.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

OUTCOMES = ("compressed", "skipped", "retried", "failed")
RETENTION = timedelta(days=30)
RECENT_FILES = 1000
WORKER_FORGET = timedelta(days=1)
# A worker whose last heartbeat is older than this is shown as stale.
STALE_AFTER = timedelta(seconds=60)
# Buckets of the dropgz_compress_seconds histogram (upper bounds, seconds).
SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
MAX_TEXT = 1024  # path / reason / error characters kept per record
_EXT_RE = re.compile(r"^[a-z0-9]{1,10}$")
NO_TYPE = "(none)"

# Skip reasons are free text (they quote paths and revisions); totals count them by kind.
_SKIP_KINDS = (
    ("already .gz", "already .gz"), ("already gzip", "content is gzip"),
    ("excluded", "excluded"), ("smaller than", "too small"), ("larger than", "too large"),
    ("name too long", "name too long"), ("superseded", "superseded"),
    ("gone", "deleted or moved"), ("folder", "folder"), ("not made by dropgz", ".gz not ours"),
    ("not a file", ".gz not ours"), ("disconnected", "account disconnected"),
    ("reconnect", "needs reconnect"), ("identical .gz", "already done"),
)


def skip_kind(reason: str) -> str:
    """The kind of a skip reason, for the totals: a short, bounded label."""
    lowered = reason.lower()
    for needle, kind in _SKIP_KINDS:
        if needle in lowered:
            return kind
    return "other"


def file_type(path: str) -> str:
    """``/a/Report.CSV`` → ``csv``; no (or an odd) extension → ``(none)``."""
    name = path.rsplit("/", 1)[-1].lower()
    if "." not in name.strip("."):
        return NO_TYPE
    ext = name.rsplit(".", 1)[-1]
    return ext if _EXT_RE.match(ext) else NO_TYPE


def minute_of(at: datetime) -> int:
    return int(at.timestamp() // 60)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class FileRecord:
    """One file a worker settled."""

    account: str
    path: str
    outcome: str  # one of OUTCOMES
    at: datetime
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    reason: str = ""  # skip reason, or the error of a retry or a failure
    worker: str = ""

    @property
    def ratio(self) -> float | None:
        return self.bytes_out / self.bytes_in if self.bytes_in else None

    @property
    def file_type(self) -> str:
        return file_type(self.path)


@dataclass(frozen=True)
class Heartbeat:
    """A worker's latest heartbeat."""

    worker: str  # host:pid:start, unique per process
    host: str
    pid: int
    version: str
    started_at: datetime
    concurrency: int
    in_flight: int
    seen_at: datetime
    reports_dropped: int = 0

    def stale(self, now: datetime | None = None) -> bool:
        return (now or utcnow()) - self.seen_at > STALE_AFTER


@dataclass
class Sums:
    """Files by outcome and bytes, for one minute, hour, account or file type."""

    compressed: int = 0
    skipped: int = 0
    retried: int = 0
    failed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def add(self, other: Mapping[str, int] | Sums) -> None:
        items = other.items() if isinstance(other, Mapping) else vars(other).items()
        for key, value in items:
            setattr(self, key, getattr(self, key) + int(value))

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))

    @property
    def bytes_saved(self) -> int:
        return self.bytes_in - self.bytes_out

    @property
    def ratio(self) -> float | None:
        return self.bytes_out / self.bytes_in if self.bytes_in else None


@dataclass(frozen=True)
class Point:
    """One chart point: the start of a minute or hour, and what was done in it."""

    at: datetime
    sums: Sums


@dataclass
class Increments:
    """What one batch adds, aggregated per key (what backends write)."""

    totals: Counter[str] = field(default_factory=Counter)
    minutes: dict[int, Counter[str]] = field(default_factory=dict)
    hours: dict[int, Counter[str]] = field(default_factory=dict)
    accounts: dict[str, Counter[str]] = field(default_factory=dict)
    types: dict[str, Counter[str]] = field(default_factory=dict)


def _sums_delta(record: FileRecord) -> Counter[str]:
    delta: Counter[str] = Counter({record.outcome: 1})
    if record.outcome == "compressed":
        delta["bytes_in"] += record.bytes_in
        delta["bytes_out"] += record.bytes_out
    return delta


def aggregate(records: Sequence[FileRecord]) -> Increments:
    """The increments a batch of records makes, per total, minute, hour, account and type."""
    inc = Increments()
    for r in records:
        delta = _sums_delta(r)
        inc.totals[f"files:{r.outcome}"] += 1
        if r.outcome == "compressed":
            inc.totals["bytes_in"] += r.bytes_in
            inc.totals["bytes_out"] += r.bytes_out
            inc.totals["seconds_sum_ms"] += round(r.seconds * 1000)
            bound = next((b for b in SECONDS_BUCKETS if r.seconds <= b), None)
            inc.totals[f"seconds_le:{bound}" if bound is not None else "seconds_le:+Inf"] += 1
        elif r.outcome == "skipped":
            inc.totals[f"skipped:{skip_kind(r.reason)}"] += 1
        minute = minute_of(r.at)
        for table, key in ((inc.minutes, minute), (inc.hours, minute // 60),
                           (inc.accounts, r.account), (inc.types, r.file_type)):
            table.setdefault(key, Counter()).update(delta)  # type: ignore[attr-defined]
    return inc


def check_record(record: FileRecord) -> FileRecord:
    """ValueError naming the problem; long texts are cut to :data:`MAX_TEXT`."""
    if record.outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, got {record.outcome!r}")
    if record.bytes_in < 0 or record.bytes_out < 0 or record.seconds < 0:
        raise ValueError("bytes and seconds must not be negative")
    if record.at.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return FileRecord(record.account[:200], record.path[:MAX_TEXT], record.outcome, record.at,
                      record.bytes_in, record.bytes_out, record.seconds,
                      record.reason[:MAX_TEXT], record.worker[:200])


class ReportStore(ABC):
    """Where reports are kept: ``sqlite`` (one host) or ``ndb`` (App Engine)."""

    # ------------------------------------------------------------ writing

    def add_files(self, records: Sequence[FileRecord]) -> None:
        """Count a batch of file records and keep them among the recent ones."""
        records = [check_record(r) for r in records]
        if records:
            self._apply(aggregate(records), records)

    def add_counts(self, counts: Mapping[str, int]) -> None:
        """Add to named totals (``webhooks:accepted``...): the web tier's own counters."""
        clean = Counter({k: int(v) for k, v in counts.items() if int(v)})
        if any(v < 0 for v in clean.values()):
            raise ValueError("counts only grow")
        if clean:
            self._apply(Increments(totals=clean), [])

    @abstractmethod
    def heartbeat(self, beat: Heartbeat) -> None:
        """Keep ``beat`` as its worker's latest; forget workers silent for a day."""

    @abstractmethod
    def _apply(self, inc: Increments, records: list[FileRecord]) -> None:
        """Add ``inc`` to the stored counters, store ``records``, trim to the bounds."""

    # ------------------------------------------------------------ reading

    @abstractmethod
    def totals(self) -> dict[str, int]:
        """Every all-time counter by name."""

    @abstractmethod
    def series(self, since: datetime, hourly: bool = False) -> list[Point]:
        """Minute (or hour) points from ``since`` on, oldest first; empty ones left out."""

    @abstractmethod
    def recent_files(self, offset: int = 0, limit: int = 50) -> list[FileRecord]:
        """The latest file records, newest first."""

    @abstractmethod
    def recent_count(self) -> int:
        """How many recent file records are kept (at most :data:`RECENT_FILES`)."""

    @abstractmethod
    def account_sums(self, accounts: Sequence[str]) -> dict[str, Sums]:
        """Totals of the given accounts (those with none are left out)."""

    @abstractmethod
    def type_sums(self) -> dict[str, Sums]:
        """Totals per file type."""

    @abstractmethod
    def workers(self) -> list[Heartbeat]:
        """Every worker's latest heartbeat, most recent first."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""

