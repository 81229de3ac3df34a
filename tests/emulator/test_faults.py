"""Fault injection and latency: they really happen, and the SDK copes as it should."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from dropbox.exceptions import InternalServerError, RateLimitError

from tests.fixtures.emulator import EmulatorProcess, start_emulator


def test_429_carries_retry_after_and_the_sdk_waits_it_out(server: EmulatorProcess,
                                                          folder: str) -> None:
    server.configure(fail_next=1, fail_kinds=["429"], retry_after=1)
    server.reset_stats()
    dbx = server.client(max_retries_on_rate_limit=2)
    started = time.monotonic()
    dbx.files_upload(b"after a 429", f"{folder}/rate.txt")
    assert time.monotonic() - started >= 1.0, "the SDK retried before Retry-After"
    assert server.route_statuses("files/upload") == {"429": 1, "200": 1}
    assert server.stats()["faults"] == {"429": 1}


def test_429_wire_format(http_server: EmulatorProcess) -> None:
    http_server.configure(fail_next=2, fail_kinds=["429"], retry_after=3)
    headers = {"Authorization": f"Bearer {http_server.token}"}
    read = requests.post(f"{http_server.url}/2/files/list_folder", json={"path": ""},
                         headers=headers, timeout=10)
    assert read.status_code == 429
    assert read.headers["Retry-After"] == "3"
    assert read.headers["Content-Type"] == "application/json"
    assert read.json()["error"] == {"reason": {".tag": "too_many_requests"}, "retry_after": 3}
    write = requests.post(f"{http_server.url}/2/files/create_folder_v2", json={"path": "/x"},
                          headers=headers, timeout=10)
    assert write.json()["error"]["reason"][".tag"] == "too_many_write_operations"
    with pytest.raises(RateLimitError) as caught:  # and the SDK decodes it
        http_server.configure(fail_next=1)
        http_server.client(max_retries_on_rate_limit=0).files_list_folder("")
    assert caught.value.backoff == 3


def test_500_is_retried_by_the_sdk(server: EmulatorProcess, folder: str) -> None:
    server.configure(fail_next=1, fail_kinds=["500"])
    server.reset_stats()
    server.client(max_retries_on_error=2).files_create_folder_v2(folder)
    assert server.route_statuses("files/create_folder_v2") == {"500": 1, "200": 1}
    server.configure(fail_next=1)
    with pytest.raises(InternalServerError):
        server.client(max_retries_on_error=0).files_get_metadata(folder)


def test_dropped_connection(server: EmulatorProcess, folder: str) -> None:
    server.configure(fail_next=1, fail_kinds=["drop"])
    server.reset_stats()
    dbx = server.client(max_retries_on_error=0)
    with pytest.raises(requests.exceptions.ConnectionError):
        dbx.files_upload(b"lost", f"{folder}/dropped.txt")
    assert dbx.files_upload(b"kept", f"{folder}/dropped.txt").size == 4  # next one is fine
    assert server.route_statuses("files/upload") == {"drop": 1, "200": 1}


def test_fail_rate_injects_about_that_fraction(http_server: EmulatorProcess) -> None:
    http_server.configure(fail_rate=0.4, fail_kinds=["429", "500"], retry_after=0)
    http_server.reset_stats()
    dbx = http_server.client(max_retries_on_error=0, max_retries_on_rate_limit=0)
    failures = 0
    for _ in range(60):
        try:
            dbx.users_get_current_account()
        except (RateLimitError, InternalServerError):
            failures += 1
    stats = http_server.stats()
    assert 8 <= failures <= 40  # 60 draws at 0.4: far outside this is broken, not unlucky
    assert sum(stats["faults"].values()) == failures
    assert stats["statuses"].get("200", 0) == 60 - failures


def _status_sequence(tmp_path: Path) -> list[int]:
    with start_emulator(tmp_path, seed=1234, fail_rate=0.5, fail_kinds="429,500") as emulator:
        headers = {"Authorization": f"Bearer {emulator.token}"}
        with requests.Session() as session:
            return [session.post(f"{emulator.url}/2/users/get_current_account",
                                 headers=headers, timeout=10).status_code for _ in range(24)]


def test_seed_makes_faults_reproducible(tmp_path: Path) -> None:
    first = _status_sequence(tmp_path / "one")
    second = _status_sequence(tmp_path / "two")
    assert first == second
    assert {429, 500, 200} <= set(first)


def test_latency_is_added_to_dropbox_routes_only(server: EmulatorProcess) -> None:
    dbx = server.client()
    dbx.users_get_current_account()  # connection already open: time only the latency
    server.configure(latency_ms=300)
    started = time.monotonic()
    dbx.users_get_current_account()
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    server.stats()
    assert time.monotonic() - started < 0.3, "admin routes must not be delayed"
