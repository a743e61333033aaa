"""Dead-letter queues: what is in them, and sending it back (docs/operations.md "DLQ replay").

A message lands in `<queue>-dlq` after SQS_MAX_RECEIVE_COUNT deliveries that were never
acknowledged (a worker killed mid-task, a task that failed past its retries). Redriving sends
the message's body, unchanged, back to its queue and then deletes it from the dead-letter queue.
That is safe to repeat and safe to interrupt: a message sent twice (a crash between the send and
the delete, or a replay of a replay) is delivered twice, and the inbox makes the second delivery
do nothing (outbox.delivery)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from outbox.sqs import DLQ_SUFFIX, queue_url, sqs_client

logger = logging.getLogger(__name__)

PEEK_VISIBILITY_SECONDS = 5  # how long a peeked message is hidden from another reader
MOVE_VISIBILITY_SECONDS = 60  # how long a message being moved is hidden


@dataclass(frozen=True)
class DeadLetter:
    queue: str  # the app whose queue it came from (orders, billing …)
    message_id: str
    task: str
    subscriber: str
    event_type: str
    event_id: str
    aggregate_id: str
    correlation_id: str
    sent_at: datetime | None
    receive_count: int
    body_preview: str


@dataclass
class Redrive:
    dry_run: bool
    moved: dict[str, int] = field(default_factory=dict)  # queue app -> messages sent back
    messages: list[DeadLetter] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.moved.values())


def queue_apps(queue: str | None = None) -> list[str]:
    apps = list(settings.QUEUE_NAMES)
    if queue is None:
        return apps
    if queue not in settings.QUEUE_NAMES:
        raise ValueError(f"unknown queue {queue!r} (one of {', '.join(apps)})")
    return [queue]


def _decode(body: str) -> dict[str, Any]:
    """A kombu SQS message: base64 of a JSON envelope whose `body` holds Celery's
    [args, kwargs, embed] (base64 again when body_encoding says so). Anything else is shown raw."""
    try:
        envelope = json.loads(base64.b64decode(body, validate=True))
    except (binascii.Error, ValueError):
        try:
            envelope = json.loads(body)
        except ValueError:
            return {}
    if not isinstance(envelope, dict):
        return {}
    headers = envelope.get("headers") or {}
    payload = envelope.get("body")
    try:
        if (envelope.get("properties") or {}).get("body_encoding") == "base64":
            payload = base64.b64decode(payload)
        args, kwargs, *_ = json.loads(payload)
    except (TypeError, ValueError, binascii.Error):
        args, kwargs = [], {}
    return {"task": headers.get("task", ""), "args": args, "kwargs": kwargs or {}}


def describe(app: str, message: dict[str, Any]) -> DeadLetter:
    decoded = _decode(message.get("Body", ""))
    kwargs = decoded.get("kwargs", {})
    event = kwargs.get("event") if isinstance(kwargs.get("event"), dict) else {}
    attrs = message.get("Attributes", {})
    sent = attrs.get("SentTimestamp")
    return DeadLetter(
        queue=app,
        message_id=message["MessageId"],
        task=decoded.get("task", ""),
        subscriber=str(kwargs.get("subscriber", "")),
        event_type=str(event.get("type", "")),
        event_id=str(event.get("id", "")),
        aggregate_id=str(event.get("aggregate_id", "")),
        correlation_id=str(event.get("correlation_id", "")),
        sent_at=datetime.fromtimestamp(int(sent) / 1000, tz=UTC) if sent else None,
        receive_count=int(attrs.get("ApproximateReceiveCount", 0)),
        body_preview=json.dumps(decoded, default=str)[:2000] if decoded else message["Body"][:500],
    )


def _receive(client, url: str, visibility: int) -> list[dict]:
    return client.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=visibility,
        WaitTimeSeconds=0,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])


def _show_again(client, url: str, messages: list[dict]) -> None:
    """Make messages we looked at (and did not move) visible again at once."""
    for start in range(0, len(messages), 10):
        batch = messages[start : start + 10]
        client.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(batch)
            ],
        )


def peek(queue: str | None = None, *, limit: int = 100, client=None) -> list[DeadLetter]:
    """The messages in the dead-letter queue(s), without removing them (each is hidden from other
    readers for a few seconds while we look, then shown again)."""
    client = client or sqs_client()
    found: list[DeadLetter] = []
    for app in queue_apps(queue):
        url = queue_url(client, settings.QUEUE_NAMES[app] + DLQ_SUFFIX)
        if url is None:
            continue
        seen: dict[str, dict] = {}
        while len(found) + len(seen) < limit:
            batch = [
                m
                for m in _receive(client, url, PEEK_VISIBILITY_SECONDS)
                if m["MessageId"] not in seen
            ]
            if not batch:
                break
            for message in batch:
                seen[message["MessageId"]] = message
        _show_again(client, url, list(seen.values()))
        found += [describe(app, m) for m in seen.values()]
    return found[:limit]


def redrive(
    queue: str | None = None,
    *,
    message_ids: set[str] | None = None,
    dry_run: bool = False,
    client=None,
) -> Redrive:
    """Send dead letters back to their queue (all of them, or those in `message_ids`). With
    `dry_run`, only say what would be sent. Safe to repeat (module docstring)."""
    client = client or sqs_client()
    result = Redrive(dry_run=dry_run)
    for app in queue_apps(queue):
        name = settings.QUEUE_NAMES[app]
        dlq_url, source_url = queue_url(client, name + DLQ_SUFFIX), queue_url(client, name)
        if dlq_url is None or source_url is None:
            continue
        visibility = PEEK_VISIBILITY_SECONDS if dry_run else MOVE_VISIBILITY_SECONDS
        untouched: list[dict] = []
        seen: set[str] = set()
        moved = 0
        while True:
            batch = [m for m in _receive(client, dlq_url, visibility) if m["MessageId"] not in seen]
            if not batch:
                break
            for message in batch:
                seen.add(message["MessageId"])
                if message_ids is not None and message["MessageId"] not in message_ids:
                    untouched.append(message)
                    continue
                result.messages.append(describe(app, message))
                if dry_run:
                    untouched.append(message)
                    moved += 1
                    continue
                send = {"QueueUrl": source_url, "MessageBody": message["Body"]}
                if message.get("MessageAttributes"):
                    send["MessageAttributes"] = message["MessageAttributes"]
                client.send_message(**send)
                client.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
                logger.info(
                    "dead letter %s sent back to %s (%s on %s, order %s)",
                    message["MessageId"],
                    name,
                    result.messages[-1].subscriber or result.messages[-1].task,
                    result.messages[-1].event_type or "-",
                    result.messages[-1].aggregate_id or "-",
                )
            if message_ids is not None and seen >= message_ids:
                break
        _show_again(client, dlq_url, untouched)
        if moved:
            result.moved[app] = moved
    return result


def depths(client=None) -> dict[str, int]:
    """{queue app: messages in its dead-letter queue} (visible and in flight)."""
    client = client or sqs_client()
    found = {}
    for app, name in settings.QUEUE_NAMES.items():
        url = queue_url(client, name + DLQ_SUFFIX)
        if url is None:
            continue
        attrs = client.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        found[app] = int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
            attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
        )
    return found
