"""Delta processing tier: turn an account's list_folder changes into work messages.

``POST /tasks/delta`` (from the push queue only; :mod:`dropgz.web.tasks`) runs
:func:`run_delta` for one account:
load the cursor, ``list_folder/continue`` until ``has_more`` is false, send one work
message per eligible file (10 per ``SendMessageBatch``), and save each page's cursor only
after that page's messages are sent, so a run that dies midway loses nothing (the next
run sends that page again: a duplicate, which the worker tolerates).

Where watching starts (the issue's "starting point")
    Files that exist before the service watches an account are left alone; every change
    after that is compressed, including the change behind the first webhook ever received.

    * ``dropgz web`` (and any init step) calls :func:`init_account` at start-up: it records
      the *watch start* time and the cursor from ``list_folder/get_latest_cursor``. The
      first webhook then continues from that cursor and sees the new file.
    * When a run finds no cursor (App Engine has no start-up step; or the cursor could not
      be fetched), it lists the account from scratch and sends only files whose
      ``server_modified`` is at or after the watch start. Without a recorded watch start
      it uses the notification's arrival time less :data:`FIRST_NOTICE_LOOKBACK` (a
      notification follows its change within seconds; Dropbox retries for ~10 minutes)
      and records that as the watch start. The reconcile cron also calls
      :func:`init_account`, so on App Engine an account is recorded within one cron period
      of deployment even if no file changes.
    * ``reset`` (the cursor is no longer valid) lists from scratch the same way, sending
      files modified since the old cursor's sync time less :data:`RESET_LOOKBACK`.

    While such a listing is paged, the filter time is stored with each page's cursor
    (``modified_since``), so a run that dies midway resumes with the same filter.

Two deliveries for one account at once are serialised by a lease in the state store:
the second answers 409 and the push queue retries it after the first is done. The lease is
short and renewed before every listing call and every send, so the lease of a run whose
process died lapses within :data:`LEASE_SECONDS` and the push queue's retry takes over.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dropbox
import requests
from dropbox.exceptions import ApiError, HttpError, InternalServerError, RateLimitError
from dropbox.files import FileMetadata, ListFolderResult

from dropgz.core.config import CompressionSettings, Settings
from dropgz.core.eligibility import skip_reason
from dropgz.core.errors import RateLimited, TransientError
from dropgz.core.logs import fields
from dropgz.core.message import WorkItem
from dropgz.core.retries import describe
from dropgz.queues.base import WorkQueue
from dropgz.state.base import LeaseLost, StateStore, utcnow

log = logging.getLogger(__name__)

# list_folder's limit is 1..2000 entries per page (files.stone ListFolderArg.limit).
MAX_PAGE_LIMIT = 2000
# A run renews its lease before each listing call and before sending each page; one call
# or one page (≤2000 files, ≤200 batches) takes seconds, so a lease this long lapses only
# when the run is stuck or dead, and a web tier killed mid-run holds its accounts up for at
# most this long. (A run that outlives it is fenced: LeaseLost at its next renewal.)
LEASE_SECONDS = 30.0
FIRST_NOTICE_LOOKBACK = timedelta(minutes=10)
# Clock skew between us and Dropbox's server_modified, and calls in flight at sync time.
RESET_LOOKBACK = timedelta(minutes=5)
DEFAULT_RATE_LIMIT_SECONDS = 60.0  # when a 429 carries no Retry-After
BUSY_RETRY_SECONDS = 5


class AccountBusy(TransientError):
    """Another delta run holds this account's lease: try again after it."""


@dataclass(frozen=True)
class DeltaResult:
    """What one run did."""

    account: str
    mode: str  # "continue", "first" (no cursor) or "reset"
    pages: int
    files: int  # file entries seen
    sent: int  # work messages sent
    skipped: int  # files refused by the eligibility rules or older than the filter


@contextlib.contextmanager
def dropbox_errors() -> Iterator[None]:
    """Translate SDK failures into dropgz's errors (429 keeps its Retry-After)."""
    try:
        yield
    except RateLimitError as exc:
        raise RateLimited(describe(exc), exc.backoff or DEFAULT_RATE_LIMIT_SECONDS) from exc
    except (InternalServerError, requests.RequestException) as exc:
        raise TransientError(describe(exc)) from exc
    except HttpError as exc:
        if exc.status_code in (500, 502, 503, 504):
            raise TransientError(describe(exc)) from exc
        raise


def _aware(value: datetime) -> datetime:
    # The SDK decodes server_modified as naive UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def init_account(settings: Settings, state: StateStore, dbx: dropbox.Dropbox, *,
                 account: str | None = None, page_limit: int = MAX_PAGE_LIMIT) -> str:
    """Start watching the configured account now, if not already; returns its id.

    Records the watch start and the latest cursor, so changes from now on are compressed
    and files already there are not.
    """
    with dropbox_errors():
        account = (account or settings.dropbox.account_id
                   or dbx.users_get_current_account().account_id)
        record = state.get(account)
        if record is not None and (record.cursor or record.watch_start):
            return account
        watch_start = utcnow()
        cursor = dbx.files_list_folder_get_latest_cursor("", recursive=True,
                                                         limit=page_limit).cursor
    if state.add_account(account, watch_start=watch_start, cursor=cursor):
        log.info("watching a new account: %s", fields(account=account,
                                                      since=watch_start.isoformat()))
    return account


class _Listing:
    """Pages of one account's changes, falling back to a full listing on ``reset``."""

    def __init__(self, dbx: dropbox.Dropbox, page_limit: int) -> None:
        self._dbx = dbx
        self._limit = page_limit

    def scratch(self) -> ListFolderResult:
        with dropbox_errors():
            return self._dbx.files_list_folder("", recursive=True, limit=self._limit)

    def more(self, cursor: str) -> ListFolderResult | None:
        """The next page, or None when Dropbox says the cursor was reset."""
        with dropbox_errors():
            try:
                return self._dbx.files_list_folder_continue(cursor)
            except ApiError as exc:
                if getattr(exc.error, "is_reset", lambda: False)():
                    return None
                raise


def run_delta(account: str, dbx: dropbox.Dropbox, *, state: StateStore,
              work_queue: WorkQueue, rules: CompressionSettings,
              notified_at: datetime | None = None, page_limit: int = MAX_PAGE_LIMIT,
              lease_seconds: float = LEASE_SECONDS, owner: str | None = None) -> DeltaResult:
    """Catch ``account`` up: send its new and changed files to ``work_queue``.

    Raises :class:`AccountBusy` when another run holds the account, :class:`RateLimited`
    on a Dropbox 429, :class:`TransientError` on network or server trouble,
    :class:`LeaseLost` when this run stalled so long another took over.
    """
    if not 1 <= page_limit <= MAX_PAGE_LIMIT:
        raise ValueError(f"page_limit must be 1..{MAX_PAGE_LIMIT}, got {page_limit}")
    owner = owner or uuid.uuid4().hex
    if not state.acquire_lease(account, owner, lease_seconds):
        raise AccountBusy(f"a delta run for {account} is in progress")
    try:
        return _run(account, _Listing(dbx, page_limit), state=state, work_queue=work_queue,
                    rules=rules, notified_at=notified_at, owner=owner,
                    lease_seconds=lease_seconds)
    finally:
        state.release_lease(account, owner)


def _run(account: str, listing: _Listing, *, state: StateStore, work_queue: WorkQueue,
         rules: CompressionSettings, notified_at: datetime | None, owner: str,
         lease_seconds: float) -> DeltaResult:
    record = state.get(account)
    synced_at = record.synced_at if record else None
    since = record.modified_since if record else None
    started = utcnow()
    page: ListFolderResult | None = None
    if record is not None and record.cursor:
        mode = "continue"
        page = listing.more(record.cursor)
    else:
        mode = "first"
        since = record.watch_start if record and record.watch_start else None
        if since is None:
            since = (notified_at or started) - FIRST_NOTICE_LOOKBACK
            state.add_account(account, watch_start=since)
    pages = files = sent = skipped = 0
    while True:
        if page is None:  # no cursor yet, or Dropbox reset it
            if mode == "continue":
                mode = "reset"
                log.warning("cursor reset by Dropbox, listing again: %s",
                            fields(account=account))
            if since is None:
                since = (synced_at or started) - RESET_LOOKBACK
            _renew(state, account, owner, lease_seconds)
            page = listing.scratch()
        pages += 1
        items, seen, refused = work_items(account, page.entries, rules, since)
        bodies = [item.to_json() for item in items]
        files, skipped = files + seen, skipped + refused
        _renew(state, account, owner, lease_seconds)
        work_queue.send(bodies)
        sent += len(bodies)
        if not page.has_more:
            since, synced_at = None, started
        state.save_cursor(account, page.cursor, lease_owner=owner,
                          synced_at=synced_at or since, modified_since=since)
        if not page.has_more:
            break
        started = utcnow()
        _renew(state, account, owner, lease_seconds)
        page = listing.more(page.cursor)
    result = DeltaResult(account, mode, pages, files, sent, skipped)
    log.info("delta run done: %s", fields(account=account, mode=mode, pages=pages,
                                          files=files, sent=sent, skipped=skipped))
    return result


def _renew(state: StateStore, account: str, owner: str, seconds: float) -> None:
    """Push the lease out before the next slow step; fenced: raises when it was lost."""
    if not state.acquire_lease(account, owner, seconds):
        raise LeaseLost(f"lease on {account} was taken over")


def work_items(account: str, entries: list[Any], rules: CompressionSettings,
               since: datetime | None = None) -> tuple[list[WorkItem], int, int]:
    """Work items for the eligible files among listing ``entries`` (and how many files were
    seen and refused); folders and deletions give nothing. Shared by delta runs and backfill."""
    items: list[WorkItem] = []
    files, skipped = 0, 0
    if since is not None:
        # server_modified has whole seconds: a file written in the same second as `since`
        # would otherwise look older than it.
        since = since.replace(microsecond=0)
    for entry in entries:
        if not isinstance(entry, FileMetadata):
            continue
        files += 1
        path = entry.path_display or entry.path_lower
        if since is not None and _aware(entry.server_modified) < since:
            skipped += 1
            continue
        reason = skip_reason(path, entry.size, rules)
        if reason is not None:
            skipped += 1
            # Said at INFO (a user asks why a file has no .gz), except for our own .gz
            # files, which come back through every delta run.
            level = logging.DEBUG if reason == "already .gz" else logging.INFO
            log.log(level, "not compressing: %s", fields(path=path, reason=reason))
            continue
        items.append(WorkItem(path=path, account=account, id=entry.id, rev=entry.rev,
                              size=entry.size, content_hash=entry.content_hash))
    return items, files, skipped
