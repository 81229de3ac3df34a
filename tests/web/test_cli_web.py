"""``dropgz web`` end to end: a real process under waitress with the local push queue,
signed webhooks sent by the emulator, messages landing in moto_server's SQS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import dropbox
import pytest
import requests

from tests.fixtures.moto import moto_env
from tests.fixtures.peers import free_port, wait_for


def write_settings(path: Path, emulator: Any, moto_server: str, tmp_path: Path) -> dict[str, str]:
    env = moto_env(moto_server, tmp_path)
    lines = [
        "[Dropbox]",
        f"token: {emulator.token}",
        f"secret: {emulator.app_secret}",
        f"api_base_url: {emulator.url}",
    ]
    if getattr(emulator, "ca_bundle", None):
        lines.append(f"ca_bundle: {emulator.ca_bundle}")
    lines += [
        "",
        "[AWS]",
        f"aws_access_key_id = {env['DROPGZ_AWS_AWS_ACCESS_KEY_ID']}",
        f"aws_secret_access_key = {env['DROPGZ_AWS_AWS_SECRET_ACCESS_KEY']}",
        "region = us-west-1",
        f"queue = {env['DROPGZ_AWS_QUEUE']}",
        f"endpoint_url = {moto_server}",
        "",
        "[Service]",
        f"data_dir = {tmp_path / 'data'}",
    ]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return env


def sqs_bodies(moto_server: str, queue: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", endpoint_url=moto_server, region_name="us-west-1",
                       aws_access_key_id="AKIAMOTOTESTING",
                       aws_secret_access_key="moto-fake-secret-key-do-not-log")
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=600,
                              WaitTimeSeconds=1)
    return [json.loads(m["Body"]) for m in got.get("Messages", [])]


def test_dropgz_web_turns_a_new_file_into_one_message(emulator: Any, moto_server: str,
                                                      tmp_path: Path) -> None:
    from dropgz.core.config import load_settings
    from dropgz.queues.sqs import ensure_queues

    config = tmp_path / "settings.cfg"
    env = write_settings(config, emulator, moto_server, tmp_path)
    ensure_queues(load_settings(config, env={}))
    dbx = emulator.client()
    dbx.files_upload(b"there before\n", "/before.txt")

    port = free_port()
    log_path = tmp_path / "web.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dropgz", "web", "--config", str(config),
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("DROPGZ_")})
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            if process.poll() is not None:
                pytest.fail(f"dropgz web exited: {log_path.read_text()[-2000:]}")
            try:
                return requests.get(base + "/healthz", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_for(up, timeout=20)
        emulator.configure(webhook_url=base + "/webhook")
        meta = dbx.files_upload(b"dropped after start\n" * 50, "/Inbox/new file.txt",
                                mode=dropbox.files.WriteMode.add)
        found: list[dict[str, Any]] = []
        wait_for(lambda: found.extend(sqs_bodies(moto_server, env["DROPGZ_AWS_QUEUE"]))
                 or found, timeout=30)
        time.sleep(1.0)
        found.extend(sqs_bodies(moto_server, env["DROPGZ_AWS_QUEUE"]))
        assert [m["path"] for m in found] == ["/Inbox/new file.txt"]
        assert found[0]["rev"] == meta.rev
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            pytest.fail("dropgz web did not stop on SIGTERM")
    log_text = log_path.read_text()
    assert code == 0, log_text[-2000:]
    assert emulator.token not in log_text and emulator.app_secret not in log_text
    assert "moto-fake-secret-key-do-not-log" not in log_text


def test_dropgz_web_refuses_bad_settings(tmp_path: Path) -> None:
    config = tmp_path / "settings.cfg"
    config.write_text("[Dropbox]\ntoken: t\n")  # no secret: webhooks cannot be checked
    config.chmod(0o600)
    result = subprocess.run([sys.executable, "-m", "dropgz", "web", "--config", str(config)],
                            capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items()
                                 if not k.startswith("DROPGZ_")})
    assert result.returncode == 2
    assert "[Dropbox] secret" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
