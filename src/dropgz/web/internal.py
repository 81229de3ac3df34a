"""The web tier's internal endpoints, for workers (and ``dropgz serve``'s own workers).

Every route is signed with ``[Service] internal_key`` (:func:`dropgz.web.guards.
require_internal_signature`): a call without a fresh, valid signature gets 403.

``POST /internal/token`` ``{"account": "dbid:..." | null, "rejected": false}`` answers
``{"account", "access_token", "expires_at"}``: a short-lived Dropbox access token for that
account (null: the seed's), minted from the refresh token only this tier holds. ``rejected``
says Dropbox refused the previous token: a new one is minted, and a grant Dropbox refuses
marks the account ``needs_reconnect``.

=====  ==========================================  ===========================================
code   body                                        the worker
=====  ==========================================  ===========================================
200    ``access_token``, ``expires_at`` (epoch s)  caches it until shortly before expiry
404    ``{"error": "account disconnected"}``       acks the file with that reason
409    ``{"error": "needs reconnect", "reason"}``  acks the file with that reason
400    ``{"error": ...}`` malformed request        (a bug) dead-letters
503    ``{"error": ...}`` Dropbox unreachable      retries later
500    ``{"error": ...}`` the app's key/secret or  retries, then dead-letters; the log says
       encryption key is wrong                     what the operator must fix
=====  ==========================================  ===========================================

No token, refresh token or key is ever logged; answers carry ``Cache-Control: no-store``.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request

from dropgz.core.encryption import DecryptionFailed
from dropgz.core.errors import DropgzError, TransientError
from dropgz.core.logs import fields
from dropgz.dropbox_client.oauth import ClientRefused
from dropgz.state.base import CredentialMissing
from dropgz.web.credentials import AccountDisconnected, NeedsReconnect
from dropgz.web.guards import require_internal_signature
from dropgz.web.services import services
from dropgz.web.webhook import MAX_ACCOUNT_ID_CHARS

log = logging.getLogger(__name__)

bp = Blueprint("internal", __name__, url_prefix="/internal")
bp.before_request(require_internal_signature)

ACCOUNT_DISCONNECTED = "account disconnected"
NEEDS_RECONNECT = "needs reconnect"


def answer(status: int, **body: Any) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _token_request() -> tuple[str | None, bool]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    account, rejected = data.get("account"), data.get("rejected", False)
    if account is not None and (not isinstance(account, str) or not account
                                or len(account) > MAX_ACCOUNT_ID_CHARS):
        raise ValueError("'account' must be an account id string or null")
    if not isinstance(rejected, bool):
        raise ValueError("'rejected' must be true or false")
    return account, rejected


@bp.post("/token")
def token() -> Response:
    """A short-lived access token for the asked account."""
    try:
        account, rejected = _token_request()
    except ValueError as exc:
        return answer(400, error=str(exc))
    credentials = services().credentials
    try:
        minted = credentials.access_token(account, rejected=rejected)
    except AccountDisconnected:
        log.info("token refused: %s", fields(account=account or "-", reason=ACCOUNT_DISCONNECTED))
        return answer(404, error=ACCOUNT_DISCONNECTED)
    except NeedsReconnect as exc:
        log.info("token refused: %s", fields(account=exc.account, reason=NEEDS_RECONNECT))
        return answer(409, error=NEEDS_RECONNECT, reason=exc.reason)
    except TransientError as exc:
        log.warning("token not minted, Dropbox unreachable: %s",
                    fields(account=account or "-", error=str(exc)))
        return answer(503, error=str(exc))
    except (ClientRefused, DecryptionFailed, CredentialMissing) as exc:
        log.error("token not minted, fix the settings: %s",
                  fields(account=account or "-", error=str(exc)))
        return answer(500, error=str(exc))
    except DropgzError as exc:
        log.error("token not minted: %s", fields(account=account or "-", error=str(exc)))
        return answer(500, error=str(exc))
    account = account or credentials.seed_id()
    if rejected:
        log.info("token minted again after a refusal: %s", fields(account=account))
    return answer(200, account=account, access_token=minted.value.reveal(),
                  expires_at=minted.expires_at)
