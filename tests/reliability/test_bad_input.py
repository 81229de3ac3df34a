"""Hostile and malformed input, against the real processes: ``dropgz web`` over HTTP, work
messages through the queue into ``dropgz worker``, awkward names through the whole pipeline,
broken settings files into every command. Every scenario ends with the invariant checker."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from dropgz.pushqueue.local import (
    NAME_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    load_task_secret,
    sign,
)
from dropgz.web.webhook import SIGNATURE_HEADER as DROPBOX_SIGNATURE
from tests.compression.conftest import text_bytes
from tests.fixtures.peers import wait_for
from tests.reliability.harness import Pipeline, World, check_invariants, clean_env, notify_body


def _signed(secret: str, body: bytes) -> dict[str, str]:
    return {DROPBOX_SIGNATURE: hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def _delta_tasks_queued(pipe: Pipeline) -> int:
    from dropgz.pushqueue.local import LocalPushQueue
    db = LocalPushQueue(pipe.workdir / "data" / "pushqueue.sqlite3", secret=None)  # type: ignore[arg-type]
    import sqlite3
    with sqlite3.connect(db.db_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM tasks WHERE url = '/tasks/delta'").fetchone()[0]


def _reconcile_done(pipe: Pipeline) -> bool:
    import sqlite3
    with sqlite3.connect(pipe.workdir / "data" / "pushqueue.sqlite3") as conn:
        return bool(conn.execute("SELECT COUNT(*) FROM tasks WHERE url = '/tasks/reconcile' "
                                 "AND done_at IS NOT NULL").fetchone()[0])


def test_hostile_webhook_and_task_requests(pipeline: tuple[Any, Pipeline], world: World) -> None:
    """Webhook and /tasks/*: bad signatures, bad bodies, huge body, forged tasks, XSS challenge"""
    emulator, pipe = pipeline
    world.put("/untouched.txt", b"must stay as it is\n" * 10, eligible=False)
    pipe.env["DROPGZ_DROPBOX_ACCOUNT_ID"] = emulator.account_id
    pipe.start_web()
    url, secret = pipe.base_url, emulator.app_secret
    good = notify_body(emulator.account_id)
    # The genuine traffic of the start settles first: the emulator's retried notification of
    # the upload above, and the start-up reconcile (each may queue a delta task).
    wait_for(lambda: emulator.webhooks()["delivered"] >= 1, what="upload's webhook delivered")
    wait_for(lambda: _reconcile_done(pipe), what="start-up reconcile delivered")
    queued_before = _delta_tasks_queued(pipe)
    cases: list[tuple[str, requests.Response, int]] = []

    def post(name: str, body: bytes, headers: dict[str, str], want: int,
             path: str = "/webhook") -> None:
        cases.append((name, requests.post(url + path, data=body, headers=headers, timeout=10),
                      want))

    post("no signature", good, {}, 403)
    post("garbage signature", good, {DROPBOX_SIGNATURE: "zz" * 32}, 403)
    post("empty signature", good, {DROPBOX_SIGNATURE: ""}, 403)
    post("signature of another body", good, _signed(secret, notify_body("dbid:other")), 403)
    post("signature with another key", good, _signed("not-the-app-secret", good), 403)
    post("signed non-JSON", b"<xml/>", _signed(secret, b"<xml/>"), 400)
    for shape in (b"[]", b'{"list_folder": []}', b'{"list_folder": {"accounts": [1, 2]}}',
                  b'{"list_folder": {"accounts": "dbid:x"}}', b'"text"', b"null"):
        post(f"signed wrong shape {shape!r}", shape, _signed(secret, shape), 400)
    huge = b'{"pad": "' + b"x" * (600 * 1024) + b'"}'
    post("huge body (600 KiB)", huge, _signed(secret, huge), 413)
    # forged delta-tier tasks
    task_secret = load_task_secret(pipe.workdir / "data")
    payload = json.dumps({"account": emulator.account_id}).encode()
    for path in ("/tasks/delta", "/tasks/reconcile"):
        post(f"forged {path}: no queue headers", payload, {}, 403, path)
        post(f"forged {path}: App Engine header", payload,
             {"X-AppEngine-QueueName": "delta", "X-AppEngine-TaskName": "t"}, 403, path)
        stamp = f"{time.time():.3f}"
        post(f"forged {path}: wrong signature", payload,
             {NAME_HEADER: "t", TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: "0" * 64}, 403, path)
        old = f"{time.time() - 3600:.3f}"
        post(f"replayed {path}: right signature, an hour old", payload,
             {NAME_HEADER: "t", TIMESTAMP_HEADER: old,
              SIGNATURE_HEADER: sign(task_secret, "POST", path, "t", old, payload)}, 403, path)
        other = json.dumps({"account": "dbid:other"}).encode()
        post(f"signed for another body {path}", other,
             {NAME_HEADER: "t", TIMESTAMP_HEADER: stamp,
              SIGNATURE_HEADER: sign(task_secret, "POST", path, "t", stamp, payload)}, 403, path)
    cases.append(("GET without challenge", requests.get(url + "/webhook", timeout=10), 400))
    script = "<script>alert(1)</script><b>x</b>&amp;"
    challenge = requests.get(url + "/webhook", params={"challenge": script}, timeout=10)
    cases.append(("challenge with HTML/script", challenge, 200))
    wrong = [(name, r.status_code, want) for name, r, want in cases if r.status_code != want]
    assert not wrong, wrong
    assert challenge.text == script
    assert challenge.headers["Content-Type"].startswith("text/plain")
    assert challenge.headers["X-Content-Type-Options"] == "nosniff"
    for name, response, _ in cases:
        assert "Traceback" not in response.text and "<html" not in response.text.lower(), name
        assert secret not in response.text and emulator.token not in response.text, name
    assert pipe.web.poll() is None  # type: ignore[union-attr]
    # nothing refused reached the delta tier; the process still serves a real notification
    assert _delta_tasks_queued(pipe) == queued_before
    ok = requests.post(url + "/webhook", data=good, headers=_signed(secret, good), timeout=10)
    assert ok.status_code == 200
    pipe.start_worker()
    pipe.settle(world, timeout=30)
    check_invariants(world, pipe.queue())


def test_ten_thousand_accounts_in_one_notification(pipeline: tuple[Any, Pipeline],
                                                   world: World) -> None:
    """Webhook naming 10,000 accounts: answered within Dropbox's 10 s, then one task each"""
    emulator, pipe = pipeline
    world.put("/untouched.txt", b"must stay as it is\n", eligible=False)
    pipe.start_web()
    accounts = [f"dbid:AAfake{n:029d}" for n in range(9_999)] + [emulator.account_id]
    body = notify_body(*accounts)
    started = time.monotonic()
    response = requests.post(pipe.base_url + "/webhook", data=body,
                             headers=_signed(emulator.app_secret, body), timeout=30)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert elapsed < 10, f"{elapsed:.1f} s"
    # (queued through fan-out tasks, which the delta tier turns into one task per account)
    wait_for(lambda: _delta_tasks_queued(pipe) >= 10_000, 60, "10,000 delta tasks queued")
    assert pipe.stop(pipe.web) == 0  # stops cleanly with thousands of tasks pending
    check_invariants(world, pipe.queue())


POISON = [
    "not json at all",
    '{"rev": "0123456789abcdef"}',  # no path
    '{"path": "relative/file.txt"}',
    json.dumps({"path": "/nul\u0000byte.txt"}),
    '{"path": "/docs/../../etc/passwd"}',
    json.dumps({"path": "/" + "p" * 100 * 1024}),  # a 100 KiB path
    '{"path": "/real.txt", "account": "dbid:AAsomebodyElse0000000000000000000000"}',
    '{"path": "/real.txt", "size": "big"}',
    "[1, 2, 3]",
]


def test_poison_work_messages_are_dead_lettered(pipeline: tuple[Any, Pipeline],
                                                world: World) -> None:
    """Work messages: not JSON, no path, relative, NUL, '..', 100 KiB path, unknown account"""
    _, pipe = pipeline
    world.put("/real.txt", b"a real file\n" * 100, eligible=False)
    pipe.queue().send(POISON)
    worker = pipe.start_worker("--burst")
    assert worker.wait(60) == 0, pipe.logs()[-3000:]
    check_invariants(world, pipe.queue(), poisoned=POISON)
    reasons = [d.reason or "" for d in pipe.queue().dead_letters(100)]
    assert all(r.strip() for r in reasons), reasons
    assert any("unknown account" in r for r in reasons), reasons
    assert any("'..'" in r for r in reasons), reasons


def test_awkward_names_through_the_pipeline(pipeline: tuple[Any, Pipeline],
                                            world: World) -> None:
    """Names: 255 chars, unicode, spaces, '#', '%', leading dots; folder x.txt; user x.txt.gz"""
    _, pipe = pipeline
    pipe.env["DROPGZ_COMPRESSION_EXCLUDE"] = "*.skip"
    world.put("/before-start.txt", b"existed before\n", eligible=False)
    pipe.start_web()
    pipe.start_worker()
    long_name = "L" * 251 + ".txt"  # 255 characters: its .gz would have 258
    fits = "F" * 248 + ".txt"  # 252: its .gz has exactly 255
    for path in (f"/{long_name}", f"/{fits}", "/ünï cödé 文件.txt", "/with space.txt",
                 "/hash#tag.txt", "/per%20cent%.txt", "/.hidden", "/..dots.txt",
                 "/folder.txt/inside.txt", "/emoji 🎉.log", "/ends with dot."):
        world.put(path, text_bytes(2_000, seed=len(path)),
                  eligible=path != f"/{long_name}")
    world.folders.add("/folder.txt")
    users_gz = gzip.compress(b"the user's own archive", mtime=0)  # no name in its header
    world.put("/x.txt.gz", users_gz, eligible=False)
    world.put("/x.txt", b"x" * 500, eligible=False)  # its .gz name is taken by the user
    world.put("/excluded.skip", b"never compress\n", eligible=False)
    pipe.settle(world, timeout=60)
    # the skipped ones are really skipped, not late: both decisions were logged
    decisions = ("name too long for .gz (258 characters, limit 255)",
                 "was not made by dropgz from x.txt; left alone")
    wait_for(lambda: all(d in pipe.logs() for d in decisions), 30, "both skips decided",
             diagnose=lambda: pipe.logs()[-4000:])
    pipe.settle(world, timeout=30)
    check_invariants(world, pipe.queue())


def _run_dropgz(tmp_path: Path, *args: str, env: dict[str, str] | None = None
                ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dropgz", *args], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env=env or clean_env())


def test_broken_settings_files_exit_2_in_one_line(tmp_path: Path) -> None:
    """settings.cfg: missing, unreadable, missing key, bad region, bad token → one line, exit 2"""
    good = "[Dropbox]\ntoken: sl.AAAtoken\nsecret: appsecret\n\n[AWS]\nregion = us-west-1\n"
    files = {
        "missing": (None, "settings file not found"),
        "unreadable": (b"[Dropbox]\ntoken: \xff\xfe\n", "not UTF-8"),
        "a folder": ("dir", "is a folder"),
        "missing key": ("[Dropbox]\nsecret: appsecret\n", "[Dropbox] token: missing"),
        "bad region": (good.replace("us-west-1", "us-mars-9x"), "[AWS] region"),
        "bad token": (good.replace("sl.AAAtoken", "sl.AAA token\u200b"), "[Dropbox] token"),
        "not ini": ("token = x\n", "malformed"),
    }
    if os.geteuid() != 0:  # root reads a 000 file anyway
        files["permission denied"] = ("chmod", "permission denied")
    for name, (content, expected) in files.items():
        path = tmp_path / name.replace(" ", "_")
        if content == "dir":
            path.mkdir()
        elif content == "chmod":
            path.write_text(good)
            path.chmod(0)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
            path.chmod(0o600)
        for command in ("worker", "web", "serve"):
            result = _run_dropgz(tmp_path, command, "--config", str(path))
            assert result.returncode == 2, (name, command, result.stderr)
            lines = [line for line in result.stderr.splitlines() if "WARNING" not in line]
            assert len(lines) == 1 and expected in lines[0], (name, command, result.stderr)
            assert "Traceback" not in result.stderr
            assert "sl.AAA" not in result.stderr and "appsecret" not in result.stderr


def test_rejected_token_stops_the_worker_in_one_line(emulator: Any, tmp_path: Path) -> None:
    """settings.cfg: a token Dropbox rejects (401) → one line, exit 2, nothing dead-lettered"""
    env = clean_env()
    env.update({"DROPGZ_DROPBOX_TOKEN": "sl.wrong-token-refused-by-dropbox",
                "DROPGZ_DROPBOX_API_BASE_URL": emulator.url,
                "DROPGZ_SERVICE_DATA_DIR": str(tmp_path / "data")})
    result = _run_dropgz(tmp_path, "worker", "--burst", env=env)
    lines = [line for line in result.stderr.splitlines() if "WARNING" not in line]
    assert result.returncode == 2 and len(lines) == 1 and "[Dropbox] token" in lines[0], \
        result.stderr
