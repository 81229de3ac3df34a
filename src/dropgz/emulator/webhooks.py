"""Change notifications to ``--webhook-url``, the way Dropbox sends them.

https://www.dropbox.com/developers/reference/webhooks: a POST whose JSON body names the
account (never the files), signed with ``X-Dropbox-Signature`` = hex HMAC-SHA256 of the raw body
keyed with the app secret. A burst of changes is coalesced into one notification (debounce);
a failed delivery (connection error or non-2xx) is retried with exponential backoff for a
bounded time, while later changes merge into the pending one. All of it happens on one
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
import zlib
from collections.abc import Callable
from typing import Any

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


def notification_body(account_id: str) -> bytes:
    # Old-style "delta.users" holds a numeric user id; derive a stable one from the account.
    user = zlib.crc32(account_id.encode()) & 0x7FFFFFFF
    return json.dumps({"list_folder": {"accounts": [account_id]},
                       "delta": {"users": [user]}}).encode()


class WebhookNotifier:
    """Call :meth:`notify` after each change; the thread delivers coalesced notifications."""

    def __init__(self, url: Callable[[], str | None], *, app_secret: str, account_id: str,
                 debounce_seconds: float, retry_seconds: float) -> None:
        self._url = url
        self._secret = app_secret
        self._body = notification_body(account_id)
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

    def notify(self) -> None:
        if not self._url():
            return
        with self._cond:
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
        while self._wait_for_burst():
            self._deliver_with_retries()

    def _wait_for_burst(self) -> bool:
        """Blocks until a burst is complete (quiet for the debounce time); False on stop."""
        with self._cond:
            while not self._stopping:
                if self._pending_since is None:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                due = min(self._last_change + self._debounce,
                          self._pending_since + MAX_COALESCE_SECONDS)
                if now >= due:
                    self._pending_since = None
                    return True
                self._cond.wait(due - now)
            return False

    def _deliver_with_retries(self) -> None:
        deadline = time.monotonic() + self._retry_seconds
        backoff = BACKOFF_FIRST_SECONDS
        while True:
            url = self._url()
            if url is None or self._deliver(url):
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
                # Changes made meanwhile are covered by this delivery.
                self._pending_since = None
            backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    def _deliver(self, url: str) -> bool:
        # The URL is checked to be http(s) when configured (config._check_url).
        request = urllib.request.Request(url, data=self._body, method="POST", headers={  # noqa: S310
            "Content-Type": "application/json",
            "X-Dropbox-Signature": signature(self._secret, self._body),
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
