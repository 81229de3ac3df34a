"""Monitoring tier: Dropbox's webhook, answered in milliseconds.

``GET /webhook?challenge=X`` proves to Dropbox that we own the URL. ``POST /webhook``
checks ``X-Dropbox-Signature`` (hex HMAC-SHA256 of the raw body keyed with the app
secret), then adds one delta task per account to the push queue and answers 200. No
Dropbox, SQS or state-store call happens here: Dropbox allows 10 seconds and the real
work belongs to the delta tier.
https://www.dropbox.com/developers/reference/webhooks
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from flask import Blueprint, Response, request

from dropgz.core.logs import fields
from dropgz.pushqueue.base import notification_tasks
from dropgz.web.services import services

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Dropbox-Signature"
# Dropbox's challenge is a short random string; refuse anything absurd rather than echo it.
MAX_CHALLENGE_CHARS = 1024
# Dropbox account ids look like "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc".
MAX_ACCOUNT_ID_CHARS = 200

bp = Blueprint("webhook", __name__)


def _text(status: int, body: str) -> Response:
    response = Response(body, status=status, mimetype="text/plain")
    # The challenge is echoed: without nosniff a browser could sniff it as HTML (reflected XSS).
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/webhook")
def verify() -> Response:
    """The one-time verification request: echo the challenge."""
    challenge = request.args.get("challenge")
    if not challenge:
        return _text(400, "missing challenge\n")
    if len(challenge) > MAX_CHALLENGE_CHARS:
        return _text(400, "challenge too long\n")
    return _text(200, challenge)


def signature_ok(secret: str, body: bytes, given: str) -> bool:
    """True when ``given`` is the hex HMAC-SHA256 of ``body`` keyed with ``secret``."""
    wanted = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.strip().lower().encode("utf-8", "replace"),
                               wanted.encode())


def parse_accounts(body: bytes) -> list[str]:
    """The account ids of a notification; ValueError (one line) when it is malformed."""
    try:
        data: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("body is not JSON") from None
    folder = data.get("list_folder") if isinstance(data, dict) else None
    accounts = folder.get("accounts") if isinstance(folder, dict) else None
    if not isinstance(accounts, list):
        raise ValueError("expected {\"list_folder\": {\"accounts\": [...]}}")
    for account in accounts:
        if not isinstance(account, str) or not account or len(account) > MAX_ACCOUNT_ID_CHARS:
            raise ValueError("list_folder.accounts must hold account id strings")
    return list(dict.fromkeys(accounts))


@bp.post("/webhook")
def notify() -> Response:
    """A notification: verify, queue a delta task per account (through a fan-out task when
    it names many), answer at once."""
    svc = services()
    body = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413 before we get here
    given = request.headers.get(SIGNATURE_HEADER, "")
    if not given or not signature_ok(svc.webhook_secret.reveal(), body, given):
        log.warning("webhook refused: %s", fields(reason="bad or missing signature",
                                                  remote=request.remote_addr))
        svc.counters.count("webhooks:bad_signature")
        return svc.counters.flush_after(_text(403, "bad signature\n"))
    try:
        accounts = parse_accounts(body)
    except ValueError as exc:
        svc.counters.count("webhooks:malformed")
        return svc.counters.flush_after(_text(400, f"{exc}\n"))
    tasks = notification_tasks(accounts, bucket_seconds=svc.bucket_seconds)
    added = svc.push_queue.add(tasks) if tasks else []
    # INFO when work was queued (at most once per account per bucket); a burst's coalesced
    # repeats only at DEBUG: a log line per repeat was 40 % of the webhook's time.
    level = logging.INFO if any(added) else logging.DEBUG
    if log.isEnabledFor(level):
        log.log(level, "webhook: %s", fields(accounts=len(accounts), queued=sum(added),
                                            coalesced=len(added) - sum(added)))
    # Counted in memory, saved after the answer went out (dropgz.web.counters).
    svc.counters.count("webhooks:accepted")
    return svc.counters.flush_after(_text(200, ""))
