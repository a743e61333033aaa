"""SQS visibility sized to the step: a worker keeps the messages it holds invisible by renewing a
short lease (chargeflow/sqs_heartbeat.py), so a message held by a worker that dies comes back
within one short timeout instead of the longest task plus the longest countdown (480 s)."""

from __future__ import annotations

import signal
import time
import uuid

import pytest
from django.conf import settings
from django.utils import timezone

from chargeflow.celery import app
from conftest import wait_until
from outbox.sqs import ensure_queues

pytestmark = pytest.mark.e2e

TIMEOUT = 6  # seconds: the orders queue's VisibilityTimeout in this test
HEARTBEAT = 2


@pytest.fixture
def short_visibility(sqs):
    queue = settings.QUEUE_NAMES["orders"]
    url = sqs.client.get_queue_url(QueueName=queue)["QueueUrl"]
    sqs.client.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(TIMEOUT)})
    yield url
    ensure_queues(sqs.client)  # back to the configured attributes


def depth(client, url) -> tuple[int, int]:
    attrs = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


def test_defaults_come_back_within_a_minute_and_never_cut_a_held_message_short():
    assert settings.SQS_VISIBILITY_TIMEOUT <= 60
    assert settings.SQS_VISIBILITY_HEARTBEAT * 2 <= settings.SQS_VISIBILITY_TIMEOUT
    # Held (running or waiting for a retry countdown) at most the longest task plus countdown.
    assert settings.SQS_VISIBILITY_MAX_HOLD >= (
        settings.CELERY_TASK_TIME_LIMIT + settings.CELERY_RETRY_BACKOFF_MAX
    )
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] == (
        settings.SQS_VISIBILITY_TIMEOUT
    )


def test_a_held_message_is_extended_and_comes_back_soon_after_its_worker_dies(
    live_stack, sqs, short_visibility
):
    url = short_visibility
    worker = live_stack.start(
        "worker",
        extra_env={
            "SQS_VISIBILITY_TIMEOUT": str(TIMEOUT),
            "SQS_VISIBILITY_HEARTBEAT": str(HEARTBEAT),
        },
    )
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "test.held",
        "version": 1,
        "occurred_at": timezone.now().isoformat(),
        "aggregate_id": "held-order",
        "correlation_id": str(uuid.uuid4()),
        "data": {},
    }
    # A retry countdown: the worker receives the message and holds it, unacknowledged, until
    # its ETA (what a task waiting to be retried, or a long one, looks like to SQS).
    app.send_task(
        "outbox.deliver",
        kwargs={"subscriber": "orders.no_such_subscriber", "event": envelope},
        queue=settings.QUEUE_NAMES["orders"],
        countdown=120,
    )
    wait_until(
        lambda: depth(sqs.client, url) == (0, 1),
        timeout=60,
        interval=0.5,
        message="the worker to hold the message",
    )
    # Three timeouts later it is still held by that worker, received once: the lease was renewed
    # (without the heartbeat SQS would have handed it out again every 6 s).
    time.sleep(3 * TIMEOUT)
    assert depth(sqs.client, url) == (0, 1)
    assert worker.poll() is None

    live_stack.kill("worker", signal.SIGKILL)  # the whole worker: nothing rejects the message
    killed_at = time.monotonic()
    message = None
    while message is None and time.monotonic() - killed_at < 4 * TIMEOUT:
        messages = sqs.client.receive_message(
            QueueUrl=url,
            WaitTimeSeconds=1,
            AttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        message = messages[0] if messages else None
    came_back_after = time.monotonic() - killed_at
    assert message is not None, "the message did not come back"
    sqs.client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    # Back within one timeout (plus polling), and handed out once before: to the dead worker.
    assert came_back_after <= TIMEOUT + 2, came_back_after
    assert message["Attributes"]["ApproximateReceiveCount"] == "2"
    log = (live_stack.logs / f"{live_stack.name}-worker.log").read_text()
    assert "SQS visibility heartbeat" in log
    print(f"message came back {came_back_after:.1f}s after its worker was killed")


def test_a_long_step_killed_with_its_worker_is_redelivered_soon_with_its_attempt_number(
    live_stack, sqs, partner
):
    """A worker dies in the middle of a slow partner call. Its message comes back within the
    short timeout, and the next worker's handler sees `event.attempt == 2` (SQS counted the
    delivery to the dead worker), which is what shipping's give-up rule counts."""
    from shipping.models import Shipment
    from shipping.services import shipment_prepare

    queue = settings.QUEUE_NAMES["shipping"]
    url = sqs.client.get_queue_url(QueueName=queue)["QueueUrl"]
    sqs.client.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": str(TIMEOUT)})
    try:
        order_id = str(uuid.uuid4())
        shipment_prepare(
            order_id=order_id,
            order_number="CF-HELD",
            address={
                "name": "Ada",
                "line1": "1 Main St",
                "line2": "",
                "city": "Berlin",
                "postal_code": "10115",
                "country": "DE",
            },
        )
        slow = {
            "SQS_VISIBILITY_TIMEOUT": str(TIMEOUT),
            "SQS_VISIBILITY_HEARTBEAT": str(HEARTBEAT),
            "SHIPPING_PARTNER_READ_TIMEOUT": "60",
            "SHIPPING_PARTNER_RETRIES": "0",
        }
        partner.configure(latency_ms=60_000)  # the partner hangs: a long step
        live_stack.start("worker", extra_env=slow)
        app.send_task(
            "outbox.deliver",
            kwargs={
                "subscriber": "shipping.on_payment_succeeded",
                "event": {
                    "id": str(uuid.uuid4()),
                    "type": "payment.succeeded",
                    "version": 1,
                    "occurred_at": timezone.now().isoformat(),
                    "aggregate_id": order_id,
                    "correlation_id": str(uuid.uuid4()),
                    "data": {"order_id": order_id},
                },
            },
            queue=queue,
        )
        wait_until(
            lambda: depth(sqs.client, url) == (0, 1),
            timeout=60,
            interval=0.5,
            message="the worker to take the message",
        )
        time.sleep(2 * TIMEOUT)  # the step outlives the queue's timeout: the lease is renewed
        assert depth(sqs.client, url) == (0, 1)
        live_stack.kill("worker", signal.SIGKILL)
        killed_at = time.monotonic()
        partner.configure(latency_ms=0)
        live_stack.start("worker", extra_env=slow)
        wait_until(
            lambda: Shipment.objects.get(order_id=order_id).status == Shipment.Status.CREATED,
            timeout=60,
            interval=0.5,
            message="the shipment created by the next worker",
        )
        print(f"shipped {time.monotonic() - killed_at:.1f}s after the first worker was killed")
        log = (live_stack.logs / f"{live_stack.name}-worker.log").read_text()
        assert "on_payment_succeeded: payment.succeeded" in log
        assert "delivery attempt 2," in log
        assert Shipment.objects.get(order_id=order_id).attempts == 2
    finally:
        ensure_queues(sqs.client)
