"""The operator dashboard, ``/dashboard``: what the service did, for whom, on which files.

Blueprints: ``auth`` (login, logout), ``pages`` (overview, work queue, accounts, workers,
recent files, and the JSON the page script polls), ``actions`` (the POSTs: retry and
delete dead letters, pause and resume accounts). Templates are Jinja with autoescaping
(names from users are text, never markup); ``static/`` holds the stylesheet, the page
script and uPlot (vendored: the pages load nothing from the internet). Every response
carries a Content-Security-Policy allowing scripts from this origin only.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Flask, Response, request

from dropgz.core.config import Settings
from dropgz.web.dashboard import actions, auth, pages

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
       "base-uri 'none'; object-src 'none'")

# Templates and static files (served without login: the stylesheet, the page script and
# uPlot, no data).
assets = Blueprint("dashboard", __name__, static_folder="static",
                   static_url_path="/dashboard/static", template_folder="templates")


def register(app: Flask, settings: Settings) -> None:
    """Mount the dashboard on ``app``."""
    auth.configure(app, settings)
    for bp in (assets, auth.bp, pages.bp, actions.bp):
        app.register_blueprint(bp)
    app.jinja_env.filters.update(size=human_bytes, num=lambda n: f"{int(n):,}",
                                 pct=percent, when=when, ago=ago)
    app.jinja_env.globals.update(csrf_token=auth.csrf_token)
    app.after_request(_headers)


def _headers(response: Response) -> Response:
    if request.path.startswith("/dashboard"):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith("/dashboard/static/"):
            response.headers["Cache-Control"] = "no-store"
    return response


def human_bytes(n: float) -> str:
    n = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"  # pragma: no cover - the loop returns


def percent(part: float | None, whole: float | None = None) -> str:
    if part is None:
        return "–"
    if whole is not None and not whole:
        return "–"
    value = part / whole if whole is not None else part
    return f"{value * 100:.1f} %"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "–"


def ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "never"
    from dropgz.state.reports import utcnow
    seconds = int(((now or utcnow()) - value).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"
