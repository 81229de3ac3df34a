"""The worker's client for the web tier's internal endpoints, against a real HTTP server.

Given a web app that verifies signatures with the shared key, When the client posts, Then
an authentic call gets its JSON answer, a wrong key is refused with the server's reason,
and a server that is down or failing is a transient error.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, jsonify, request

from dropgz.compression.internal_client import InternalCallRefused, InternalClient
from dropgz.core.errors import TransientError
from dropgz.core.internal_auth import Verifier
from dropgz.core.secret import Secret
from tests.fixtures.peers import free_port
from tests.fixtures.servers import serve

KEY = Secret("shared-internal-key-0123456789abcdef")


def _app() -> Flask:
    app = Flask("internal-test")
    verifier = Verifier(KEY)

    @app.post("/internal/echo")
    def echo() -> Any:
        why = verifier.verify(request.method, request.path, request.headers,
                              request.get_data())
        if why is not None:
            return jsonify(error=why), 403
        return jsonify(got=request.get_json())

    @app.post("/internal/broken")
    def broken() -> Any:
        return jsonify(error="boom"), 503

    return app


def test_a_signed_call_is_answered_and_a_wrong_key_is_refused() -> None:
    with serve(_app()) as url:
        good = InternalClient(url, KEY)
        assert good.post("/internal/echo", {"account": "dbid:a"}) == {
            "got": {"account": "dbid:a"}}

        bad = InternalClient(url, Secret("not-the-key"))
        with pytest.raises(InternalCallRefused) as refused:
            bad.post("/internal/echo", {"account": "dbid:a"})
        assert refused.value.status == 403
        assert "bad signature" in str(refused.value)


def test_a_failing_or_absent_web_tier_is_transient() -> None:
    with serve(_app()) as url, pytest.raises(TransientError, match="503"):
        InternalClient(url, KEY).post("/internal/broken", {})
    with pytest.raises(TransientError, match="unreachable"):
        InternalClient(f"http://127.0.0.1:{free_port()}", KEY, timeout=2).post(
            "/internal/echo", {})


def test_the_key_never_shows_in_a_repr() -> None:
    assert "shared-internal" not in repr(InternalClient("http://127.0.0.1:1", KEY))
