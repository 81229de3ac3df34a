"""Connect and disconnect over HTTP, against the emulator's real consent page and token
endpoint: what is stored, which cookies, and every refused callback changing nothing."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from itsdangerous import TimestampSigner

from dropgz.dropbox_client.oauth import InvalidGrant, refresh_access_token
from dropgz.ops.connect_driver import connect_over_http
from tests.fixtures.multiuser import Site, start_site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with start_site(tmp_path, accounts=2) as running:
        yield running


def cookie_header(response: requests.Response, name: str) -> str:
    headers = response.raw.headers.getlist("Set-Cookie")
    found = [h for h in headers if h.startswith(name + "=")]
    assert found, headers
    return found[0]


def unchanged(site: Site) -> None:
    assert site.svc.state.count_accounts() == 0


def start_flow(site: Site, browser: requests.Session) -> tuple[str, dict[str, list[str]]]:
    """GET /connect/start: the consent page's URL and its query."""
    answer = browser.get(site.url + "/connect/start", allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    return location, parse_qs(urlsplit(location).query)


def allow(site: Site, number: int, params: dict[str, list[str]]) -> str:
    """The user allows on the consent page: the callback URL Dropbox sends them to."""
    answer = site.emulator.authorize({k: v[0] for k, v in params.items()},
                                     account_id=site.account_id(number))
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def test_connecting_stores_the_account_watching_from_now(site: Site) -> None:
    site.client(1).files_upload(b"already here\n", "/before.txt")
    answer = site.connect(1)
    assert answer.status_code == 200, answer.text
    assert "Your Dropbox is connected" in answer.text
    assert "left alone" in answer.text
    assert f"dropgz backfill --account {site.account_id(1)}" in answer.text
    record = site.svc.state.get(site.account_id(1))
    assert record.status == "watching" and record.has_credential
    assert record.email == site.emulator.account(1).email
    assert record.display_name == site.emulator.account(1).display_name
    assert record.cursor and record.watch_start is not None
    # the stored grant works (refresh) and only ciphertext is at rest
    token = site.svc.state.refresh_token(site.account_id(1))
    assert token.reveal() not in site.svc.state.raw_credential(site.account_id(1))
    fresh = refresh_access_token(site.svc.settings.dropbox, token, site.svc.credentials.session)
    assert site.emulator.client(oauth2_access_token=fresh.value.reveal()) \
        .users_get_current_account().account_id == site.account_id(1)
    # the browser is remembered in an HttpOnly, SameSite=Lax cookie; the state cookie is gone
    accounts = cookie_header(answer, "dropgz_accounts")
    assert "HttpOnly" in accounts and "SameSite=Lax" in accounts
    assert "Max-Age=0" in cookie_header(answer, "dropgz_connect")
    assert site.svc.state.count_accounts() == 1


def test_the_flow_asks_for_offline_access_with_the_configured_redirect_uri(site: Site) -> None:
    browser = requests.Session()
    answer = browser.get(site.url + "/connect/start", allow_redirects=False, timeout=10,
                         headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"})
    location = answer.headers["Location"]
    assert location.startswith(site.emulator.url + "/oauth2/authorize?")
    query = parse_qs(urlsplit(location).query)
    assert query["redirect_uri"] == [site.url + "/connect/callback"]
    assert query["token_access_type"] == ["offline"]
    assert query["client_id"] == [site.emulator.app_key]
    assert "files.content.write" in query["scope"][0]
    state = cookie_header(answer, "dropgz_connect")
    assert "HttpOnly" in state and "SameSite=Lax" in state and "Path=/connect" in state
    assert answer.headers["Cache-Control"] == "no-store"


def test_cancel_on_dropbox_changes_nothing(site: Site) -> None:
    answer = site.connect(1, decision="cancel")
    assert answer.status_code == 403
    assert "You did not connect your Dropbox" in answer.text
    unchanged(site)


def test_a_state_that_is_not_this_browsers_is_refused(site: Site) -> None:
    victim, attacker = requests.Session(), requests.Session()
    _, victims = start_flow(site, victim)
    _, attackers = start_flow(site, attacker)
    # the attacker's callback (their code, their state) opened in the victim's browser
    forged = victim.get(allow(site, 2, attackers), allow_redirects=False, timeout=10)
    assert forged.status_code == 403
    assert "did not come from this browser" in forged.text
    unchanged(site)
    # and the victim's state cookie was used up by that attempt: start again
    again = victim.get(allow(site, 1, victims), allow_redirects=False, timeout=10)
    assert again.status_code == 400
    unchanged(site)


def test_a_replayed_callback_is_refused(site: Site) -> None:
    browser = requests.Session()
    _, params = start_flow(site, browser)
    state_cookie = browser.cookies.get("dropgz_connect")
    callback = allow(site, 1, params)
    assert browser.get(callback, timeout=10).status_code == 200
    assert site.svc.state.count_accounts() == 1
    # the same URL again in the same browser: the state cookie was used up
    replay = browser.get(callback, timeout=10)
    assert replay.status_code == 400 and "not valid any more" in replay.text
    # even with the old state cookie put back, Dropbox refuses the used code
    thief = requests.Session()
    thief.cookies.set("dropgz_connect", state_cookie, path="/connect")
    stolen = thief.get(callback, timeout=10)
    assert stolen.status_code == 400 and "already used" in stolen.text
    assert "dropgz_accounts" not in stolen.cookies
    assert site.svc.state.count_accounts() == 1


def test_an_expired_or_forged_state_cookie_is_refused(site: Site,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    browser = requests.Session()
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 3600)
    _, params = start_flow(site, browser)  # its cookie was signed an hour ago
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    expired = browser.get(allow(site, 1, params), timeout=10)
    assert expired.status_code == 400 and "expired" in expired.text
    forged = requests.Session()
    _, params = start_flow(site, forged)
    forged.cookies.clear()
    forged.cookies.set("dropgz_connect", "eyJjc3JmIjoieCJ9.forged.signature", path="/connect")
    assert forged.get(allow(site, 1, params), timeout=10).status_code == 400
    unchanged(site)


def test_a_callback_without_the_parameters_is_400(site: Site) -> None:
    browser = requests.Session()
    start_flow(site, browser)
    answer = browser.get(site.url + "/connect/callback?state=abc", timeout=10)
    assert answer.status_code == 400
    unchanged(site)


def test_the_account_page_is_only_for_the_browser_that_connected(site: Site) -> None:
    browser = requests.Session()
    assert site.connect(1, browser=browser).status_code == 200
    page = browser.get(f"{site.url}/accounts/{site.account_id(1)}", timeout=10)
    assert page.status_code == 200
    assert site.emulator.account(1).email in page.text and "Disconnect" in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    stranger = requests.get(f"{site.url}/accounts/{site.account_id(1)}", timeout=10)
    assert stranger.status_code == 403 and site.emulator.account(1).email not in stranger.text
    listing = browser.get(f"{site.url}/connect", timeout=10)
    assert site.emulator.account(1).display_name in listing.text


def test_disconnect_needs_the_form_token_then_revokes_and_forgets(site: Site) -> None:
    browser = requests.Session()
    site.connect(1, browser=browser)
    site.connect(2, browser=browser)
    account = site.account_id(1)
    first_grant = site.svc.state.refresh_token(account)
    url = f"{site.url}/accounts/{account}/disconnect"
    assert browser.post(url, timeout=10).status_code == 403  # no token
    assert browser.post(url, data={"csrf_token": "forged"}, timeout=10).status_code == 403
    other = requests.Session()  # a token from another browser's session is no use either
    site.connect(1, browser=other)
    other_page = other.get(f"{site.url}/accounts/{account}", timeout=10).text
    other_token = other_page.split('name="csrf_token" value="')[1].split('"')[0]
    assert browser.post(url, data={"csrf_token": other_token}, timeout=10).status_code == 403
    assert site.svc.state.get(account) is not None
    # (connecting again replaced the first grant, and revoked it at Dropbox)
    with pytest.raises(InvalidGrant):
        refresh_access_token(site.svc.settings.dropbox, first_grant, site.svc.credentials.session)
    refresh = site.svc.state.refresh_token(account)

    page = browser.get(f"{site.url}/accounts/{account}", timeout=10).text
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    done = browser.post(url, data={"csrf_token": token}, timeout=10)
    assert done.status_code == 200 and "Dropbox confirmed" in done.text
    assert site.svc.state.get(account) is None
    assert site.svc.state.get(site.account_id(2)).status == "watching"  # the other stays
    with pytest.raises(InvalidGrant):  # the grant is revoked at Dropbox
        refresh_access_token(site.svc.settings.dropbox, refresh, site.svc.credentials.session)
    assert browser.get(f"{site.url}/accounts/{account}", timeout=10).status_code == 403


def test_reconnecting_resumes_where_it_stopped(site: Site) -> None:
    assert site.connect(1).status_code == 200
    account = site.account_id(1)
    cursor = site.svc.state.get(account).cursor
    site.emulator.unlink(account)  # the user removes the app in their Dropbox settings
    site.svc.credentials.forget(account)
    with pytest.raises(Exception, match="needs reconnect"):
        site.svc.credentials.access_token(account)
    record = site.svc.state.get(account)
    assert record.status == "needs_reconnect"
    again = site.connect(1)
    assert again.status_code == 200 and "resumes" in again.text
    record = site.svc.state.get(account)
    assert (record.status, record.cursor) == ("watching", cursor)


def test_pages_are_off_without_a_redirect_uri(tmp_path: Path, emulator: Any) -> None:
    from dropgz.core.config import load_settings
    from dropgz.web.app import create_app

    settings = load_settings(env={"DROPGZ_DROPBOX_TOKEN": emulator.token,
                                  "DROPGZ_DROPBOX_SECRET": emulator.app_secret,
                                  "DROPGZ_SERVICE_DATA_DIR": str(tmp_path / "d")})
    client = create_app(settings).test_client()
    for path in ("/connect", "/connect/start", "/connect/callback", "/accounts/dbid:x"):
        assert client.get(path).status_code == 404, path


def test_the_driver_reports_a_refused_step(site: Site) -> None:
    from dropgz.ops.connect_driver import ConnectFailed

    with pytest.raises(ConnectFailed, match="not offered"):
        connect_over_http(site.url, "dbid:AAnotAnEmulatedUser000000000000000000")
