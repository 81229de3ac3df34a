"""Authorization codes: issued by the consent page's "Allow", redeemed once at /oauth2/token.

Kept in memory (a code lives ten minutes; a restart forgets the codes in flight, as a user
would then simply start over), by SHA-256 digest. A code is consumed by its first redemption
attempt, whatever its outcome, so a code can never be tried twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class AuthCode:
    account_id: str
    redirect_uri: str | None       # as given to /oauth2/authorize; the exchange must repeat it
    code_challenge: str | None     # PKCE (RFC 7636)
    code_challenge_method: str | None
    scope: str
    offline: bool                  # token_access_type=offline: a refresh token is issued
    expires_at: float              # time.monotonic()

    def verifier_matches(self, verifier: str | None) -> bool:
        """PKCE: ``verifier`` hashes (S256) or equals (plain) the code's challenge."""
        if self.code_challenge is None or not verifier:
            return False
        if self.code_challenge_method == "plain":
            expected = verifier
        else:
            digest = hashlib.sha256(verifier.encode()).digest()
            expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
        return hmac.compare_digest(expected.encode(), self.code_challenge.encode())


class AuthCodes:
    """Codes in flight; ``ttl()`` gives their lifetime in seconds, read when one is issued."""

    def __init__(self, ttl: Callable[[], int]) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._codes: dict[str, AuthCode] = {}

    def issue(self, *, account_id: str, redirect_uri: str | None, code_challenge: str | None,
              code_challenge_method: str | None, scope: str, offline: bool) -> str:
        code = secrets.token_urlsafe(32)
        now = time.monotonic()
        record = AuthCode(account_id, redirect_uri, code_challenge, code_challenge_method,
                          scope, offline, now + self._ttl())
        with self._lock:
            self._codes = {key: value for key, value in self._codes.items()
                           if value.expires_at > now}
            self._codes[_digest(code)] = record
        return code

    def redeem(self, code: str | None) -> AuthCode | None:
        """The code's record, once; None when unknown, already used or expired."""
        if not code:
            return None
        with self._lock:
            record = self._codes.pop(_digest(code), None)
        if record is None or time.monotonic() >= record.expires_at:
            return None
        return record


def _digest(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()
