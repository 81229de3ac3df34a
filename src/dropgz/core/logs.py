"""Logging: one line per event, ``key=value`` fields, secrets redacted on the way out."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

REDACTED = "***"


class RedactingFilter(logging.Filter):
    """Replaces every known secret value in a record's final text with ``***``.

    Belt and braces: settings keep secrets in :class:`~dropgz.core.secret.Secret`, which
    never prints itself; this catches a secret that reached a message some other way
    (an exception text from a library, a URL with a token in it).
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        exc_text = record.exc_text or ""
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
            exc_text = exc_text.replace(secret, REDACTED)
        record.msg, record.args = text, None
        record.exc_text = exc_text or None
        return True


def fields(**values: Any) -> str:
    """``fields(path="/a b", bytes=3)`` → ``path="/a b" bytes=3`` for one structured line."""
    parts = []
    for key, value in values.items():
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        if not text or any(c in text for c in ' "=\n\t'):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_fields(line: str) -> dict[str, str]:
    """The ``key=value`` fields of a line written with :func:`fields` (its inverse)."""
    found = {}
    for key, raw in _FIELD.findall(line):
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1),
                         raw[1:-1])
        found[key] = raw
    return found


def setup_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once: stderr, timestamps, redaction of ``secrets``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Library chatter at INFO is noise here (every SQS call, every HTTP connection).
    for noisy in ("botocore", "boto3", "urllib3", "dropbox", "waitress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
