"""How the tiers call the web tier's internal endpoints: a shared key, signed requests.

Workers (and ``dropgz serve``) call the web tier for short-lived Dropbox access tokens and to
report what they did. Each request carries a timestamp, a random nonce and an HMAC-SHA256,
keyed with ``[Service] internal_key``, over the method, path, timestamp, nonce and the
SHA-256 of the body. The web tier accepts it only when the signature matches (compared in
constant time), the timestamp is within :data:`REPLAY_WINDOW_SECONDS` of its clock and the
nonce was not seen in that window: a captured request cannot be replayed.

The key itself never travels; nothing here logs a header.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

from dropgz.core.secret import Secret

TIMESTAMP_HEADER = "X-Dropgz-Timestamp"
NONCE_HEADER = "X-Dropgz-Nonce"
SIGNATURE_HEADER = "X-Dropgz-Signature"
# A request older or newer than this (clock skew included) is refused.
REPLAY_WINDOW_SECONDS = 60.0
# Nonces remembered per process; beyond this the oldest are forgotten (they are also
# outside the window by then at any sane request rate).
MAX_REMEMBERED_NONCES = 100_000


def _mac(key: Secret, method: str, path: str, stamp: str, nonce: str, body: bytes) -> str:
    message = "\n".join([method.upper(), path, stamp, nonce,
                         hashlib.sha256(body).hexdigest()]).encode()
    return hmac.new(key.reveal().encode(), message, hashlib.sha256).hexdigest()


def sign(key: Secret, method: str, path: str, body: bytes = b"",
         now: float | None = None) -> dict[str, str]:
    """The headers that authenticate one request to ``path`` (path only, no host or query)."""
    stamp = f"{time.time() if now is None else now:.3f}"
    nonce = secrets.token_hex(16)
    return {TIMESTAMP_HEADER: stamp, NONCE_HEADER: nonce,
            SIGNATURE_HEADER: _mac(key, method, path, stamp, nonce, body)}


class Verifier:
    """Checks signed requests; one per web process (it remembers recent nonces)."""

    def __init__(self, key: Secret, window: float = REPLAY_WINDOW_SECONDS) -> None:
        self._key = key
        self._window = window
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "Verifier(key=***)"

    def verify(self, method: str, path: str, headers: Mapping[str, str], body: bytes,
               now: float | None = None) -> str | None:
        """None when the request is authentic and fresh; else the reason it is refused."""
        stamp = headers.get(TIMESTAMP_HEADER, "")
        nonce = headers.get(NONCE_HEADER, "")
        given = headers.get(SIGNATURE_HEADER, "")
        if not (stamp and nonce and given) or len(nonce) > 64:
            return "missing or malformed signature headers"
        try:
            sent = float(stamp)
        except ValueError:
            return "malformed timestamp"
        now = time.time() if now is None else now
        if abs(now - sent) > self._window:
            return "timestamp outside the replay window"
        wanted = _mac(self._key, method, path, stamp, nonce, body)
        if not hmac.compare_digest(given.encode("utf-8", "replace"), wanted.encode()):
            return "bad signature"
        with self._lock:
            self._forget_before(now - self._window)
            if nonce in self._seen:
                return "replayed request"
            self._seen[nonce] = sent
        return None

    def _forget_before(self, cutoff: float) -> None:
        while self._seen and (len(self._seen) > MAX_REMEMBERED_NONCES
                              or next(iter(self._seen.values())) < cutoff):
            self._seen.popitem(last=False)
