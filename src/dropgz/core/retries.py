"""The retry policy of the compression tier, in one place.

Given the exception a message raised and how often it was received, decide: give it
back later (with which delay), or dead-letter it now (with which reason). Errors that
can never succeed are dead-lettered at once; everything else is retried with
exponential backoff until ``max_receives``, then dead-lettered with the last reason.
A Dropbox 429 waits exactly what ``Retry-After`` asked.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import requests
from dropbox.exceptions import ApiError, AuthError, InternalServerError, RateLimitError

from dropgz.core.errors import BadMessage, RateLimited

# SQS caps a message's visibility at 12 hours:
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html
MAX_DELAY_SECONDS = 12 * 60 * 60
DEFAULT_RATE_LIMIT_DELAY = 5.0
# Route errors that no retry can fix (bad name or path, refused content).
_PERMANENT_TAGS = ("malformed_path", "disallowed_name", "restricted_content", "too_large",
                   "payload_too_large", "unsupported_file")


@dataclass(frozen=True)
class Decision:
    """``retry`` after ``delay`` seconds, or ``dead`` (dead-letter) with ``reason``."""

    action: str
    reason: str
    delay: float = 0.0


def describe(exc: BaseException) -> str:
    """A one-line reason for logs and the dead-letter queue (no secrets: SDK texts hold none)."""
    if isinstance(exc, ApiError):
        return f"Dropbox route error: {exc.error!r}"
    if isinstance(exc, RateLimitError):
        return f"Dropbox rate limit (retry after {exc.backoff}s)"
    if isinstance(exc, InternalServerError):
        return f"Dropbox server error {exc.status_code}"
    if isinstance(exc, AuthError):
        return f"Dropbox refused the credentials: {exc.error}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:500]


class RetryPolicy:
    """Backoff ``base * 2**(n-1)`` seconds (capped, with jitter) for the n-th receive."""

    def __init__(self, max_receives: int = 5, base_delay: float = 2.0,
                 max_delay: float = 300.0) -> None:
        if max_receives < 1:
            raise ValueError("max_receives must be at least 1")
        if not 0 < max_delay <= MAX_DELAY_SECONDS:
            raise ValueError(f"max_delay must be in (0, {MAX_DELAY_SECONDS}] (SQS limit)")
        self.max_receives = max_receives
        self.base_delay = base_delay
        self.max_delay = max_delay

    def decide(self, exc: BaseException, receive_count: int) -> Decision:
        reason = describe(exc)
        if isinstance(exc, BadMessage) or self._permanent(exc):
            return Decision("dead", reason)
        if receive_count >= self.max_receives:
            return Decision("dead", f"gave up after {receive_count} attempts: {reason}")
        if isinstance(exc, RateLimitError):
            return Decision("retry", reason, min(exc.backoff or DEFAULT_RATE_LIMIT_DELAY,
                                                 MAX_DELAY_SECONDS))
        if isinstance(exc, RateLimited):
            return Decision("retry", reason, min(exc.retry_after, MAX_DELAY_SECONDS))
        return Decision("retry", reason, self.backoff(receive_count))

    def backoff(self, receive_count: int) -> float:
        delay = min(self.base_delay * 2 ** max(receive_count - 1, 0), self.max_delay)
        return delay * random.uniform(0.8, 1.2)

    @staticmethod
    def _permanent(exc: BaseException) -> bool:
        if isinstance(exc, ApiError):
            text = repr(exc.error)
            return any(f"'{tag}'" in text for tag in _PERMANENT_TAGS)
        return isinstance(exc, (requests.exceptions.InvalidURL, UnicodeError))
