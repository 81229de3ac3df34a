"""Shared emulators for the emulator's own suite.

Starting a process costs about a second, so most tests share one HTTP and one HTTPS emulator
for the whole session and work in a folder of their own (``folder``); tests that need a fresh
account, a restart or special flags use the ``emulator`` fixture or ``start_emulator``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import dropbox
import pytest

from tests.fixtures.emulator import EmulatorProcess, start_emulator

DEFAULT_RUNTIME = {"fail_rate": 0.0, "fail_kinds": ["429", "500", "drop"], "fail_next": 0,
                   "latency_ms": 0.0, "webhook_url": None, "retry_after": 1,
                   "upload_limit": 150 * 1024 * 1024}


@pytest.fixture(scope="session")
def shared_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("shared-http")) as process:
        yield process


@pytest.fixture(scope="session")
def shared_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("shared-https"), tls=True) as process:
        yield process


@pytest.fixture(params=["http", "https"])
def server(request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    """The shared emulator over HTTP, then over HTTPS; run-time settings restored after."""
    process: EmulatorProcess = request.getfixturevalue(f"shared_{request.param}")
    yield process
    process.configure(**DEFAULT_RUNTIME)


@pytest.fixture
def http_server(shared_http: EmulatorProcess) -> Iterator[EmulatorProcess]:
    """The shared HTTP emulator only (for tests where the transport does not matter)."""
    yield shared_http
    shared_http.configure(**DEFAULT_RUNTIME)


@pytest.fixture
def dbx(server: EmulatorProcess) -> dropbox.Dropbox:
    return server.client(max_retries_on_error=0, max_retries_on_rate_limit=0)


@pytest.fixture
def folder() -> str:
    """A folder path no other test uses (mixed case on purpose)."""
    return f"/Test-{secrets.token_hex(4)}"
