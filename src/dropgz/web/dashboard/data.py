"""What the dashboard pages show, read from the stores (and nothing else).

Every list is a page: accounts, recent files and dead letters are read :data:`PAGE_SIZE`
at a time, so 10,000 accounts cost the same page time as 100.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dropgz.queues.base import DeadLetter, QueueStats
from dropgz.state.reports import OUTCOMES, Point, Sums, utcnow
from dropgz.web.services import Services

PAGE_SIZE = 50
MAX_DEAD_LETTERS = 1000  # dead letters listed at most (SQS can only peek)
RANGES = {"hour": (timedelta(hours=1), False), "day": (timedelta(days=1), True),
          "month": (timedelta(days=30), True)}


@dataclass
class Overview:
    totals: dict[str, int]
    sums: Sums
    skipped_by_kind: list[tuple[str, int]]
    queue: QueueStats | None
    queue_error: str
    workers_live: int
    workers_stale: int
    in_flight: int
    types: list[tuple[str, Sums]]
    webhooks: int
    delta_runs: int


def overview(svc: Services) -> Overview:
    svc.counters.flush()
    totals = svc.reports.totals()
    sums = Sums(**{o: totals.get(f"files:{o}", 0) for o in OUTCOMES},
                bytes_in=totals.get("bytes_in", 0), bytes_out=totals.get("bytes_out", 0))
    skipped = sorted(((k.split(":", 1)[1], n) for k, n in totals.items()
                      if k.startswith("skipped:")), key=lambda kv: -kv[1])
    queue, queue_error = queue_stats(svc)
    beats = svc.reports.workers()
    live = [b for b in beats if not b.stale()]
    types = sorted(svc.reports.type_sums().items(), key=lambda kv: -kv[1].bytes_saved)
    return Overview(totals, sums, skipped, queue, queue_error, len(live),
                    len(beats) - len(live), sum(b.in_flight for b in live), types,
                    sum(n for k, n in totals.items() if k.startswith("webhooks:")),
                    sum(n for k, n in totals.items() if k.startswith("delta_runs:")))


def queue_stats(svc: Services) -> tuple[QueueStats | None, str]:
    try:
        return svc.work_queue().stats(), ""
    except Exception as exc:  # the page still shows everything else
        return None, f"work queue unreachable: {exc}"


def series(svc: Services, name: str) -> dict[str, Any]:
    """Chart data for one range: x (epoch seconds), files/min or /h, bytes saved."""
    span, hourly = RANGES.get(name, RANGES["hour"])
    step = 3600 if hourly else 60
    now = utcnow()
    start = int((now - span).timestamp() // step * step)
    points: dict[int, Point] = {int(p.at.timestamp()): p
                                for p in svc.reports.series(now - span, hourly=hourly)}
    xs = list(range(start + step, int(now.timestamp() // step * step) + step, step))
    empty = Sums()
    return {"range": name, "step": step, "x": xs,
            "compressed": [points[x].sums.compressed if x in points else 0 for x in xs],
            "failed": [points[x].sums.failed if x in points else 0 for x in xs],
            "saved": [(points[x].sums if x in points else empty).bytes_saved for x in xs]}


# ------------------------------------------------------------ pages of lists


@dataclass
class Page:
    number: int
    size: int
    total: int
    items: list[Any] = field(default_factory=list)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size


def page_number(raw: str | None) -> int:
    try:
        return max(1, min(int(raw or 1), 1_000_000))
    except ValueError:
        return 1


@dataclass
class AccountRow:
    account: str
    status: str
    email: str
    watch_start: datetime | None
    synced_at: datetime | None
    sums: Sums


def accounts(svc: Services, number: int) -> Page:
    """One page of accounts (the store pages them: 10,000 accounts cost what 100 do)."""
    page = Page(number, PAGE_SIZE, svc.state.count_accounts())
    records = svc.state.list_accounts(offset=page.offset, limit=page.size)
    sums = svc.reports.account_sums([r.account for r in records])
    page.items = [AccountRow(r.account, r.status, r.email or "", r.watch_start, r.synced_at,
                             sums.get(r.account, Sums())) for r in records]
    return page


def recent_files(svc: Services, number: int) -> Page:
    page = Page(number, PAGE_SIZE, svc.reports.recent_count())
    page.items = svc.reports.recent_files(page.offset, page.size)
    return page


@dataclass
class DeadRow:
    id: str
    account: str
    path: str
    reason: str


def _describe(letter: DeadLetter) -> DeadRow:
    try:
        body = json.loads(letter.body)
    except ValueError:
        body = None
    account = body.get("account") if isinstance(body, dict) else None
    path = body.get("path") if isinstance(body, dict) else None
    return DeadRow(letter.id, account if isinstance(account, str) else "",
                   path if isinstance(path, str) else letter.body[:300],
                   letter.reason or "received too many times (moved by SQS)")


def dead_letters(svc: Services, number: int, total: int) -> Page:
    page = Page(number, PAGE_SIZE, min(total, MAX_DEAD_LETTERS))
    if page.offset < page.total:
        letters = svc.work_queue().dead_letters(min(page.offset + page.size, MAX_DEAD_LETTERS))
        page.items = [_describe(d) for d in letters[page.offset:page.offset + page.size]]
    return page
