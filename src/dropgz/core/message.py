"""The work message: what the delta tier sends and the compression tier consumes.

JSON. The seed's minimum is ``{"path": "/dir/foo.txt"}``; the delta tier also sends
``account``, ``id``, ``rev``, ``size`` and ``content_hash`` so the worker can refuse a
superseded version and skip a metadata call. :func:`parse` rejects anything that can
never succeed with :class:`~dropgz.core.errors.BadMessage`, whose text is the dead-letter reason.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from dropgz.core.errors import BadMessage

# SQS bodies are at most 256 KiB; a real message is a few hundred bytes.
MAX_BODY_BYTES = 256 * 1024
# Dropbox paths are short in practice (help: "less than 260 characters"); allow room for
# deep trees but refuse absurd ones before they reach the API.
MAX_PATH_CHARS = 4096


@dataclass(frozen=True)
class WorkItem:
    """One file to compress."""

    path: str
    account: str | None = None
    id: str | None = None
    rev: str | None = None
    size: int | None = None
    content_hash: str | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None},
                          ensure_ascii=False, separators=(",", ":"))


def _check_path(path: Any) -> str:
    if not isinstance(path, str) or not path:
        raise BadMessage("'path' must be a non-empty string")
    if len(path) > MAX_PATH_CHARS:
        raise BadMessage(f"'path' is {len(path)} characters, over {MAX_PATH_CHARS}")
    if not path.startswith("/"):
        raise BadMessage(f"'path' must be absolute (start with '/'): {path[:200]!r}")
    if "\x00" in path or any(ord(c) < 0x20 for c in path):
        raise BadMessage("'path' contains a NUL or control character")
    if any(part in (".", "..") for part in path.split("/")):
        raise BadMessage(f"'path' contains a '.' or '..' component: {path[:200]!r}")
    if path.endswith("/"):
        raise BadMessage(f"'path' names a folder (ends with '/'): {path[:200]!r}")
    return path


def _optional(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadMessage(f"'{key}' must be a {kind.__name__}, got {type(value).__name__}")
    return value


def parse(body: str | bytes) -> WorkItem:
    """Decode and validate one message body."""
    if len(body) > MAX_BODY_BYTES:
        raise BadMessage(f"message is {len(body)} bytes, over {MAX_BODY_BYTES}")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadMessage(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadMessage(f"message must be a JSON object, got {type(data).__name__}")
    if "path" not in data:
        raise BadMessage("message has no 'path'")
    size = _optional(data, "size", int)
    if size is not None and size < 0:
        raise BadMessage("'size' must not be negative")
    return WorkItem(
        path=_check_path(data["path"]),
        account=_optional(data, "account", str),
        id=_optional(data, "id", str),
        rev=_optional(data, "rev", str),
        size=size,
        content_hash=_optional(data, "content_hash", str),
    )


def describe(body: str | bytes) -> tuple[str, str]:
    """``(account, path)`` of a body for reports, even a malformed one (``"-"`` when absent)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        return "", "-"
    account, path = data.get("account"), data.get("path")
    return (account if isinstance(account, str) else "",
            path[:MAX_PATH_CHARS] if isinstance(path, str) and path else "-")
