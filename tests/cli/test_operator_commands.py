"""`dropgz setup-aws` and `dropgz check` as a user runs them: real processes, real peers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3

from tests.fixtures.moto import moto_env

SECRETS = ("moto-fake-secret-key-do-not-log",)


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DROPGZ_")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "dropgz", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=120, check=False)


def test_setup_aws_creates_both_queues_with_redrive_and_is_idempotent(moto_server: str,
                                                                      tmp_path: Path) -> None:
    env = moto_env(moto_server, tmp_path, DROPGZ_AWS_MAX_RECEIVE_COUNT="7")
    first = run(["setup-aws"], env, tmp_path)
    assert first.returncode == 0, first.stderr
    again = run(["setup-aws"], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert first.stdout == again.stdout
    sqs = boto3.client("sqs", region_name="us-west-1", endpoint_url=moto_server,
                       aws_access_key_id="x", aws_secret_access_key="y")
    url = sqs.get_queue_url(QueueName=env["DROPGZ_AWS_QUEUE"])["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    policy = json.loads(attributes["RedrivePolicy"])
    assert int(policy["maxReceiveCount"]) == 7
    assert policy["deadLetterTargetArn"].endswith(":" + env["DROPGZ_AWS_QUEUE"] + "-dlq")
    for secret in SECRETS:
        assert secret not in first.stdout + first.stderr


def test_check_passes_against_emulator_and_moto(emulator, moto_server: str,
                                                tmp_path: Path) -> None:
    env = moto_env(moto_server, tmp_path, DROPGZ_DROPBOX_TOKEN=emulator.token,
                   DROPGZ_DROPBOX_SECRET=emulator.app_secret,
                   DROPGZ_DROPBOX_API_BASE_URL=emulator.url)
    assert run(["setup-aws"], env, tmp_path).returncode == 0
    result = run(["check"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✗" not in result.stdout
    assert emulator.account_id in result.stdout
    assert "SQS queue" in result.stdout and "dead-letter" in result.stdout
    for secret in (*SECRETS, emulator.token, emulator.app_secret):
        assert secret not in result.stdout + result.stderr


def test_check_fails_on_missing_queue_and_bad_token(emulator, moto_server: str,
                                                    tmp_path: Path) -> None:
    env = moto_env(moto_server, tmp_path, DROPGZ_DROPBOX_TOKEN="not-a-valid-token",
                   DROPGZ_DROPBOX_SECRET="s", DROPGZ_DROPBOX_API_BASE_URL=emulator.url)
    result = run(["check"], env, tmp_path)
    assert result.returncode == 1
    assert "does not exist" in result.stdout
    assert "Dropbox account" in result.stdout and "AuthError" in result.stdout
    assert "not-a-valid-token" not in result.stdout + result.stderr


def test_check_with_the_embedded_queue(emulator, tmp_path: Path) -> None:
    env = {"DROPGZ_DROPBOX_TOKEN": emulator.token, "DROPGZ_DROPBOX_SECRET": "s3cret-value",
           "DROPGZ_DROPBOX_API_BASE_URL": emulator.url,
           "DROPGZ_SERVICE_DATA_DIR": str(tmp_path / "data")}
    result = run(["check"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "embedded SQLite queue" in result.stdout


def test_bad_settings_exit_2_in_one_line(tmp_path: Path) -> None:
    result = run(["check"], {"DROPGZ_AWS_REGION": "moon-base-1"}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "[AWS] region" in result.stderr
