"""Signed internal requests: authentic and fresh ones pass; forged, stale and replayed fail."""

from __future__ import annotations

import pytest

from dropgz.core.internal_auth import (
    NONCE_HEADER,
    REPLAY_WINDOW_SECONDS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Verifier,
    sign,
)
from dropgz.core.secret import Secret

KEY = Secret("internal-key-for-tests-0123456789")
NOW = 1_800_000_000.0


def test_a_signed_request_is_accepted_once_and_a_replay_is_refused() -> None:
    verifier = Verifier(KEY)
    headers = sign(KEY, "POST", "/internal/token", b'{"account": "dbid:a"}', now=NOW)

    assert verifier.verify("POST", "/internal/token", headers, b'{"account": "dbid:a"}',
                           now=NOW + 1) is None
    assert verifier.verify("POST", "/internal/token", headers, b'{"account": "dbid:a"}',
                           now=NOW + 2) == "replayed request"


@pytest.mark.parametrize(("method", "path", "body", "key", "why"), [
    ("POST", "/internal/token", b'{"account": "dbid:b"}', KEY, "bad signature"),
    ("POST", "/internal/other", b'{"account": "dbid:a"}', KEY, "bad signature"),
    ("GET", "/internal/token", b'{"account": "dbid:a"}', KEY, "bad signature"),
    ("POST", "/internal/token", b'{"account": "dbid:a"}', Secret("another-key"), "bad signature"),
])
def test_any_change_to_what_was_signed_is_refused(method: str, path: str, body: bytes,
                                                  key: Secret, why: str) -> None:
    headers = sign(KEY, "POST", "/internal/token", b'{"account": "dbid:a"}', now=NOW)

    assert Verifier(key).verify(method, path, headers, body, now=NOW) == why


def test_stale_future_and_missing_signatures_are_refused() -> None:
    verifier = Verifier(KEY)
    body = b"{}"
    old = sign(KEY, "POST", "/p", body, now=NOW - REPLAY_WINDOW_SECONDS - 1)
    future = sign(KEY, "POST", "/p", body, now=NOW + REPLAY_WINDOW_SECONDS + 1)
    garbled = {**sign(KEY, "POST", "/p", body, now=NOW), TIMESTAMP_HEADER: "yesterday"}

    assert verifier.verify("POST", "/p", old, body, now=NOW) == \
        "timestamp outside the replay window"
    assert verifier.verify("POST", "/p", future, body, now=NOW) == \
        "timestamp outside the replay window"
    assert verifier.verify("POST", "/p", garbled, body, now=NOW) == "malformed timestamp"
    for header in (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER):
        partial = {k: v for k, v in sign(KEY, "POST", "/p", body, now=NOW).items()
                   if k != header}
        assert verifier.verify("POST", "/p", partial, body, now=NOW) == \
            "missing or malformed signature headers"


def test_the_key_never_shows_in_a_repr() -> None:
    assert "internal-key" not in repr(Verifier(KEY))
