"""The dashboard's pages (server-rendered, autoescaped) and the JSON its script polls.

Overview (totals, charts, skips by reason, file types), work queue (dead letters with
their reasons and actions), accounts, workers and recent files; every list is paged.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template, request

from dropgz.state.reports import STALE_AFTER, utcnow
from dropgz.web.dashboard import data
from dropgz.web.dashboard.auth import require_login
from dropgz.web.services import services

bp = Blueprint("dashboard_pages", __name__, url_prefix="/dashboard")
bp.before_request(require_login)


@bp.get("/")
def overview() -> str:
    svc = services()
    return render_template("dashboard/overview.html", page="overview",
                           o=data.overview(svc), ranges=list(data.RANGES))


@bp.get("/queue")
def queue() -> str:
    svc = services()
    stats, error = data.queue_stats(svc)
    dead = data.dead_letters(svc, data.page_number(request.args.get("page")),
                             stats.dead if stats else 0) if stats else None
    return render_template("dashboard/queue.html", page="queue", stats=stats, error=error,
                           dead=dead, max_listed=data.MAX_DEAD_LETTERS)


@bp.get("/accounts")
def accounts() -> str:
    svc = services()
    return render_template("dashboard/accounts.html", page="accounts",
                           accounts=data.accounts(svc, data.page_number(request.args.get("page"))))


@bp.get("/workers")
def workers() -> str:
    return render_template("dashboard/workers.html", page="workers",
                           workers=services().reports.workers(), now=utcnow(),
                           stale_seconds=int(STALE_AFTER.total_seconds()))


@bp.get("/files")
def files() -> str:
    svc = services()
    return render_template("dashboard/files.html", page="files",
                           files=data.recent_files(svc, data.page_number(request.args.get("page"))))


@bp.get("/api/overview")
def api_overview() -> Any:
    """Numbers and chart series for the overview's live refresh."""
    svc = services()
    o = data.overview(svc)
    return jsonify(
        totals={"compressed": o.sums.compressed, "skipped": o.sums.skipped,
                "failed": o.sums.failed, "retried": o.sums.retried,
                "bytes_in": o.sums.bytes_in, "bytes_out": o.sums.bytes_out,
                "bytes_saved": o.sums.bytes_saved},
        queue=None if o.queue is None else {"visible": o.queue.visible,
                                            "in_flight": o.queue.in_flight,
                                            "dead": o.queue.dead},
        workers={"live": o.workers_live, "stale": o.workers_stale, "in_flight": o.in_flight},
        series=data.series(svc, request.args.get("range", "hour")))
