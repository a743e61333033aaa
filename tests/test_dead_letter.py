"""A poison message ends in its queue's dead-letter queue (RedrivePolicy + acks_late +
task_acks_on_failure_or_timeout=False), with a real worker on the SQS emulator."""

import json
import uuid

import pytest
from django.conf import settings
from django.utils import timezone

from chargeflow.celery import app
from conftest import wait_until
from outbox.sqs import DLQ_SUFFIX, ensure_queues

pytestmark = pytest.mark.e2e


def depth(client, name: str) -> int:
    url = client.get_queue_url(QueueName=name)["QueueUrl"]
    attrs = client.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(
        attrs["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.fixture
def fast_redrive(sqs):
    """The orders queue with a 2 s visibility timeout and 2 receives before the DLQ."""
    client = sqs.client
    queue = settings.QUEUE_NAMES["orders"]
    url = client.get_queue_url(QueueName=queue)["QueueUrl"]
    dlq_url = client.get_queue_url(QueueName=queue + DLQ_SUFFIX)["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    client.set_queue_attributes(
        QueueUrl=url,
        Attributes={
            "VisibilityTimeout": "2",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
        },
    )
    yield queue
    ensure_queues(client)  # back to the configured attributes


def test_a_poison_message_moves_to_the_dead_letter_queue(live_stack, sqs, fast_redrive):
    live_stack.start(
        "worker", extra_env={"CELERY_TASK_MAX_RETRIES": "0", "SQS_VISIBILITY_TIMEOUT": "2"}
    )
    poison = {
        "id": str(uuid.uuid4()),
        "type": "order.placed",
        "version": 1,
        "occurred_at": timezone.now().isoformat(),
        "aggregate_id": "poison-order",
        "correlation_id": str(uuid.uuid4()),
        "data": {},
    }
    # No such subscriber: the task fails on every delivery, never acknowledged.
    app.send_task(
        "outbox.deliver",
        kwargs={"subscriber": "orders.no_such_subscriber", "event": poison},
        queue=fast_redrive,
    )
    wait_until(
        lambda: depth(sqs.client, fast_redrive + DLQ_SUFFIX) == 1,
        timeout=90,
        interval=1,
        message="the poison message in the dead-letter queue",
    )
    assert depth(sqs.client, fast_redrive) == 0
