"""Workers report here: ``POST /internal/report`` (file outcomes) and
``POST /internal/heartbeat``, both signed with ``[Service] internal_key``
(:func:`dropgz.web.guards.require_internal_signature`).

A malformed report is a 400 naming the problem; the worker drops it (retrying cannot
help). The heartbeat's answer lists the paused accounts, so workers defer their files.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request

from dropgz.state.reports import OUTCOMES, FileRecord, Heartbeat
from dropgz.web.guards import require_internal_signature
from dropgz.web.services import services

log = logging.getLogger(__name__)

bp = Blueprint("reports", __name__, url_prefix="/internal")
bp.before_request(require_internal_signature)

MAX_FILES_PER_REPORT = 1000
MAX_PAUSED_LISTED = 100_000


def _answer(status: int, **body: Any) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _text(data: dict[str, Any], key: str, limit: int = 4096, required: bool = True) -> str:
    value = data.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value) or len(value) > limit:
        raise ValueError(f"'{key}' must be a string of at most {limit} characters")
    return value


def _number(data: dict[str, Any], key: str, kind: type = int) -> Any:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"'{key}' must be a non-negative number")
    return kind(value)


def _when(seconds: float) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("a time is out of range") from None


def _file(data: Any, worker: str) -> FileRecord:
    if not isinstance(data, dict):
        raise ValueError("each file must be an object")
    outcome = _text(data, "outcome", 20)
    if outcome not in OUTCOMES:
        raise ValueError(f"'outcome' must be one of {', '.join(OUTCOMES)}")
    return FileRecord(account=_text(data, "account", 200, required=False),
                      path=_text(data, "path"), outcome=outcome,
                      at=_when(_number(data, "at", float)),
                      bytes_in=_number(data, "bytes_in"), bytes_out=_number(data, "bytes_out"),
                      seconds=_number(data, "seconds", float),
                      reason=_text(data, "reason", required=False), worker=worker)


def _json() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


@bp.post("/report")
def report() -> Response:
    """A batch of file outcomes from one worker."""
    try:
        data = _json()
        worker = _text(data, "worker", 200)
        files = data.get("files")
        if not isinstance(files, list) or len(files) > MAX_FILES_PER_REPORT:
            raise ValueError(f"'files' must be a list of at most {MAX_FILES_PER_REPORT}")
        records = [_file(f, worker) for f in files]
    except ValueError as exc:
        return _answer(400, error=str(exc))
    services().reports.add_files(records)
    return _answer(200, accepted=len(records))


@bp.post("/heartbeat")
def heartbeat() -> Response:
    """A worker is alive; answers the accounts whose files must wait."""
    svc = services()
    try:
        data = _json()
        beat = Heartbeat(worker=_text(data, "worker", 200), host=_text(data, "host", 255),
                         pid=_number(data, "pid"), version=_text(data, "version", 50),
                         started_at=_when(_number(data, "started_at", float)),
                         concurrency=_number(data, "concurrency"),
                         in_flight=_number(data, "in_flight"), seen_at=datetime.now(UTC),
                         reports_dropped=_number(data, "reports_dropped"))
    except ValueError as exc:
        return _answer(400, error=str(exc))
    svc.reports.heartbeat(beat)
    return _answer(200, paused=svc.paused_accounts()[:MAX_PAUSED_LISTED])


@bp.post("/summary")
def summary() -> Response:
    """The global totals ``dropgz status`` prints: the dashboard's numbers."""
    svc = services()
    svc.counters.flush()
    beats = svc.reports.workers()
    live = [b for b in beats if not b.stale()]
    return _answer(200, totals=svc.reports.totals(),
                   workers={"live": len(live), "stale": len(beats) - len(live),
                            "in_flight": sum(b.in_flight for b in live)})
