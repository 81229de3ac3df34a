"""What an operator can change from the dashboard: every action is a POST carrying the
session's CSRF token (checked by :func:`~dropgz.web.dashboard.auth.require_login`) and
asked for confirmation by the page's script.

- Work queue: retry one dead letter, retry all, delete one, delete all.
- Accounts: pause (the delta tier queues none of its files, workers defer the ones already
  queued) and resume (watching again; one delta run queues what changed meanwhile).
"""

from __future__ import annotations

import logging
import time
import uuid

from flask import Blueprint, flash, redirect, request, url_for
from werkzeug.wrappers import Response

from dropgz.core.logs import fields
from dropgz.pushqueue.base import DELTA_URL, Task, sanitise
from dropgz.state import PAUSED, WATCHING
from dropgz.web.dashboard.auth import require_login
from dropgz.web.services import services

log = logging.getLogger(__name__)

bp = Blueprint("dashboard_actions", __name__, url_prefix="/dashboard")
bp.before_request(require_login)


def _back(endpoint: str) -> Response:
    page = request.form.get("page", "")
    args = {"page": page} if page.isdigit() else {}
    return redirect(url_for(endpoint, **args))


def _ids() -> list[str] | None:
    """None for "all" (the form says so explicitly), else the one id given."""
    if request.form.get("all") == "1":
        return None
    letter = request.form.get("id", "")
    if not letter or len(letter) > 200:
        flash("No dead letter was named.", "error")
        return []
    return [letter]


@bp.post("/queue/retry")
def retry() -> Response:
    ids = _ids()
    if ids != []:
        moved = services().work_queue().redrive(ids)
        log.info("dashboard: dead letters retried %s", fields(count=moved, all=ids is None))
        flash(f"{moved} dead letter(s) sent back to the queue." if moved
              else "That dead letter is no longer there.", "ok" if moved else "error")
    return _back("dashboard_pages.queue")


@bp.post("/queue/delete")
def delete() -> Response:
    ids = _ids()
    if ids != []:
        gone = services().work_queue().delete_dead(ids)
        log.info("dashboard: dead letters deleted %s", fields(count=gone, all=ids is None))
        flash(f"{gone} dead letter(s) deleted." if gone
              else "That dead letter is no longer there.", "ok" if gone else "error")
    return _back("dashboard_pages.queue")


def _set_status(status: str) -> str | None:
    account = request.form.get("account", "")[:200]
    reason = "paused by the operator" if status == PAUSED else ""
    if not account or not services().state.set_account_status(account, status, reason):
        flash("No such account.", "error")
        return None
    log.info("dashboard: account %s", fields(account=account, status=status))
    return account


@bp.post("/accounts/pause")
def pause() -> Response:
    account = _set_status(PAUSED)
    if account:
        flash(f"{account} is paused: its new files wait until it is resumed.", "ok")
    return _back("dashboard_pages.accounts")


@bp.post("/accounts/resume")
def resume() -> Response:
    account = _set_status(WATCHING)
    if account:
        # What changed while paused is still ahead of its cursor: one run queues it (a
        # name of its own: the coalesced name of this time bucket may be used already).
        services().push_queue.add([Task(DELTA_URL, {"account": account,
                                                    "notified_at": time.time()},
                                        f"resume-{sanitise(account)}-{uuid.uuid4().hex}")])
        flash(f"{account} is watched again; files that waited are being queued.", "ok")
    return _back("dashboard_pages.accounts")
