"""OAuth as Dropbox serves it: /oauth2/authorize (consent page) and the code grant of
/oauth2/token, over real HTTP, and the SDK's DropboxOAuth2Flow completing against it."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import dropbox
import pytest
import requests
from dropbox.oauth import DropboxOAuth2Flow, NotApprovedException

from dropgz.dropbox_client.transport import make_session
from tests.fixtures.emulator import EmulatorProcess, start_emulator

REDIRECT = "http://127.0.0.1:9/dropbox/callback"
OTHER_REDIRECT = "http://127.0.0.1:9/registered/too"
APP_NAME = "dropgz <test>"


@pytest.fixture(scope="module")
def oauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    with start_emulator(tmp_path_factory.mktemp("oauth"), accounts=3, app_name=APP_NAME,
                        redirect_uri=[REDIRECT, OTHER_REDIRECT]) as process:
        yield process


@pytest.fixture
def emulator_settings(oauth: EmulatorProcess) -> Iterator[EmulatorProcess]:
    yield oauth
    oauth.configure(auth_code_ttl=600, redirect_uris=[REDIRECT, OTHER_REDIRECT])


def authorize_params(emulator: EmulatorProcess, **extra: str) -> dict[str, str]:
    return {"client_id": emulator.app_key, "response_type": "code", "redirect_uri": REDIRECT,
            "state": "csrf-" + secrets.token_hex(8), **extra}


def redirected_query(answer: requests.Response) -> dict[str, str]:
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return dict(parse_qsl(urlsplit(location).query))


def exchange(emulator: EmulatorProcess, code: str | None, **form: str | None
             ) -> requests.Response:
    """POST /oauth2/token for ``code``; ``form`` adds, changes or (None) removes fields."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": emulator.app_key, "client_secret": emulator.app_secret, **form}
    return requests.post(f"{emulator.url}/oauth2/token", timeout=10,
                         data={key: value for key, value in data.items() if value is not None})


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.decode().rstrip("=")


# ------------------------------------------------------------------ the page

def test_consent_page_names_the_app_and_offers_every_account(oauth: EmulatorProcess) -> None:
    page = requests.get(f"{oauth.url}/oauth2/authorize", params=authorize_params(oauth),
                        timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "dropgz &lt;test&gt;" in page.text and APP_NAME not in page.text  # escaped
    for account in oauth.accounts:
        assert account.account_id in page.text and account.email in page.text
    assert ">Allow</button>" in page.text and ">Cancel</button>" in page.text
    assert 'method="post"' in page.text


@pytest.mark.parametrize(("change", "complaint"), [
    ({"client_id": "unknownappkey00"}, "Invalid client_id"),
    ({"client_id": ""}, "Invalid client_id"),
    ({"redirect_uri": "http://127.0.0.1:9/not/registered"}, "Invalid redirect_uri"),
    ({"redirect_uri": REDIRECT + "/"}, "Invalid redirect_uri"),
    ({"response_type": "token"}, "response_type"),
    ({"code_challenge": "short", "code_challenge_method": "S256"}, "code_challenge"),
    ({"code_challenge": "x" * 43, "code_challenge_method": "S512"}, "code_challenge_method"),
    ({"token_access_type": "forever"}, "token_access_type"),
    ({"scope": "files.content.read files.everything"}, "files.everything"),
    ({"state": "s" * 501}, "state"),
])
def test_bad_authorize_requests_get_an_error_page_never_a_redirect(
        oauth: EmulatorProcess, change: dict[str, str], complaint: str) -> None:
    params = {**authorize_params(oauth), **change}
    page = requests.get(f"{oauth.url}/oauth2/authorize", params=params, timeout=10,
                        allow_redirects=False)
    assert page.status_code == 400 and "Location" not in page.headers
    assert complaint in page.text and "<form" not in page.text
    # Posting the same parameters as if the user had decided gets the same page.
    posted = requests.post(f"{oauth.url}/oauth2/authorize", timeout=10, allow_redirects=False,
                           data={**params, "decision": "allow",
                                 "account_id": oauth.account_id})
    assert posted.status_code == 400 and "Location" not in posted.headers


def test_a_tampered_form_is_refused(oauth: EmulatorProcess) -> None:
    # The form signs the parameters it was made for: swapping the redirect for another
    # registered one (or dropping the PKCE challenge) is caught.
    page = requests.get(f"{oauth.url}/oauth2/authorize", params=authorize_params(oauth),
                        timeout=10)
    signature = page.text.split('name="form_signature" value="')[1].split('"')[0]
    forged = requests.post(f"{oauth.url}/oauth2/authorize", timeout=10, allow_redirects=False,
                           data={**authorize_params(oauth), "redirect_uri": OTHER_REDIRECT,
                                 "form_signature": signature, "decision": "allow",
                                 "account_id": oauth.account_id})
    assert forged.status_code == 400 and "Location" not in forged.headers


# ------------------------------------------------------- allow, cancel, code

def test_allow_redirects_with_a_code_that_gives_tokens_of_the_chosen_account(
        oauth: EmulatorProcess) -> None:
    chosen = oauth.account(2)
    params = authorize_params(oauth, token_access_type="offline",
                              scope="files.content.read files.metadata.read")
    query = redirected_query(oauth.authorize(params, account_id=chosen.account_id))
    assert query["state"] == params["state"] and query["code"]

    answer = exchange(oauth, query["code"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 14400
    assert body["account_id"] == chosen.account_id and body["uid"].isdigit()
    assert body["scope"] == "files.content.read files.metadata.read"
    assert body["refresh_token"]
    dbx = dropbox.Dropbox(body["access_token"], session=oauth.session())
    assert dbx.users_get_current_account().account_id == chosen.account_id
    refreshing = oauth.refreshing_client(oauth2_refresh_token=body["refresh_token"])
    assert refreshing.users_get_current_account().account_id == chosen.account_id


def test_online_access_has_no_refresh_token_and_basic_auth_works(
        oauth: EmulatorProcess) -> None:
    query = redirected_query(oauth.authorize(authorize_params(oauth),
                                             account_id=oauth.account(3).account_id))
    basic = base64.b64encode(f"{oauth.app_key}:{oauth.app_secret}".encode()).decode()
    answer = requests.post(f"{oauth.url}/oauth2/token", timeout=10,
                           headers={"Authorization": f"Basic {basic}"},
                           data={"grant_type": "authorization_code", "code": query["code"],
                                 "redirect_uri": REDIRECT})
    assert answer.status_code == 200, answer.text
    assert "refresh_token" not in answer.json()
    assert answer.json()["account_id"] == oauth.account(3).account_id


def test_cancel_redirects_with_access_denied(oauth: EmulatorProcess) -> None:
    params = authorize_params(oauth)
    query = redirected_query(oauth.authorize(params, decision="cancel"))
    assert query["error"] == "access_denied" and query["state"] == params["state"]
    assert "code" not in query


def test_a_code_works_once(oauth: EmulatorProcess) -> None:
    query = redirected_query(oauth.authorize(authorize_params(oauth)))
    assert exchange(oauth, query["code"]).status_code == 200
    replayed = exchange(oauth, query["code"])
    assert replayed.status_code == 400
    assert replayed.json() == {"error": "invalid_grant",
                               "error_description": "code doesn't exist or has expired"}


def test_an_expired_code_is_refused(emulator_settings: EmulatorProcess) -> None:
    # A zero lifetime makes the code expired the moment it is issued: no clock to wait for.
    emulator_settings.configure(auth_code_ttl=0)
    query = redirected_query(emulator_settings.authorize(authorize_params(emulator_settings)))
    expired = exchange(emulator_settings, query["code"])
    assert expired.status_code == 400
    assert expired.json()["error"] == "invalid_grant"
    assert expired.json()["error_description"] == "code doesn't exist or has expired"


def test_the_redirect_uri_must_match_the_authorize_one(oauth: EmulatorProcess) -> None:
    query = redirected_query(oauth.authorize(authorize_params(oauth)))
    mismatch = exchange(oauth, query["code"], redirect_uri=OTHER_REDIRECT)
    assert mismatch.status_code == 400
    assert mismatch.json() == {"error": "invalid_grant",
                               "error_description": "redirect_uri mismatch"}
    # The attempt used the code up.
    assert exchange(oauth, query["code"]).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(("form", "error"), [
    ({"client_secret": "wrong-secret"}, "invalid_client"),
    ({"client_id": "unknownappkey00"}, "invalid_client"),
    ({"client_id": None, "client_secret": None}, "invalid_request"),
    ({"client_secret": None}, "invalid_request"),  # neither secret nor PKCE
    ({"grant_type": "password"}, "unsupported_grant_type"),
    ({"code": None}, "invalid_request"),
])
def test_token_endpoint_errors(oauth: EmulatorProcess, form: dict, error: str) -> None:
    query = redirected_query(oauth.authorize(authorize_params(oauth)))
    answer = exchange(oauth, **{"code": query["code"], **form})
    assert answer.status_code == 400 and answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"] == error and answer.json()["error_description"]


def test_pkce_without_a_secret(oauth: EmulatorProcess) -> None:
    verifier, challenge = pkce_pair()
    params = authorize_params(oauth, code_challenge=challenge, code_challenge_method="S256",
                              token_access_type="offline")
    # A wrong verifier is refused (and uses the code up)
    query = redirected_query(oauth.authorize(params))
    wrong = exchange(oauth, query["code"], client_secret=None, code_verifier=verifier + "x")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # A missing one too, even with the app secret
    query = redirected_query(oauth.authorize(params))
    assert exchange(oauth, query["code"]).json()["error"] == "invalid_grant"
    # The right one alone gets tokens; the refresh token then works with the app key alone
    query = redirected_query(oauth.authorize(params, account_id=oauth.account(2).account_id))
    good = exchange(oauth, query["code"], client_secret=None, code_verifier=verifier)
    assert good.status_code == 200, good.text
    dbx = dropbox.Dropbox(oauth2_refresh_token=good.json()["refresh_token"],
                          app_key=oauth.app_key, session=oauth.session())
    assert dbx.users_get_current_account().account_id == oauth.account(2).account_id


def test_without_redirect_uri_the_code_is_shown(oauth: EmulatorProcess) -> None:
    params = authorize_params(oauth)
    del params["redirect_uri"]
    page = oauth.authorize(params)
    assert page.status_code == 200 and "Location" not in page.headers
    code = page.text.split('class="auth-code">')[1].split("<")[0]
    assert exchange(oauth, code, redirect_uri=None).status_code == 200


def test_redirect_uris_registered_at_run_time(emulator_settings: EmulatorProcess) -> None:
    late = "http://127.0.0.1:9/registered/later"
    params = {**authorize_params(emulator_settings), "redirect_uri": late}
    assert emulator_settings.authorize(params).status_code == 400
    emulator_settings.configure(redirect_uris=[REDIRECT, late])
    answer = emulator_settings.authorize(params)
    assert answer.status_code == 302 and answer.headers["Location"].startswith(late + "?")


# -------------------------------------------------------------------- the SDK

def _sdk_flow(emulator: EmulatorProcess, session: dict, **kw: object) -> DropboxOAuth2Flow:
    flow = DropboxOAuth2Flow(emulator.app_key, REDIRECT, session, "dropbox-csrf",
                             token_access_type="offline", **kw)
    # The hosts go to the emulator the way the service's client factory sends them.
    flow.requests_session = make_session(emulator.url, emulator.ca_bundle)
    return flow


def _browser(emulator: EmulatorProcess, authorize_url: str, **kw: str) -> dict[str, str]:
    """What a browser does with the SDK's URL (built for www.dropbox.com): open it on the
    emulator, choose, and land on the redirect URI; returns that landing's query."""
    parts = urlsplit(authorize_url)
    assert parts.path == "/oauth2/authorize"
    return redirected_query(emulator.authorize(dict(parse_qsl(parts.query)), **kw))


@pytest.mark.parametrize("pkce", [False, True], ids=["secret", "pkce"])
def test_sdk_oauth2_flow_completes(oauth: EmulatorProcess, pkce: bool) -> None:
    web_session: dict = {}
    kw = {"use_pkce": True} if pkce else {"consumer_secret": oauth.app_secret}
    flow = _sdk_flow(oauth, web_session, scope=["files.content.read", "account_info.read"],
                     **kw)
    landing = _browser(oauth, flow.start("return-to=/settings"),
                       account_id=oauth.account(3).account_id)
    result = flow.finish(landing)
    assert result.account_id == oauth.account(3).account_id
    assert result.url_state == "return-to=/settings"
    assert result.refresh_token and result.access_token and result.expires_at
    assert result.scope == "files.content.read account_info.read"
    dbx = dropbox.Dropbox(oauth2_refresh_token=result.refresh_token, app_key=oauth.app_key,
                          app_secret=None if pkce else oauth.app_secret,
                          session=oauth.session())
    assert dbx.users_get_current_account().account_id == oauth.account(3).account_id


def test_sdk_flow_cancel_is_not_approved(oauth: EmulatorProcess) -> None:
    flow = _sdk_flow(oauth, {}, consumer_secret=oauth.app_secret)
    landing = _browser(oauth, flow.start(), decision="cancel")
    with pytest.raises(NotApprovedException):
        flow.finish(landing)


def test_sdk_flow_replayed_code_raises_http_error(oauth: EmulatorProcess) -> None:
    session: dict = {}
    flow = _sdk_flow(oauth, session, consumer_secret=oauth.app_secret)
    landing = _browser(oauth, flow.start())
    assert flow.finish(dict(landing)).access_token
    session["dropbox-csrf"] = landing["state"]  # as if the CSRF check had been passed again
    with pytest.raises(requests.HTTPError) as caught:
        flow.finish(landing)
    assert caught.value.response.status_code == 400
    assert caught.value.response.json()["error"] == "invalid_grant"


def test_sdk_flow_over_https(tmp_path: pytest.TempPathFactory) -> None:
    with start_emulator(tmp_path, tls=True, redirect_uri=REDIRECT) as emulator:
        flow = _sdk_flow(emulator, {}, consumer_secret=emulator.app_secret)
        result = flow.finish(_browser(emulator, flow.start()))
        assert result.account_id == emulator.account_id
