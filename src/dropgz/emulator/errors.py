"""How a request fails, and how each failure is answered on the wire.

::

    EmulatorError
     ├── BadRequest      400, text body (malformed arguments, unknown route), as Dropbox
     ├── Unauthorized    401, JSON AuthError (missing, bad or expired token)
     ├── RouteError      409, JSON {"error_summary", "error"} encoded with the route's error_type
     ├── TooManyWriteOperations  429 + Retry-After, namespace lock contention (contention.py)
     ├── Unavailable     503, text (the emulator is stopping)
     └── ApiFailure      a route error not yet wrapped in a route's union (raised by the
          ├── LookupFailure   namespace, which does not know which route asked); the route
          └── WriteFailure    handler turns it into a RouteError

The unions themselves are the SDK's (``dropbox.files.LookupError`` ...), so the JSON is exactly
what the SDK decodes.
"""

from __future__ import annotations

from typing import Any

from dropbox import files


class EmulatorError(Exception):
    """Base of every failure that becomes an HTTP answer."""


class BadRequest(EmulatorError):
    """400 with a plain-text body, Dropbox's answer to arguments it cannot parse."""


class Unauthorized(EmulatorError):
    """401; ``tag`` is an ``auth.AuthError`` tag such as ``expired_access_token``."""

    def __init__(self, tag: str, message: str) -> None:
        super().__init__(message)
        self.tag = tag


class RouteError(EmulatorError):
    """409 carrying ``error`` (an instance of the route's error union)."""

    def __init__(self, error: Any) -> None:
        super().__init__(repr(error))
        self.error = error


class Unavailable(EmulatorError):
    """503 with a plain-text body: the request cannot be served (the emulator stops)."""


class ApiFailure(EmulatorError):
    """A lookup or write failure, before a route wraps it in its own error union."""

    def __init__(self, error: Any) -> None:
        super().__init__(repr(error))
        self.error = error


class LookupFailure(ApiFailure):
    """``error`` is a ``files.LookupError``."""


class WriteFailure(ApiFailure):
    """``error`` is a ``files.WriteError``."""


def not_found() -> LookupFailure:
    return LookupFailure(files.LookupError.not_found)


def not_file() -> LookupFailure:
    return LookupFailure(files.LookupError.not_file)


def not_folder() -> LookupFailure:
    return LookupFailure(files.LookupError.not_folder)


def malformed_lookup(reason: str) -> LookupFailure:
    return LookupFailure(files.LookupError.malformed_path(reason))


def malformed_write(reason: str) -> WriteFailure:
    return WriteFailure(files.WriteError.malformed_path(reason))


def conflict(kind: str) -> WriteFailure:
    """``kind`` is ``file``, ``folder`` or ``file_ancestor`` (a WriteConflictError tag)."""
    return WriteFailure(files.WriteError.conflict(getattr(files.WriteConflictError, kind)))


def as_write_failure(failure: ApiFailure) -> WriteFailure:
    """A write route reports a malformed path as a WriteError, not a LookupError."""
    if isinstance(failure, WriteFailure):
        return failure
    if failure.error.is_malformed_path():
        return malformed_write(failure.error.get_malformed_path())
    return WriteFailure(files.WriteError.other)


def error_summary(encoded: Any) -> str:
    """``path/not_found/..`` from an encoded union, the way Dropbox spells ``error_summary``.

    The trailing dots are there on purpose (Dropbox adds them so nobody matches the summary
    exactly); the SDK never parses this field.
    """
    tags: list[str] = []
    node = encoded
    while isinstance(node, dict) and ".tag" in node:
        tag = node[".tag"]
        tags.append(tag)
        inner = node.get(tag)
        if not (isinstance(inner, dict) and ".tag" in inner):
            # A struct member is encoded inline beside ".tag": follow its first union field.
            inner = next((v for k, v in node.items()
                          if k != ".tag" and isinstance(v, dict) and ".tag" in v), None)
        node = inner
    if isinstance(node, str):
        tags.append(node)
    return "/".join(tags) + "/.."
