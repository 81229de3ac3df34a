"""The Flask app of the monitoring and delta tiers, for App Engine and for ``dropgz web``.

:func:`create_app` takes the one :class:`~dropgz.core.config.Settings` object and optional
ready-made collaborators (push queue, state store, work queue, Dropbox client factory,
report store); each defaults to the configured real one. Blueprints: ``webhook`` (monitoring tier,
:mod:`dropgz.web.webhook`), ``tasks`` (delta tier, :mod:`dropgz.web.tasks`) and
``reports`` (what workers report, :mod:`dropgz.web.reports`). The
views reach their collaborators through :func:`dropgz.web.services.services`, never by
importing this module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from dropgz.core.config import Settings
from dropgz.core.encryption import DecryptionFailed
from dropgz.core.errors import ConfigError
from dropgz.core.internal_auth import Verifier
from dropgz.dropbox_client.accounts import Accounts, DropboxFactory, default_dropbox_factory
from dropgz.pushqueue import PushQueue, open_push_queue
from dropgz.pushqueue.base import DEFAULT_BUCKET_SECONDS
from dropgz.queues.base import WorkQueue
from dropgz.state import (
    CredentialMissing,
    ReportStore,
    StateStore,
    open_report_store,
    open_state_store,
)
from dropgz.web import (
    account_page,
    connect,
    dashboard,
    delta,
    internal,
    metrics,
    reports,
    tasks,
    webhook,
)
from dropgz.web.cookies import CookieJar
from dropgz.web.counters import Counters
from dropgz.web.credentials import AccountCredentials
from dropgz.web.services import Services

log = logging.getLogger(__name__)

# A notification lists account ids (~45 bytes each): 512 KiB is over 10,000 accounts,
# far above what Dropbox sends, and small enough that a flood cannot tie up memory.
MAX_REQUEST_BYTES = 512 * 1024


def _default_work_queue(settings: Settings) -> Callable[[], WorkQueue]:
    def open_queue() -> WorkQueue:
        from dropgz.queues import open_work_queue
        return open_work_queue(settings)
    return open_queue


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


def check_encryption(settings: Settings, state: StateStore) -> None:
    """ConfigError (one line) when refresh tokens will be stored or read without a key that
    opens them: connecting is enabled without ``[Service] encryption_key``, or the stored
    ones do not decrypt with it. With ``ndb`` the stored ones are checked at the first
    request instead (App Engine's APIs only work inside one): see :func:`_check_once`."""
    if settings.dropbox.redirect_uri:
        settings.require("Dropbox", "app_key")
        if not settings.service.encryption_key:
            raise settings.error("Service", "encryption_key", "missing (required to keep "
                                 "connected accounts' refresh tokens: [Dropbox] redirect_uri "
                                 "is set)")
    if settings.service.state == "ndb":
        return
    _check_stored(settings, state)


def _check_stored(settings: Settings, state: StateStore) -> None:
    try:
        state.check_cipher()
    except CredentialMissing:
        raise settings.error("Service", "encryption_key", "missing (the state store holds "
                             "connected accounts' refresh tokens)") from None
    except DecryptionFailed:
        raise settings.error("Service", "encryption_key", "does not decrypt the stored "
                             "refresh tokens (not the key they were written with?)") from None


def _check_once(settings: Settings, state: StateStore) -> Callable[[], None]:
    """A ``before_request`` hook checking the stored refresh tokens against the key once (on
    App Engine, where there is no start-up step to fail): a wrong key is logged as the same
    one-line configuration error, and token requests answer 500 naming the setting."""
    done = threading.Event()

    def check() -> None:
        if done.is_set():
            return
        done.set()
        try:
            _check_stored(settings, state)
        except ConfigError as exc:
            log.error("configuration error: %s", exc)

    return check


def create_app(settings: Settings, *, push_queue: PushQueue | None = None,
               state: StateStore | None = None, work_queue: WorkQueue | None = None,
               dropbox_factory: DropboxFactory | None = None,
               report_store: ReportStore | None = None,
               bucket_seconds: float = DEFAULT_BUCKET_SECONDS,
               page_limit: int = delta.MAX_PAGE_LIMIT,
               lease_seconds: float = delta.LEASE_SECONDS) -> Flask:
    """The WSGI app. Raises ConfigError when ``[Dropbox] secret`` (the webhook key) is unset."""
    secret = settings.require("Dropbox", "secret")
    if not settings.dropbox.redirect_uri:  # serving only the seed's account: it needs a token
        settings.require_dropbox_credentials()
    if not 1 <= page_limit <= delta.MAX_PAGE_LIMIT:
        raise ValueError(f"page_limit must be 1..{delta.MAX_PAGE_LIMIT}, got {page_limit}")
    state = state if state is not None else open_state_store(settings)
    check_encryption(settings, state)
    # Templates and static files of the pages live beside this module (web/templates, web/static).
    app = Flask("dropgz", root_path=str(Path(__file__).parent))
    app.add_template_filter(_when, "when")
    app.config.update(MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES, DEBUG=False,
                      JSON_SORT_KEYS=False)
    seed = (Accounts(settings.dropbox, dropbox_factory or default_dropbox_factory)
            if settings.dropbox.has_credentials() else None)
    report_store = report_store if report_store is not None else open_report_store(settings)
    app.extensions["dropgz"] = Services(
        settings=settings,
        webhook_secret=secret,
        push_queue=push_queue if push_queue is not None else open_push_queue(settings),
        state=state,
        accounts=seed,
        credentials=AccountCredentials(settings, state, seed, dropbox_factory),
        open_work_queue=(lambda: work_queue) if work_queue is not None
        else _default_work_queue(settings),
        reports=report_store, counters=Counters(report_store),
        bucket_seconds=bucket_seconds, page_limit=page_limit, lease_seconds=lease_seconds,
        internal_verifier=Verifier(settings.service.internal_key)
        if settings.service.internal_key else None,
        cookies=CookieJar(settings) if settings.dropbox.redirect_uri else None,
    )
    app.register_blueprint(webhook.bp)
    app.register_blueprint(tasks.bp)
    app.register_blueprint(internal.bp)
    app.register_blueprint(reports.bp)
    app.register_blueprint(metrics.bp)
    dashboard.register(app, settings)
    app.register_blueprint(connect.bp)
    app.register_blueprint(account_page.bp)

    if settings.service.state == "ndb":
        app.before_request(_check_once(settings, state))

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok\n", mimetype="text/plain")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        # Plain one-line answers (413, 404, 405...), not Flask's HTML pages.
        response = Response(f"{exc.code} {exc.name}\n", status=exc.code, mimetype="text/plain")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return app
