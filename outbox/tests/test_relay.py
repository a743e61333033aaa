"""The relay's batched publishing (issue 11): the messages are the ones Celery's `send_task` would
publish, a batch goes to the broker in few round trips, and a message the broker refuses fails
its own row only. On both transports: SQS (moto, production's broker) and Redis (the bench's)."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import redis
from celery import Celery, signals
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chargeflow.celery import app as project_app
from outbox import publish
from outbox.models import OutboxEvent
from outbox.registry import subscribers_for
from outbox.relay import SQS_BATCH_BYTES, SQS_BATCH_MESSAGES, Relay, _sqs_chunks

pytestmark = pytest.mark.django_db(transaction=True)

# payment.succeeded goes to three queues (notifications, orders, shipping); email.sent to one.
DATA = {"amount": "12.30", "währung": "EUR", "lines": [{"sku": "A-1", "quantity": 2}]}


def celery_app(broker: str) -> Celery:
    """The project's Celery configuration on another broker."""
    app = Celery("relay-test", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.broker_write_url = broker  # CELERY_BROKER_URL in the environment wins over broker_url
    app.conf.task_publish_retry = False
    return app


@pytest.fixture
def redis_broker():
    if not settings.REDIS_URL:
        pytest.skip("needs Redis: set REDIS_URL")
    client = redis.Redis.from_url(settings.REDIS_URL)
    queues = list(settings.QUEUE_NAMES.values())
    client.delete(*queues)
    yield celery_app(settings.REDIS_URL), client
    client.delete(*queues)


def send_task_message(app: Celery, queue: str, subscriber: str, envelope: dict) -> dict:
    """The kombu message `send_task` publishes (caught where the transport would write it)."""
    sent = []
    with app.producer_or_acquire() as producer:
        channel = producer.channel
        channel._put = lambda _queue, message, **_kw: sent.append(message)
        try:
            app.send_task(
                "outbox.deliver",
                kwargs={"subscriber": subscriber, "event": envelope},
                queue=queue,
                producer=producer,
            )
        finally:
            del channel._put
    (message,) = sent
    return message


def assert_same_message(relayed: dict, reference: dict) -> None:
    """Equal but for what is unique per message (ids) and the shorter kwargsrepr."""
    per_message = {"id", "root_id", "kwargsrepr", "correlation_id", "delivery_tag"}

    def fixed(message: dict) -> dict:
        out = {k: v for k, v in message.items() if k not in ("body", "headers", "properties")}
        out["headers"] = {k: v for k, v in message["headers"].items() if k not in per_message}
        out["properties"] = {k: v for k, v in message["properties"].items() if k not in per_message}
        out["body"] = json.loads(base64.b64decode(message["body"]))
        return out

    assert list(relayed) == list(reference)
    assert list(relayed["headers"]) == list(reference["headers"])
    assert list(relayed["properties"]) == list(reference["properties"])
    assert fixed(relayed) == fixed(reference)
    headers = relayed["headers"]
    assert headers["root_id"] == headers["id"] == relayed["properties"]["correlation_id"]
    event = fixed(relayed)["body"][1]["event"]
    assert headers["kwargsrepr"] == (
        f"{{'subscriber': {fixed(relayed)['body'][1]['subscriber']!r}, 'event': "
        f"{{'id': '{event['id']}', 'type': {event['type']!r}, "
        f"'aggregate_id': {event['aggregate_id']!r}, ...}}}}"
    )


def test_on_redis_the_messages_are_send_tasks_and_a_batch_is_one_round_trip(
    redis_broker, monkeypatch
):
    app, client = redis_broker
    with transaction.atomic():
        rows = [publish("payment.succeeded", f"o-{i}", DATA) for i in range(30)]
    executes = []
    original = redis.client.Pipeline.execute
    monkeypatch.setattr(
        redis.client.Pipeline,
        "execute",
        lambda self, *a, **kw: executes.append(len(self.command_stack)) or original(self, *a, **kw),
    )
    assert Relay(app, batch_size=100).run_once() == 30
    # 30 events x 3 subscribers: one pipelined round trip, one LPUSH per queue (30 messages each)
    assert executes == [3]
    assert not OutboxEvent.objects.exclude(status=OutboxEvent.Status.PUBLISHED).exists()

    envelope = rows[0].as_event().to_envelope()
    for sub in subscribers_for("payment.succeeded"):
        raw = client.lrange(sub.queue, 0, -1)
        assert len(raw) == 30
        # LPUSH, consumed from the right: the oldest event first, as before.
        consumed = [json.loads(base64.b64decode(json.loads(m)["body"])) for m in reversed(raw)]
        assert [body[1]["event"]["id"] for body in consumed] == [str(r.event_id) for r in rows]
        relayed = json.loads(raw[-1])
        assert_same_message(relayed, send_task_message(app, sub.queue, sub.name, envelope))


def test_on_sqs_the_messages_are_send_tasks(sqs):
    sqs.purge()
    with transaction.atomic():
        rows = [publish("payment.succeeded", f"o-{i}", DATA) for i in range(25)]
    assert Relay(project_app).run_once() == 25  # 25 messages a queue: SendMessageBatch x 3

    envelope = rows[0].as_event().to_envelope()
    for sub in subscribers_for("payment.succeeded"):
        app_name = sub.queue.removeprefix(settings.SQS_QUEUE_PREFIX)
        bodies = []
        while batch := sqs.receive(app_name):
            for message in batch:
                bodies.append(json.loads(base64.b64decode(message["Body"])))
                sqs.client.delete_message(
                    QueueUrl=sqs.client.get_queue_url(QueueName=sub.queue)["QueueUrl"],
                    ReceiptHandle=message["ReceiptHandle"],
                )
        events = [json.loads(base64.b64decode(b["body"]))[1]["event"]["id"] for b in bodies]
        assert sorted(events) == sorted(str(row.event_id) for row in rows)
        (first,) = [
            b for b in bodies if json.loads(base64.b64decode(b["body"]))[1]["event"] == envelope
        ]
        assert_same_message(first, send_task_message(project_app, sub.queue, sub.name, envelope))


def test_a_message_redis_refuses_fails_its_row_only(redis_broker):
    app, client = redis_broker
    shipping = settings.QUEUE_NAMES["shipping"]
    client.set(shipping, "not a list")  # LPUSH answers WRONGTYPE for this queue only
    with transaction.atomic():
        paid = publish("payment.succeeded", "o-1", DATA)  # has a shipping subscriber
        sent = publish("email.sent", "o-1", {"kind": "x", "order_id": "o-1"})  # orders only
    assert Relay(app).run_once() == 2

    paid.refresh_from_db()
    sent.refresh_from_db()
    assert sent.status == OutboxEvent.Status.PUBLISHED
    assert paid.status == OutboxEvent.Status.FAILING
    assert paid.attempts == 1
    assert "WRONGTYPE" in paid.last_error
    assert paid.next_attempt_at > timezone.now()

    client.delete(shipping)
    OutboxEvent.objects.filter(pk=paid.pk).update(next_attempt_at=timezone.now())
    assert Relay(app).run_once() == 1
    paid.refresh_from_db()
    assert paid.status == OutboxEvent.Status.PUBLISHED
    # Sent again whole: the queues that had it have it twice (the inbox absorbs duplicates).
    assert client.llen(settings.QUEUE_NAMES["notifications"]) == 2
    assert client.llen(shipping) == 1


def test_a_message_sqs_refuses_fails_its_row_only(sqs):
    sqs.purge()
    with transaction.atomic():
        # Over SQS's message size (1 MiB) once encoded: refused, whatever it is batched with.
        pad = "x" * 700_000
        huge = publish("email.sent", "o-1", {"kind": "x", "order_id": "o-1", "pad": pad})
        small = [publish("email.sent", f"o-{i}", {"kind": "x", "order_id": "o"}) for i in range(3)]
    assert Relay(project_app).run_once() == 4
    huge.refresh_from_db()
    assert huge.status == OutboxEvent.Status.FAILING
    assert huge.attempts == 1 and huge.last_error
    for row in small:
        row.refresh_from_db()
        assert row.status == OutboxEvent.Status.PUBLISHED
    assert sorted(t["event"]["id"] for t in sqs.take_tasks("orders")) == sorted(
        str(row.event_id) for row in small
    )


def test_with_a_publish_signal_receiver_every_message_goes_through_send_task(sqs):
    sqs.purge()
    seen = []

    def receiver(sender=None, headers=None, **_kw):
        seen.append((sender, headers["kwargsrepr"]))

    signals.before_task_publish.connect(receiver)
    try:
        with transaction.atomic():
            publish("payment.succeeded", "o-1", DATA)
        assert Relay(project_app).run_once() == 1
    finally:
        signals.before_task_publish.disconnect(receiver)
    assert [sender for sender, _ in seen] == ["outbox.deliver"] * 3
    assert all(repr_.startswith("{'subscriber': ") for _, repr_ in seen)
    assert OutboxEvent.objects.get().status == OutboxEvent.Status.PUBLISHED
    assert len(sqs.take_tasks("shipping")) == 1


class _Channel:
    sqs_base64_encoding = True


def test_sqs_batches_hold_at_most_10_messages_and_256_kib():
    small = [(i, {"body": "x" * 100}) for i in range(23)]
    assert [len(c) for c in _sqs_chunks(_Channel(), small)] == [10, 10, 3]
    assert SQS_BATCH_MESSAGES == 10
    big = [(i, {"body": "x" * 70_000}) for i in range(5)]  # ~93 KiB each once base64-encoded
    chunks = list(_sqs_chunks(_Channel(), big))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert all(sum(len(body) for _pk, body in c) <= SQS_BATCH_BYTES for c in chunks)
    alone = [(0, {"body": "x" * 300_000}), (1, {"body": "y"})]
    assert [len(c) for c in _sqs_chunks(_Channel(), alone)] == [1, 1]


def test_a_backlog_is_published_in_claim_order_across_batches(sqs):
    sqs.purge()
    with transaction.atomic():
        rows = [publish("email.sent", f"o-{i}", {"kind": "x", "order_id": "o"}) for i in range(7)]
    OutboxEvent.objects.filter(pk=rows[0].pk).update(
        next_attempt_at=timezone.now() + timedelta(minutes=5)
    )  # backing off: not due
    relay = Relay(project_app, batch_size=4)
    assert relay.run_once() == 4
    assert relay.run_once() == 2
    assert relay.run_once() == 0
    assert OutboxEvent.objects.filter(status=OutboxEvent.Status.PUBLISHED).count() == 6
    assert len(sqs.take_tasks("orders")) == 6


class _RefusingSqsChannel(_Channel):
    """An SQS channel whose SendMessageBatch accepts every message but the second."""

    def __init__(self):
        self.batches = []

    def _new_queue(self, queue):
        return f"https://sqs.example/{queue}"

    def canonical_queue_name(self, queue):
        return queue

    def sqs(self, queue=None):
        return self

    def send_message_batch(self, QueueUrl, Entries):
        self.batches.append(len(Entries))
        return {
            "Successful": [{"Id": e["Id"]} for e in Entries if e["Id"] != "1"],
            "Failed": [{"Id": "1", "SenderFault": False, "Code": "InternalError", "Message": "x"}],
        }


def test_a_message_sqs_fails_in_a_batch_fails_its_row_only():
    from outbox.relay import _write_sqs

    channel, failed = _RefusingSqsChannel(), {}
    messages = [("q", pk, {"body": str(pk)}) for pk in (10, 11, 11, 12)]
    _write_sqs(channel, messages, failed)
    assert channel.batches == [4]
    assert list(failed) == [11]
    assert "InternalError" in str(failed[11])


def test_under_load_the_relay_gathers_commits_into_one_batch(redis_broker, settings):
    """After a batch that found events the relay waits OUTBOX_RELAY_GATHER_SECONDS before its
    next claim, so events committed meanwhile go out in one batch; an event committed while it
    is idle is claimed at once (it wakes on NOTIFY)."""
    import threading
    import time

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY: PostgreSQL")
    settings.OUTBOX_RELAY_GATHER_SECONDS = 0.5
    app, _client = redis_broker
    relay, batches, stop = Relay(app), [], threading.Event()
    run_once = relay.run_once

    def counted():
        claimed = run_once()
        if claimed:
            batches.append((time.monotonic(), claimed))
        return claimed

    relay.run_once = counted

    def run():
        try:
            relay.run_forever(poll_seconds=5, stop=stop)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        time.sleep(0.5)  # listening, idle
        with transaction.atomic():
            publish("email.sent", "order-1", DATA)
        committed = time.monotonic()
        deadline = committed + 5
        while not batches and time.monotonic() < deadline:
            time.sleep(0.005)
        assert batches and batches[0][0] - committed < 0.3  # idle: claimed at once
        for i in range(3):  # during the gathering pause
            with transaction.atomic():
                publish("email.sent", f"order-{i + 2}", DATA)
        while len(batches) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        stop.set()
        thread.join(10)
    assert [claimed for _, claimed in batches] == [1, 3]
    assert not OutboxEvent.objects.exclude(status=OutboxEvent.Status.PUBLISHED).exists()
