"""Connect an account the way a user does, over plain HTTP (the demo and the benchmarks).

A user opens ``/connect``, presses "Connect your Dropbox", picks their account on the Dropbox
consent page (here: the emulator's), presses Allow, and lands back on dropgz's page. This
module plays that user with ``requests``: it follows ``/connect/start`` to the consent page,
submits its form with the chosen account and "allow" (or "cancel"), and follows the redirect
back to the callback carrying the browser's cookies. Nothing is stored any other way.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import requests

TIMEOUT = 20.0


class ConnectFailed(Exception):
    """A step of the flow did not answer as a user's browser would expect."""


class ConsentForm(HTMLParser):
    """The consent page's form: action, hidden fields, account choices, decision buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.hidden: dict[str, str] = {}
        self.accounts: list[str] = []
        self.decisions: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "form":
            self.action = values.get("action")
        elif tag == "input" and values.get("type") == "hidden" and "name" in values:
            self.hidden[values["name"]] = values.get("value", "")
        elif tag == "input" and values.get("type") == "radio":
            self.accounts.append(values.get("value", ""))
        elif tag == "button" and values.get("name") == "decision":
            self.decisions.append(values.get("value", ""))


def connect_over_http(web_url: str, account_id: str, *, decision: str = "allow",
                      session: requests.Session | None = None,
                      verify: str | bool = True) -> requests.Response:
    """Run the connect flow for ``account_id``; returns dropgz's answer to the callback
    (200 "connected" page, or the 4xx page). ``session`` keeps the browser's cookies."""
    browser = session or requests.Session()
    browser.trust_env = False
    start = browser.get(web_url.rstrip("/") + "/connect/start", allow_redirects=False,
                        timeout=TIMEOUT)
    if start.status_code != 302:
        raise ConnectFailed(f"/connect/start answered {start.status_code}, not a redirect")
    consent_url = start.headers["Location"]
    consent = browser.get(consent_url, allow_redirects=False, timeout=TIMEOUT, verify=verify)
    form = ConsentForm()
    form.feed(consent.text)
    if consent.status_code != 200 or form.action is None:
        raise ConnectFailed(f"the consent page answered {consent.status_code}: "
                            f"{consent.text[:200]}")
    if account_id not in form.accounts or decision not in form.decisions:
        raise ConnectFailed(f"{account_id} / {decision} not offered on the consent page")
    answer = browser.post(urljoin(consent_url, form.action),
                          data={**form.hidden, "account_id": account_id, "decision": decision},
                          allow_redirects=False, timeout=TIMEOUT, verify=verify)
    if answer.status_code != 302:
        raise ConnectFailed(f"the consent form answered {answer.status_code}")
    return browser.get(answer.headers["Location"], allow_redirects=False, timeout=TIMEOUT)
