"""Holding a route until the test releases it: a request deterministically in flight."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from dropbox.exceptions import InternalServerError

from tests.emulator.threads import Call, any_done
from tests.fixtures.emulator import EmulatorProcess, start_emulator

CONTINUE = "files/list_folder/continue"


def test_a_held_route_waits_until_released(http_server: EmulatorProcess, folder: str) -> None:
    dbx = http_server.client(max_retries_on_error=0)
    cursor = dbx.files_list_folder_get_latest_cursor("").cursor
    http_server.reset_stats()
    with http_server.holding(CONTINUE):
        # Given a list_folder/continue in flight
        pending = Call(lambda: dbx.files_list_folder_continue(cursor))
        http_server.wait_held(CONTINUE)
        # Then it is held (not answered, not counted) while other routes are served
        assert http_server.held() == {CONTINUE: 1}
        assert dbx.files_create_folder_v2(folder).metadata.name == folder[1:]
        assert not pending.done.is_set()
        assert CONTINUE not in http_server.stats()["routes"]
        # When it is released, it is answered, and sees the change made meanwhile
        assert http_server.release(CONTINUE) == {}
        names = [entry.name for entry in pending.join().entries]
        assert folder[1:] in names
    assert http_server.route_statuses(CONTINUE) == {"200": 1}
    # And the hold is over
    assert dbx.files_list_folder_continue(cursor).cursor


def test_release_some_of_them(http_server: EmulatorProcess) -> None:
    dbx = http_server.client(max_retries_on_error=0)
    with http_server.holding("users/get_current_account"):
        calls = [Call(dbx.users_get_current_account) for _ in range(3)]
        http_server.wait_held("users/get_current_account", count=3)
        assert http_server.release("users/get_current_account", count=1) == {
            "users/get_current_account": 2}
        # One went; the two others are still held
        assert any_done(calls).join().account_id == http_server.account_id
        assert sum(call.done.is_set() for call in calls) == 1
        assert http_server.held() == {"users/get_current_account": 2}
    # (the ``with`` released the rest)
    for call in calls:
        assert call.join().account_id == http_server.account_id


def test_long_poll_gives_up_after_its_timeout(http_server: EmulatorProcess) -> None:
    answer = requests.get(f"{http_server.url}/_emulator/held", timeout=10,
                          params={"route": CONTINUE, "count": 1, "timeout": 0},
                          headers={"Authorization": f"Bearer {http_server.token}"})
    assert answer.status_code == 200
    assert answer.json()["reached"] is False and answer.json()["held"] == {}


@pytest.mark.parametrize(("path", "body", "complaint"), [
    ("hold", {}, "route must be a non-empty string"),
    ("hold", {"route": 7}, "route must be a non-empty string"),
    ("release", {"count": "many"}, "count must be a number"),
])
def test_bad_hold_requests_are_400(http_server: EmulatorProcess, path: str, body: dict,
                                   complaint: str) -> None:
    answer = requests.post(f"{http_server.url}/_emulator/{path}", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {http_server.token}"})
    assert answer.status_code == 400 and complaint in answer.text


def test_held_requests_are_let_go_when_the_emulator_stops(tmp_path: Path) -> None:
    with start_emulator(tmp_path) as emulator:
        dbx = emulator.client(max_retries_on_error=0)
        emulator.hold("files/upload")
        pending = Call(lambda: dbx.files_upload(b"never", "/held.txt"))
        emulator.wait_held("files/upload")
        # When the emulator stops with the upload held
        assert emulator.stop() == 0
        # Then the client got a 503 (or its connection cut), and nothing was written
        with pytest.raises((InternalServerError, requests.ConnectionError)):
            pending.join()
        assert not (emulator.root / "held.txt").exists()
