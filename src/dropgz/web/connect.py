"""``/connect``: any Dropbox user lets dropgz compress their new files.

``GET /connect`` shows what dropgz does and a "Connect your Dropbox" button.
``GET /connect/start`` starts the SDK's :class:`~dropbox.oauth.DropboxOAuth2Flow` (offline
access: a refresh token) and sends the browser to Dropbox's consent page; the flow's CSRF
token goes into a signed, HttpOnly, SameSite=Lax cookie. The redirect URI is
``[Dropbox] redirect_uri``, never taken from the request.
``GET /connect/callback`` is where Dropbox sends the user back: the flow checks the state
against the cookie and exchanges the code; the account is stored (:mod:`dropgz.web.grants`)
and a page says what happens next. A callback that was denied, replayed, expired or forged
gets a 4xx page and changes nothing. The state cookie is single-use.
"""

from __future__ import annotations

import logging

import requests
from dropbox.oauth import (
    BadRequestException,
    BadStateException,
    CsrfException,
    NotApprovedException,
    ProviderException,
)
from flask import Blueprint, Response, make_response, redirect, request

from dropgz.core.errors import DropgzError, TransientError
from dropgz.core.logs import fields
from dropgz.core.secret import Secret
from dropgz.dropbox_client.oauth import authorize_url, connect_flow
from dropgz.web.cookies import CookieRefused
from dropgz.web.grants import store_grant
from dropgz.web.pages import page, pages_enabled, problem
from dropgz.web.services import services

log = logging.getLogger(__name__)

bp = Blueprint("connect", __name__, url_prefix="/connect")
bp.before_request(pages_enabled)

# The flow keeps its CSRF token in a dict under this key; we keep the dict in a cookie.
CSRF_KEY = "dropbox-auth-csrf-token"


@bp.get("")
def index() -> Response:
    svc = services()
    browser = svc.cookies.browser(request)
    mine = [r for r in (svc.state.get(a) for a in browser.accounts) if r is not None]
    return page("connect.html", accounts=mine)


@bp.get("/start")
def start() -> Response:
    svc = services()
    store: dict[str, str] = {}
    flow = connect_flow(svc.settings.dropbox, store, CSRF_KEY, svc.credentials.session)
    response = redirect(authorize_url(svc.settings.dropbox, flow), code=302)
    svc.cookies.set_state(response, store[CSRF_KEY])
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/callback")
def callback() -> Response:
    svc = services()
    response = _finish()
    svc.cookies.clear_state(response)  # one use only, whatever happened
    return response


def _finish() -> Response:
    svc = services()
    try:
        csrf = svc.cookies.state(request)
    except CookieRefused as exc:
        log.info("connect callback refused: %s", fields(reason=f"state cookie {exc}"))
        if exc.expired:
            return problem(400, "This connect link has expired",
                           "More than 15 minutes passed since you clicked Connect.")
        return problem(400, "This connect link is not valid any more",
                       "It was already used, or it was not started in this browser.")
    store = {CSRF_KEY: csrf}
    flow = connect_flow(svc.settings.dropbox, store, CSRF_KEY, svc.credentials.session)
    try:
        result = flow.finish(request.args.to_dict())
    except NotApprovedException:
        return problem(403, "You did not connect your Dropbox",
                       "You chose Cancel on Dropbox's page, so dropgz has no access.",
                       cancelled=True)
    except CsrfException:
        log.warning("connect callback refused: %s", fields(reason="state mismatch",
                                                           remote=request.remote_addr))
        return problem(403, "This connect request did not come from this browser",
                       "Its state does not match the one dropgz gave this browser.")
    except (BadRequestException, BadStateException):
        return problem(400, "This is not a valid answer from Dropbox",
                       "Parameters are missing or malformed.")
    except ProviderException as exc:
        return problem(400, "Dropbox reported an error", str(exc)[:200])
    except requests.HTTPError as exc:
        return _exchange_failed(exc)
    except requests.RequestException:
        return problem(502, "Dropbox could not be reached", "Please try again in a minute.")
    if not result.refresh_token:
        return problem(400, "Dropbox gave no offline access",
                       "dropgz needs to work while you are away; please connect again.")
    return _store(result.account_id, Secret(result.access_token), Secret(result.refresh_token))


def _exchange_failed(exc: requests.HTTPError) -> Response:
    status = exc.response.status_code if exc.response is not None else 0
    if 400 <= status < 500:
        log.info("connect callback refused: %s", fields(reason="code refused by Dropbox"))
        return problem(400, "This authorization was already used or has expired",
                       "Dropbox refused to exchange it. Start again.")
    return problem(502, "Dropbox could not be reached", "Please try again in a minute.")


def _store(account: str, access_token: Secret, refresh_token: Secret) -> Response:
    svc = services()
    try:
        connected = store_grant(svc, account, access_token, refresh_token)
    except (TransientError, DropgzError) as exc:
        log.warning("could not finish connecting: %s", fields(account=account, error=str(exc)))
        return problem(502, "Dropbox could not be reached",
                       "Connecting did not finish; nothing was stored. Please try again.")
    browser = svc.cookies.browser(request)
    browser.accounts.append(connected.account)
    response = make_response(page("connected.html", connected=connected,
                                  record=svc.state.get(connected.account)))
    svc.cookies.set_browser(response, browser)
    return response
