"""Change notifications to ``--webhook-url``, the way Dropbox sends them.

https://www.dropbox.com/developers/reference/webhooks: a POST whose JSON body names the
accounts whose files changed (never the files), signed with ``X-Dropbox-Signature`` = hex
HMAC-SHA256 of the raw body keyed with the app secret. A burst of changes, in any number of
accounts, is coalesced into one notification naming each of them (debounce); a failed delivery
(connection error or non-2xx) is retried with exponential backoff for a bounded time, while
later changes (of any account) merge into the pending one. All of it happens on one
background thread so requests are never slowed by the receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from dropgz.emulator.accounts import legacy_uid

log = logging.getLogger("dropgz.emulator.webhooks")

# Dropbox gives the receiver 10 seconds to answer.
DELIVERY_TIMEOUT_SECONDS = 10.0
# A burst is flushed at the latest this long after its first change, even if changes continue.
MAX_COALESCE_SECONDS = 1.0
BACKOFF_FIRST_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 5.0


def signature(app_secret: str, body: bytes) -> str:
    """The ``X-Dropbox-Signature`` of ``body``."""
    return hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def notification_body(account_ids: list[str]) -> bytes:
    """The JSON of one notification; old-style "delta.users" holds numeric user ids."""
    return json.dumps({"list_folder": {"accounts": account_ids},
                       "delta": {"users": [legacy_uid(a) for a in account_ids]}}).encode()


class WebhookNotifier:
    """Call :meth:`notify` after each change; the thread delivers coalesced notifications."""

    def __init__(self, url: Callable[[], str | None], *, app_secret: str,
                 debounce_seconds: float, retry_seconds: float) -> None:
        self._url = url
        self._secret = app_secret
        # Accounts changed since the last delivery started, in the order they changed.
        self._accounts: dict[str, None] = {}
        self._debounce = debounce_seconds
        self._retry_seconds = retry_seconds
        self._cond = threading.Condition()
        self._pending_since: float | None = None
        self._last_change = 0.0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="emulator-webhooks", daemon=True)
        self._stats: dict[str, Any] = {"attempts": 0, "delivered": 0, "failed": 0,
                                       "abandoned": 0, "last_status": None, "last_error": None,
                                       "last_url": None}

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def notify(self, account_id: str) -> None:
        """``account_id``'s files changed."""
        if not self._url():
            return
        with self._cond:
            self._accounts[account_id] = None
            now = time.monotonic()
            if self._pending_since is None:
                self._pending_since = now
            self._last_change = now
            self._cond.notify_all()

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            return {**self._stats, "url": self._url(), "pending": self._pending_since is not None}

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        while (accounts := self._wait_for_burst()) is not None:
            self._deliver_with_retries(accounts)

    def _take_accounts(self, accounts: dict[str, None]) -> bytes:
        """Moves the pending accounts into ``accounts`` (the burst is then delivered);
        returns the body naming them all. Called holding the condition's lock."""
        self._pending_since = None
        accounts.update(self._accounts)
        self._accounts.clear()
        return notification_body(list(accounts))

    def _wait_for_burst(self) -> dict[str, None] | None:
        """Blocks until a burst is complete (quiet for the debounce time); returns its
        accounts, None on stop."""
        with self._cond:
            while not self._stopping:
                if self._pending_since is None:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                due = min(self._last_change + self._debounce,
                          self._pending_since + MAX_COALESCE_SECONDS)
                if now >= due:
                    accounts: dict[str, None] = {}
                    self._take_accounts(accounts)
                    return accounts
                self._cond.wait(due - now)
            return None

    def _deliver_with_retries(self, accounts: dict[str, None]) -> None:
        deadline = time.monotonic() + self._retry_seconds
        backoff = BACKOFF_FIRST_SECONDS
        body = notification_body(list(accounts))
        while True:
            url = self._url()
            if url is None or self._deliver(url, body):
                return
            if time.monotonic() + backoff > deadline:
                with self._cond:
                    self._stats["abandoned"] += 1
                log.warning("webhook to %s abandoned after %.0f s of failures", url,
                            self._retry_seconds)
                return
            with self._cond:
                if self._cond.wait_for(lambda: self._stopping, backoff):
                    return
                # Changes made meanwhile (in any account) are covered by this delivery.
                body = self._take_accounts(accounts)
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    def _deliver(self, url: str, body: bytes) -> bool:
        # The URL is checked to be http(s) when configured (config._check_url).
        request = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310
            "Content-Type": "application/json",
            "X-Dropbox-Signature": signature(self._secret, body),
            "User-Agent": "DropboxWebhooks/1.0 (dropgz emulator)",
        })
        status: int | None = None
        error: str | None = None
        try:
            with urllib.request.urlopen(request, timeout=DELIVERY_TIMEOUT_SECONDS) as response:  # noqa: S310
                status = response.status
                response.read()
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        with self._cond:
            self._stats["attempts"] += 1
            self._stats["delivered" if ok else "failed"] += 1
            self._stats["last_status"] = status
            self._stats["last_error"] = error
            self._stats["last_url"] = url
        if not ok:
            log.info("webhook to %s failed (%s); will retry", url, error or status)
        return ok
