"""What a Dropbox route error says about a path, whichever route raised it.

Route errors nest differently per route: ``files/download`` raises ``DownloadError.path``
(a ``LookupError``), ``files/upload`` ``UploadError.path`` (``UploadWriteFailed`` whose
``reason`` is a ``WriteError``), ``upload_session/finish`` and each ``finish_batch_v2``
entry ``UploadSessionFinishError.path`` (a ``WriteError``). These predicates look through
the nesting (SDK types from ``dropbox.files``).
"""

from __future__ import annotations

from dropbox.exceptions import ApiError


def path_error(exc: ApiError) -> object | None:
    """The LookupError/WriteError inside a route error, or None when it is not about a path."""
    err = exc.error
    if not getattr(err, "is_path", lambda: False)():
        return None
    inner = err.get_path()
    # files/upload wraps the WriteError in UploadWriteFailed(reason=...).
    return getattr(inner, "reason", inner)


def _path_is(exc: ApiError, tag: str) -> bool:
    err = path_error(exc)
    return bool(err is not None and getattr(err, f"is_{tag}", lambda: False)())


def is_not_found(exc: ApiError) -> bool:
    return _path_is(exc, "not_found")


def is_not_file(exc: ApiError) -> bool:
    return _path_is(exc, "not_file")


def is_conflict(exc: ApiError) -> bool:
    """Something is already at the path (a file, a folder), or not at the rev given."""
    return _path_is(exc, "conflict")
