"""SQS work queue: setup, errors and retries, against moto_server over HTTP."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from dropgz.core.config import Settings, load_settings
from dropgz.core.errors import DropgzError, TransientError
from dropgz.queues import QueueStats, open_work_queue
from dropgz.queues.sqs import SQSWorkQueue, describe_queues, ensure_queues, make_client
from tests.fixtures.moto import moto_env
from tests.fixtures.peers import free_port
from tests.queues.conftest import drain

SECRET = "moto-fake-secret-key-do-not-log"  # the fake key moto_env puts in the settings


def judge(endpoint_url: str) -> Any:
    """A plain boto3 client, independent of the code under test, to look at moto's state."""
    return boto3.client("sqs", region_name="us-west-1", endpoint_url=endpoint_url,
                        aws_access_key_id="judge", aws_secret_access_key="judge")


def attributes(client: Any, name: str) -> dict[str, str]:
    url = client.get_queue_url(QueueName=name)["QueueUrl"]
    return client.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def test_ensure_queues_is_idempotent_and_sets_the_redrive_policy(
        sqs_settings: Settings, moto_server: str) -> None:
    # Given queues already made by the fixture, when setup runs twice more
    first = ensure_queues(sqs_settings)
    assert ensure_queues(sqs_settings) == first
    # Then the main queue redrives to the DLQ after max_receive_count receives
    client = judge(moto_server)
    main = attributes(client, sqs_settings.aws.queue)
    dead = attributes(client, sqs_settings.aws.dead_letter_name)
    assert json.loads(main["RedrivePolicy"]) == {"deadLetterTargetArn": dead["QueueArn"],
                                                 "maxReceiveCount": 5}
    assert main["VisibilityTimeout"] == "30"  # the short claim workers renew
    assert main["MessageRetentionPeriod"] == dead["MessageRetentionPeriod"] == "1209600"
    assert main["ReceiveMessageWaitTimeSeconds"] == "20"
    assert len(client.list_queues(QueueNamePrefix=sqs_settings.aws.queue)["QueueUrls"]) == 2
    # And changed settings update the existing queues instead of failing
    changed = replace(sqs_settings, aws=replace(sqs_settings.aws, max_receive_count=3,
                                                visibility_timeout=60))
    assert ensure_queues(changed) == first
    main = attributes(client, sqs_settings.aws.queue)
    assert json.loads(main["RedrivePolicy"])["maxReceiveCount"] == 3
    assert main["VisibilityTimeout"] == "60"
    # and the queue opened afterwards follows the policy SQS enforces
    with open_work_queue(changed) as queue:
        assert isinstance(queue, SQSWorkQueue)
        assert queue.max_receive_count == 3
        assert queue.dead_letter_url == first[1]


def test_missing_queue_is_a_clear_error(moto_server: str, tmp_path: Path) -> None:
    settings = load_settings(env=moto_env(moto_server, tmp_path,
                                          DROPGZ_AWS_QUEUE="no-such-queue"))
    with pytest.raises(DropgzError) as caught:
        open_work_queue(settings)
    message = str(caught.value)
    assert not isinstance(caught.value, TransientError)
    assert "'no-such-queue'" in message and "us-west-1" in message
    assert "does not exist" in message and "dropgz setup-aws" in message
    assert "\n" not in message and SECRET not in message


def test_unreachable_endpoint_is_transient(tmp_path: Path) -> None:
    settings = load_settings(env=moto_env(f"http://127.0.0.1:{free_port()}", tmp_path))
    with pytest.raises(TransientError, match="cannot reach SQS") as caught:
        SQSWorkQueue.from_settings(settings, client=make_client(settings, max_attempts=1))
    assert SECRET not in str(caught.value)


def test_invalid_queue_name_is_a_config_error(moto_server: str, tmp_path: Path) -> None:
    settings = load_settings(env=moto_env(moto_server, tmp_path, DROPGZ_AWS_QUEUE="bad name!"))
    with pytest.raises(DropgzError, match=r"\[AWS\] queue: 'bad name!' is not a valid SQS"):
        ensure_queues(settings)


def test_queue_may_be_given_as_a_url(sqs_settings: Settings) -> None:
    url, dead_url = ensure_queues(sqs_settings)
    by_url = replace(sqs_settings, aws=replace(sqs_settings.aws, queue=url))
    with open_work_queue(by_url) as queue:
        assert isinstance(queue, SQSWorkQueue)
        assert (queue.queue_url, queue.dead_letter_url) == (url, dead_url)
        queue.send(["via url"])
        assert [m.body for m in drain(queue, 1)] == ["via url"]
        assert SECRET not in repr(queue)


def test_describe_queues(sqs_settings: Settings, moto_server: str, tmp_path: Path) -> None:
    with open_work_queue(sqs_settings) as queue:
        queue.send(["a", "b"])
    report = describe_queues(sqs_settings)
    assert report["region"] == "us-west-1"
    assert report["queue"]["exists"] and report["queue"]["visible"] == 2
    assert report["queue"]["visibility_timeout"] == 30
    assert report["queue"]["redrive_policy"] == {
        "deadLetterTargetArn": report["dead_letter_queue"]["arn"], "maxReceiveCount": 5}
    assert report["dead_letter_queue"]["exists"]
    assert report["dead_letter_queue"]["name"] == sqs_settings.aws.dead_letter_name
    missing = load_settings(env=moto_env(moto_server, tmp_path, DROPGZ_AWS_QUEUE="absent"))
    report = describe_queues(missing)
    assert report["queue"] == {"name": "absent", "exists": False}
    assert report["dead_letter_queue"] == {"name": "absent-dlq", "exists": False}


def poison_entries(queue: SQSWorkQueue, calls: int) -> list[int]:
    """Make SQS answer the first entry of the next ``calls`` SendMessageBatch in ``Failed``.

    The entry goes out with DelaySeconds=901, over SQS's 900, so the server itself
    refuses that one entry and accepts the others: a real partial failure over HTTP.
    """
    seen: list[int] = []

    def poison(params: dict[str, Any], **_: Any) -> None:
        if len(seen) < calls:
            params["Entries"][0]["DelaySeconds"] = 901
        seen.append(len(params["Entries"]))

    queue.client.meta.events.register("before-parameter-build.sqs.SendMessageBatch", poison)
    return seen


def test_send_retries_failed_entries(sqs_settings: Settings) -> None:
    with open_work_queue(sqs_settings) as queue:
        assert isinstance(queue, SQSWorkQueue)
        calls = poison_entries(queue, calls=1)
        sent = [f"m{i}" for i in range(12)]
        queue.send(sent)
        # two batches (10 + 2), then the one refused entry again
        assert calls == [10, 2, 1]
        received = drain(queue, 12)
        assert sorted(m.body for m in received) == sorted(sent)
        assert queue.receive(wait_seconds=0) == []


def test_send_gives_up_naming_how_many_failed(sqs_settings: Settings) -> None:
    with open_work_queue(sqs_settings) as queue:
        assert isinstance(queue, SQSWorkQueue)
        calls = poison_entries(queue, calls=100)
        with pytest.raises(TransientError, match=r"1 of 12 messages were not sent .* after 4 "
                                                 r"attempts: InvalidParameterValue"):
            queue.send([f"m{i}" for i in range(12)])
        assert calls == [10, 2, 2, 1, 1]
        assert queue.stats() == QueueStats(visible=11, in_flight=0, dead=0)


def _receive_parameters(queue: SQSWorkQueue) -> list[dict[str, Any]]:
    """The parameters of every ReceiveMessage the queue sends from now on."""
    seen: list[dict[str, Any]] = []
    queue.client.meta.events.register("before-parameter-build.sqs.ReceiveMessage",
                                      lambda params, **_: seen.append(dict(params)))
    return seen


def test_left_out_visibility_timeout_follows_the_queue_and_stays_short(
        sqs_settings: Settings, moto_server: str, caplog: pytest.LogCaptureFixture) -> None:
    # Given [AWS] visibility_timeout left out, the queue setup-aws made claims 30 s
    assert sqs_settings.aws.visibility_timeout is None
    client = judge(moto_server)
    assert attributes(client, sqs_settings.aws.queue)["VisibilityTimeout"] == "30"
    url = client.get_queue_url(QueueName=sqs_settings.aws.queue)["QueueUrl"]
    # When the operator gave the queue its own 2 s, receives carry no timeout of their own:
    # a message a dead consumer held comes back after the queue's 2 s
    client.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "2"})
    with open_work_queue(sqs_settings) as queue:
        assert isinstance(queue, SQSWorkQueue)
        assert (queue.queue_visibility_timeout, queue.visibility_timeout) == (2, 2)
        sent = _receive_parameters(queue)
        queue.send(["claimed by the queue's own timeout"])
        [first] = drain(queue, 1)
        assert "VisibilityTimeout" not in sent[0]
        [again] = drain(queue, 1, timeout=10)
        assert (again.id, again.receive_count) == (first.id, 2)
    # And a queue with a long timeout of its own is respected at receive, but the claim the
    # heartbeat renews stays short, with a warning naming the fix
    client.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "300"})
    with caplog.at_level("WARNING", logger="dropgz.queues.sqs"), \
            open_work_queue(sqs_settings) as queue:
        assert isinstance(queue, SQSWorkQueue)
        assert (queue.queue_visibility_timeout, queue.visibility_timeout) == (300, 30)
    assert "300 s" in caplog.text and "dropgz setup-aws" in caplog.text


def test_configured_visibility_timeout_is_the_claim_of_every_receive(
        sqs_settings: Settings) -> None:
    settings = replace(sqs_settings, aws=replace(sqs_settings.aws, visibility_timeout=45))
    with open_work_queue(settings) as queue:
        assert isinstance(queue, SQSWorkQueue)
        assert queue.visibility_timeout == 45
        sent = _receive_parameters(queue)
        queue.send(["x"])
        drain(queue, 1)
        assert sent[0]["VisibilityTimeout"] == 45
