"""The compression tier's client for the web tier's internal endpoints.

Every call is a JSON POST signed with ``[Service] internal_key``
(:mod:`dropgz.core.internal_auth`). A web tier that cannot be reached, or answers 5xx/429,
raises :class:`~dropgz.core.errors.TransientError`: the caller retries later. A 4xx other
than 429 raises :class:`InternalCallRefused` with the server's one-line reason.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from dropgz.core.errors import DropgzError, TransientError
from dropgz.core.internal_auth import sign
from dropgz.core.secret import Secret

DEFAULT_TIMEOUT = 10.0


class InternalCallRefused(DropgzError):
    """The web tier refused the call (bad key, unknown account...): retrying will not help."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"web tier refused the call ({status}): {reason}")
        self.status = status
        self.reason = reason


class InternalClient:
    """``post(path, payload)`` to ``base_url`` with signed headers; thread-safe."""

    def __init__(self, base_url: str, key: Secret, *, timeout: float = DEFAULT_TIMEOUT,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._timeout = timeout
        self._session = session or requests.Session()
        # Loopback in single-host mode; never a proxy or the environment's CA for our own tier.
        self._session.trust_env = False

    def __repr__(self) -> str:
        return f"InternalClient({self.base_url!r}, key=***)"

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload`` as JSON to ``path`` (e.g. ``/internal/token``); the JSON answer."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", **sign(self._key, "POST", path, body)}
        try:
            response = self._session.post(self.base_url + path, data=body, headers=headers,
                                          timeout=self._timeout)
        except requests.RequestException as exc:
            raise TransientError(f"web tier unreachable at {self.base_url}: "
                                 f"{type(exc).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"web tier answered {response.status_code} for {path}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code >= 400:
            reason = answer.get("error") if isinstance(answer, dict) else None
            raise InternalCallRefused(response.status_code, str(reason or response.reason))
        if not isinstance(answer, dict):
            raise TransientError(f"web tier answered {path} with no JSON object")
        return answer

    def close(self) -> None:
        self._session.close()
