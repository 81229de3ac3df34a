"""The work queue on Amazon SQS (a standard queue plus its dead-letter queue), via boto3.

SQS itself moves a message received ``maxReceiveCount`` times to the dead-letter queue
(the queue's ``RedrivePolicy``, set by :func:`ensure_queues`); such a message carries no
reason. :meth:`SQSWorkQueue.dead_letter` sends one there explicitly, with the reason as
the message attribute ``reason``.

botocore errors are translated here, at the edge: network trouble, throttling and 5xx
become :class:`~dropgz.core.errors.TransientError` (after botocore's own "standard" retries);
a missing queue or refused credentials become a one-line
:class:`~dropgz.core.errors.DropgzError` naming the queue and region.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dropgz.core.config import Settings
from dropgz.core.errors import ConfigError, DropgzError, TransientError
from dropgz.core.logs import fields
from dropgz.queues.base import (
    DEFAULT_CLAIM_SECONDS,
    MAX_BATCH,
    MAX_BODY_BYTES,
    MAX_WAIT_TIME_SECONDS,
    DeadLetter,
    Message,
    QueueStats,
    WorkQueue,
)

log = logging.getLogger(__name__)

# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html
MESSAGE_RETENTION_SECONDS = 14 * 24 * 60 * 60  # the maximum, so failures wait for an operator
# https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html
_QUEUE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
# Attempts of SendMessageBatch for entries the service answered in ``Failed``.
SEND_ATTEMPTS = 4
SEND_BACKOFF_SECONDS = 0.1  # doubled after each attempt
CONNECT_TIMEOUT_SECONDS = 5
# A long poll holds the connection up to MAX_WAIT_TIME_SECONDS: read longer than that.
READ_TIMEOUT_SECONDS = MAX_WAIT_TIME_SECONDS + 10
# Peeking at dead letters hides them this long, then gives them back at once.
PEEK_VISIBILITY_SECONDS = 30

_MISSING_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_DENIED = {"AccessDenied", "AccessDeniedException", "InvalidClientTokenId",
           "SignatureDoesNotMatch", "UnrecognizedClientException", "InvalidSecurity",
           "MissingAuthenticationToken", "ExpiredToken", "KMS.AccessDeniedException"}
_THROTTLED = {"Throttling", "ThrottlingException", "RequestThrottled",
              "AWS.SimpleQueueService.RequestThrottled", "ServiceUnavailable", "InternalError",
              "InternalFailure", "KmsThrottled", "KMS.ThrottlingException"}
# A receipt that no longer holds its message (deleted, or received again since).
_STALE_RECEIPT = {"ReceiptHandleIsInvalid", "MessageNotInflight",
                  "AWS.SimpleQueueService.MessageNotInflight", "InvalidReceiptHandle"}


def make_client(settings: Settings, *, max_pool_connections: int = 32,
                max_attempts: int = 5) -> Any:
    """A boto3 SQS client for ``settings.aws`` (thread-safe; build it once).

    Keys from the settings when given, else boto3's default chain (an EC2 instance role).
    botocore's "standard" retry mode retries throttling, 5xx and connection errors up to
    ``max_attempts`` calls in all, with jittered exponential backoff.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError:  # pragma: no cover - boto3 is a core dependency
        raise DropgzError("the SQS work queue needs boto3: run `pip install boto3`") from None
    aws = settings.aws
    config = Config(retries={"mode": "standard", "max_attempts": max_attempts},
                    connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS,
                    max_pool_connections=max_pool_connections)
    keys: dict[str, str] = {}
    if aws.aws_access_key_id and aws.aws_secret_access_key:
        keys = {"aws_access_key_id": aws.aws_access_key_id,
                "aws_secret_access_key": aws.aws_secret_access_key.reveal()}
    # A session per client: boto3's default session is shared and not thread-safe.
    session = boto3.session.Session()
    return session.client("sqs", region_name=aws.region, endpoint_url=aws.endpoint_url,
                          config=config, **keys)


def queue_name(queue: str) -> str:
    """The name in a queue name or URL (``https://sqs.../123456789012/name`` -> ``name``)."""
    return queue.rstrip("/").rsplit("/", 1)[-1]


def _is_url(queue: str) -> bool:
    return queue.startswith(("https://", "http://"))


class SQSWorkQueue(WorkQueue):
    """A :class:`~dropgz.queues.base.WorkQueue` on an SQS queue and its dead-letter queue.

    ``client`` is a boto3 SQS client (see :func:`make_client`); ``max_receive_count``
    must match the queue's redrive policy, which is what SQS enforces
    (:meth:`from_settings` reads it from the queue).

    The claim: a ``visibility_timeout`` given here is sent with every receive and is what
    each heartbeat renews. Left out (None), receives carry none, so the queue's own
    ``queue_visibility_timeout`` applies to them (30 s for a queue ``dropgz setup-aws``
    made, as for SQS's own default), and heartbeats renew the claim for that long, but
    never for more than :data:`~dropgz.queues.base.DEFAULT_CLAIM_SECONDS`: a crashed
    worker's files come back quickly even from a queue configured with a long timeout.
    """

    def __init__(self, client: Any, queue_url: str, dead_letter_url: str, *,
                 visibility_timeout: int | None = None,
                 queue_visibility_timeout: int = DEFAULT_CLAIM_SECONDS,
                 max_receive_count: int = 5, region: str = "?") -> None:
        # A queue attribute of 0 would leave received messages unclaimed: claim explicitly.
        self._receive_visibility = visibility_timeout if visibility_timeout is not None or \
            queue_visibility_timeout >= 1 else DEFAULT_CLAIM_SECONDS
        claim = visibility_timeout if visibility_timeout is not None else \
            max(1, min(queue_visibility_timeout, DEFAULT_CLAIM_SECONDS))
        super().__init__(claim, max_receive_count)
        self.queue_visibility_timeout = queue_visibility_timeout
        self.client = client
        self.queue_url = queue_url
        self.dead_letter_url = dead_letter_url
        self.region = region
        self._closed = threading.Event()

    @classmethod
    def from_settings(cls, settings: Settings, client: Any = None) -> SQSWorkQueue:
        """Find the configured queue and its dead-letter queue (the redrive target)."""
        aws = settings.aws
        queue = settings.require("AWS", "queue")
        client = client or make_client(settings, max_pool_connections=max(
            10, 2 * settings.service.concurrency))
        url = _queue_url(client, queue, aws.region)
        with _translated("GetQueueAttributes", queue_name(queue), aws.region):
            attributes = client.get_queue_attributes(
                QueueUrl=url, AttributeNames=["RedrivePolicy", "VisibilityTimeout"])["Attributes"]
        max_receive_count = aws.max_receive_count
        dead_letter = aws.dead_letter_name
        if "RedrivePolicy" in attributes:
            policy = json.loads(attributes["RedrivePolicy"])
            max_receive_count = int(policy["maxReceiveCount"])
            dead_letter = policy["deadLetterTargetArn"].rsplit(":", 1)[-1]
        else:
            log.warning("SQS queue %s has no redrive policy: messages that keep failing are "
                        "never dead-lettered by SQS (run `dropgz setup-aws`)", queue_name(queue))
        assert dead_letter is not None  # queue is set, so dead_letter_name is too
        dead_letter_url = _queue_url(client, dead_letter, aws.region)
        own = int(attributes.get("VisibilityTimeout", DEFAULT_CLAIM_SECONDS))
        if aws.visibility_timeout is None and own > DEFAULT_CLAIM_SECONDS:
            log.warning("SQS queue %s hides a received message for %d s (its "
                        "VisibilityTimeout): the files of a worker that dies before its first "
                        "heartbeat wait that long; `dropgz setup-aws` sets %d s",
                        queue_name(queue), own, DEFAULT_CLAIM_SECONDS)
        return cls(client, url, dead_letter_url, visibility_timeout=aws.visibility_timeout,
                   queue_visibility_timeout=own, max_receive_count=max_receive_count,
                   region=aws.region)

    def __repr__(self) -> str:
        return f"SQSWorkQueue({self.queue_url!r})"

    @property
    def name(self) -> str:
        return queue_name(self.queue_url)

    @contextmanager
    def _call(self, operation: str, dead: bool = False) -> Iterator[None]:
        name = queue_name(self.dead_letter_url) if dead else self.name
        with _translated(operation, name, self.region):
            yield

    # ------------------------------------------------------------ primitives

    def _send(self, bodies: list[str]) -> None:
        self._send_later(bodies, 0.0)

    def _send_later(self, bodies: list[str], delay: float) -> None:
        later = {"DelaySeconds": math.ceil(delay)} if delay > 0 else {}
        pending = list(bodies)
        for attempt in range(SEND_ATTEMPTS):
            if attempt:
                time.sleep(SEND_BACKOFF_SECONDS * 2 ** (attempt - 1))
            failures: list[dict[str, Any]] = []
            retry: list[str] = []
            for batch in _batches(pending):
                with self._call("SendMessageBatch"):
                    answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=[
                        {"Id": str(i), "MessageBody": body, **later}
                        for i, body in enumerate(batch)])
                for failed in answer.get("Failed", []):
                    failures.append(failed)
                    retry.append(batch[int(failed["Id"])])
            if not retry:
                return
            log.warning("SQS refused some messages %s", fields(
                queue=self.name, failed=len(retry), attempt=attempt + 1,
                code=failures[0].get("Code"), sender_fault=failures[0].get("SenderFault")))
            pending = retry
        first = failures[0]
        raise TransientError(
            f"{len(pending)} of {len(bodies)} messages were not sent to SQS queue {self.name} "
            f"after {SEND_ATTEMPTS} attempts: {first.get('Code')}: {first.get('Message')}")

    def _receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        claim = ({} if self._receive_visibility is None
                 else {"VisibilityTimeout": self._receive_visibility})
        with self._call("ReceiveMessage"):
            answer = self.client.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=math.ceil(wait_seconds), **claim,
                # (MessageSystemAttributeNames is the newer name; both are accepted.)
                AttributeNames=["ApproximateReceiveCount"])
        return [Message(id=m["MessageId"], body=m["Body"], handle=m["ReceiptHandle"],
                        receive_count=int(m.get("Attributes", {})
                                          .get("ApproximateReceiveCount", 1)))
                for m in answer.get("Messages", [])]

    def _ack(self, message: Message) -> None:
        try:
            with self._call("DeleteMessage"):
                self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message.handle)
        except _StaleReceipt:
            _lost("ack", message)

    def _change_visibility(self, message: Message, seconds: float) -> None:
        try:
            with self._call("ChangeMessageVisibility"):
                self.client.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=message.handle,
                    # Whole seconds only; round up so a message is never shown early.
                    VisibilityTimeout=math.ceil(seconds))
        except _StaleReceipt:
            _lost("change visibility of", message)

    def _extend_all(self, messages: list[Message], seconds: float) -> None:
        for start in range(0, len(messages), MAX_BATCH):
            batch = messages[start:start + MAX_BATCH]
            entries = [{"Id": str(i), "ReceiptHandle": m.handle,
                        "VisibilityTimeout": math.ceil(seconds)} for i, m in enumerate(batch)]
            with self._call("ChangeMessageVisibilityBatch"):
                answer = self.client.change_message_visibility_batch(
                    QueueUrl=self.queue_url, Entries=entries)
            for failed in answer.get("Failed", []):
                message = batch[int(failed["Id"])]
                if failed.get("Code") in _STALE_RECEIPT:
                    _lost("change visibility of", message)
                else:
                    log.warning("could not extend message %s: %s: %s", message.id,
                                failed.get("Code"), failed.get("Message"))

    def _dead_letter(self, message: Message, reason: str) -> None:
        # Two calls, not atomic: a crash in between leaves the message in both queues,
        # which at-least-once consumers already tolerate.
        with self._call("SendMessage", dead=True):
            self.client.send_message(QueueUrl=self.dead_letter_url, MessageBody=message.body,
                                     MessageAttributes={
                                         "reason": _string(reason),
                                         "source_message_id": _string(message.id)})
        log.warning("dead-lettered %s", fields(queue=self.name, id=message.id, reason=reason))
        self._ack(message)

    def _dead_letters(self, limit: int) -> list[DeadLetter]:
        # SQS has no peek: receive (which hides them for a moment), then give them back.
        expected = min(limit, self._depth(self.dead_letter_url, dead=True)[0])
        seen: dict[str, dict[str, Any]] = {}
        while len(seen) < expected:
            with self._call("ReceiveMessage", dead=True):
                answer = self.client.receive_message(
                    QueueUrl=self.dead_letter_url, MaxNumberOfMessages=MAX_BATCH,
                    WaitTimeSeconds=1, VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
                    MessageAttributeNames=["reason"])
            batch = answer.get("Messages", [])
            if not batch:
                break
            for m in batch:
                seen.setdefault(m["MessageId"], m)
        self._unhide(list(seen.values()))
        letters = [DeadLetter(m["Body"], m.get("MessageAttributes", {}).get("reason", {})
                              .get("StringValue"), m["MessageId"]) for m in seen.values()]
        return letters[:limit]

    def _move_dead(self, ids: set[str] | None, requeue: bool) -> int:
        # No SQS call acts on a message by id: receive the dead letters (hidden for a
        # moment), act on the wanted ones, give the others back.
        moved, others, seen = 0, [], set()
        while ids is None or ids - seen:
            with self._call("ReceiveMessage", dead=True):
                batch = self.client.receive_message(
                    QueueUrl=self.dead_letter_url, MaxNumberOfMessages=MAX_BATCH,
                    WaitTimeSeconds=1, VisibilityTimeout=PEEK_VISIBILITY_SECONDS,
                ).get("Messages", [])
            if not batch or all(m["MessageId"] in seen for m in batch):
                break
            seen.update(m["MessageId"] for m in batch)
            take = [m for m in batch if ids is None or m["MessageId"] in ids]
            others += [m for m in batch if m not in take]
            if take and requeue:
                self._send([m["Body"] for m in take])
            if take:
                with self._call("DeleteMessageBatch", dead=True):
                    self.client.delete_message_batch(QueueUrl=self.dead_letter_url, Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(take)])
                moved += len(take)
        self._unhide(others)
        log.info("%s %d dead letter(s) %s", "redrove" if requeue else "deleted", moved,
                 fields(queue=self.name))
        return moved

    def _unhide(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), MAX_BATCH):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                       for i, m in enumerate(messages[start:start + MAX_BATCH])]
            with self._call("ChangeMessageVisibilityBatch", dead=True):
                self.client.change_message_visibility_batch(QueueUrl=self.dead_letter_url,
                                                            Entries=entries)

    def _depth(self, url: str, dead: bool = False) -> tuple[int, int]:
        with self._call("GetQueueAttributes", dead=dead):
            attributes = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
            ])["Attributes"]
        return (int(attributes.get("ApproximateNumberOfMessages", 0)),
                int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)))

    # ------------------------------------------------------------ the rest

    def stats(self) -> QueueStats:
        visible, in_flight = self._depth(self.queue_url)
        dead_visible, dead_hidden = self._depth(self.dead_letter_url, dead=True)
        return QueueStats(visible=visible, in_flight=in_flight, dead=dead_visible + dead_hidden)

    def purge(self) -> None:
        # PurgeQueue may take up to 60 s on SQS and is refused twice within 60 s.
        with self._call("PurgeQueue"):
            self.client.purge_queue(QueueUrl=self.queue_url)
        with self._call("PurgeQueue", dead=True):
            self.client.purge_queue(QueueUrl=self.dead_letter_url)

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self.client.close()


# ---------------------------------------------------------------- setup and checks


def ensure_queues(settings: Settings) -> tuple[str, str]:
    """Create or update the dead-letter queue and the main queue; returns their URLs.

    Idempotent (``dropgz setup-aws``): an existing queue gets its attributes set to the
    settings' values instead of a ``QueueAlreadyExists`` error.
    """
    aws = settings.aws
    main = queue_name(settings.require("AWS", "queue"))
    dead = aws.dead_letter_name
    assert dead is not None
    for name, key in ((main, "queue"), (dead, "dead_letter_queue")):
        if not _QUEUE_NAME_RE.match(name):
            raise ConfigError(f"{settings.source}: [AWS] {key}: {name!r} is not a valid SQS "
                              "queue name (1-80 letters, digits, '-' or '_'; FIFO is not used)")
    client = make_client(settings)
    try:
        dead_url = _create_or_update(client, dead, aws.region, {
            "MessageRetentionPeriod": str(MESSAGE_RETENTION_SECONDS)})
        with _translated("GetQueueAttributes", dead, aws.region):
            dead_arn = client.get_queue_attributes(
                QueueUrl=dead_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        main_url = _create_or_update(client, main, aws.region, {
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn,
                                         "maxReceiveCount": aws.max_receive_count}),
            "VisibilityTimeout": str(aws.visibility_timeout or DEFAULT_CLAIM_SECONDS),
            "MessageRetentionPeriod": str(MESSAGE_RETENTION_SECONDS),
            "ReceiveMessageWaitTimeSeconds": str(MAX_WAIT_TIME_SECONDS),
        })
    finally:
        client.close()
    log.info("SQS queues ready %s", fields(queue=main_url, dead_letter_queue=dead_url))
    return main_url, dead_url


def describe_queues(settings: Settings) -> dict[str, Any]:
    """What ``dropgz check`` shows: for the queue and its dead-letter queue, whether it
    exists, its URL, visibility timeout, redrive policy and depth. Never raises for a
    missing queue (``exists: False``)."""
    aws = settings.aws
    main = settings.require("AWS", "queue")
    client = make_client(settings)
    try:
        report: dict[str, Any] = {"region": aws.region, "endpoint_url": aws.endpoint_url,
                                  "queue": _describe(client, main, aws.region)}
        policy = report["queue"].get("redrive_policy")
        dead = (policy["deadLetterTargetArn"].rsplit(":", 1)[-1] if policy
                else aws.dead_letter_name)
        assert dead is not None
        report["dead_letter_queue"] = _describe(client, dead, aws.region)
    finally:
        client.close()
    return report


def _describe(client: Any, queue: str, region: str) -> dict[str, Any]:
    name = queue_name(queue)
    try:
        url = _queue_url(client, queue, region)
        with _translated("GetQueueAttributes", name, region):
            attributes = client.get_queue_attributes(QueueUrl=url,
                                                     AttributeNames=["All"])["Attributes"]
    except QueueDoesNotExist:
        return {"name": name, "exists": False}
    redrive = attributes.get("RedrivePolicy")
    return {
        "name": name, "exists": True, "url": url, "arn": attributes.get("QueueArn"),
        "visibility_timeout": int(attributes.get("VisibilityTimeout", 0)),
        "redrive_policy": json.loads(redrive) if redrive else None,
        "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
        "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
    }


def _create_or_update(client: Any, name: str, region: str, attributes: dict[str, str]) -> str:
    try:
        url = _queue_url(client, name, region)
    except QueueDoesNotExist:
        with _translated("CreateQueue", name, region):
            return client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    with _translated("SetQueueAttributes", name, region):
        client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def _queue_url(client: Any, queue: str, region: str) -> str:
    if _is_url(queue):
        return queue
    with _translated("GetQueueUrl", queue, region):
        return client.get_queue_url(QueueName=queue)["QueueUrl"]


def _batches(bodies: list[str]) -> Iterator[list[str]]:
    """Chunks within SendMessageBatch's limits: MAX_BATCH entries, MAX_BODY_BYTES in total."""
    batch: list[str] = []
    size = 0
    for body in bodies:
        length = len(body.encode("utf-8"))
        if batch and (len(batch) == MAX_BATCH or size + length > MAX_BODY_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(body)
        size += length
    if batch:
        yield batch


def _string(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": value}


def _lost(action: str, message: Message) -> None:
    # At-least-once delivery: the visibility timeout expired and someone else received
    # or deleted the message. Not an error; its new holder takes care of it.
    log.warning("could not %s message %s: the receipt no longer holds it (visibility "
                "timeout expired?)", action, message.id)


# ---------------------------------------------------------------- error translation


class QueueDoesNotExist(DropgzError):
    """The configured queue (or its dead-letter queue) does not exist."""


class _StaleReceipt(DropgzError):
    """The receipt handle no longer holds its message."""


@contextmanager
def _translated(operation: str, name: str, region: str) -> Iterator[None]:
    """botocore's exceptions as dropgz's, with one line naming the queue and region."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
    )

    where = f"SQS queue {name!r} in {region}"
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        codes = {error.get("Code"), error.get("QueryErrorCode")}
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if codes & _MISSING_QUEUE:
            raise QueueDoesNotExist(f"{where} does not exist (create it with "
                                "`dropgz setup-aws`, or check [AWS] queue and region)") from None
        if codes & _STALE_RECEIPT:
            raise _StaleReceipt(f"{operation} on {where}: {error.get('Code')}") from None
        if codes & _DENIED:
            # The service's own message can quote the key id; the code is enough.
            raise DropgzError(f"{operation} on {where}: access denied ({error.get('Code')}): "
                              "check the AWS keys or the instance role's policy") from None
        if codes & _THROTTLED or status >= 500 or status == 429:
            raise TransientError(f"{operation} on {where}: {error.get('Code')} "
                                 f"(HTTP {status})") from exc
        raise DropgzError(f"{operation} on {where} failed: {error.get('Code')}: "
                          f"{error.get('Message')}") from None
    except NoCredentialsError:
        raise DropgzError("no AWS credentials: set [AWS] aws_access_key_id and "
                          "aws_secret_access_key, or run where an instance role "
                          "provides them") from None
    except (ConnectionError, HTTPClientError) as exc:
        raise TransientError(f"{operation} on {where}: cannot reach SQS: {exc}") from exc
    except BotoCoreError as exc:
        raise DropgzError(f"{operation} on {where} failed: {exc}") from None
