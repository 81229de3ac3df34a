"""Security properties: constant-time signature checks, no debug mode in any shipped entry
point, request size limits over a real socket, secrets out of reprs, and an emulator that
keeps every path inside its root."""

from __future__ import annotations

import ast
import hashlib
import hmac
import importlib
import re
import sys
import time
from pathlib import Path
from typing import Any

import dropbox
import pytest
import requests

from dropgz.core.config import load_settings
from dropgz.core.secret import Secret
from dropgz.pushqueue.local import LocalPushQueue
from dropgz.web.app import MAX_REQUEST_BYTES, create_app
from tests.reliability.harness import Pipeline, World, check_invariants, notify_body

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [*sorted((REPO / "src" / "dropgz").rglob("*.py")), REPO / "main.py"]
_SENSITIVE = ("signature", "hmac", "secret", "token")
_HARMLESS_CALLS = ("bool", "len", "isinstance", "type")


def _names(node: ast.AST) -> set[str]:
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id.lower())
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr.lower())
        elif isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute):
            found.add(sub.func.attr.lower())
    return found


def test_no_secret_is_compared_with_equals() -> None:
    """Signatures and secrets compared in constant time only (no == / != in shipped code)"""
    offenders = []
    for path in SHIPPED:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            if not any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
                continue
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) or (
                    isinstance(o, ast.Call) and isinstance(o.func, ast.Name)
                    and o.func.id in _HARMLESS_CALLS) for o in operands):
                continue  # a literal, a truth value or a length leaks no secret's bytes
            names = set().union(*(_names(o) for o in operands))
            if any(word in name for name in names for word in _SENSITIVE):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert not offenders, "\n".join(offenders)


def test_signature_checks_go_through_compare_digest(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    """Webhook and push-queue signature checks call hmac.compare_digest"""
    from dropgz.pushqueue import local
    from dropgz.web import webhook

    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)
    monkeypatch.setattr(hmac, "compare_digest", recording)
    body = b'{"list_folder": {"accounts": []}}'
    good = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert webhook.signature_ok("k3y", body, good)
    assert not webhook.signature_ok("k3y", body, "0" * 64)
    queue = LocalPushQueue(tmp_path / "pq.sqlite3", Secret("task-k3y"), reconcile_seconds=None)
    app = create_app(load_settings(env={"DROPGZ_DROPBOX_TOKEN": "t0ken",
                                        "DROPGZ_DROPBOX_SECRET": "k3y",
                                        "DROPGZ_SERVICE_DATA_DIR": str(tmp_path)}),
                     push_queue=queue)
    from flask import request

    stamp = f"{time.time():.3f}"
    with app.test_request_context("/tasks/delta", method="POST", data=b"{}",
                                  headers={local.NAME_HEADER: "n",
                                           local.TIMESTAMP_HEADER: stamp,
                                           local.SIGNATURE_HEADER: "0" * 64}):
        assert not queue.verify_origin(request)
    assert len(calls) == 3


@pytest.mark.parametrize("flask_debug", ["0", "1"])
def test_debug_is_off_in_every_entry_point(flask_debug: str, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    """Flask debug off in create_app and App Engine's main.py, even with FLASK_DEBUG=1"""
    monkeypatch.setenv("FLASK_DEBUG", flask_debug)
    env = {"DROPGZ_DROPBOX_TOKEN": "t0ken", "DROPGZ_DROPBOX_SECRET": "k3y",
           "DROPGZ_SERVICE_DATA_DIR": str(tmp_path)}
    app = create_app(load_settings(env=env), push_queue=LocalPushQueue(
        tmp_path / "pq.sqlite3", Secret("x" * 8), reconcile_seconds=None))
    assert app.debug is False and app.config["DEBUG"] is False
    assert app.config["MAX_CONTENT_LENGTH"] == MAX_REQUEST_BYTES
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DROPGZ_SERVICE_PUSH_QUEUE", "local")
    monkeypatch.syspath_prepend(str(REPO))
    import google.appengine.api as gae_api

    wrapped: list[Any] = []
    real_wrap = gae_api.wrap_wsgi_app
    monkeypatch.setattr(gae_api, "wrap_wsgi_app",
                        lambda app, **kw: wrapped.append(app) or real_wrap(app, **kw))
    sys.modules.pop("main", None)
    main = importlib.import_module("main")
    assert callable(main.app)
    [flask_app] = wrapped
    assert flask_app.debug is False and flask_app.config["DEBUG"] is False
    sources = "\n".join(p.read_text() for p in SHIPPED)
    # nothing starts Flask's own (debugger-capable) server or turns debug on
    assert not re.search(r"\bapp\.run\(|debug\s*=\s*True|DEBUG\s*=\s*True", sources)


def test_request_size_limits_over_http(pipeline: tuple[Any, Pipeline], world: World) -> None:
    """Request size limits on the real server: 413 for big and for chunked bodies"""
    emulator, pipe = pipeline
    world.put("/kept.txt", b"kept\n", eligible=False)
    pipe.start_web()
    big = b"x" * (MAX_REQUEST_BYTES + 1)
    assert requests.post(pipe.base_url + "/webhook", data=big, timeout=10).status_code == 413

    def chunks() -> Any:
        for _ in range(64):
            yield b"y" * 16384  # 1 MiB, no Content-Length
    chunked = requests.post(pipe.base_url + "/webhook", data=chunks(), timeout=10)
    assert chunked.status_code in (400, 403, 413), chunked.status_code
    assert "Traceback" not in chunked.text
    body = notify_body(emulator.account_id)
    sig = hmac.new(emulator.app_secret.encode(), body, hashlib.sha256).hexdigest()
    assert requests.post(pipe.base_url + "/webhook", data=body, timeout=10,
                         headers={"X-Dropbox-Signature": sig}).status_code == 200
    check_invariants(world, None)


def test_reprs_hold_no_secret(tmp_path: Path, moto_server: str) -> None:
    """Settings, Secret, queues and services: reprs and str() never show a secret"""
    from dropgz.queues import open_work_queue
    from tests.fixtures.moto import moto_env

    env = moto_env(moto_server, tmp_path, DROPGZ_DROPBOX_TOKEN="tok-AAAA1111",
                   DROPGZ_DROPBOX_SECRET="app-BBBB2222",
                   DROPGZ_SERVICE_TASK_SECRET="task-CCCC3333")
    settings = load_settings(env=env)
    from dropgz.queues.sqs import ensure_queues
    ensure_queues(settings)
    queue = open_work_queue(settings)
    app = create_app(settings, push_queue=LocalPushQueue.from_settings(settings,
                                                                       reconcile_seconds=None))
    texts = [repr(settings), str(settings), repr(queue), repr(app.extensions["dropgz"]),
             repr(settings.dropbox), repr(settings.aws), repr(settings.service)]
    queue.close()
    for value in ("tok-AAAA1111", "app-BBBB2222", "task-CCCC3333",
                  env["DROPGZ_AWS_AWS_SECRET_ACCESS_KEY"]):
        assert all(value not in text for text in texts), value


@pytest.mark.parametrize("path", ["/../escape.txt", "/a/../../escape.txt", "/./escape.txt",
                                  "/a//escape.txt", "/nul\x00escape.txt",
                                  "/.dropgz-emulator/escape.txt", "relative/escape.txt"])
def test_emulator_refuses_paths_escaping_its_root(emulator: Any, path: str) -> None:
    """Emulator refuses paths that escape its root (or reach its own state)"""
    import json

    before = set(emulator.root.parent.rglob("*"))
    for route in ("files/upload", "files/download"):
        response = requests.post(f"{emulator.url}/2/{route}", data=b"escape attempt", timeout=10,
                                 headers={"Authorization": f"Bearer {emulator.token}",
                                          "Content-Type": "application/octet-stream",
                                          "Dropbox-API-Arg": json.dumps({"path": path})})
        assert response.status_code in (400, 409), (route, response.status_code)
        assert "malformed_path" in response.text or response.status_code == 400, response.text
    after = set(emulator.root.parent.rglob("*"))
    assert not [p for p in after - before if "escape" in p.name], after - before
    with pytest.raises((dropbox.exceptions.ApiError, dropbox.exceptions.BadInputError)):
        emulator.client().files_list_folder("/..")
