"""Reliability suite: scenario bookkeeping and the end-of-session scenario table.

Each test is one scenario; its docstring's first line names it in the table printed at the
end of the run (``pytest tests/reliability``; tests/fixtures/scenarios.py keeps the table).
Scenarios marked ``soak`` are long and run
only with ``DROPGZ_SOAK=1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.emulator import start_emulator
from tests.fixtures.peers import free_port
from tests.reliability.harness import Pipeline, World

SOAK = os.environ.get("DROPGZ_SOAK") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: long fault soak, run with DROPGZ_SOAK=1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SOAK:
        return
    skip = pytest.mark.skip(reason="soak scenario: set DROPGZ_SOAK=1 to run it")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[tuple[object, Pipeline]]:
    """An emulator notifying a ``dropgz web`` port, and a Pipeline (not started) for it."""
    port = free_port()
    with start_emulator(tmp_path / "emulator",
                        webhook_url=f"http://127.0.0.1:{port}/webhook") as emulator:
        pipe = Pipeline(emulator, tmp_path, port)
        try:
            yield emulator, pipe
        finally:
            pipe.close()
        # every scenario runs with known secrets: none may reach a log line
        logs = pipe.logs()
        for value in (emulator.token, emulator.app_secret,
                      pipe.env.get("DROPGZ_AWS_AWS_SECRET_ACCESS_KEY", "")):
            assert not value or value not in logs, "a secret reached the logs"


@pytest.fixture
def world(pipeline: tuple[object, Pipeline]) -> World:
    emulator, _ = pipeline
    return World(emulator.client())
