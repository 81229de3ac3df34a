"""The HTTP wire format itself, checked with plain requests (what the SDK relies on)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from dropbox.exceptions import BadInputError

from tests.fixtures.emulator import EmulatorProcess


@pytest.fixture
def api(http_server: EmulatorProcess) -> Iterator[tuple[requests.Session, str]]:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {http_server.token}"
        yield session, http_server.url + "/2/"


@pytest.mark.parametrize(("route", "body"), [
    ("files/list_folder", "{not json"),
    ("files/list_folder", json.dumps({"path": 5})),
    ("files/list_folder", json.dumps({"path": "", "limit": 0})),
    ("files/list_folder", json.dumps({"path": "", "limit": 2001})),
    ("files/list_folder", json.dumps({"path": "", "unknown_field": True})),
    ("files/list_folder", json.dumps({"path": "/"})),
    ("files/get_metadata", json.dumps({})),
    ("files/no_such_route", "{}"),
])
def test_bad_arguments_are_400_text(api: tuple[requests.Session, str], route: str,
                                    body: str) -> None:
    session, base = api
    response = session.post(base + route, data=body,
                            headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text.startswith(f'Error in call to API function "{route}"')


def test_the_sdk_reports_400_as_bad_input(http_server: EmulatorProcess) -> None:
    with pytest.raises(BadInputError) as caught:
        http_server.client().files_list_folder("/")
    assert "empty string" in caught.value.message


def test_content_routes_need_their_argument_header(api: tuple[requests.Session, str]) -> None:
    session, base = api
    missing = session.post(base + "files/download", timeout=10)
    assert missing.status_code == 400 and "Dropbox-API-Arg" in missing.text
    wrong_type = session.post(base + "files/upload", data=b"x", timeout=10, headers={
        "Dropbox-API-Arg": json.dumps({"path": "/wire/x.txt"}),
        "Content-Type": "application/x-www-form-urlencoded"})
    assert wrong_type.status_code == 400 and "Content-Type" in wrong_type.text


def test_route_error_is_409_json_with_summary(api: tuple[requests.Session, str]) -> None:
    session, base = api
    response = session.post(base + "files/get_metadata", json={"path": "/wire/missing"},
                            timeout=10)
    assert response.status_code == 409
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["error_summary"].startswith("path/not_found/")
    assert body["error"] == {".tag": "path", "path": {".tag": "not_found"}}


def test_upload_and_download_headers(api: tuple[requests.Session, str]) -> None:
    session, base = api
    uploaded = session.post(base + "files/upload", data=b"wire bytes", timeout=10, headers={
        "Dropbox-API-Arg": json.dumps({"path": "/wire/h.txt", "mode": "overwrite"}),
        "Content-Type": "application/octet-stream"})
    assert uploaded.status_code == 200
    assert uploaded.headers["Content-Type"] == "application/json"
    assert uploaded.json()["size"] == 10
    downloaded = session.post(base + "files/download", timeout=10,
                              headers={"Dropbox-API-Arg": json.dumps({"path": "/wire/h.txt"})})
    assert downloaded.content == b"wire bytes"
    result = json.loads(downloaded.headers["Dropbox-API-Result"])
    assert result["path_display"] == "/wire/h.txt" and result["size"] == 10
    assert downloaded.headers["X-Dropbox-Request-Id"]


def test_chunked_upload_body(api: tuple[requests.Session, str]) -> None:
    session, base = api
    pieces = [b"a" * 70000, b"b" * 5, b"c" * 300000]
    response = session.post(base + "files/upload", data=iter(pieces), timeout=10, headers={
        "Dropbox-API-Arg": json.dumps({"path": "/wire/chunked.bin", "mode": "overwrite"}),
        "Content-Type": "application/octet-stream"})
    assert response.status_code == 200, response.text
    assert response.json()["size"] == sum(map(len, pieces))
    downloaded = session.post(base + "files/download", timeout=10, headers={
        "Dropbox-API-Arg": json.dumps({"path": "/wire/chunked.bin"})})
    assert downloaded.content == b"".join(pieces)


def test_void_argument_accepts_null_or_empty(api: tuple[requests.Session, str]) -> None:
    session, base = api
    for body in ("null", ""):
        response = session.post(base + "users/get_current_account", data=body, timeout=10,
                                headers={"Content-Type": "application/json"})
        assert response.status_code == 200, (body, response.text)


def test_admin_routes_need_the_token(http_server: EmulatorProcess) -> None:
    anonymous = requests.get(f"{http_server.url}/_emulator/stats", timeout=10)
    assert anonymous.status_code == 401
    bad = requests.post(f"{http_server.url}/_emulator/config", json={"fail_rate": 7},
                        headers={"Authorization": f"Bearer {http_server.token}"}, timeout=10)
    assert bad.status_code == 400 and "fail_rate" in bad.text
