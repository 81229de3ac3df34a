"""What the web tier's views use, kept on the app: :class:`Services` and :func:`services`.

The app factory (:mod:`dropgz.web.app`) builds one :class:`Services` and stores it in
``app.extensions["dropgz"]``; blueprints read it back with :func:`services`, so no view
module imports the app module (no import circle).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app

from dropgz.core.config import Settings
from dropgz.core.internal_auth import Verifier
from dropgz.core.secret import Secret
from dropgz.dropbox_client.accounts import Accounts
from dropgz.pushqueue import PushQueue
from dropgz.pushqueue.base import DEFAULT_BUCKET_SECONDS
from dropgz.queues.base import WorkQueue
from dropgz.state import PAUSED, StateStore
from dropgz.state.base import MAX_PAGE_SIZE
from dropgz.state.reports import ReportStore
from dropgz.web.cookies import CookieJar
from dropgz.web.counters import Counters
from dropgz.web.credentials import AccountCredentials
from dropgz.web.delta import LEASE_SECONDS, MAX_PAGE_LIMIT


@dataclass
class Services:
    """What the views use; one per app, in ``app.extensions["dropgz"]``."""

    settings: Settings
    webhook_secret: Secret
    push_queue: PushQueue
    state: StateStore
    accounts: Accounts | None  # the seed's account (None: no [Dropbox] token configured)
    credentials: AccountCredentials  # every account served: the seed's and connected ones
    open_work_queue: Callable[[], WorkQueue]
    reports: ReportStore  # what workers reported, and the web tier's own counters
    counters: Counters
    bucket_seconds: float = DEFAULT_BUCKET_SECONDS
    page_limit: int = MAX_PAGE_LIMIT
    lease_seconds: float = LEASE_SECONDS
    # Checks calls to /internal/* (None: [Service] internal_key unset, so they are refused).
    internal_verifier: Verifier | None = None
    # Signs the user pages' cookies (None: [Dropbox] redirect_uri unset, pages disabled).
    cookies: CookieJar | None = None
    _work_queue: WorkQueue | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def work_queue(self) -> WorkQueue:
        """Opened on first use: the webhook path never needs it."""
        with self._lock:
            if self._work_queue is None:
                self._work_queue = self.open_work_queue()
            return self._work_queue

    def paused_accounts(self) -> list[str]:
        """Accounts whose files wait (the delta tier queues none, workers defer theirs)."""
        paused: list[str] = []
        while True:
            page = self.state.list_accounts(after=paused[-1] if paused else None,
                                            limit=MAX_PAGE_SIZE, status=PAUSED)
            paused += [record.account for record in page]
            if len(page) < MAX_PAGE_SIZE:
                return paused


def services() -> Services:
    """The current app's :class:`Services`."""
    return current_app.extensions["dropgz"]
