"""The whole connect flow in a real browser (Debian chromium + Playwright) against
``dropgz serve`` and the emulator's consent page; screenshots in tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dropbox
import pytest

from dropgz.state.sqlite import SqliteStateStore
from tests.fixtures.browser import screenshot
from tests.fixtures.multiuser import Site, start_service
from tests.fixtures.peers import gunzip_bytes, wait_for


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Site]:
    with start_service(tmp_path, accounts=2) as site:
        yield site


def exists(dbx: dropbox.Dropbox, path: str) -> bool:
    try:
        dbx.files_get_metadata(path)
    except dropbox.exceptions.ApiError:
        return False
    return True


def read(dbx: dropbox.Dropbox, path: str) -> bytes:
    _, response = dbx.files_download(path)
    with response:
        return response.content


def state(site: Site) -> SqliteStateStore:
    return SqliteStateStore(Path(site.env["DROPGZ_SERVICE_DATA_DIR"]) / "state.sqlite3")


def test_a_user_connects_in_a_browser_and_their_new_files_get_gz(
        service: Site, browser_page: Any) -> None:
    page = browser_page
    user = service.emulator.account(2)
    dbx = service.client(2)
    dbx.files_upload(b"was here before connecting\n" * 20, "/Before/old.txt")

    # /connect: what dropgz does, and the button
    page.goto(service.url + "/connect")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Compress your new")
    screenshot(page, "connect-1-connect")
    page.get_by_role("link", name="Connect your Dropbox").click()

    # Dropbox's (the emulator's) consent page: choose the account, Allow
    page.wait_for_url(service.emulator.url + "/oauth2/authorize*")
    assert "would like to access" in page.content()
    page.get_by_label(user.display_name).check()
    screenshot(page, "connect-2-consent")
    page.get_by_role("button", name="Allow").click()

    # back on dropgz: connected, what happens next, files already there left alone
    page.wait_for_url(service.url + "/connect/callback*")
    assert page.locator("#connected").inner_text() == "Your Dropbox is connected"
    text = page.inner_text("main")
    assert user.email in text and "left alone" in text
    assert f"dropgz backfill --account {user.account_id}" in text
    screenshot(page, "connect-3-connected")

    # their new files get a .gz; the old one does not
    data = b"a new report, line after line\n" * 400
    dbx.files_upload(data, "/Reports/new.csv")
    wait_for(lambda: exists(dbx, "/Reports/new.csv.gz"), 60, "new.csv.gz",
             diagnose=service.log)
    assert gunzip_bytes(read(dbx, "/Reports/new.csv.gz")) == data
    assert not exists(dbx, "/Before/old.txt.gz")
    assert not exists(service.client(1), "/Reports/new.csv.gz")  # the other user: untouched

    # the account page, and Disconnect
    page.get_by_role("link", name="Your account page").click()
    assert page.locator("#status").inner_text() == "watching"
    screenshot(page, "connect-4-account")
    page.get_by_role("button", name="Disconnect").click()
    assert page.locator("#disconnected").inner_text() == "Disconnected"
    assert "Dropbox confirmed" in page.inner_text("main")
    screenshot(page, "connect-5-disconnected")
    assert state(service).get(user.account_id) is None


def test_cancel_on_the_consent_page_leaves_nothing(service: Site, browser_page: Any) -> None:
    page = browser_page
    page.goto(service.url + "/connect")
    page.get_by_role("link", name="Connect your Dropbox").click()
    page.wait_for_url(service.emulator.url + "/oauth2/authorize*")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url(service.url + "/connect/callback*")
    assert page.locator("#problem").inner_text() == "You did not connect your Dropbox"
    screenshot(page, "connect-cancelled")
    assert state(service).count_accounts() == 0
