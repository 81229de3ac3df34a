"""``/accounts/<id>``: one connected account's page, with its Disconnect button.

Only the browser that connected the account sees it (the account is in that browser's signed
cookie; see :mod:`dropgz.web.cookies`); anyone else gets 403 and no detail. Disconnect is
``POST /accounts/<id>/disconnect`` carrying a CSRF token bound to the browser's session and
to this action: it revokes the grant at Dropbox and forgets the account
(:func:`dropgz.web.grants.disconnect`).
"""

from __future__ import annotations

from flask import Blueprint, Response, make_response, request

from dropgz.web.cookies import Browser, CookieRefused
from dropgz.web.grants import disconnect
from dropgz.web.pages import page, pages_enabled, problem
from dropgz.web.services import services

bp = Blueprint("account_page", __name__, url_prefix="/accounts")
bp.before_request(pages_enabled)


def _action(account: str) -> str:
    return f"disconnect {account}"


def _mine(account: str) -> Browser | Response:
    browser = services().cookies.browser(request)
    if account not in browser.accounts:
        return problem(403, "This is not your account page",
                       "Open it from the browser you connected with, or connect again.")
    return browser


@bp.get("/<account>")
def show(account: str) -> Response:
    browser = _mine(account)
    if isinstance(browser, Response):
        return browser
    svc = services()
    record = svc.state.get(account)
    if record is None:
        return problem(404, "This account is not connected",
                       "It was disconnected. You can connect it again.")
    return page("account.html", record=record,
                csrf_token=svc.cookies.form_token(browser, _action(account)))


@bp.post("/<account>/disconnect")
def disconnect_view(account: str) -> Response:
    browser = _mine(account)
    if isinstance(browser, Response):
        return browser
    svc = services()
    try:
        svc.cookies.check_form_token(browser, _action(account), request.form.get("csrf_token"))
    except CookieRefused:
        return problem(403, "This form is not valid any more",
                       "Reload your account page and press Disconnect again.")
    record = svc.state.get(account)
    revoked = disconnect(svc, account) if record is not None else True
    browser.accounts = [a for a in browser.accounts if a != account]
    response = make_response(page("disconnected.html", record=record, revoked=revoked,
                                  account=account))
    svc.cookies.set_browser(response, browser)
    return response
