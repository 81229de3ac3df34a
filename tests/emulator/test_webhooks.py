"""Change notifications: signed like Dropbox's, coalesced, retried until delivered."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.emulator import EmulatorProcess, start_emulator


class Receiver:
    """A tiny webhook endpoint on 127.0.0.1 recording every POST it gets."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []  # answers to give, in order; then 200
        # While cleared, a delivery is held unanswered (``arrived`` tells one is waiting).
        self.gate = threading.Event()
        self.gate.set()
        self.arrived = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrived.set()
                receiver.gate.wait(10)
                with receiver._lock:
                    receiver.deliveries.append((dict(self.headers), body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/webhook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"webhook condition not met in {timeout} s; got "
                            f"{len(self.deliveries)} deliveries")
            time.sleep(0.02)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


def test_notification_is_signed_and_names_the_account(http_server: EmulatorProcess,
                                                      receiver: Receiver, folder: str) -> None:
    http_server.configure(webhook_url=receiver.url)
    http_server.client().files_upload(b"x", f"{folder}/notify.txt")
    receiver.wait_for(lambda: len(receiver.deliveries) >= 1)

    headers, body = receiver.deliveries[0]
    expected = hmac.new(http_server.app_secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Dropbox-Signature"], expected)
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert payload["list_folder"] == {"accounts": [http_server.account_id]}
    assert isinstance(payload["delta"]["users"][0], int)


def test_a_burst_of_changes_is_coalesced(http_server: EmulatorProcess, receiver: Receiver,
                                         folder: str) -> None:
    http_server.configure(webhook_url=receiver.url)
    dbx = http_server.client()
    for index in range(10):
        dbx.files_upload(b"%d" % index, f"{folder}/burst-{index}.txt")
    receiver.wait_for(lambda: len(receiver.deliveries) >= 1)
    time.sleep(0.5)  # anything still pending has been flushed by now
    assert 1 <= len(receiver.deliveries) <= 3, "ten changes should not make ten notifications"
    assert http_server.webhooks()["delivered"] >= 1


def test_failed_deliveries_are_retried(http_server: EmulatorProcess, receiver: Receiver,
                                       folder: str) -> None:
    receiver.statuses = [500, 503]
    before = http_server.webhooks()
    http_server.configure(webhook_url=receiver.url)
    http_server.client().files_create_folder_v2(folder)
    receiver.wait_for(lambda: len(receiver.deliveries) >= 3)
    after = http_server.webhooks()
    assert after["failed"] - before["failed"] == 2
    assert after["delivered"] - before["delivered"] == 1
    assert after["last_status"] == 200 and after["url"] == receiver.url


def test_no_webhook_without_changes(http_server: EmulatorProcess, receiver: Receiver,
                                    folder: str) -> None:
    http_server.configure(webhook_url=receiver.url)
    dbx = http_server.client()
    dbx.files_list_folder("")
    dbx.users_get_current_account()
    time.sleep(0.4)
    assert receiver.deliveries == []


def test_one_notification_names_every_account_that_changed(receiver: Receiver,
                                                           tmp_path: Path) -> None:
    with start_emulator(tmp_path, accounts=3, webhook_url=receiver.url) as emulator:
        first, second = emulator.account(1), emulator.account(2)
        # Given a first notification (for account 1) held by the receiver, then refused
        receiver.gate.clear()
        receiver.statuses = [503]
        emulator.client(account=1).files_upload(b"1", "/one.txt")
        assert receiver.arrived.wait(10)
        # When account 2 changes while that delivery is in flight
        emulator.client(account=2).files_upload(b"2", "/two.txt")
        receiver.gate.set()
        # Then the retry carries both accounts in one signed notification
        receiver.wait_for(lambda: len(receiver.deliveries) >= 2)
        headers, body = receiver.deliveries[1]
        expected = hmac.new(emulator.app_secret.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Dropbox-Signature"], expected)
        payload = json.loads(body)
        assert payload["list_folder"]["accounts"] == [first.account_id, second.account_id]
        assert len(set(payload["delta"]["users"])) == 2
        assert emulator.account(3).account_id not in body.decode()
