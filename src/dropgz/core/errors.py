"""The exceptions dropgz raises, in one place.

::

    DropgzError                 base of everything below
    ├── ConfigError             settings.cfg or environment is wrong; CLI exits 2
    ├── BadMessage              a work message cannot be processed, ever: dead-letter it
    └── TransientError          worth retrying later (network, 5xx, rate limit)
        └── RateLimited         Dropbox said 429; ``retry_after`` seconds to wait

Errors from libraries (``dropbox.exceptions``, ``botocore``) are translated at the
edge where they happen, so callers only need to know these.
"""

from __future__ import annotations


class DropgzError(Exception):
    """Base class of dropgz's own errors."""


class ConfigError(DropgzError):
    """Settings are missing or malformed. The message is one line naming file, section and key."""


class BadMessage(DropgzError):
    """A work message that can never succeed (malformed, unsafe path...)."""


class TransientError(DropgzError):
    """A failure that may go away by itself: retry later."""


class RateLimited(TransientError):
    """Dropbox answered 429. Wait ``retry_after`` seconds before the next call."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
