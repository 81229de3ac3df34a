"""Delta processing tier, its HTTP side: the push queue's task routes.

``POST /tasks/delta`` runs :func:`dropgz.web.delta.run_delta` for the task's account;
``POST /tasks/reconcile`` (local push queue) and ``GET /tasks/reconcile-cron`` (App Engine
cron) queue a delta task for every known account. Every route first checks that the call
really comes from the push queue (or the cron) and answers 403 otherwise.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import dropbox
from dropbox.exceptions import AuthError
from flask import Blueprint, Response, g, jsonify, request

from dropgz.core.errors import DropgzError, RateLimited, TransientError
from dropgz.core.logs import fields
from dropgz.core.retries import describe
from dropgz.pushqueue.base import MAX_FANOUT_ACCOUNTS, delta_task, delta_tasks
from dropgz.state.base import NEEDS_RECONNECT, PAUSED, WATCHING, LeaseLost
from dropgz.web.credentials import NeedsReconnect
from dropgz.web.delta import (
    BUSY_RETRY_SECONDS,
    AccountBusy,
    DeltaResult,
    dropbox_errors,
    init_account,
    run_delta,
)
from dropgz.web.services import services

log = logging.getLogger(__name__)

bp = Blueprint("tasks", __name__, url_prefix="/tasks")
RECONCILE_PAGE = 1000  # accounts read from the state store per call


def _answer(status: int, **body: Any) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


@bp.before_request
def _check_origin() -> Response | None:
    svc = services()
    if request.endpoint == "tasks.reconcile_cron":
        allowed = svc.push_queue.verify_cron(request)
    else:
        allowed = svc.push_queue.verify_origin(request)
    if not allowed:
        log.warning("refused a task not from the push queue: %s",
                    fields(path=request.path, remote=request.remote_addr))
        return _answer(403, error="tasks are accepted from the push queue only")
    return None


# dropgz_delta_runs_total{result}: what a delta run's answer means.
_RUN_RESULTS = {200: "done", 400: "bad_task", 409: "busy", 429: "rate_limited"}


@bp.after_request
def _count_run(response: Response) -> Response:
    if request.endpoint == "tasks.delta" and response.status_code != 403:
        counters = services().counters
        result = g.get("delta_result") or _RUN_RESULTS.get(response.status_code, "error")
        counters.count(f"delta_runs:{result}")
        counters.flush_after(response)
    return response


def paused(account: str) -> bool:
    """True when the operator paused the account: the delta tier queues none of its files."""
    record = services().state.get(account)
    return record is not None and record.status == PAUSED


def _payload() -> tuple[str, datetime | None]:
    data = request.get_json(silent=True)
    account = data.get("account") if isinstance(data, dict) else None
    if not isinstance(account, str) or not account or len(account) > 200:
        raise ValueError("task payload must be a JSON object with an 'account' string")
    notified = data.get("notified_at")
    if notified is not None and (isinstance(notified, bool)
                                 or not isinstance(notified, int | float)):
        raise ValueError("'notified_at' must be a number (seconds since the epoch)")
    return account, (datetime.fromtimestamp(notified, UTC) if notified is not None else None)


@bp.post("/delta")
def delta() -> Response:
    """Run the delta for the task's account. 2xx = done (or never to be done: an account
    not served here, or one whose access Dropbox refused); anything else = retry later."""
    svc = services()
    try:
        account, notified_at = _payload()
    except ValueError as exc:
        return _answer(400, error=str(exc))
    if paused(account):
        # Its changes stay ahead of its cursor; resuming queues a run that picks them up.
        g.delta_result = "paused"
        return _answer(200, account=account, ignored="paused")
    try:
        with dropbox_errors():
            dbx = svc.credentials.client_for(account)
        if dbx is None:
            log.info("notification for an account not served here: %s",
                     fields(account=account))
            return _answer(200, account=account, ignored="unknown account")
        result = _run_delta(account, dbx, notified_at)
    except NeedsReconnect as exc:
        # Retrying cannot help until the user connects again (which resumes the account).
        log.info("delta skipped: %s", fields(account=account, reason="needs reconnect"))
        return _answer(200, account=account, ignored="needs reconnect", reason=exc.reason)
    except AccountBusy as exc:
        return _retry_later(409, str(exc), BUSY_RETRY_SECONDS)
    except RateLimited as exc:
        # 429, not 503: on App Engine a 503 also slows the whole queue down.
        return _retry_later(429, str(exc), exc.retry_after)
    except (TransientError, LeaseLost) as exc:
        log.warning("delta run failed, will be retried: %s",
                    fields(account=account, error=str(exc)))
        return _answer(500, account=account, error=str(exc))
    except (DropgzError, dropbox.exceptions.DropboxException) as exc:
        log.error("delta run failed: %s", fields(account=account, error=describe(exc)))
        return _answer(500, account=account, error=describe(exc))
    return _answer(200, account=account, mode=result.mode, pages=result.pages,
                   files=result.files, sent=result.sent, skipped=result.skipped)


def _run_delta(account: str, dbx: dropbox.Dropbox, notified_at: datetime | None) -> DeltaResult:
    """:func:`run_delta`; a 401 (token refused) is checked against the grant: gone →
    :class:`NeedsReconnect`, else the error stands and the task is retried with a new token."""
    svc = services()
    try:
        return run_delta(account, dbx, state=svc.state, work_queue=svc.work_queue(),
                         rules=svc.settings.compression, notified_at=notified_at,
                         page_limit=svc.page_limit, lease_seconds=svc.lease_seconds)
    except AuthError:
        with dropbox_errors():
            svc.credentials.rejected(account)
        raise


@bp.post("/fanout")
def fanout() -> Response:
    """A notification that named many accounts: queue each one's delta task (coalesced per
    account, as the webhook would have)."""
    svc = services()
    data = request.get_json(silent=True)
    accounts = data.get("accounts") if isinstance(data, dict) else None
    notified = data.get("notified_at") if isinstance(data, dict) else None
    if (not isinstance(accounts, list) or len(accounts) > MAX_FANOUT_ACCOUNTS
            or not all(isinstance(a, str) and 0 < len(a) <= 200 for a in accounts)):
        return _answer(400, error=f"payload must hold 'accounts': up to {MAX_FANOUT_ACCOUNTS} "
                                  "account id strings")
    if isinstance(notified, bool) or not isinstance(notified, int | float | None):
        return _answer(400, error="'notified_at' must be a number (seconds since the epoch)")
    added = svc.push_queue.add(delta_tasks(accounts, bucket_seconds=svc.bucket_seconds,
                                           notified_at=notified))
    return _answer(200, accounts=len(accounts), queued=sum(added))


def _retry_later(status: int, message: str, seconds: float) -> Response:
    response = _answer(status, error=message)
    response.headers["Retry-After"] = str(max(1, round(seconds)))
    return response


def reconcile_accounts() -> dict[str, int]:
    """Queue a delta task for every account being watched (and start watching the seed's)."""
    svc = services()
    accounts: set[str] = set()
    seed = _check_seed_account()
    if seed is not None:
        accounts.add(seed)
    after: str | None = None
    while page := svc.state.list_accounts(after=after, limit=RECONCILE_PAGE):
        accounts.update(r.account for r in page if r.status != NEEDS_RECONNECT)
        after = page[-1].account
    tasks = [delta_task(a, bucket_seconds=svc.bucket_seconds) for a in sorted(accounts)]
    added = svc.push_queue.add(tasks)
    return {"accounts": len(tasks), "queued": sum(added)}


def _check_seed_account() -> str | None:
    """The seed's account id once it is watched, or None. A seed account marked
    needs_reconnect goes back to watching when its credentials work again (fixed settings)."""
    svc = services()
    if svc.accounts is None:
        return None
    try:
        with dropbox_errors():
            owner = svc.accounts.owner_id()
            account = init_account(svc.settings, svc.state, svc.accounts.client(),
                                   account=owner, page_limit=svc.page_limit)
            record = svc.state.get(account)
            if record is not None and record.status == NEEDS_RECONNECT \
                    and not record.has_credential:
                svc.accounts.client().users_get_current_account()
                svc.state.set_account_status(account, WATCHING)
                log.info("account resumed: %s", fields(account=account,
                                                       reason="settings credentials work"))
    except (DropgzError, dropbox.exceptions.DropboxException) as exc:
        log.warning("reconcile could not check the configured account: %s",
                    fields(error=describe(exc)))
        return None
    return account


@bp.post("/reconcile")
def reconcile() -> Response:
    """From the push queue (local mode schedules it every 10 minutes)."""
    return _answer(200, **reconcile_accounts())


@bp.get("/reconcile-cron")
def reconcile_cron() -> Response:
    """From App Engine cron (cron.yaml); GET, with ``X-Appengine-Cron: true``."""
    return _answer(200, **reconcile_accounts())
