"""Who may call what: the check every internal (tier-to-tier) route runs first.

Blueprints serving ``/internal/*`` register :func:`require_internal_signature` as their
``before_request``: the call must be signed with ``[Service] internal_key``
(:mod:`dropgz.core.internal_auth`), fresh and not replayed; anything else is a 403 naming
the reason (never the key). Without a configured key every internal call is refused.
"""

from __future__ import annotations

import logging

from flask import Response, jsonify, request

from dropgz.core.logs import fields
from dropgz.web.services import services

log = logging.getLogger(__name__)


def require_internal_signature() -> Response | None:
    """``before_request`` hook: None lets the call through; else its 403 answer."""
    verifier = services().internal_verifier
    if verifier is None:
        why = "internal calls are disabled: [Service] internal_key is not set"
    else:
        why = verifier.verify(request.method, request.path, request.headers,
                              request.get_data(cache=True))
    if why is None:
        return None
    log.warning("internal call refused: %s", fields(path=request.path, reason=why,
                                                    remote=request.remote_addr))
    response = jsonify(error=why)
    response.status_code = 403
    return response
