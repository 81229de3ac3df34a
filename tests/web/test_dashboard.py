"""The dashboard without a browser: CSRF on every POST, safe redirects, paged accounts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dropgz.pushqueue.gae import GAEPushQueue
from dropgz.state import PAUSED
from dropgz.state.reports import utcnow
from dropgz.web.app import create_app
from tests.web.conftest import web_settings

PASSWORD = "operator password for tests"


@pytest.fixture
def app(gae_testbed: Any, tmp_path: Path) -> Any:
    settings = web_settings(tmp_path, DROPGZ_SERVICE_OPERATOR_PASSWORD=PASSWORD)
    return create_app(settings, push_queue=GAEPushQueue())


def csrf(client: Any, path: str = "/dashboard/login") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def logged_in(app: Any, next_path: str = "") -> tuple[Any, Any]:
    client = app.test_client()
    answer = client.post("/dashboard/login", data={"csrf_token": csrf(client),
                                                   "password": PASSWORD, "next": next_path})
    return client, answer


def test_login_redirects_only_to_dashboard_pages(app: Any) -> None:
    _, answer = logged_in(app, "/dashboard/workers")
    assert answer.headers["Location"] == "/dashboard/workers"
    _, answer = logged_in(app, "https://evil.example/")
    assert answer.headers["Location"] == "/dashboard/"
    _, answer = logged_in(app, "//evil.example/dashboard")
    assert answer.headers["Location"] == "/dashboard/"


def test_a_post_without_the_csrf_token_changes_nothing(app: Any) -> None:
    svc = app.extensions["dropgz"]
    svc.state.add_account("dbid:a", watch_start=utcnow())
    client, _ = logged_in(app)
    assert client.post("/dashboard/accounts/pause", data={"account": "dbid:a"}).status_code == 400
    assert client.post("/dashboard/accounts/pause", data={"account": "dbid:a",
                                                          "csrf_token": "forged"}
                       ).status_code == 400
    assert svc.state.get("dbid:a").status == "watching"
    token = csrf(client, "/dashboard/accounts")
    assert client.post("/dashboard/accounts/pause", data={"account": "dbid:a",
                                                          "csrf_token": token}
                       ).status_code == 302
    assert svc.state.get("dbid:a").status == PAUSED
    assert svc.paused_accounts() == ["dbid:a"]


def test_login_itself_needs_the_csrf_token(app: Any) -> None:
    answer = app.test_client().post("/dashboard/login", data={"password": PASSWORD})
    assert answer.status_code == 400


def test_accounts_are_paged(app: Any) -> None:
    svc = app.extensions["dropgz"]
    for n in range(120):
        svc.state.add_account(f"dbid:{n:04d}", watch_start=utcnow())
    client, _ = logged_in(app)
    page = client.get("/dashboard/accounts?page=3").text
    assert page.count("data-account=") == 20
    assert "dbid:0100" in page and "dbid:0099" not in page
    assert "Page 3 of 3" in page


def test_pages_forbid_framing_and_foreign_scripts(app: Any) -> None:
    client, _ = logged_in(app)
    answer = client.get("/dashboard/")
    assert "script-src 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Cache-Control"] == "no-store"


def test_without_a_password_the_dashboard_is_closed(gae_testbed: Any, tmp_path: Path) -> None:
    app = create_app(web_settings(tmp_path), push_queue=GAEPushQueue())
    client = app.test_client()
    assert "operator_password" in client.get("/dashboard/login").text
    answer = client.post("/dashboard/login", data={"csrf_token": csrf(client), "password": ""})
    assert answer.status_code == 401
    assert client.get("/dashboard/").status_code == 302


def test_a_fresh_service_renders_every_page(app: Any) -> None:
    # Nothing compressed yet: no ratio divides by zero bytes read.
    client, _ = logged_in(app)
    for path in ("/dashboard/", "/dashboard/queue", "/dashboard/accounts",
                 "/dashboard/workers", "/dashboard/files", "/dashboard/api/overview"):
        answer = client.get(path)
        assert answer.status_code == 200, path
    assert "–" in client.get("/dashboard/").text
