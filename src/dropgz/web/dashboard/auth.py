"""Who may see the dashboard: the operator, after a login with ``[Service] operator_password``.

- The password is compared as a SHA-256 hash, in constant time (``hmac.compare_digest``).
- Failed attempts are rate-limited per client address (:class:`AttemptLimiter`): after
  :data:`MAX_FAILURES` in :data:`WINDOW_SECONDS`, logins from there answer 429 until the
  window passes. (Per process: an App Engine deployment should also sit behind IAP, see the
  README.)
- The session is Flask's signed cookie, ``HttpOnly``, ``Secure`` and ``SameSite=Lax``,
  signed with a key derived from the password and the app secret (changing the password
  logs everyone out); a login starts a fresh session (no fixation).
- Every POST carries the session's CSRF token (:func:`check_csrf`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from dropgz.core.config import Settings
from dropgz.core.logs import fields
from dropgz.web.services import services

log = logging.getLogger(__name__)

bp = Blueprint("dashboard_auth", __name__, url_prefix="/dashboard")

MAX_FAILURES = 5
WINDOW_SECONDS = 300.0
SESSION_HOURS = 12
COOKIE_NAME = "dropgz_session"


class AttemptLimiter:
    """Failed logins per client address within a sliding window."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        times = self._failures.setdefault(client, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, client: str) -> float:
        """Seconds until ``client`` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            if len(times) < self.max_failures:
                return 0.0
            return times[0] + self.window - now

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(client, now).append(now)
            if len(self._failures) > 10_000:  # forget idle addresses, keep memory bounded
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "replace")).digest()


def password_ok(expected: str, given: str) -> bool:
    return hmac.compare_digest(_digest(given), _digest(expected))


def configure(app: Flask, settings: Settings) -> None:
    """Session cookie flags and signing key for the dashboard's session."""
    password = settings.service.operator_password
    if password and not app.secret_key:
        app_secret = settings.dropbox.secret.reveal() if settings.dropbox.secret else ""
        app.secret_key = hmac.new(_digest(password.reveal()),
                                  b"dropgz dashboard session\n" + app_secret.encode(),
                                  hashlib.sha256).hexdigest()
    elif not app.secret_key:  # no password: no login can succeed; the page still renders
        app.secret_key = secrets.token_hex(32)
    app.config.update(SESSION_COOKIE_NAME=COOKIE_NAME, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SECURE=True, SESSION_COOKIE_SAMESITE="Lax",
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS))
    app.extensions["dropgz_login_limiter"] = AttemptLimiter()


def csrf_token() -> str:
    """The session's CSRF token (made on first use); templates put it in every form."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return str(session["csrf"])


def check_csrf() -> None:
    """Abort 400 unless the POST carries the session's CSRF token."""
    given = request.form.get("csrf_token", "")
    wanted = session.get("csrf", "")
    if not wanted or not hmac.compare_digest(given.encode("utf-8", "replace"), wanted.encode()):
        log.warning("dashboard: refused a POST without a valid CSRF token %s",
                    fields(path=request.path, remote=request.remote_addr))
        abort(400, "missing or wrong CSRF token")


def logged_in() -> bool:
    return bool(session.get("operator")) and bool(services().settings.service.operator_password)


def require_login() -> Response | None:
    """``before_request`` of every dashboard blueprint: anonymous requests go to the login
    page (pages) or get 401 (JSON and POST); POSTs must carry the CSRF token."""
    if not logged_in():
        if request.method == "GET" and not request.path.startswith("/dashboard/api/"):
            return redirect(url_for("dashboard_auth.login", next=request.path))
        abort(401)
    if request.method == "POST":
        check_csrf()
    return None


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        refused = require_login()
        return refused if refused is not None else view(*args, **kwargs)
    return wrapped


def _safe_next(target: str | None) -> str:
    # Only our own pages: never an absolute or scheme-relative URL (open redirect).
    if target and target.startswith("/dashboard") and not target.startswith("//"):
        return target
    return url_for("dashboard_pages.overview")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    configured = bool(services().settings.service.operator_password)
    if request.method == "GET":
        return render_template("dashboard/login.html", configured=configured, error=None,
                               next=request.args.get("next", ""))
    check_csrf()
    limiter: AttemptLimiter = services_limiter()
    client = request.remote_addr or "-"
    wait = limiter.retry_after(client)
    if wait > 0:
        response = Response(render_template(
            "dashboard/login.html", configured=configured, next="",
            error=f"Too many failed attempts. Try again in {int(wait) + 1} seconds."), 429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    password = services().settings.service.operator_password
    if not password or not password_ok(password.reveal(), request.form.get("password", "")):
        limiter.failed(client)
        log.warning("dashboard: login refused %s", fields(remote=client))
        return Response(render_template("dashboard/login.html", configured=configured,
                                        next=request.form.get("next", ""),
                                        error="Wrong password."), 401)
    limiter.succeeded(client)
    session.clear()  # a fresh session: no fixation
    session.permanent = True
    session["operator"] = True
    csrf_token()
    log.info("dashboard: operator logged in %s", fields(remote=client))
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> Any:
    check_csrf()
    session.clear()
    return redirect(url_for("dashboard_auth.login"))


def services_limiter() -> AttemptLimiter:
    from flask import current_app
    return current_app.extensions["dropgz_login_limiter"]
