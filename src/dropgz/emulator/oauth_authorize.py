"""``/oauth2/authorize``: the page where a user lets the app into their Dropbox.

``GET`` with Dropbox's parameters (https://www.dropbox.com/developers/documentation/http/documentation#oauth2-authorize:
client_id, response_type=code, redirect_uri, state, token_access_type, code_challenge +
code_challenge_method, scope) answers the consent page: the app's name, a choice among the
emulated accounts, "Allow" and "Cancel" (a POST form back to this path). "Allow" redirects
(302) to ``redirect_uri`` with ``code`` and ``state``; "Cancel" with ``error=access_denied``.
Without a ``redirect_uri`` the code is shown on a page instead, as Dropbox does.

An unknown ``client_id``, an unregistered ``redirect_uri`` or any other bad parameter gets a
400 error page, never a redirect (a redirect to an unchecked URI would be an open redirector).
The form's parameters are signed when the page is made, so the POST cannot alter them.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from dataclasses import dataclass, fields
from importlib import resources
from string import Template
from urllib.parse import urlencode

from dropgz.emulator.accounts import Profile
from dropgz.emulator.config import APP_SCOPES, RuntimeSettings
from dropgz.emulator.oauth_codes import AuthCodes

# ``state`` is "up to 500 bytes of arbitrary data" (authorize documentation above).
MAX_STATE_BYTES = 500
TOKEN_ACCESS_TYPES = ("online", "offline", "legacy")
CHALLENGE_METHODS = ("S256", "plain")
# RFC 7636: a code challenge (and verifier) is 43 to 128 characters.
CHALLENGE_LENGTHS = range(43, 129)
DENIED_DESCRIPTION = "The user chose not to give your app access to their Dropbox account."
HTML = "text/html; charset=utf-8"

Answer = tuple[int, dict[str, str], bytes]


class AuthorizeError(Exception):
    """A request the page refuses: shown as a 400 error page."""


@dataclass(frozen=True)
class AuthorizeRequest:
    client_id: str
    response_type: str
    redirect_uri: str | None
    state: str | None
    token_access_type: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    scope: str | None

    @property
    def params(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


def _template(name: str) -> Template:
    return Template((resources.files("dropgz.emulator") / "templates" / name)
                    .read_text(encoding="utf-8"))


class Authorizer:
    """Serves the consent page and turns the user's decision into a redirect and a code."""

    def __init__(self, *, app_key: str, app_name: str, settings: RuntimeSettings,
                 profiles: list[Profile], codes: AuthCodes) -> None:
        self._app_key = app_key
        self._app_name = app_name
        self._settings = settings
        self._profiles = {profile.account_id: profile for profile in profiles}
        self._codes = codes
        self._form_key = secrets.token_bytes(32)
        self._consent = _template("consent.html")
        self._message = _template("message.html")

    def page(self, query: dict[str, str]) -> Answer:
        """``GET /oauth2/authorize``."""
        try:
            request = self._parse(query)
        except AuthorizeError as exc:
            return self._error(str(exc))
        return 200, _page_headers(), self._consent_page(request)

    def decide(self, form: dict[str, str]) -> Answer:
        """``POST /oauth2/authorize``: the consent form's Allow or Cancel."""
        try:
            request = self._parse(form)
            if not hmac.compare_digest(form.get("form_signature", ""), self._sign(request)):
                raise AuthorizeError("This authorization form is not valid any more; "
                                     "start again from the app.")
            decision = form.get("decision")
            if decision not in ("allow", "cancel"):
                raise AuthorizeError("Choose Allow or Cancel.")
            profile = self._profiles.get(form.get("account_id", ""))
            if decision == "allow" and profile is None:
                raise AuthorizeError("Choose one of the accounts.")
        except AuthorizeError as exc:
            return self._error(str(exc))
        if decision == "cancel":
            return self._finish(request, {"error": "access_denied",
                                          "error_description": DENIED_DESCRIPTION})
        assert profile is not None
        code = self._codes.issue(
            account_id=profile.account_id, redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            # RFC 7636: without a method the challenge is "plain".
            code_challenge_method=(request.code_challenge_method or "plain")
            if request.code_challenge else None,
            scope=request.scope or " ".join(APP_SCOPES),
            offline=request.token_access_type == "offline")  # noqa: S105 (not a secret)
        return self._finish(request, {"code": code})

    # ----------------------------------------------------------------- checks

    def _parse(self, query: dict[str, str]) -> AuthorizeRequest:
        request = AuthorizeRequest(**{f.name: query.get(f.name) or None
                                      for f in fields(AuthorizeRequest)})
        if request.client_id is None or not hmac.compare_digest(request.client_id.encode(),
                                                                self._app_key.encode()):
            raise AuthorizeError(f"Invalid client_id: {request.client_id or '(missing)'}")
        if (request.redirect_uri is not None
                and request.redirect_uri not in self._settings.redirect_uris):
            raise AuthorizeError("Invalid redirect_uri. It must exactly match one of the "
                                 "redirect URIs you've pre-configured for your app "
                                 "(including the path).")
        if request.response_type != "code":
            raise AuthorizeError(f"response_type must be 'code' (the emulator has no implicit "
                                 f"grant), got {request.response_type!r}")
        if request.state is not None and len(request.state.encode()) > MAX_STATE_BYTES:
            raise AuthorizeError(f"state is longer than {MAX_STATE_BYTES} bytes")
        if request.token_access_type not in (None, *TOKEN_ACCESS_TYPES):
            raise AuthorizeError(f"token_access_type must be one of "
                                 f"{', '.join(TOKEN_ACCESS_TYPES)}")
        self._check_pkce(request)
        unknown = [s for s in (request.scope or "").split() if s not in APP_SCOPES]
        if unknown:
            raise AuthorizeError(f"Invalid scope(s): {' '.join(unknown)}. The app has "
                                 f"{' '.join(APP_SCOPES)}.")
        return request

    @staticmethod
    def _check_pkce(request: AuthorizeRequest) -> None:
        if request.code_challenge is None:
            if request.code_challenge_method is not None:
                raise AuthorizeError("code_challenge_method given without code_challenge")
            return
        if (request.code_challenge_method or "plain") not in CHALLENGE_METHODS:
            raise AuthorizeError(f"code_challenge_method must be one of "
                                 f"{', '.join(CHALLENGE_METHODS)}")
        if len(request.code_challenge) not in CHALLENGE_LENGTHS:
            raise AuthorizeError("code_challenge must be 43 to 128 characters")

    def _sign(self, request: AuthorizeRequest) -> str:
        canonical = urlencode(sorted(request.params.items()))
        return hmac.new(self._form_key, canonical.encode(), hashlib.sha256).hexdigest()

    # ---------------------------------------------------------------- answers

    def _finish(self, request: AuthorizeRequest, result: dict[str, str]) -> Answer:
        params = {**result, **({"state": request.state} if request.state is not None else {})}
        if request.redirect_uri is not None:
            separator = "&" if "?" in request.redirect_uri else "?"
            location = request.redirect_uri + separator + urlencode(params)
            return 302, {"Location": location, "Cache-Control": "no-store"}, b""
        if "code" in result:
            return 200, _page_headers(), self._message_page(
                "Enter this code into " + self._app_name,
                "Copy this code to the app to finish connecting your Dropbox:",
                f'  <p><code class="auth-code">{html.escape(result["code"])}</code></p>')
        return 200, _page_headers(), self._message_page("Access denied", DENIED_DESCRIPTION)

    def _error(self, message: str) -> Answer:
        return 400, _page_headers(), self._message_page("Error (400)", message)

    def _message_page(self, title: str, message: str, extra: str = "") -> bytes:
        return self._message.substitute(title=html.escape(title), message=html.escape(message),
                                        extra=extra).encode("utf-8")

    def _consent_page(self, request: AuthorizeRequest) -> bytes:
        hidden = {**request.params, "form_signature": self._sign(request)}
        hidden_html = "\n".join(
            f'    <input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
            for name, value in hidden.items())
        accounts_html = "\n".join(
            f'      <label class="account"><input type="radio" name="account_id" '
            f'value="{html.escape(p.account_id)}"{" checked" if index == 0 else ""}> '
            f'<span class="name">{html.escape(p.display_name)}</span> '
            f'<span class="email">{html.escape(p.email)}</span></label>'
            for index, p in enumerate(self._profiles.values()))
        scopes_html = "\n".join(f"      <li>{html.escape(scope)}</li>"
                                for scope in (request.scope or " ".join(APP_SCOPES)).split())
        return self._consent.substitute(app_name=html.escape(self._app_name), hidden=hidden_html,
                                        accounts=accounts_html,
                                        scopes=scopes_html).encode("utf-8")


def _page_headers() -> dict[str, str]:
    # The consent page must never be framed (clickjacking) nor cached. (No CSP form-action:
    # browsers apply it to the redirect after the POST, which goes to the app's origin.)
    return {"Content-Type": HTML, "Cache-Control": "no-store", "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                       "frame-ancestors 'none'"}
